"""Migrate historical data (Avro or JSON Lines files) into a Kinesis stream.

    beam-kinesis-migrate --input 'history/*.avro' --format avro --stream orders \\
        --partition-key customer_id [--serialize json|avro] [--explicit-hash-key FIELD] \\
        [--endpoint-url URL] [--region REGION] [--dead-letter-dir DIR] \\
        [--max-records-per-second N] [any Beam pipeline option, e.g. --runner FlinkRunner]

The graph::

    file names ─▶ ParDo(read + key + serialise) ─┬─▶ KinesisRecord ─▶ WriteToKinesis ─┬─▶ written ─▶ count
                                                 └─▶ dead letters ──────────┐         └─▶ dead letters
                                                                    Flatten ◀┘───────────────┘
                                                                       └─▶ count ─▶ WriteDeadLetters

Bad input never stops the run and is never skipped silently: a JSON line
that does not parse is a ``MalformedInput`` dead letter (file and line in the
message), a record without the partition key a ``MissingPartitionKey`` dead
letter, and a file that cannot be read (or the rest of a file after a corrupt
block) an ``UnreadableInput`` dead letter naming the file.

Exit codes: 0 nothing dead-lettered; 3 some records dead-lettered; 2 usage
error, no file matches, or no file could be read at all; 1 the pipeline failed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pvalue import TaggedOutput

from beam_kinesis_sink import DeadLetter, ErrorCode, KinesisRecord
from beam_kinesis_sink.avro_single_object import header
from beam_kinesis_sink.client import ClientConfig
from beam_kinesis_sink.dead_letter_io import file_prefix
from beam_kinesis_sink.limits import check_partition_key, normalize_explicit_hash_key
from beam_kinesis_sink.messages import describe, preview

from . import common, launch, output, progress, sources
from .values import (
    MissingField,
    NotAScalar,
    NullField,
    explicit_hash_key_string,
    key_string,
    lookup,
    parse_path,
    to_json_bytes,
)
from .writing import WriteOptions, count_and_store, write_and_count

DEAD_LETTERS = "dead_letters"
#: the error codes of a key field that is missing, and of one that is not a scalar
_KEY_CODES = {
    "partition key": (ErrorCode.MISSING_PARTITION_KEY, ErrorCode.INVALID_PARTITION_KEY),
    "explicit hash key": (ErrorCode.INVALID_EXPLICIT_HASH_KEY, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
}


@dataclass(frozen=True)
class MigrateSettings:
    stream: str
    input_format: str
    serialize: str
    partition_key: str
    explicit_hash_key: Optional[str] = None
    progress: progress.ProgressConfig = progress.ProgressConfig()


def _now_micros() -> int:
    return int(time.time() * 1_000_000)


class ReadAndConvertFn(progress.CountingFn):
    """A file name in; ``KinesisRecord``s out, and dead letters on the side."""

    def __init__(self, settings: MigrateSettings) -> None:
        super().__init__(settings.progress)
        self.settings = settings
        self._pk_path = parse_path(settings.partition_key)
        self._ehk_path = parse_path(settings.explicit_hash_key) if settings.explicit_hash_key else None

    def setup(self) -> None:
        super().setup()
        self._read = self.counter(progress.READ)
        self._files = self.counter(progress.FILES)
        self._unreadable = self.counter(progress.FILES_UNREADABLE)
        self._blank = self.counter(progress.BLANK_LINES)
        self._schemas = self.code_counters(progress.SCHEMA_PREFIX, total=None)

    def _letter(
        self, code: str, message: str, data: Optional[bytes], element_preview: Optional[str],
        partition_key: Optional[str] = None,
    ) -> TaggedOutput:
        return TaggedOutput(
            DEAD_LETTERS,
            DeadLetter(
                stream=self.settings.stream,
                data=data,
                partition_key=partition_key,
                explicit_hash_key=None,
                error_code=code,
                error_message=message,
                attempts=0,
                shard_id=None,
                failed_at_micros=_now_micros(),
                element_timestamp_micros=None,
                element_preview=element_preview,
            ),
        )

    def _serialize(self, event: sources.Record) -> bytes:
        if self.settings.serialize == "avro":
            assert event.raw is not None and event.fingerprint is not None
            return header(event.fingerprint) + event.raw
        return to_json_bytes(event.value)

    def process(self, path: str) -> Iterable[Any]:
        want_raw = self.settings.serialize == "avro"
        pk_name = self.settings.partition_key
        unreadable = False
        for event in sources.read_file(path, self.settings.input_format, want_raw):
            if isinstance(event, sources.Record):
                self._read.inc()
                if event.fingerprint is not None:
                    self._schemas.inc(f"{event.fingerprint:016x}")
                yield from self._convert(event, pk_name)
            elif isinstance(event, sources.Malformed):
                self._read.inc()
                yield self._letter(ErrorCode.MALFORMED_INPUT, event.message, event.raw, event.origin)
            elif isinstance(event, sources.Blank):
                self._blank.inc()
            else:
                unreadable = True
                self._unreadable.inc()
                yield self._letter(ErrorCode.UNREADABLE_INPUT, event.message, None, event.path)
        if not unreadable:
            self._files.inc()

    def _convert(self, event: sources.Record, pk_name: str) -> Iterable[Any]:
        try:
            data = self._serialize(event)
        except Exception as exc:
            yield self._letter(
                ErrorCode.SERIALIZATION_ERROR,
                f"{event.origin}: cannot serialise the record: {describe(exc)}",
                None,
                f"{event.origin}: {preview(event.value)}",
            )
            return
        try:
            key = key_string(lookup(event.value, self._pk_path))
        except (MissingField, NotAScalar) as exc:
            yield self._key_letter(event, data, "partition key", pk_name, exc)
            return
        explicit_hash_key = None
        if self._ehk_path is not None:
            try:
                explicit_hash_key = explicit_hash_key_string(lookup(event.value, self._ehk_path))
            except NullField:
                pass  # null means: no explicit hash key for this record
            except (MissingField, NotAScalar) as exc:
                ehk_name = self.settings.explicit_hash_key or ""
                yield self._key_letter(event, data, "explicit hash key", ehk_name, exc, key)
                return
        refused = self._refused_key(event, data, key, explicit_hash_key)
        yield KinesisRecord(data, key, explicit_hash_key) if refused is None else refused

    def _refused_key(self, event: sources.Record, data: bytes, key: str,
                     explicit_hash_key: Optional[str]) -> Optional[TaggedOutput]:
        """The dead letter of a record whose keys the sink would refuse (the
        sink's own checks), with the record's file and line; None if they
        are valid. A key that is not valid Unicode (a JSON ``"\\ud800"``
        escape) must not go on: Beam's coders write a str as UTF-8, and it
        has none, so it would fail the pipeline before the sink saw it."""
        problem = check_partition_key(key)
        what, name, valid_key = "partition key", self.settings.partition_key, None
        if problem is None and explicit_hash_key is not None:
            problem = normalize_explicit_hash_key(explicit_hash_key)[1]
            what, name, valid_key = "explicit hash key", self.settings.explicit_hash_key or "", key
        if problem is None:
            return None
        code, message = problem
        return self._letter(code, f"{event.origin}: {message} (the {what} {name!r})", data, event.origin,
                            valid_key)

    def _key_letter(
        self, event: sources.Record, data: bytes, what: str, name: str, exc: Exception,
        partition_key: Optional[str] = None,
    ) -> TaggedOutput:
        """The dead letter of a record whose ``what`` field (at path ``name``) is
        missing (:class:`MissingField`) or not a scalar (:class:`NotAScalar`)."""
        missing_code, not_scalar_code = _KEY_CODES[what]
        if isinstance(exc, MissingField):
            code, message = missing_code, f"{event.origin}: {exc} (the {what} {name!r})"
        else:
            code, message = not_scalar_code, f"{event.origin}: the {what} field {name!r} {exc}"
        return self._letter(code, message, data, event.origin, partition_key)


def build(
    pipeline: beam.Pipeline,
    files: Sequence[str],
    settings: MigrateSettings,
    write: WriteOptions,
    dead_letter_prefix: str,
) -> None:
    """The migration graph, on ``pipeline``."""
    converted = (
        pipeline
        | "Files" >> beam.Create(list(files))
        | "ReadAndConvert"
        >> beam.ParDo(ReadAndConvertFn(settings)).with_outputs(DEAD_LETTERS, main="records")
    )
    records = converted["records"]
    records.element_type = KinesisRecord
    converted[DEAD_LETTERS].element_type = DeadLetter
    sink_dead_letters = write_and_count(records, settings.stream, write, settings.progress)
    all_dead_letters = (converted[DEAD_LETTERS], sink_dead_letters) | "AllDeadLetters" >> beam.Flatten()
    count_and_store(all_dead_letters, settings.progress, dead_letter_prefix)


def parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    p = common.command_parser(
        "migrate",
        "Write Avro or JSON Lines files to a Kinesis stream. "
        "Arguments this command does not know are Beam pipeline options.",
    )
    p.add_argument("--input", action="append", required=True, metavar="GLOB",
                   help="input files: a glob or a directory on any Beam filesystem (repeatable)")
    p.add_argument("--format", required=True, choices=("avro", "jsonl"), dest="input_format")
    p.add_argument("--stream", required=True, type=common.stream_argument, help="stream name or ARN")
    p.add_argument("--partition-key", required=True, metavar="FIELD",
                   help="field holding the partition key; a dotted path reaches into nested records")
    p.add_argument("--serialize", choices=("json", "avro"), default="json",
                   help="json (default): compact JSON; avro: Avro single-object encoding (Avro input only)")
    p.add_argument("--explicit-hash-key", metavar="FIELD",
                   help="field holding an explicit hash key (decimal); null means none for that record")
    common.add_aws_arguments(p, argv)
    p.add_argument("--dead-letter-dir", metavar="DIR",
                   help="where dead letters go (any Beam filesystem); "
                   "default ./dead-letters/<stream>-<UTC time>/")
    common.add_write_arguments(p)
    p.add_argument("--no-preflight", action="store_true",
                   help="do not check that the stream exists before starting")
    return p


def _preflight(config: ClientConfig, stream: str) -> None:
    """Fail early (exit 2) when the stream does not exist; other errors only warn."""
    check = common.check_stream(config, stream)
    if check.missing:
        where = config.endpoint_url or "AWS"
        raise common.UsageError(f"stream {stream!r} does not exist ({where})") from check.error
    if check.error is not None:
        output.eprint(f"migrate: warning: could not check the stream: {describe(check.error)}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = parser(argv)
    args, beam_args = common.split_beam_arguments(p, argv)
    return common.run_command("migrate", lambda: _run(p, args, beam_args))


def _run(p: argparse.ArgumentParser, args: argparse.Namespace, beam_args: list[str]) -> int:
    if args.serialize == "avro" and args.input_format != "avro":
        p.error("--serialize avro needs --format avro (the writer schema comes from the Avro files)")
    paths = (("--partition-key", args.partition_key), ("--explicit-hash-key", args.explicit_hash_key))
    for name, value in paths:
        if value is not None:
            try:
                parse_path(value)
            except ValueError as exc:
                p.error(f"{name}: {exc}")

    files = common.expand_inputs(args.input)
    config = common.client_config(args)
    if not args.no_preflight:
        _preflight(config, args.stream)
    dead_letter_dir = common.as_dir(args.dead_letter_dir or common.default_dead_letter_dir(args.stream))
    options = PipelineOptions(beam_args)
    per_worker_rate, workers = common.per_worker_rate(args.max_records_per_second, options)
    settings = MigrateSettings(
        stream=args.stream,
        input_format=args.input_format,
        serialize=args.serialize,
        partition_key=args.partition_key,
        explicit_hash_key=args.explicit_hash_key,
        progress=progress.ProgressConfig(args.progress_interval, "migrate"),
    )
    write = WriteOptions(config, per_worker_rate, rate_limit=not args.no_rate_limit)

    output.eprint(
        f"migrate: {len(files):,} file(s) ({args.input_format}) -> stream {args.stream} "
        f"as {args.serialize}; dead letters under {dead_letter_dir}"
        + (f"; capped at {args.max_records_per_second:,g} records/s "
           f"({per_worker_rate:,g} per worker x {workers})" if per_worker_rate else "")
    )
    pipeline = beam.Pipeline(options=options)
    dead_letter_prefix = file_prefix(dead_letter_dir)  # this run's files: no other run replaces them
    build(pipeline, files, settings, write, dead_letter_prefix)
    finished = launch.run_pipeline(pipeline, settings.progress)
    if finished is None:
        return common.EXIT_FAILED
    return _summary(files, finished, dead_letter_dir, dead_letter_prefix)


def _summary(
    files: Sequence[str], finished: launch.Finished, dead_letter_dir: str, dead_letter_prefix: str
) -> int:
    counts, elapsed = finished
    read = counts.get(progress.READ, 0)
    written = counts.get(progress.WRITTEN, 0)
    unreadable = counts.get(progress.FILES_UNREADABLE, 0)
    blank = counts.get(progress.BLANK_LINES, 0)
    by_code = output.with_prefix(counts, progress.DEAD_PREFIX)
    schemas = output.with_prefix(counts, progress.SCHEMA_PREFIX)
    row = output.row
    lines = [
        f"migrate: finished in {elapsed:,.1f} s",
        row("files", len(files), f"({unreadable:,} unreadable)" if unreadable else ""),
        row("records read", read, f"({blank:,} blank lines skipped)" if blank else ""),
        row("records written", written, f"(mean {output.format_rate(written, elapsed)})"),
        row("records dead-lettered", counts.get(progress.DEAD, 0)),
    ]
    lines += output.count_lines(by_code)
    if schemas:
        lines.append("  Avro writer schemas (CRC-64-AVRO fingerprint: records)")
        lines += [f"    {fp}: {n:,}" for fp, n in sorted(schemas.items())]
    listing, dead = common.dead_letter_listing(dead_letter_prefix, counts, counts.get(progress.DEAD, 0))
    print("\n".join(lines + listing), flush=True)

    if unreadable and unreadable == len(files) and read == 0:
        output.eprint("migrate: no input file could be read (wrong --format?); see the dead letters")
        return common.EXIT_USAGE
    if dead:
        output.eprint(
            f"migrate: {dead:,} record(s) dead-lettered; inspect them with: "
            f"{common.command('inspect_dead_letters')} {dead_letter_dir}"
        )
        return common.EXIT_DEAD_LETTERS
    return common.EXIT_OK


if __name__ == "__main__":
    # Run as `python -m`: run the module under its importable name, so that its
    # DoFns are pickled as <package>.migrate.X, which the SDK workers import, not as
    # __main__.X, which they cannot (dill, Beam 2.62's default pickler, pickles
    # classes by name; cloudpickle, 2.77's, copies __main__'s).
    sys.exit(importlib.import_module(__spec__.name).main())
