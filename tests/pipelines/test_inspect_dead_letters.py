"""``python -m pipelines.inspect_dead_letters`` on a dead-letter set with every error code."""

from __future__ import annotations

import datetime
import json
import re
from collections import Counter
from pathlib import Path
from typing import Callable

import apache_beam as beam
import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beam_kinesis_sink import DeadLetter, ErrorCode
from beam_kinesis_sink.avro_single_object import SingleObjectEncoder, schema_fingerprint
from beam_kinesis_sink.dead_letter_io import WriteDeadLetters
from pipelines.inspect_dead_letters import Report, describe_data, to_text
from pipelines.output import shown
from pipelines.selection import parse_since
from tests.pipelines.conftest import Run

ALL_CODES = sorted(
    value for name, value in vars(ErrorCode).items() if name.isupper() and isinstance(value, str)
) + ["KMSAccessDeniedException"]
T0 = 1_714_564_800_000_000  # 2024-05-01T12:00:00Z
SMALL_SCHEMA = {"type": "record", "name": "S", "fields": [{"name": "a", "type": "long"}]}


def data_for(i: int) -> bytes | None:
    kind = i % 5
    if kind == 0:
        return json.dumps({"order": i, "customer": f"c{i}"}).encode()
    if kind == 1:
        return f"plain text {i}".encode()
    if kind == 2:
        return bytes([0xFF, 0x00, i % 256]) * 30
    if kind == 3:
        return SingleObjectEncoder(SMALL_SCHEMA).encode({"a": i})
    return None


def build_set(directory: Path) -> list[DeadLetter]:
    letters = []
    i = 0
    for n, code in enumerate(ALL_CODES):
        for _ in range(n % 3 + 1):  # 1 to 3 letters per code
            letters.append(
                DeadLetter(
                    stream="orders" if i % 3 else "payments",
                    data=data_for(i),
                    partition_key=f"k{i}" if i % 4 else None,
                    explicit_hash_key=None,
                    error_code=code,
                    error_message=f"{code} happened to letter {i}",
                    attempts=i % 4,
                    shard_id=f"shardId-{i % 2:012d}" if i % 3 != 1 else None,
                    failed_at_micros=T0 + i * 60_000_000,  # one a minute
                    element_timestamp_micros=T0 if i % 2 else None,
                    element_preview=None if i % 5 != 4 else f"<element {i}>",
                )
            )
            i += 1
    with beam.Pipeline() as p:
        _ = p | beam.Create(letters) | WriteDeadLetters(str(directory) + "/", num_shards=2)
    return letters


@pytest.fixture(scope="module")
def dead_letter_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[DeadLetter]]:
    directory = tmp_path_factory.mktemp("dl")
    letters = build_set(directory)
    return directory, letters


def test_describe_data() -> None:
    assert describe_data(None) == ("none", "")
    assert describe_data(b'{"a": 1}') == ("json", '{"a":1}')
    assert describe_data("héllo".encode()) == ("text", "héllo")
    assert describe_data(b"a\nb") == ("text", "a\\nb")
    assert describe_data("é\x1b[2J".encode()) == ("text", "é\\x1b[2J")  # only what cannot print
    assert describe_data(b"\xff\x00") == ("hex", "ff 00")
    kind, text = describe_data(SingleObjectEncoder(SMALL_SCHEMA).encode({"a": 1}))
    assert kind == "avro" and f"{schema_fingerprint(SMALL_SCHEMA):016x}" in text


_TEXT = st.text(max_size=40)  # any code point: controls, ANSI escapes, bidi overrides, lone surrogates
_OPTIONAL = st.none() | _TEXT


@settings(max_examples=300, deadline=None)
@given(stream=_TEXT, key=_OPTIONAL, shard=_OPTIONAL, code=_TEXT, message=_TEXT, preview=_OPTIONAL,
       data=st.none() | st.binary(max_size=40) | _TEXT.map(lambda t: t.encode("utf-8", "surrogatepass"))
       | _TEXT.map(lambda t: json.dumps({"t": t}, ensure_ascii=False).encode("utf-8", "surrogatepass")),
       path=_TEXT, reason=_TEXT)
