"""Write dead letters to a stream again.

    beam-kinesis-replay DIR_OR_GLOB [...] --stream NAME
        [--error-code CODE ...] [--since TIME] [--replay-readable] [--endpoint-url URL] [--region REGION]
        [--dead-letter-dir DIR] [--max-records-per-second N] [any Beam pipeline option]

Every selected file is read through before the pipeline starts. A file that
cannot be read to its end (corrupt or truncated, empty, not Avro, not a
dead-letter file) is named, with how many dead letters could be read from it
and why reading stopped; then nothing is written (exit code 2), unless
``--replay-readable`` is given: then the dead letters that could be read are
replayed, the readable beginning of a truncated file included, and the rest
is skipped (exit code 3).

Each selected dead letter is written as a ``KinesisRecord`` with its original
data, partition key and explicit hash key (and its original event time). What
fails again becomes a new dead letter whose ``attempts`` is the previous
attempts plus the new ones: the graph joins the new dead letters back to the
replayed ones on (partition key, SHA-256 of the data)::

    ReadDeadLetters ─▶ select ─┬─▶ KinesisRecord ─▶ WriteToKinesis ─┬─▶ written ─▶ count
                               │                                   └─▶ dead letters ─▶ key ─┐
                               ├─▶ (key, previous attempts) ──────────────────▶ CoGroupByKey ◀┘
                               │                                   ─▶ add attempts ─▶ WriteDeadLetters
                               └─▶ not replayable (no data or no partition key): counted, reported

With ``--replay-readable``, the readable dead letters of the files that
cannot be read through come from ``ReadReadable`` too, flattened with
``ReadDeadLetters``' (which reads the whole files). Dead letters without data
or without a partition key cannot be replayed: they are counted and reported,
and stay in the source files.

Exit codes: 0 every selected dead letter was written; 3 some were
dead-lettered again or could not be replayed, or (with --replay-readable)
some file could not be read through; 2 usage error, no file matches, no
readable dead letter, no dead letter with any of the ``--error-code`` codes
or none since ``--since``, or (by default) some file cannot be read through, and nothing was written;
1 the pipeline failed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import sys
from typing import Any, Iterable, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from beam_kinesis_sink import DeadLetter, KinesisRecord
from beam_kinesis_sink.client import ClientConfig
from beam_kinesis_sink.dead_letter_io import ReadDeadLetters, file_prefix
from beam_kinesis_sink.messages import clip

from . import common, dead_letter_files, launch, output, progress, selection
from .selection import Selection
from .writing import WriteOptions, count_and_store, write_and_count

NOT_REPLAYABLE = "not_replayable"
FILTERED_OUT = "filtered_out"
NO_DATA = "no_data"
NO_PARTITION_KEY = "no_partition_key"


def join_key(partition_key: Optional[str], data: Optional[bytes]) -> str:
    digest = hashlib.sha256(data or b"").hexdigest()
    return f"{partition_key or ''}\x00{digest}"


class SelectFn(progress.CountingFn):
    """Dead letters in; the selected, replayable ones out (others counted)."""

    def __init__(self, chosen: Selection, config: progress.ProgressConfig) -> None:
        super().__init__(config)
        self.chosen = chosen

    def setup(self) -> None:
        super().setup()
        self._replayed = self.counter(progress.REPLAYED)
        self._read = self.counter(progress.READ)
        self._filtered = self.counter(FILTERED_OUT)
        self._not_replayable = self.code_counters(progress.NOT_REPLAYABLE_PREFIX, total=NOT_REPLAYABLE)

    def process(self, letter: DeadLetter) -> Iterable[Any]:
        if self.chosen.left_out_by(letter) is not None:
            self._filtered.inc()
            return
        self._read.inc()
        if letter.data is None:
            self._not_replayable.inc(NO_DATA)
            return
        if not letter.partition_key:
            self._not_replayable.inc(NO_PARTITION_KEY)
            return
        self._replayed.inc()
        yield letter


def to_record(letter: DeadLetter) -> Any:
    assert letter.data is not None and letter.partition_key is not None
    record = KinesisRecord(letter.data, letter.partition_key, letter.explicit_hash_key)
    if letter.element_timestamp_micros is not None:
        return TimestampedValue(record, Timestamp(micros=letter.element_timestamp_micros))
    return record


def previous(letter: DeadLetter) -> tuple[str, tuple[int, str, str, Optional[str]]]:
    return (
        join_key(letter.partition_key, letter.data),
        (letter.attempts, letter.stream, letter.error_code, letter.element_preview),
    )


def carry_attempts(joined: tuple[str, dict[str, Iterable[Any]]]) -> Iterable[DeadLetter]:
    """New dead letters with the attempts of the dead letters they replayed added.

    Equal records (same key and data) are paired in order; a new dead letter
    without a partner (not expected) keeps its own attempts.
    """
    _, groups = joined
    olds = sorted(groups["previous"], key=lambda o: o[0])
    news = sorted(groups["new"], key=lambda d: d.failed_at_micros)
    for index, new in enumerate(news):
        if not olds:
            yield new
            continue
        attempts, stream, code, preview = olds[min(index, len(olds) - 1)]
        origin = f"replay of a {code} dead letter of stream {stream}"
        if preview:
            origin = f"{origin}; {preview}"
        yield new._replace(attempts=attempts + new.attempts, element_preview=clip(origin))


def read_letters(
    pipeline: beam.Pipeline, files: Sequence[str], readable_parts: Sequence[tuple[str, int]] = ()
) -> beam.PCollection:
    """The dead letters of ``files``, and the first N of each ``(file, N)`` in ``readable_parts``."""
    parts = []
    if files:
        parts.append(pipeline | "ReadDeadLetters" >> ReadDeadLetters(list(files)))
    if readable_parts:
        parts.append(pipeline | "ReadReadable" >> dead_letter_files.ReadReadable(readable_parts))
    return parts[0] if len(parts) == 1 else tuple(parts) | "AllDeadLetters" >> beam.Flatten()


def build(
    pipeline: beam.Pipeline,
    files: Sequence[str],
    stream: str,
    chosen: Selection,
    write: WriteOptions,
    dead_letter_prefix: str,
    config: progress.ProgressConfig,
    readable_parts: Sequence[tuple[str, int]] = (),
) -> None:
    letters = read_letters(pipeline, files, readable_parts)
    selected = letters | "Select" >> beam.ParDo(SelectFn(chosen, config)).with_output_types(DeadLetter)
    records = selected | "ToRecords" >> beam.Map(to_record).with_output_types(KinesisRecord)
    sink_dead_letters = write_and_count(records, stream, write, config)
    before = selected | "KeyPrevious" >> beam.Map(previous)
    after = sink_dead_letters | "KeyNew" >> beam.Map(lambda d: (join_key(d.partition_key, d.data), d))
    again = (
        {"previous": before, "new": after}
        | "JoinBack" >> beam.CoGroupByKey()
        | "CarryAttempts" >> beam.FlatMap(carry_attempts).with_output_types(DeadLetter)
    )
    count_and_store(again, config, dead_letter_prefix)


def parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    p = common.command_parser(
        "replay_dead_letters",
        "Write dead letters to a stream again. "
        "Arguments this command does not know are Beam pipeline options.",
    )
    p.add_argument("paths", nargs="+", metavar="DIR_OR_GLOB",
                   help="a dead-letter directory (its *.avro files) or a glob, on any Beam filesystem")
    p.add_argument("--stream", required=True, type=common.stream_argument,
                   help="the stream to write to (name or ARN)")
    selection.add_arguments(p)
    p.add_argument("--replay-readable", action="store_true",
                   help="when some file cannot be read through (corrupt, truncated, not a dead-letter "
                   "file), replay the dead letters that can be read, a truncated file's readable beginning "
                   "included, and skip the rest (exit code 3); by default nothing is written (exit code 2)")
    common.add_aws_arguments(p, argv)
    p.add_argument("--dead-letter-dir", metavar="DIR",
                   help="where the records that fail again go; "
                   "default ./dead-letters/<stream>-replay-<UTC time>/")
    common.add_write_arguments(p)
    return p


def _warn_if_missing(config: ClientConfig, stream: str) -> None:
    if common.check_stream(config, stream).missing:
        output.eprint(
            f"replay: warning: stream {stream!r} does not exist: every record will be dead-lettered "
            "again with ResourceNotFoundException"
        )


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = parser(argv)
    args, beam_args = common.split_beam_arguments(p, argv)
    return common.run_command("replay", lambda: _run(args, beam_args))


def _run(args: argparse.Namespace, beam_args: list[str]) -> int:
    try:
        chosen = selection.from_args(args)
    except ValueError as exc:
        raise common.UsageError(str(exc)) from None
    files = common.expand_inputs(args.paths, dir_glob="*.avro")
    found = _read_through(files, args.paths, args.replay_readable, chosen)
    _check_selection(chosen, found)
    config = common.client_config(args)
    _warn_if_missing(config, args.stream)
    dead_letter_dir = common.as_dir(
        args.dead_letter_dir or common.default_dead_letter_dir(args.stream, "replay")
    )
    options = PipelineOptions(beam_args)
    rate, _ = common.per_worker_rate(args.max_records_per_second, options)
    config_progress = progress.ProgressConfig(args.progress_interval, "replay")
    read = len(found.whole) + len(found.readable_parts)
    output.eprint(
        f"replay: {read:,} file(s) -> stream {args.stream}"
        + (f" (error codes: {', '.join(sorted(chosen.error_codes))})" if chosen.error_codes else "")
        + (f" (failed since {selection.iso(chosen.since_micros)})" if chosen.since_micros is not None else "")
        + f"; new dead letters under {dead_letter_dir}"
    )
    pipeline = beam.Pipeline(options=options)
    write = WriteOptions(config, rate, rate_limit=not args.no_rate_limit)
    dead_letter_prefix = file_prefix(dead_letter_dir)  # this run's files: no other run replaces them
    build(pipeline, found.whole, args.stream, chosen, write, dead_letter_prefix, config_progress,
          found.readable_parts)
    finished = launch.run_pipeline(pipeline, config_progress)
    if finished is None:
        return common.EXIT_FAILED
    return _summary(finished, dead_letter_prefix, len(found.broken), chosen)


def _read_through(
    files: Sequence[str], paths: Sequence[str], replay_readable: bool, chosen: Selection
) -> dead_letter_files.ReadThrough:
    """Every file read through; the files that cannot be are named, with their
    readable dead letters and why reading stopped. UsageError when there is
    nothing to replay, or when some file cannot be read through and
    ``--replay-readable`` is not given."""
    found = dead_letter_files.read_through(files, chosen)
    nothing = not found.whole and not found.readable_parts
    if found.broken:
        broken = f"{len(found.broken):,} of {len(files):,} file(s)"
        if replay_readable or nothing:
            output.eprint(f"replay: skipping what cannot be read in {broken}:")
        else:
            output.eprint(f"replay: {broken} cannot be read through, so nothing is written:")
        for reading in found.broken:
            output.eprint(f"  {reading.describe()}")
    if nothing:
        raise common.UsageError("no readable dead-letter file among " + ", ".join(paths))
    if found.broken and not replay_readable:
        raise common.UsageError(
            "repair or remove the file(s) above, or pass --replay-readable to replay the "
            f"{dead_letter_files.dead_letters(found.letters)} that can be read and skip the rest"
        )
    return found


def _check_selection(chosen: Selection, found: dead_letter_files.ReadThrough) -> None:
    """An ``--error-code`` that no dead letter has (a typo, say) is named, with
    the codes the files do hold; when the filters select no dead letter at all,
    a UsageError says why, so that replaying nothing is not taken for
    replaying everything."""
    files = f"the {len(found.whole) + len(found.broken):,} file(s)"
    held = output.counted(found.codes) or "none (no dead letters)"
    missing = sorted(code for code in chosen.error_codes if not found.codes.get(code))
    if missing:
        what = f"no dead letter in {files} has error code {', '.join(missing)}; the codes they hold: {held}"
        if len(missing) == len(chosen.error_codes):
            raise common.UsageError(f"{what}. Nothing was written")
        output.eprint(f"replay: warning: {what}")
    if chosen.since_micros is not None and found.letters and not found.selected:
        codes = f" with error code {', '.join(sorted(chosen.error_codes))}" if chosen.error_codes else ""
        latest = selection.iso(found.latest_failure(chosen.error_codes))
        raise common.UsageError(
            f"no dead letter{codes} in {files} failed at or after {selection.iso(chosen.since_micros)}: "
            f"the latest failed at {latest}. Nothing was written")


def _summary(finished: launch.Finished, dead_letter_prefix: str, unread_files: int, chosen: Selection) -> int:
    counts, elapsed = finished
    selected = counts.get(progress.READ, 0)
    replayed = counts.get(progress.REPLAYED, 0)
    written = counts.get(progress.WRITTEN, 0)
    not_replayable = counts.get(NOT_REPLAYABLE, 0)
    filtered = counts.get(FILTERED_OUT, 0)
    by_code = output.with_prefix(counts, progress.DEAD_PREFIX)
    reasons = {
        k.replace("_", " "): v for k, v in output.with_prefix(counts, progress.NOT_REPLAYABLE_PREFIX).items()
    }
    row = output.row
    lines = [
        f"replay: finished in {elapsed:,.1f} s",
        row("dead letters selected", selected,
            f"({filtered:,} left out by {chosen.flags()})" if filtered else ""),
        row("replayed", replayed),
        row("written", written, f"(mean {output.format_rate(written, elapsed)})"),
        row("dead-lettered again", counts.get(progress.DEAD, 0)),
    ]
    lines += output.count_lines(by_code)
    stay = "(they stay in the source files)" if not_replayable else ""
    lines.append(row("not replayable", not_replayable, stay))
    lines += output.count_lines(reasons)
    if unread_files:
        note = "(only their readable dead letters, see above)"
        lines.append(row("files not read through", unread_files, note))
    listing, dead = common.dead_letter_listing(
        dead_letter_prefix, counts, counts.get(progress.DEAD, 0), "new dead-letter files"
    )
    print("\n".join(lines + listing), flush=True)
    return common.EXIT_DEAD_LETTERS if dead or not_replayable or unread_files else common.EXIT_OK


if __name__ == "__main__":
    # Run as `python -m`: run the module under its importable name, so that its
    # DoFns are pickled as <package>.replay_dead_letters.X, which the SDK workers import, not as
    # __main__.X, which they cannot (dill, Beam 2.62's default pickler, pickles
    # classes by name; cloudpickle, 2.77's, copies __main__'s).
    sys.exit(importlib.import_module(__spec__.name).main())
