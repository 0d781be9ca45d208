"""Reading the migration's input files, one file at a time, without ever crashing.

``read_avro`` and ``read_jsonl`` turn a file into a stream of events:

- :class:`Record`: a record read (with its raw Avro body when asked);
- :class:`Malformed`: a JSON line that is not valid UTF-8 / JSON / an object;
- :class:`Blank`: a line that holds only whitespace (counted, not written);
- :class:`Unreadable`: the file, or its rest, cannot be read (always last).

Files are opened with Beam's ``FileSystems``, so any Beam filesystem works.
JSON Lines files ending in ``.gz``, ``.bz2`` or ``.xz`` are decompressed on
the fly, by Python's own readers, which report a truncated file.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Union

from beam_kinesis_sink.avro_single_object import schema_fingerprint
from beam_kinesis_sink.messages import describe

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Record:
    value: Any
    #: where it came from: ``path:line`` or ``path#record`` (1-based)
    origin: str
    #: the record's Avro binary body, exactly as in the file (Avro input, when asked)
    raw: Optional[bytes] = None
    #: CRC-64-AVRO fingerprint of the file's writer schema (Avro input)
    fingerprint: Optional[int] = None


@dataclass(frozen=True)
class Malformed:
    raw: bytes
    origin: str
    message: str


@dataclass(frozen=True)
class Blank:
    origin: str


@dataclass(frozen=True)
class Unreadable:
    path: str
    message: str
    #: records (or lines) read from the file before the problem
    records_before: int


Event = Union[Record, Malformed, Blank, Unreadable]
Opener = Callable[[str], Any]


class _Decompressing:
    """A decompressing reader over a raw Beam file that closes both.

    Python's gzip/bz2/lzma readers raise ``EOFError`` on a truncated file,
    where Beam's own decompression would end quietly at the cut."""

    def __init__(self, raw: Any, reader: Any) -> None:
        self._raw = raw
        self._reader = reader

    def readline(self) -> bytes:
        return bytes(self._reader.readline())

    def __enter__(self) -> _Decompressing:
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._reader.close()
        finally:
            self._raw.close()


def _open(path: str) -> Any:
    """Open with Beam's FileSystems; ``.gz``, ``.bz2`` and ``.xz`` files are decompressed."""
    from apache_beam.io.filesystems import CompressionTypes, FileSystems

    lower = path.lower()
    if lower.endswith((".gz", ".bz2", ".xz")):
        raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
        try:
            if lower.endswith(".gz"):
                import gzip

                reader: Any = gzip.GzipFile(fileobj=raw, mode="rb")
            elif lower.endswith(".bz2"):
                import bz2

                reader = bz2.BZ2File(raw, mode="rb")
            else:
                import lzma

                reader = lzma.LZMAFile(raw, mode="rb")
        except Exception:
            raw.close()
            raise
        return _Decompressing(raw, io.BufferedReader(reader))
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class _Progress:
    """How far a reader got in a file (lines or records), for the message of a late error."""

    def __init__(self) -> None:
        self.count = 0


Body = Callable[[Any, _Progress], Iterator[Event]]


def _guarded(path: str, opener: Opener, unit: str, body: Body) -> Iterator[Event]:
    """What ``body`` reads from the opened file; a file that cannot be opened, and an
    error that ``body`` lets out (closing included), end in an :class:`Unreadable`."""
    try:
        handle = opener(path)
    except Exception as exc:
        yield Unreadable(path, f"{path}: cannot open: {describe(exc)}", 0)
        return
    done = _Progress()
    try:
        with handle:
            yield from body(handle, done)
    except Exception as exc:  # e.g. closing a truncated gzip file (its trailer)
        yield Unreadable(path, f"{path}: read error after {unit} {done.count}: {describe(exc)}", done.count)


def read_jsonl(path: str, opener: Opener = _open) -> Iterator[Event]:
    """JSON Lines: one JSON object a line, UTF-8 (a BOM on the first line is allowed)."""
    return _guarded(path, opener, "line", lambda handle, done: _jsonl_lines(path, handle, done))


def _jsonl_lines(path: str, handle: Any, done: _Progress) -> Iterator[Event]:
    while True:
        try:
            raw = handle.readline()
        except Exception as exc:
            yield Unreadable(
                path,
                f"{path}: read error after line {done.count}: {describe(exc)}; "
                "the rest of the file was not read",
                done.count,
            )
            return
        if not raw:
            return
        done.count += 1
        yield _jsonl_event(raw, f"{path}:{done.count}", first=done.count == 1)


def _jsonl_event(raw: bytes, origin: str, first: bool) -> Event:
    line = raw[:-1] if raw.endswith(b"\n") else raw
    if line.endswith(b"\r"):
        line = line[:-1]
    if first and line.startswith(_BOM):
        line = line[len(_BOM):]
    if not line.strip():
        return Blank(origin)
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Malformed(line, origin, f"{origin}: not UTF-8: {exc}")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        return Malformed(line, origin, f"{origin}: not valid JSON: {exc}")
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean"}.get(
            type(value), "a number" if value is not None else "null"
        )
        return Malformed(line, origin, f"{origin}: {kind}, not a JSON object")
    return Record(value, origin)


def read_avro(path: str, want_raw: bool = False, opener: Opener = _open) -> Iterator[Event]:
    """An Avro object container file; the schema comes from the file.

    With ``want_raw``, each record also carries its binary body, sliced from
    the decompressed block (so it is exactly what the file holds), and the
    fingerprint of the file's writer schema.
    """
    return _guarded(path, opener, "record", lambda handle, done: _avro_records(path, handle, want_raw, done))


def _avro_records(path: str, handle: Any, want_raw: bool, done: _Progress) -> Iterator[Event]:
    import fastavro

    try:
        blocks = fastavro.block_reader(handle)
        schema_json = blocks.metadata["avro.schema"]
        if isinstance(schema_json, bytes):
            schema_json = schema_json.decode("utf-8")
        writer_schema = json.loads(schema_json)
        parsed = fastavro.parse_schema(writer_schema)
        fingerprint = schema_fingerprint(writer_schema) if want_raw else None
    except Exception as exc:
        yield Unreadable(path, f"{path}: not a readable Avro file: {describe(exc)}", 0)
        return
    iterator = iter(blocks)
    while True:
        try:
            block = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            yield Unreadable(
                path,
                f"{path}: corrupt Avro data after record {done.count}: {describe(exc)}; "
                "the rest of the file was not read",
                done.count,
            )
            return
        data = block.bytes_.getvalue()
        buffer = io.BytesIO(data)
        for _ in range(block.num_records):
            start = buffer.tell()
            try:
                value = fastavro.schemaless_reader(buffer, parsed, None)
            except Exception as exc:
                yield Unreadable(
                    path,
                    f"{path}: corrupt Avro record {done.count + 1} "
                    f"(block at byte {block.offset}): {describe(exc)}; "
                    "the rest of the file was not read",
                    done.count,
                )
                return
            done.count += 1
            if want_raw:
                yield Record(value, f"{path}#{done.count}", data[start:buffer.tell()], fingerprint)
            else:
                yield Record(value, f"{path}#{done.count}")


def read_file(path: str, fmt: str, want_raw: bool = False, opener: Opener = _open) -> Iterator[Event]:
    if fmt == "avro":
        return read_avro(path, want_raw, opener)
    if fmt == "jsonl":
        return read_jsonl(path, opener)
    raise ValueError(f"unknown input format {fmt!r}")