def test_a_text_report_prints_every_field_on_its_own_line_and_nothing_a_terminal_acts_on(
    stream, key, shard, code, message, preview, data, path, reason
) -> None:
    # A dead letter's fields come from the data and the service: whatever they
    # hold, the report keeps its lines and shows no character a terminal acts on.
    report = Report(samples_per_code=1)
    report.add(DeadLetter(stream=stream, data=data, partition_key=key, explicit_hash_key=None,
                          error_code=code, error_message=message, attempts=1, shard_id=shard,
                          failed_at_micros=T0, element_timestamp_micros=None, element_preview=preview))
    report.files_read.append("dl.avro")
    report.file_errors.append((path, reason))
    lines = to_text(report, {}).split("\n")
    assert all(line.isprintable() for line in lines), [line for line in lines if not line.isprintable()]
    plain = Report(samples_per_code=1)
    plain.add(DeadLetter(stream="s", data=None if data is None else b"x",
                         partition_key=None if key is None else "k", explicit_hash_key=None,
                         error_code="C", error_message="m", attempts=1,
                         shard_id=None if shard is None else "shardId-0", failed_at_micros=T0,
                         element_timestamp_micros=None, element_preview=None if not preview else "p"))
    plain.files_read.append("dl.avro")
    plain.file_errors.append(("f", "r"))
    assert len(lines) == len(to_text(plain, {}).split("\n"))
    if key is not None:
        assert f"  key {shown(key) if key else chr(39) * 2}  " in to_text(report, {})


def test_parse_since() -> None:
    now = datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.timezone.utc)
    assert parse_since("2h", now) == now - datetime.timedelta(hours=2)
    assert parse_since("2024-05-01", now) == datetime.datetime(2024, 5, 1, tzinfo=datetime.timezone.utc)
    assert parse_since("2024-05-01T14:00:00+02:00", now) == now
    assert parse_since("2024-05-01T12:00:00Z", now) == now
    with pytest.raises(ValueError):
        parse_since("yesterday", now)


@pytest.mark.integration
def test_text_and_json_reports(
    cli: Callable[..., Run], dead_letter_set: tuple[Path, list[DeadLetter]], tmp_path: Path
) -> None:
    directory, letters = dead_letter_set
    counts = {code: sum(dl.error_code == code for dl in letters) for code in ALL_CODES}

    run = cli("inspect_dead_letters", str(directory), "--samples", "2")
    assert run.returncode == 0, run
    text = run.stdout
    assert f"dead letters: {len(letters)} in 2 file(s)" in text
    for code, count in counts.items():
        assert re.search(rf"^  {code}\s+{count}$", text, re.MULTILINE), (code, text)
    assert re.search(r"^  orders\s+\d+$", text, re.MULTILINE) and re.search(r"^  payments\s+\d+", text, re.M)
    unknown_shard = sum(dl.shard_id is None for dl in letters)
    assert re.search(rf"^  \(shard unknown\)\s+{unknown_shard}$", text, re.MULTILINE), text
    assert re.search(r"^  orders shardId-000000000000\s+\d+$", text, re.MULTILINE), text
    last = max(dl.failed_at_micros for dl in letters)
    assert "first failure  2024-05-01T12:00:00.000000Z" in text
    last_time = datetime.datetime.fromtimestamp(last / 1e6, datetime.timezone.utc)
    last_iso = last_time.strftime("%Y-%m-%dT%H:%M:%S")
    assert f"last failure   {last_iso}.000000Z" in text
    # samples: data decoded as JSON or text, hex otherwise, single-object shows its fingerprint
    assert 'data:    json, ' in text and '{"order":0,"customer":"c0"}' in text
    assert "data:    text, 12 bytes: plain text 1" in text
    assert "data:    hex, 90 bytes: ff 00 02 ff" in text
    fingerprint = f"{schema_fingerprint(SMALL_SCHEMA):016x}"
    assert f"data:    avro, 11 bytes: single-object, schema fingerprint {fingerprint}" in text
    assert "data:    (none)" in text
    assert len(re.findall(r"^    - failed ", text, re.MULTILINE)) == sum(min(2, c) for c in counts.values())

    run = cli("inspect_dead_letters", str(directory / "*.avro"), "--json", "--samples", "1")
    assert run.returncode == 0, run
    report = json.loads(run.stdout)
    assert report["total"] == len(letters)
    assert report["by_error_code"] == counts
    assert sum(report["by_stream"].values()) == len(letters)
    assert report["shard_unknown"] == unknown_shard
    assert report["first_failure"] == "2024-05-01T12:00:00.000000Z"
    assert set(report["samples"]) == set(ALL_CODES)
    assert all(len(s) == 1 for s in report["samples"].values())
    assert report["file_errors"] == []


