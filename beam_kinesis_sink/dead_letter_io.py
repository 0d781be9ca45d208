"""Dead-letter storage: :class:`DeadLetter` records in Avro files.

    result.dead_letters | WriteDeadLetters("s3://bucket/dead-letters/orders/")
    letters = p | ReadDeadLetters("s3://bucket/dead-letters/orders/*.avro")

The files are Avro object container files written and read through Beam's
Avro IO (fastavro underneath), so they work on every Beam filesystem (local,
``s3://``, ``gs://``, ...). The schema is versioned: its full name is
``beam_kinesis_sink.dead_letter.v1.DeadLetter`` and every record carries
``schema_version = 1``. ``failed_at_micros`` and ``element_timestamp_micros``
are Avro ``timestamp-micros`` longs (microseconds since the Unix epoch, UTC).
A copy of the schema is in ``dead_letter.avsc`` next to this module.

A future incompatible change gets a new namespace (``...v2``) and
``schema_version = 2``; readers here refuse versions they do not know.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import apache_beam as beam
from apache_beam.io.avroio import ReadAllFromAvro, ReadFromAvro, WriteToAvro

from beam_kinesis_sink.dead_letter_writing import (
    FILE_PREFIX,
    FILE_SUFFIX,
    WriteBundleFilesFn,
    check_codec,
    file_prefix,
    is_directory,
)
from beam_kinesis_sink.records import DeadLetter

_LOG = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SCHEMA_NAMESPACE = "beam_kinesis_sink.dead_letter.v1"
SCHEMA_NAME = "DeadLetter"
SCHEMA_FULLNAME = f"{SCHEMA_NAMESPACE}.{SCHEMA_NAME}"
#: logged when ``num_shards`` is given for unbounded input, where each bundle writes its own files
UNBOUNDED_NUM_SHARDS = (
    "WriteDeadLetters: num_shards=%s does not apply to unbounded input: each bundle writes the "
    "dead letters of each window to a file of its own"
)


def _optional(avro_type: Any) -> list:
    return ["null", avro_type]


_TIMESTAMP_MICROS = {"type": "long", "logicalType": "timestamp-micros"}

#: The Avro schema of a dead-letter record (version 1). ``dead_letter.avsc`` holds the same schema.
DEAD_LETTER_SCHEMA: dict = {
    "type": "record",
    "name": SCHEMA_NAME,
    "namespace": SCHEMA_NAMESPACE,
    "doc": (
        "A record that beam-kinesis-sink could not write to Amazon Kinesis, and why. "
        "Schema version 1."
    ),
    "schema_version": SCHEMA_VERSION,
    "fields": [
        {
            "name": "schema_version",
            "type": "int",
            "default": SCHEMA_VERSION,
            "doc": "Version of this schema; 1.",
        },
        {"name": "stream", "type": "string", "doc": "The stream name or ARN the record was meant for."},
        {
            "name": "data",
            "type": _optional("bytes"),
            "default": None,
            "doc": "The record's data as it would have been written; null when it could not be produced.",
        },
        {"name": "partition_key", "type": _optional("string"), "default": None},
        {
            "name": "explicit_hash_key",
            "type": _optional("string"),
            "default": None,
            "doc": "Decimal string in 0..2^128-1, when one was given.",
        },
        {
            "name": "error_code",
            "type": "string",
            "doc": "One of beam_kinesis_sink.ErrorCode, or a KMS* code of the service.",
        },
        {"name": "error_message", "type": "string"},
        {
            "name": "attempts",
            "type": "int",
            "doc": "PutRecords attempts made, summed over replays (0 = rejected before any request).",
        },
        {"name": "shard_id", "type": _optional("string"), "default": None},
        {
            "name": "failed_at_micros",
            "type": _TIMESTAMP_MICROS,
            "doc": "When the record was given up on (UTC).",
        },
        {
            "name": "element_timestamp_micros",
            "type": _optional(_TIMESTAMP_MICROS),
            "default": None,
            "doc": "The element's event time (UTC), when it had one.",
        },
        {
            "name": "element_preview",
            "type": _optional("string"),
            "default": None,
            "doc": "A short repr of the element when data is null, or where the record came from.",
        },
    ],
}

FIELD_NAMES = tuple(f["name"] for f in DEAD_LETTER_SCHEMA["fields"])

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_ONE_MICRO = datetime.timedelta(microseconds=1)
# datetime's range: what any Avro reader that maps timestamp-micros to a date-time can hold
_MIN_MICROS = (datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc) - _EPOCH) // _ONE_MICRO
_MAX_MICROS = (
    datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=datetime.timezone.utc) - _EPOCH
) // _ONE_MICRO


class NotADeadLetterError(ValueError):
    """An Avro record that is not a dead letter of a schema version this code knows."""


def micros_to_datetime(micros: int) -> datetime.datetime:
    """Microseconds since the Unix epoch as an aware UTC datetime."""
    return _EPOCH + datetime.timedelta(microseconds=micros)


def to_micros(value: Any) -> Optional[int]:
    """A datetime (naive means UTC) or a number as microseconds since the Unix
    epoch; None stays None."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return (value - _EPOCH) // _ONE_MICRO
    return int(value)


