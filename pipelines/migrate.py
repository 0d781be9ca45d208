"""Migrate historical data (Avro or JSON Lines files) into a Kinesis stream.

    python -m pipelines.migrate --input 'history/*.avro' --format avro --stream orders \\
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
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pvalue import TaggedOutput

from beam_kinesis_sink import DeadLetter, ErrorCode, KinesisRecord, WriteToKinesis
from beam_kinesis_sink.avro_single_object import header
from beam_kinesis_sink.client import ClientConfig, stream_arguments
from beam_kinesis_sink.dead_letter_io import WriteDeadLetters
from pipelines import common, progress, sources
from pipelines.values import (
    MissingField,
    NotAScalar,
    explicit_hash_key_string,
    key_string,
    lookup,
    parse_path,
    to_json_bytes,
)

DEAD_LETTERS = "dead_letters"
PREVIEW_CHARS = 200


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


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "..."


class ReadAndConvertFn(beam.DoFn):
    """A file name in; ``KinesisRecord``s out, and dead letters on the side."""

    def __init__(self, settings: MigrateSettings) -> None:
        self.settings = settings
        self._pk_path = parse_path(settings.partition_key)
        self._ehk_path = parse_path(settings.explicit_hash_key) if settings.explicit_hash_key else None

    def setup(self) -> None:
        progress.TALLY.start(self.settings.progress)
        self._read = progress.Counter(progress.READ)
        self._files = progress.Counter(progress.FILES)
        self._unreadable = progress.Counter(progress.FILES_UNREADABLE)
        self._blank = progress.Counter(progress.BLANK_LINES)
        self._schemas = progress.CodeCounters(progress.SCHEMA_PREFIX, total=None)

    def _letter(
        self, code: str, message: str, data: Optional[bytes], preview: Optional[str],
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
                element_preview=preview,
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
                f"{event.origin}: cannot serialise the record: {type(exc).__name__}: {exc}",
                None,
                f"{event.origin}: {_short(event.value)}",
            )
            return
        try:
            key = key_string(lookup(event.value, self._pk_path))
        except MissingField as exc:
            yield self._letter(
                ErrorCode.MISSING_PARTITION_KEY,
                f"{event.origin}: {exc} (the partition key {pk_name!r})",
                data,
                event.origin,
            )
            return
        except NotAScalar as exc:
            yield self._letter(
                ErrorCode.INVALID_PARTITION_KEY,
                f"{event.origin}: the partition key field {pk_name!r} {exc}",
                data,
                event.origin,
            )
            return
        explicit_hash_key = None
        if self._ehk_path is not None:
            ehk_name = self.settings.explicit_hash_key
            try:
                explicit_hash_key = explicit_hash_key_string(lookup(event.value, self._ehk_path))
            except MissingField as exc:
                if "is null" not in str(exc):  # null means: no explicit hash key for this record
                    yield self._letter(
                        ErrorCode.INVALID_EXPLICIT_HASH_KEY,
                        f"{event.origin}: {exc} (the explicit hash key {ehk_name!r})",
                        data,
                        event.origin,
                        key,
                    )
                    return
            except NotAScalar as exc:
                yield self._letter(
                    ErrorCode.INVALID_EXPLICIT_HASH_KEY,
                    f"{event.origin}: the explicit hash key field {ehk_name!r} {exc}",
                    data,
                    event.origin,
                    key,
                )
                return
        yield KinesisRecord(data, key, explicit_hash_key)


@dataclass(frozen=True)
class WriteOptions:
    client_config: ClientConfig
    max_records_per_second: Optional[float] = None
    rate_limit: bool = True


def build(
    pipeline: beam.Pipeline,
    files: Sequence[str],
    settings: MigrateSettings,
    write: WriteOptions,
    dead_letter_dir: str,
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
    result = records | "WriteToKinesis" >> WriteToKinesis(
        settings.stream,
        client_config=write.client_config,
        max_records_per_second=write.max_records_per_second,
        max_buffered_records=common.buffered_records_for(write.max_records_per_second),
        rate_limit=write.rate_limit,
    )
    _ = result.written | "CountWritten" >> beam.ParDo(progress.CountFn("written", settings.progress))
    _ = (
        (converted[DEAD_LETTERS], result.dead_letters)
        | "AllDeadLetters" >> beam.Flatten()
        | "CountDeadLetters" >> beam.ParDo(progress.CountFn("dead", settings.progress)).with_output_types(
            DeadLetter
        )
        | "WriteDeadLetters" >> WriteDeadLetters(common.as_dir(dead_letter_dir))
    )


def parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.migrate",
        description="Write Avro or JSON Lines files to a Kinesis stream. "
        "Arguments this command does not know are Beam pipeline options.",
        allow_abbrev=False,
    )
    p.add_argument("--input", action="append", required=True, metavar="GLOB",
                   help="input files: a glob or a directory on any Beam filesystem (repeatable)")
    p.add_argument("--format", required=True, choices=("avro", "jsonl"), dest="input_format")
    p.add_argument("--stream", required=True, help="stream name or ARN")
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
    p.add_argument("--max-records-per-second", type=float, metavar="N",
                   help="cap on the whole job's write rate; divided evenly among the workers "
                   "(--num_workers/--max_num_workers/--direct_num_workers/--parallelism)")
    p.add_argument("--no-rate-limit", action="store_true",
                   help="turn off the per-shard rate limiter (1,000 records/s per shard); "
                   "for local Kinesis servers")
    p.add_argument("--progress-interval", type=float, default=5.0, metavar="SECONDS",
                   help="seconds between progress lines (default 5; 0: none)")
    p.add_argument("--no-preflight", action="store_true",
                   help="do not check that the stream exists before starting")
    return p


def _preflight(config: ClientConfig, stream: str) -> None:
    """Fail early (exit 2) when the stream does not exist; other errors only warn."""
    try:
        config.create_client().describe_stream_summary(**stream_arguments(stream))
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            where = config.endpoint_url or "AWS"
            raise common.UsageError(f"stream {stream!r} does not exist ({where})") from exc
        common.eprint(f"migrate: warning: could not check the stream: {type(exc).__name__}: {exc}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = parser(argv)
    args, beam_args = common.split_beam_arguments(p, argv)
    try:
        return _run(p, args, beam_args)
    except common.UsageError as exc:
        common.eprint(f"migrate: error: {exc}")
        return common.EXIT_USAGE


def _run(p: argparse.ArgumentParser, args: argparse.Namespace, beam_args: list[str]) -> int:
    if args.serialize == "avro" and args.input_format != "avro":
        p.error("--serialize avro needs --format avro (the writer schema comes from the Avro files)")
    if args.max_records_per_second is not None and args.max_records_per_second <= 0:
        p.error("--max-records-per-second must be positive")
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
    workers = common.worker_count(options)
    per_worker_rate = None
    if args.max_records_per_second:
        per_worker_rate = args.max_records_per_second / workers
    settings = MigrateSettings(
        stream=args.stream,
        input_format=args.input_format,
        serialize=args.serialize,
        partition_key=args.partition_key,
        explicit_hash_key=args.explicit_hash_key,
        progress=progress.ProgressConfig(args.progress_interval, "migrate"),
    )
    write = WriteOptions(config, per_worker_rate, rate_limit=not args.no_rate_limit)

    common.eprint(
        f"migrate: {len(files):,} file(s) ({args.input_format}) -> stream {args.stream} "
        f"as {args.serialize}; dead letters under {dead_letter_dir}"
        + (f"; capped at {args.max_records_per_second:,g} records/s "
           f"({per_worker_rate:,g} per worker x {workers})" if per_worker_rate else "")
    )
    os.environ[progress.LAUNCHER_PID_ENV] = str(os.getpid())
    progress.TALLY.reset()
    started = time.monotonic()
    pipeline = beam.Pipeline(options=options)
    build(pipeline, files, settings, write, dead_letter_dir)
    try:
        result = pipeline.run()
        progress.wait_with_progress(result, settings.progress)
    except Exception as exc:
        progress.TALLY.stop()
        common.eprint(f"migrate: the pipeline failed: {type(exc).__name__}: {exc}")
        return common.EXIT_FAILED
    progress.TALLY.stop()
    elapsed = time.monotonic() - started
    counts = progress.query_counters(result)
    return _summary(args, files, counts, elapsed, dead_letter_dir)


def _summary(
    args: argparse.Namespace, files: Sequence[str], counts: dict[str, int], elapsed: float,
    dead_letter_dir: str,
) -> int:
    read = counts.get(progress.READ, 0)
    written = counts.get(progress.WRITTEN, 0)
    dead = counts.get(progress.DEAD, 0)
    unreadable = counts.get(progress.FILES_UNREADABLE, 0)
    blank = counts.get(progress.BLANK_LINES, 0)
    by_code = common.with_prefix(counts, progress.DEAD_PREFIX)
    schemas = common.with_prefix(counts, progress.SCHEMA_PREFIX)
    row = common.row
    lines = [
        f"migrate: finished in {elapsed:,.1f} s",
        row("files", len(files), f"({unreadable:,} unreadable)" if unreadable else ""),
        row("records read", read, f"({blank:,} blank lines skipped)" if blank else ""),
        row("records written", written, f"(mean {common.format_rate(written, elapsed)})"),
        row("records dead-lettered", dead),
    ]
    lines += common.count_lines(by_code)
    if schemas:
        lines.append("  Avro writer schemas (CRC-64-AVRO fingerprint: records)")
        lines += [f"    {fp}: {n:,}" for fp, n in sorted(schemas.items())]
    dl_files = common.dead_letter_files(dead_letter_dir)
    if not counts:
        # No metrics from this runner: the dead-letter files still tell the exit code.
        dead = common.count_dead_letters(dl_files)
        lines.append(f"  (this runner reported no metrics; {dead:,} dead letters counted in the files)")
    lines.append(f"  dead-letter files ({dead_letter_dir}):")
    lines += [f"    {f}" for f in dl_files] or ["    (none)"]
    print("\n".join(lines), flush=True)

    if unreadable and unreadable == len(files) and read == 0:
        common.eprint("migrate: no input file could be read (wrong --format?); see the dead letters")
        return common.EXIT_USAGE
    if dead:
        common.eprint(
            f"migrate: {dead:,} record(s) dead-lettered; inspect them with: "
            f"python -m pipelines.inspect_dead_letters {dead_letter_dir}"
        )
        return common.EXIT_DEAD_LETTERS
    return common.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