@pytest.mark.integration
def test_filters(cli: Callable[..., Run], dead_letter_set: tuple[Path, list[DeadLetter]]) -> None:
    directory, letters = dead_letter_set
    since = T0 + 10 * 60_000_000
    run = cli("inspect_dead_letters", str(directory), "--json", "--error-code",
              "MalformedInput,UnknownError", "--error-code", "InternalFailure",
              "--since", "2024-05-01T12:10:00Z")
    assert run.returncode == 0, run
    report = json.loads(run.stdout)
    chosen = [dl for dl in letters if dl.error_code in ("MalformedInput", "UnknownError", "InternalFailure")
              and dl.failed_at_micros >= since]
    assert report["total"] == len(chosen) > 0
    assert report["filtered_out"] == len(letters) - len(chosen)
    wanted = ("MalformedInput", "UnknownError", "InternalFailure")
    left_out = Counter(dl.error_code for dl in letters if dl.error_code not in wanted)
    assert report["codes_left_out"] == dict(left_out) and left_out

    # A code no letter has (a typo) is named, with the codes there are.
    run = cli("inspect_dead_letters", str(directory), "--error-code", "MalformedInptu,InternalFailure")
    assert run.returncode == 0, run
    hint = next(line for line in run.stdout.splitlines() if line.startswith("no selected dead letter has"))
    assert hint.startswith("no selected dead letter has error code MalformedInptu; "
                           "the codes --error-code left out: ")
    assert f"MalformedInput ({sum(dl.error_code == 'MalformedInput' for dl in letters):,})" in hint
    assert "InternalFailure (" not in hint  # it was selected, and found


@pytest.mark.integration
def test_bad_files_are_named_and_the_rest_reported(
    cli: Callable[..., Run], dead_letter_set: tuple[Path, list[DeadLetter]], tmp_path: Path
) -> None:
    directory, letters = dead_letter_set
    for f in directory.glob("*.avro"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    truncated = tmp_path / "truncated.avro"
    whole = next(iter(directory.glob("*.avro"))).read_bytes()
    truncated.write_bytes(whole[: len(whole) - 40])
    garbage = tmp_path / "garbage.avro"
    garbage.write_bytes(b"\x00\x01 this is not avro")
    other = tmp_path / "other.avro"
    with other.open("wb") as f:
        schema = {"type": "record", "name": "Other", "fields": [{"name": "x", "type": "int"}]}
        fastavro.writer(f, schema, [{"x": 1}])

    run = cli("inspect_dead_letters", str(tmp_path), "--json")
    assert run.returncode == 1, run
    report = json.loads(run.stdout)
    errors = {e["file"]: e["error"] for e in report["file_errors"]}
    assert set(errors) == {str(truncated), str(garbage), str(other)}
    assert errors[str(garbage)].startswith("not a readable Avro file")
    assert "not a dead-letter file" in errors[str(other)] and "Other" in errors[str(other)]
    assert "corrupt" in errors[str(truncated)] or "not a readable" in errors[str(truncated)]
    assert report["total"] >= len(letters)  # every good letter, plus what the truncated copy still held
    for path in errors:
        assert path in run.stderr

    run = cli("inspect_dead_letters", str(tmp_path))
    assert run.returncode == 1
    assert "files that could not be read (3)" in run.stdout
    assert f"{garbage}: not a readable Avro file" in run.stdout

    run = cli("inspect_dead_letters", str(tmp_path / "nothing-*.avro"))
    assert run.returncode == 2 and "no file matches" in run.stderr