def to_avro(letter: DeadLetter) -> dict:
    """A :class:`DeadLetter` as a record of :data:`DEAD_LETTER_SCHEMA`.

    An element timestamp outside the years 1..9999 (which no date-time type
    holds) is stored as null, and noted in ``element_preview``.
    """
    element_ts = letter.element_timestamp_micros
    preview = letter.element_preview
    if element_ts is not None and not _MIN_MICROS <= element_ts <= _MAX_MICROS:
        note = f"[element timestamp {element_ts} us out of range, not stored]"
        preview = f"{preview} {note}" if preview else note
        element_ts = None
    failed_at = min(max(int(letter.failed_at_micros), _MIN_MICROS), _MAX_MICROS)
    return {
        "schema_version": SCHEMA_VERSION,
        "stream": letter.stream,
        "data": None if letter.data is None else bytes(letter.data),
        "partition_key": letter.partition_key,
        "explicit_hash_key": letter.explicit_hash_key,
        "error_code": letter.error_code,
        "error_message": letter.error_message,
        "attempts": int(letter.attempts),
        "shard_id": letter.shard_id,
        "failed_at_micros": failed_at,
        "element_timestamp_micros": element_ts,
        "element_preview": preview,
    }


def from_avro(record: Mapping[str, Any]) -> DeadLetter:
    """A record read from a dead-letter file, as a :class:`DeadLetter`.

    Raises :class:`NotADeadLetterError` for records of another schema or of
    an unknown schema version.
    """
    if not isinstance(record, Mapping):
        raise NotADeadLetterError(f"not a dead-letter record: {type(record).__name__}")
    missing = [
        name for name in ("stream", "error_code", "error_message", "attempts", "failed_at_micros")
        if name not in record
    ]
    if missing:
        raise NotADeadLetterError(f"not a dead-letter record: no field(s) {', '.join(missing)}")
    version = record.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise NotADeadLetterError(
            f"dead-letter schema version {version} is not supported (this code reads {SCHEMA_VERSION})"
        )
    data = record.get("data")
    failed_at = to_micros(record["failed_at_micros"])
    assert failed_at is not None
    return DeadLetter(
        stream=record["stream"],
        data=None if data is None else bytes(data),
        partition_key=record.get("partition_key"),
        explicit_hash_key=record.get("explicit_hash_key"),
        error_code=record["error_code"],
        error_message=record["error_message"],
        attempts=int(record["attempts"]),
        shard_id=record.get("shard_id"),
        failed_at_micros=failed_at,
        element_timestamp_micros=to_micros(record.get("element_timestamp_micros")),
        element_preview=record.get("element_preview"),
    )


class WriteDeadLetters(beam.PTransform):
    """Write a PCollection of :class:`DeadLetter` to Avro files.

    Args:
      path_prefix: a directory (ending in ``/``), e.g. ``s3://bucket/dl/orders/``,
        where the files are named ``dead-letters-<UTC time>-<token>-SSSSS-of-NNNNN.avro``
        (the time and token of this transform's construction: a pipeline
        that writes to the directory again does not replace these files;
        ``file_prefix`` tells the name); or a file name prefix, kept as
        given. Any Beam filesystem.
      num_shards: the number of files; 0 (default) lets the runner decide.
      codec: the Avro block codec (default ``deflate``; ``null``, ``snappy``...).

    Returns the PCollection of the file names written. As with every Beam
    file sink, a run without any dead letter writes one empty file.

    Unbounded input (streaming) is written without Beam's file sink, whose
    ``GroupByKey`` would never fire in the global window and would hold the
    letters of a fixed window until the watermark passed its end: each
    bundle writes the dead letters of each window it saw to a file of its
    own, ``PREFIX-<UTC time>-<writer token>-<n>.avro``, renamed into place
    when the bundle finishes (:mod:`beam_kinesis_sink.dead_letter_writing`).
    ``num_shards`` does not apply there, and a bundle without dead letters
    writes no file. A bundle the runner retries after its rename writes its
    letters again: at least once, never lost.
    """

    def __init__(
        self,
        path_prefix: str,
        *,
        num_shards: int = 0,
        codec: str = "deflate",
        file_name_suffix: str = FILE_SUFFIX,
        label: Optional[str] = None,
    ) -> None:
        super().__init__(label)
        if not path_prefix:
            raise ValueError("path_prefix must not be empty")
        check_codec(codec, DEAD_LETTER_SCHEMA,
                    to_avro(DeadLetter("s", None, None, None, "C", "m", 0, None, 0, None, None)))
        self.file_prefix = file_prefix(path_prefix)
        # a bundle's file has a name of its own: no run part needed
        self._bundle_prefix = path_prefix + FILE_PREFIX if is_directory(path_prefix) else path_prefix
        self._num_shards = num_shards
        self._codec = codec
        self._suffix = file_name_suffix

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        records = pcoll | "ToAvro" >> beam.Map(to_avro).with_output_types(dict)
        if not pcoll.is_bounded:
            if self._num_shards:
                _LOG.warning(UNBOUNDED_NUM_SHARDS, self._num_shards)
            return records | "WriteBundleFiles" >> beam.ParDo(
                WriteBundleFilesFn(self._bundle_prefix, DEAD_LETTER_SCHEMA, self._codec, self._suffix)
            ).with_output_types(str)
        return (
            records
            | "WriteAvro"
            >> WriteToAvro(
                self.file_prefix,
                schema=DEAD_LETTER_SCHEMA,
                codec=self._codec,
                file_name_suffix=self._suffix,
                num_shards=self._num_shards,
            )
        )


