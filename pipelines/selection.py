"""Which dead letters a command works on: ``--error-code`` and ``--since``,
the same for ``beam-kinesis-inspect`` and ``beam-kinesis-replay``.

    p = argparse.ArgumentParser(); selection.add_arguments(p)
    chosen = selection.from_args(p.parse_args(argv))   # ValueError for a bad --since
    chosen.left_out_by(letter)                          # None, "error_code" or "since"
"""

from __future__ import annotations

import argparse
import datetime
import re
from dataclasses import dataclass
from typing import Optional, Sequence

from beam_kinesis_sink import DeadLetter
from beam_kinesis_sink.dead_letter_io import micros_to_datetime, to_micros

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

ERROR_CODE = "error_code"
SINCE = "since"


def parse_since(text: str, now: Optional[datetime.datetime] = None) -> datetime.datetime:
    """ISO-8601 date or date-time (UTC unless it has an offset), or a relative
    age such as ``30m``, ``2h``, ``7d``."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    match = _RELATIVE.match(text.strip())
    if match:
        return now - datetime.timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    value = text.strip()
    if value.endswith("Z") or value.endswith("z"):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"not an ISO-8601 time nor an age like 2h: {text!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def iso(micros: Optional[int]) -> Optional[str]:
    """A microsecond timestamp as ISO-8601 UTC (``2024-05-01T12:00:00.000000Z``)."""
    if micros is None:
        return None
    return micros_to_datetime(micros).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


@dataclass(frozen=True)
class Selection:
    """The filters: error codes (empty: all) and the earliest failure time."""

    error_codes: frozenset = frozenset()
    since_micros: Optional[int] = None

    @property
    def active(self) -> bool:
        return bool(self.error_codes) or self.since_micros is not None

    def left_out_by(self, letter: DeadLetter) -> Optional[str]:
        """``None`` when ``letter`` is selected; else the filter that left it out."""
        if self.error_codes and letter.error_code not in self.error_codes:
            return ERROR_CODE
        if self.since_micros is not None and letter.failed_at_micros < self.since_micros:
            return SINCE
        return None

    def flags(self) -> str:
        """The options in force, as given: ``--error-code`` and ``--since``."""
        given = [f"--{name.replace('_', '-')}" for name, on in
                 ((ERROR_CODE, bool(self.error_codes)), (SINCE, self.since_micros is not None)) if on]
        return " and ".join(given)

    def as_dict(self) -> dict:
        """``{"error_code": [...], "since": ISO-8601 or None}``, for reports."""
        return {ERROR_CODE: sorted(self.error_codes), SINCE: iso(self.since_micros)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--error-code", action="append", metavar="CODE",
                   help="only dead letters with these error codes (repeatable, or comma-separated); "
                   "default all")
    p.add_argument("--since", metavar="TIME",
                   help="only dead letters that failed at or after TIME: ISO-8601 (UTC unless an offset is "
                   "given) or an age like 30m, 2h, 7d")


def from_args(args: argparse.Namespace, now: Optional[datetime.datetime] = None) -> Selection:
    """The selection the parsed arguments ask for; ValueError for a bad ``--since``."""
    return Selection(frozenset(_codes(args.error_code or [])), _since_micros(args.since, now))


def _codes(values: Sequence[str]) -> set[str]:
    return {code.strip() for value in values for code in value.split(",") if code.strip()}


def _since_micros(text: Optional[str], now: Optional[datetime.datetime]) -> Optional[int]:
    if not text:
        return None
    try:
        since = parse_since(text, now)
    except ValueError as exc:
        raise ValueError(f"--since: {exc}") from None
    return to_micros(since)
