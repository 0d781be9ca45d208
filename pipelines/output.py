"""How the command-line pipelines print: lines safe for a terminal, with
credentials redacted, and aligned summary rows and breakdowns."""

from __future__ import annotations

import sys
from typing import Any, Mapping

from beam_kinesis_sink.messages import redact


def shown(text: str) -> str:
    """``text`` safe to print on a terminal: each character that is not
    printable (newlines, ANSI escapes, bidi overrides, lone surrogates...)
    escaped as Python would (``\\n``, ``\\x1b``, ``\\u202e``). What the commands
    print comes from data, files and the service, and must not steer the
    reader's terminal or hide what follows it."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def eprint(*parts: Any) -> None:
    """Print to stderr, with credentials (access-key ids, URL user-info) redacted:
    these lines often carry exception texts that name endpoints; and each line
    :func:`shown` (file names, exception texts and schema names come from outside)."""
    text = redact(" ".join(str(p) for p in parts))
    print("\n".join(shown(line) for line in text.split("\n")), file=sys.stderr, flush=True)


LABEL_WIDTH = 28


def row(label: str, value: int, note: str = "", level: int = 1) -> str:
    """One aligned summary line: ``label ... value  note``."""
    indent = "  " * level
    line = f"{indent}{label:<{LABEL_WIDTH - len(indent)}}{value:>12,}"
    return f"{line}  {note}" if note else line


def by_count(counts: Mapping[str, int]) -> dict[str, int]:
    """``counts`` largest first, ties by name."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def counted(counts: Mapping[str, int]) -> str:
    """``A (3), B (1)``: a breakdown on one line, largest first."""
    return ", ".join(f"{k} ({v:,})" for k, v in by_count(counts).items())


def count_lines(counts: Mapping[str, int], level: int = 2) -> list[str]:
    """``row`` lines for a breakdown (e.g. by error code), largest first."""
    return [row(k, v, level=level) for k, v in by_count(counts).items()]


def with_prefix(counts: Mapping[str, int], prefix: str) -> dict[str, int]:
    """``{rest: n}`` for the counters named ``prefix + rest`` (and non-zero)."""
    return {k[len(prefix):]: v for k, v in counts.items() if k.startswith(prefix) and v}


def format_rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f} records/s" if seconds > 0 else "n/a"