class ReadDeadLetters(beam.PTransform):
    """Read dead-letter files back as a PCollection of :class:`DeadLetter`.

    Args:
      file_pattern: a glob on any Beam filesystem, e.g.
        ``s3://bucket/dl/orders/*.avro``; or a list of file names or globs.
      validate: with a single pattern, fail at construction if nothing matches.

    A record of another schema fails the pipeline with
    :class:`NotADeadLetterError`.
    """

    def __init__(
        self,
        file_pattern: Union[str, Sequence[str]],
        *,
        validate: bool = True,
        label: Optional[str] = None,
    ) -> None:
        super().__init__(label)
        if isinstance(file_pattern, str):
            self._patterns: list[str] = [file_pattern]
            self._single = True
        else:
            self._patterns = list(file_pattern)
            self._single = False
            if not self._patterns:
                raise ValueError("no file patterns given")
        self._validate = validate

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        records: Any
        if self._single:
            records = pbegin | "ReadAvro" >> ReadFromAvro(self._patterns[0], validate=self._validate)
        else:
            records = (
                pbegin
                | "Patterns" >> beam.Create(self._patterns)
                | "ReadAvro" >> ReadAllFromAvro()
            )
        return records | "FromAvro" >> beam.Map(from_avro).with_output_types(DeadLetter)


def is_dead_letter_schema(writer_schema: Any) -> Optional[str]:
    """``None`` when ``writer_schema`` (an Avro file's schema) is a dead-letter
    schema this code reads; otherwise the reason it is not."""
    if not isinstance(writer_schema, Mapping) or writer_schema.get("type") != "record":
        return "its schema is not a record"
    name = str(writer_schema.get("name", ""))
    namespace = writer_schema.get("namespace")
    fullname = name if "." in name or not namespace else f"{namespace}.{name}"
    if fullname != SCHEMA_FULLNAME:
        if fullname.endswith("." + SCHEMA_NAME) and fullname.startswith("beam_kinesis_sink.dead_letter."):
            return f"its schema {fullname} is a dead-letter schema version this code does not read"
        return f"its schema is {fullname or '(unnamed)'}, not {SCHEMA_FULLNAME}"
    names = {f.get("name") for f in writer_schema.get("fields", []) if isinstance(f, Mapping)}
    missing = [n for n in FIELD_NAMES if n not in names]
    if missing:
        return f"its schema lacks field(s) {', '.join(missing)}"
    return None


def _header_schema(reader: Any) -> Any:
    import json

    text = reader.metadata.get("avro.schema")
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return json.loads(text) if text else None


def _open_dead_letters(handle: Any) -> Any:
    """fastavro's block reader of an open file, once its header says it is a dead-letter file."""
    import fastavro

    reader = fastavro.block_reader(handle)
    problem = is_dead_letter_schema(_header_schema(reader))
    if problem:
        raise NotADeadLetterError(f"not a dead-letter file: {problem}")
    return reader


def read_file(path: str) -> Iterable[DeadLetter]:
    """The dead letters of one file, read without Beam (fastavro over Beam's
    ``FileSystems``, so any Beam filesystem works).

    Raises :class:`NotADeadLetterError` when the file is an Avro file of
    another schema; fastavro's errors (``ValueError``, ``EOFError``...) when it
    is not an Avro file or is corrupt. A block is yielded whole or not at all:
    once it was read to its end, its sync marker checked and every record of
    it decoded; the letters of the blocks before a corrupt one are yielded first.
    """
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as handle:
        for block in _open_dead_letters(handle):
            yield from [from_avro(record) for record in block]


def check_file(path: str) -> Optional[str]:
    """``None`` if ``path`` starts like a dead-letter file (Avro header and
    schema); else the reason it does not: ``not a readable Avro file: ...``
    (``it is empty (0 bytes)`` for a 0-byte file) or ``not a dead-letter file:
    ...``. Reads only the header."""
    from apache_beam.io.filesystems import FileSystems

    try:
        with FileSystems.open(path) as handle:
            _open_dead_letters(handle)
    except NotADeadLetterError as exc:
        return str(exc)
    except Exception as exc:
        try:
            empty = FileSystems.match([path])[0].metadata_list[0].size_in_bytes == 0
        except Exception:
            empty = False
        reason = "it is empty (0 bytes)" if empty else f"{type(exc).__name__}: {exc}"
        return f"not a readable Avro file: {reason}"
    return None
