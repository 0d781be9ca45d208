"""Summarise dead-letter files.

    beam-kinesis-inspect DIR_OR_GLOB [...] [--json] [--samples N]
        [--error-code CODE ...] [--since TIME]

Counts by error code, by stream and by shard (where known), the first and
last failure, and N sample records per error code, with their data decoded
when it is JSON or UTF-8 text (Avro single-object data shows its schema
fingerprint), and as a hex preview otherwise. ``--json`` prints one JSON
object instead (``total``, ``by_error_code``, ...).

A file that is corrupt or not a dead-letter file is named, with the reason
(for a corrupt one, after how many dead letters), and the others are still
reported; replay finds the same files unreadable, for the same reasons
(``dead_letter_files.FileReading``). Plain fastavro over Beam's
``FileSystems``: any Beam filesystem path works (``s3://``, ``gs://``...).

Exit codes: 0 every file read; 1 some file could not be read (the rest is
reported); 2 usage error or no file matches.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from beam_kinesis_sink import DeadLetter
from beam_kinesis_sink.avro_single_object import decode_header, is_single_object
from beam_kinesis_sink.messages import MESSAGE_CHARS, clip
from beam_kinesis_sink.sharding import UNKNOWN_SHARD

from . import common, output, selection
from .dead_letter_files import FileReading
from .output import shown
from .selection import Selection, iso

#: bytes of data shown in a hex preview (three characters each)
HEX_BYTES = 48


# --------------------------------------------------------------------------
# Pure parts


def hex_preview(data: bytes, limit: int = HEX_BYTES) -> str:
    text = data[:limit].hex(" ")
    return text + (" ..." if len(data) > limit else "")


def _field(value: Optional[str]) -> str:
    """A field of a sample line: ``-`` when absent, ``''`` when empty, else :func:`shown`."""
    if value is None:
        return "-"
    return shown(value) if value else "''"


def describe_data(data: Optional[bytes]) -> tuple[str, str]:
    """``(kind, text)``: kind is ``none``, ``json``, ``text``, ``avro`` or ``hex``."""
    if data is None:
        return "none", ""
    if is_single_object(data):
        fingerprint, body = decode_header(data)
        return "avro", f"single-object, schema fingerprint {fingerprint:016x}, body {hex_preview(body)}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "hex", hex_preview(data)
    try:
        value = json.loads(text)
    except ValueError:
        return "text", clip(shown(text))
    return "json", clip(shown(json.dumps(value, separators=(",", ":"), ensure_ascii=False)))


@dataclass
class Report:
    """What the files hold, after the filters."""

    samples_per_code: int = 3
    total: int = 0
    by_error_code: Counter = field(default_factory=Counter)
    by_stream: Counter = field(default_factory=Counter)
    by_shard: Counter = field(default_factory=Counter)
    shard_unknown: int = 0
    first_failure: Optional[int] = None
    last_failure: Optional[int] = None
    max_attempts: int = 0
    filtered_out: int = 0
    #: the error codes of the letters ``--error-code`` left out (so a code
    #: that matches nothing, a typo say, can be told from "none of those")
    codes_left_out: Counter = field(default_factory=Counter)
    samples: dict[str, list[DeadLetter]] = field(default_factory=dict)
    files_read: list[str] = field(default_factory=list)
    #: (file, reason) for each file that could not be read, or only in part
    file_errors: list[tuple[str, str]] = field(default_factory=list)

    def add(self, letter: DeadLetter) -> None:
        self.total += 1
        self.by_error_code[letter.error_code] += 1
        self.by_stream[letter.stream] += 1
        if letter.shard_id and letter.shard_id != UNKNOWN_SHARD:
            self.by_shard[f"{letter.stream} {letter.shard_id}"] += 1
        else:
            self.shard_unknown += 1
        at = letter.failed_at_micros
        self.first_failure = at if self.first_failure is None else min(self.first_failure, at)
        self.last_failure = at if self.last_failure is None else max(self.last_failure, at)
        self.max_attempts = max(self.max_attempts, letter.attempts)
        samples = self.samples.setdefault(letter.error_code, [])
        if len(samples) < self.samples_per_code:
            samples.append(letter)


def sample_dict(letter: DeadLetter) -> dict[str, Any]:
    kind, text = describe_data(letter.data)
    return {
        "failed_at": iso(letter.failed_at_micros),
        "stream": letter.stream,
        "partition_key": letter.partition_key,
        "explicit_hash_key": letter.explicit_hash_key,
        "shard_id": letter.shard_id,
        "attempts": letter.attempts,
        "error_code": letter.error_code,
        "error_message": letter.error_message,
        "element_timestamp": iso(letter.element_timestamp_micros),
        "element_preview": letter.element_preview,
        "data_bytes": None if letter.data is None else len(letter.data),
        "data_kind": kind,
        "data": text if letter.data is not None else None,
    }


def to_json(report: Report, filters: dict[str, Any]) -> dict[str, Any]:
    return {
        "total": report.total,
        "by_error_code": output.by_count(report.by_error_code),
        "by_stream": output.by_count(report.by_stream),
        "by_shard": output.by_count(report.by_shard),
        "shard_unknown": report.shard_unknown,
        "first_failure": iso(report.first_failure),
        "last_failure": iso(report.last_failure),
        "max_attempts": report.max_attempts,
        "filters": filters,
        "filtered_out": report.filtered_out,
        "codes_left_out": output.by_count(report.codes_left_out),
        "files_read": report.files_read,
        "file_errors": [{"file": f, "error": e} for f, e in report.file_errors],
        "samples": {
            code: [sample_dict(s) for s in letters] for code, letters in sorted(report.samples.items())
        },
    }


def _table(title: str, counts: dict[str, int], extra: Optional[tuple[str, int]] = None) -> list[str]:
    rows = list(counts.items())
    if extra and extra[1]:
        rows.append(extra)
    if not rows:
        return [title, "  (none)"]
    rows = [(shown(k), v) for k, v in rows]
    width = max(len(k) for k, _ in rows)
    return [title] + [f"  {k:<{width}}  {v:>10,}" for k, v in rows]


def to_text(report: Report, filters: dict[str, Any]) -> str:
    lines = [f"dead letters: {report.total:,} in {len(report.files_read):,} file(s)"]
    active = {k: v for k, v in filters.items() if v}
    if active:
        described = "; ".join(f"{k} {v}" for k, v in active.items())
        lines.append(f"filters: {described} ({report.filtered_out:,} left out)")
    unmatched = [code for code in filters.get("error_code") or () if not report.by_error_code.get(code)]
    if unmatched:
        present = output.counted(report.codes_left_out)
        lines.append(f"no selected dead letter has error code {', '.join(unmatched)}"
                     + (f"; the codes --error-code left out: {present}" if present else ""))
    lines.append("")
    lines += _table("by error code", output.by_count(report.by_error_code))
    lines += _table("by stream", output.by_count(report.by_stream))
    lines += _table("by shard", output.by_count(report.by_shard), ("(shard unknown)", report.shard_unknown))
    lines.append(f"first failure  {iso(report.first_failure) or '-'}")
    lines.append(f"last failure   {iso(report.last_failure) or '-'}")
    lines.append(f"max attempts   {report.max_attempts}")
    if report.samples and report.samples_per_code > 0:
        lines.append("")
        lines.append(f"samples (up to {report.samples_per_code} per error code)")
        for code in sorted(report.samples):
            lines.append(f"  {shown(code)} ({report.by_error_code[code]:,})")
            for letter in report.samples[code]:
                s = sample_dict(letter)
                lines.append(
                    f"    - failed {s['failed_at']}  stream {_field(s['stream'])}"
                    f"  key {_field(s['partition_key'])}  shard {_field(s['shard_id'])}"
                    f"  attempts {s['attempts']}"
                )
                lines.append(f"      message: {clip(shown(s['error_message']), MESSAGE_CHARS)}")
                if s["element_preview"]:
                    lines.append(f"      from:    {clip(shown(s['element_preview']))}")
                if letter.data is None:
                    lines.append("      data:    (none)")
                else:
                    lines.append(f"      data:    {s['data_kind']}, {s['data_bytes']:,} bytes: {s['data']}")
    if report.file_errors:
        lines.append("")
        lines.append(f"files that could not be read ({len(report.file_errors)})")
        for path, reason in report.file_errors:
            lines.append(f"  {shown(path)}: {shown(reason)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Reading


def inspect_files(files: Sequence[str], samples: int = 3, chosen: Selection = Selection()) -> Report:
    report = Report(samples_per_code=samples)
    for path in files:
        reading = FileReading(path)
        for letter in reading:
            left_out_by = chosen.left_out_by(letter)
            if left_out_by is None:
                report.add(letter)
                continue
            report.filtered_out += 1
            if left_out_by == selection.ERROR_CODE:
                report.codes_left_out[letter.error_code] += 1
        if reading.problem:
            report.file_errors.append((path, reading.problem))
        if reading.letters or not reading.problem:
            report.files_read.append(path)
    return report


def parser() -> argparse.ArgumentParser:
    p = common.command_parser("inspect_dead_letters", "Summarise dead-letter files (any Beam filesystem).")
    p.add_argument("paths", nargs="+", metavar="DIR_OR_GLOB",
                   help="a dead-letter directory (its *.avro files) or a glob, e.g. 'dl/**.avro'")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--samples", type=int, default=3, metavar="N", help="samples per error code (default 3)")
    selection.add_arguments(p)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = parser()
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.samples < 0:
        p.error("--samples must be 0 or more")
    try:
        chosen = selection.from_args(args)
    except ValueError as exc:
        p.error(str(exc))
    return common.run_command("inspect_dead_letters", lambda: _inspect(args, chosen))


def _inspect(args: argparse.Namespace, chosen: Selection) -> int:
    files = common.expand_inputs(args.paths, dir_glob="*.avro")
    report = inspect_files(files, args.samples, chosen)
    filters = chosen.as_dict()
    if args.json:
        print(json.dumps(to_json(report, filters), indent=2, ensure_ascii=False))
    else:
        print(to_text(report, filters))
    for path, reason in report.file_errors:
        output.eprint(f"inspect_dead_letters: {path}: {reason}")
    return 1 if report.file_errors else common.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
