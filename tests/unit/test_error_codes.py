"""One table of error codes: ErrorCode and the README name the same set."""

from __future__ import annotations

import re
from pathlib import Path

from beam_kinesis_sink.records import ErrorCode

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_codes() -> set:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Error codes", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {code for row in rows for code in re.findall(r"`([A-Za-z]+)`", row.split("|")[1])}


def test_the_readme_table_lists_every_error_code_and_no_other():
    codes = readme_codes()
    assert len(codes) > 20
    assert codes == ErrorCode.all(), (sorted(codes - ErrorCode.all()), sorted(ErrorCode.all() - codes))


def test_error_code_constants_are_unique():
    names = [k for k, v in vars(ErrorCode).items() if k.isupper() and isinstance(v, str)]
    assert len(names) == len(ErrorCode.all())
    assert ErrorCode.PRE_REQUEST <= ErrorCode.all()
