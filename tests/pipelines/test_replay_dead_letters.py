"""``python -m pipelines.replay_dead_letters`` against kinesalite."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any, Callable

import apache_beam as beam
import fastavro
import fastavro.write
import pytest

from beam_kinesis_sink import DeadLetter, ErrorCode
from beam_kinesis_sink.dead_letter_io import DEAD_LETTER_SCHEMA, WriteDeadLetters, read_file, to_avro
from beam_kinesis_sink.testing.local_servers import LocalKinesis
from beam_kinesis_sink.testing.readback import shard_ranges
from pipelines.replay_dead_letters import join_key
from tests.oracle import hash_key_of
from tests.pipelines.conftest import Run, run_many, stream_records, summary_value

pytestmark = pytest.mark.integration

OLD_STREAM = "orders-old"
T0 = 1_714_564_800_000_000
BIG = 1024 * 1024 + 100  # over the 1 MiB record limit


def make_letters(second_shard_start: int) -> list[DeadLetter]:
    letters = []

    def add(code: str, attempts: int, data: bytes | None, key: str | None, ehk: str | None = None,
            ts: int | None = None) -> None:
        letters.append(DeadLetter(OLD_STREAM, data, key, ehk, code, f"{code} (original)", attempts,
                                  "shardId-000000000000", T0 + len(letters), ts, None))

    for i in range(40):  # throttled / failed earlier, fine now
        ehk = str(second_shard_start + i) if i % 4 == 0 else None
        ts = T0 - i if i % 2 else None
        add(ErrorCode.INTERNAL_FAILURE, 7, json.dumps({"i": i}).encode(), f"key-{i}", ehk, ts)
    for i in range(10):
        add(ErrorCode.THROTTLED, 10, json.dumps({"t": i}).encode(), f"tkey-{i}")
    for i in range(5):  # too big: fails again before any request
        add(ErrorCode.INVALID_ARGUMENT, 2, bytes([i]) * BIG, f"big-{i}")
    for _ in range(3):  # no data: cannot be replayed
        add(ErrorCode.SERIALIZATION_ERROR, 0, None, None)
    for i in range(4):  # no partition key: cannot be replayed
        add(ErrorCode.MISSING_PARTITION_KEY, 0, json.dumps({"orphan": i}).encode(), None)
    return letters


@pytest.fixture
def dead_letter_set(tmp_path: Path, kinesalite: LocalKinesis, new_stream: Callable[[int], str]
                    ) -> tuple[Path, list[DeadLetter], str]:
    target = new_stream(2)
    second = shard_ranges(kinesalite.client(), target)[1].start
    letters = make_letters(second)
    directory = tmp_path / "old-dl"
    with beam.Pipeline() as p:
        _ = p | beam.Create(letters) | WriteDeadLetters(str(directory) + "/")
    return directory, letters, target


def endpoint_args(kinesalite: LocalKinesis) -> list[str]:
    return ["--endpoint-url", kinesalite.endpoint_url, "--region", "us-east-1", "--no-rate-limit"]


def new_letters(directory: Path) -> list[DeadLetter]:
    return [dl for f in sorted(directory.glob("*.avro")) for dl in read_file(str(f))]


def test_replay_writes_what_it_can_and_carries_attempts(
    kinesalite: LocalKinesis, dead_letter_set: tuple[Path, list[DeadLetter], str], tmp_path: Path,
) -> None:
    source, letters, target = dead_letter_set
    endpoint = endpoint_args(kinesalite)
    to_target, to_missing = run_many(
        [
            ("replay_dead_letters", [str(source), "--stream", target, *endpoint,
                                     "--dead-letter-dir", str(tmp_path / "again")]),
            ("replay_dead_letters", [str(source), "--stream", "no-such-stream", *endpoint,
                                     "--dead-letter-dir", str(tmp_path / "missing")]),
        ],
        cwd=tmp_path,
    )
    # 1. To an existing stream: 50 written, 5 too big again, 7 not replayable.
    assert to_target.returncode == 3, to_target
    out = to_target.stdout
    assert summary_value(out, "dead letters selected") == len(letters) == 62
    assert summary_value(out, "replayed") == 55
    assert summary_value(out, "written") == 50
    assert summary_value(out, "dead-lettered again") == 5
    assert summary_value(out, "RecordTooLarge") == 5
    assert summary_value(out, "not replayable") == 7
    assert summary_value(out, "no data") == 3 and summary_value(out, "no partition key") == 4

    records = stream_records(kinesalite, target)
    replayable = [dl for dl in letters if dl.data is not None and dl.partition_key and len(dl.data) < BIG]
    assert sorted((r["partition_key"], r["data"]) for r in records) == sorted(
        (dl.partition_key, dl.data) for dl in replayable
    )
    ranges = {r.shard_id: r for r in shard_ranges(kinesalite.client(), target)}
    ehk_of = {dl.partition_key: dl.explicit_hash_key for dl in replayable}
    for record in records:  # explicit hash keys were honoured
        key = record["partition_key"]
        assert ranges[record["shard_id"]].holds(hash_key_of(key, ehk_of[key]))

    again = new_letters(tmp_path / "again")
    assert len(again) == 5
    for dl in again:
        assert dl.error_code == ErrorCode.RECORD_TOO_LARGE and dl.stream == target
        assert dl.attempts == 2 + 0  # previous attempts + none (rejected before any request)
        origin = "replay of a InvalidArgumentException dead letter of stream orders-old"
        assert dl.element_preview and origin in dl.element_preview

    # 2. To a stream that does not exist: everything replayed fails again, attempts add up.
    assert to_missing.returncode == 3, to_missing
    assert "does not exist" in to_missing.stderr
    assert summary_value(to_missing.stdout, "written") == 0
    assert summary_value(to_missing.stdout, "ResourceNotFoundException") == 50
    missing = new_letters(tmp_path / "missing")
    before = {join_key(dl.partition_key, dl.data): dl for dl in letters}
    not_found = [dl for dl in missing if dl.error_code == ErrorCode.RESOURCE_NOT_FOUND]
    assert len(not_found) == 50
    added = {dl.attempts - before[join_key(dl.partition_key, dl.data)].attempts for dl in not_found}
    assert len(added) == 1 and min(added) >= 1, added  # the same new attempts on top of each old count
    element_ts = {join_key(dl.partition_key, dl.data): dl.element_timestamp_micros for dl in letters}
    for dl in not_found:  # the original event time travels with the record
        assert dl.element_timestamp_micros == element_ts[join_key(dl.partition_key, dl.data)]

    # 3. The new dead letters replay in turn; --error-code picks the ResourceNotFound ones only.
    third = "p-replay-third"
    kinesalite.create_stream(third, 1)
    (last,) = run_many(
        [("replay_dead_letters", [str(tmp_path / "missing"), "--stream", third, *endpoint,
                                  "--error-code", ErrorCode.RESOURCE_NOT_FOUND,
                                  "--dead-letter-dir", str(tmp_path / "third")])],
        cwd=tmp_path,
    )
    assert last.returncode == 0, last
    assert summary_value(last.stdout, "written") == 50
    assert summary_value(last.stdout, "dead letters selected") == 50
    assert "(5 left out by --error-code)" in last.stdout
    assert len(stream_records(kinesalite, third)) == 50
    assert new_letters(tmp_path / "third") == []


def test_an_error_code_no_dead_letter_has_is_named_and_replays_nothing(
    kinesalite: LocalKinesis, dead_letter_set: tuple[Path, list[DeadLetter], str], tmp_path: Path,
) -> None:
    # A typo in --error-code selected nothing, and the replay exited 0 as if it had written everything.
    source, letters, target = dead_letter_set
    endpoint = endpoint_args(kinesalite)
    typo, partly = run_many(
        [
            ("replay_dead_letters", [str(source), "--stream", target, *endpoint, "--error-code", "Throtled",
                                     "--dead-letter-dir", str(tmp_path / "typo")]),
            ("replay_dead_letters", [str(source), "--stream", target, *endpoint,
                                     "--error-code", f"{ErrorCode.THROTTLED},Throtled",
                                     "--dead-letter-dir", str(tmp_path / "partly")]),
        ],
        cwd=tmp_path,
    )
    held = (f"the codes they hold: {ErrorCode.INTERNAL_FAILURE} (40), {ErrorCode.THROTTLED} (10), "
            f"{ErrorCode.INVALID_ARGUMENT} (5), {ErrorCode.MISSING_PARTITION_KEY} (4), "
            f"{ErrorCode.SERIALIZATION_ERROR} (3)")
    assert typo.returncode == 2, typo
    assert re.search(r"no dead letter in the \d+ file\(s\) has error code Throtled; ", typo.stderr), typo
    assert held in typo.stderr
    assert "Nothing was written" in typo.stderr and not (tmp_path / "typo").exists()
    assert partly.returncode == 0, partly
    assert re.search(r"warning: no dead letter in the \d+ file\(s\) has error code Throtled", partly.stderr)
    assert summary_value(partly.stdout, "written") == 10
    assert sorted(r["partition_key"] for r in stream_records(kinesalite, target)) == sorted(
        dl.partition_key for dl in letters if dl.error_code == ErrorCode.THROTTLED)


def test_since_replays_only_what_failed_at_or_after_it_and_nothing_when_none_did(
    kinesalite: LocalKinesis, dead_letter_set: tuple[Path, list[DeadLetter], str], tmp_path: Path,
) -> None:
    # The letters failed 1 us apart from T0 (2024-05-01T12:00:00Z), in make_letters' order:
    # from the 51st on, 5 too big and 7 without data or key.
    source, letters, target = dead_letter_set
    endpoint = endpoint_args(kinesalite)
    recent, none_yet, empty = run_many(
        [
            ("replay_dead_letters", [str(source), "--stream", target, *endpoint,
                                     "--since", "2024-05-01T14:00:00.000050+02:00",
                                     "--dead-letter-dir", str(tmp_path / "recent")]),
            ("replay_dead_letters", [str(source), "--stream", target, *endpoint, "--since", "2h",
                                     "--dead-letter-dir", str(tmp_path / "none")]),
            ("replay_dead_letters", [str(source), "--stream", target, *endpoint,
                                     "--since", "2024-05-01T12:00:00.000045Z",
                                     "--error-code", ErrorCode.INTERNAL_FAILURE,
                                     "--dead-letter-dir", str(tmp_path / "empty")]),
        ],
        cwd=tmp_path,
    )
    assert recent.returncode == 3, recent
    assert "(failed since 2024-05-01T12:00:00.000050Z)" in recent.stderr
    assert summary_value(recent.stdout, "dead letters selected") == 12
    assert "(50 left out by --since)" in recent.stdout
    assert summary_value(recent.stdout, "RecordTooLarge") == 5
    assert summary_value(recent.stdout, "not replayable") == 7
    assert stream_records(kinesalite, target) == []  # nothing before the 51st was replayed
    assert len(new_letters(tmp_path / "recent")) == 5

    assert none_yet.returncode == 2, none_yet
    assert "no dead letter in the " in none_yet.stderr
    assert "the latest failed at 2024-05-01T12:00:00.000061Z. Nothing was written" in none_yet.stderr
    assert empty.returncode == 2, empty  # codes and --since: none matches both
    assert f"no dead letter with error code {ErrorCode.INTERNAL_FAILURE} in the " in empty.stderr
    assert "the latest failed at 2024-05-01T12:00:00.000039Z" in empty.stderr
    assert not (tmp_path / "none").exists() and not (tmp_path / "empty").exists()


def test_replay_usage_errors(kinesalite: LocalKinesis, tmp_path: Path) -> None:
    (tmp_path / "not-dl.avro").write_text("nope")
    runs = run_many(
        [
            ("replay_dead_letters", [str(tmp_path / "none-*.avro"), "--stream", "s",
                                     "--endpoint-url", kinesalite.endpoint_url]),
            ("replay_dead_letters", [str(tmp_path / "not-dl.avro"), "--stream", "s",
                                     "--endpoint-url", kinesalite.endpoint_url]),
            ("replay_dead_letters", [str(tmp_path)]),
        ],
        cwd=tmp_path,
    )
    assert [r.returncode for r in runs] == [2, 2, 2], runs
    assert "no file matches" in runs[0].stderr
    assert "skipping" in runs[1].stderr and "not-dl.avro" in runs[1].stderr
    assert "--stream" in runs[2].stderr


# ---------------------------------------------------------------- files that cannot be read through


def good_letters(prefix: str, n: int) -> list[DeadLetter]:
    return [
        DeadLetter(OLD_STREAM, json.dumps({"f": prefix, "i": i}).encode(), f"{prefix}-{i}", None,
                   ErrorCode.THROTTLED, "throttled (original)", 3, "shardId-000000000000", T0 + i, None, None)
        for i in range(n)
    ]


def write_blocks(path: Path, schema: dict, *blocks: list[dict]) -> None:
    """An Avro container file, one block per list of records (deflate, as WriteDeadLetters writes)."""
    with path.open("wb") as f:
        writer = fastavro.write.Writer(f, fastavro.parse_schema(schema), codec="deflate")
        for block in blocks:
            for record in block:
                writer.write(record)
            writer.flush()  # ends the block


@pytest.fixture
def damaged_set(tmp_path: Path) -> tuple[Path, dict[str, list[DeadLetter]]]:
    """A good file, a file truncated inside its last block (only its first block
    readable), a 0-byte .avro and an Avro file of another schema."""
    directory = tmp_path / "damaged"
    directory.mkdir()
    good = good_letters("good", 600)  # over one PutRecords batch (500)
    write_blocks(directory / "good.avro", DEAD_LETTER_SCHEMA, [to_avro(dl) for dl in good])
    first, last = good_letters("trunc", 50)[:30], good_letters("trunc", 50)[30:]
    truncated = directory / "truncated.avro"
    write_blocks(truncated, DEAD_LETTER_SCHEMA, [to_avro(dl) for dl in first], [to_avro(dl) for dl in last])
    with truncated.open("rb") as f:
        assert [b.num_records for b in fastavro.block_reader(f)] == [30, 20]
    whole = truncated.read_bytes()
    truncated.write_bytes(whole[: len(whole) - 16 - 8])  # the sync marker and 8 bytes of the last block
    assert [dl for dl in itertools.islice(read_file(str(truncated)), 30)] == first
    with pytest.raises(EOFError):
        list(read_file(str(truncated)))
    (directory / "empty.avro").write_bytes(b"")
    other = {"type": "record", "name": "Other", "fields": [{"name": "x", "type": "int"}]}
    write_blocks(directory / "other.avro", other, [{"x": 1}, {"x": 2}])
    return directory, {"good": good, "truncated": first}


def readable_counts(stderr: str, directory: Path) -> dict[str, int]:
    """``{file name: N}`` from replay's lines ``  PATH: reason (N dead letters readable)``."""
    found = {}
    for path in sorted(directory.iterdir()):
        match = re.search(rf"^\s*{re.escape(str(path))}: .*\((\d+) dead letters? readable\)$", stderr, re.M)
        if match:
            found[path.name] = int(match.group(1))
    return found


def replay_both_ways(
    kinesalite: LocalKinesis, new_stream: Callable[[int], str], directory: Path, tmp_path: Path,
    bad: dict[str, int], *more: tuple[str, list[str]],
) -> tuple[Run, Run, list[dict[str, Any]], list[Run]]:
    """Replay ``directory`` (whose files ``bad`` cannot be read through, with N
    dead letters readable) by default and with --replay-readable, to new streams,
    while the commands ``more`` run too. Both runs name each bad file with its
    count; the default one writes nothing and exits 2, the other exits 3.
    Returns both runs, the records of the --replay-readable run's stream and the others."""
    refused_stream, readable_stream = new_stream(1), new_stream(2)
    endpoint = endpoint_args(kinesalite)
    refused, readable, *others = run_many(
        [
            ("replay_dead_letters", [str(directory), "--stream", refused_stream, *endpoint,
                                     "--dead-letter-dir", str(tmp_path / "again-refused")]),
            ("replay_dead_letters", [str(directory), "--stream", readable_stream, "--replay-readable",
                                     *endpoint, "--dead-letter-dir", str(tmp_path / "again-readable")]),
            *more,
        ],
        cwd=tmp_path,
    )
    # By default: every bad file named with its count and why reading stopped; nothing written.
    assert refused.returncode == 2, refused
    assert readable_counts(refused.stderr, directory) == bad, refused
    assert "--replay-readable" in refused.stderr
    assert stream_records(kinesalite, refused_stream) == []
    assert not (tmp_path / "again-refused").exists()
    # --replay-readable: the same files named; what could be read is replayed; exit 3.
    assert readable.returncode == 3, readable
    assert readable_counts(readable.stderr, directory) == bad, readable
    assert summary_value(readable.stdout, "files not read through") == len(bad)
    assert summary_value(readable.stdout, "dead-lettered again") == 0
    assert new_letters(tmp_path / "again-readable") == []
    return refused, readable, stream_records(kinesalite, readable_stream), others


def test_replay_reads_every_file_through_first(
    kinesalite: LocalKinesis, new_stream: Callable[[int], str], damaged_set: tuple[Path, dict],
    tmp_path: Path,
) -> None:
    directory, letters = damaged_set
    bad = {"truncated.avro": 30, "empty.avro": 0, "other.avro": 0}
    refused, readable, records, (inspected,) = replay_both_ways(
        kinesalite, new_stream, directory, tmp_path, bad,
        ("inspect_dead_letters", [str(directory), "--json", "--samples", "0"]),
    )
    # --replay-readable: the good file and the truncated file's first block, each once.
    expected = letters["good"] + letters["truncated"]
    assert sorted((r["partition_key"], r["data"]) for r in records) == sorted(
        (dl.partition_key, dl.data) for dl in expected
    )
    out = readable.stdout
    assert len(expected) == 630
    assert summary_value(out, "dead letters selected") == summary_value(out, "written") == len(expected)

    # inspect finds the same files unreadable, for the same reasons, with the same letters.
    assert inspected.returncode == 1, inspected
    report = json.loads(inspected.stdout)
    errors = {Path(e["file"]).name: e["error"] for e in report["file_errors"]}
    assert set(errors) == set(bad)
    for name, reason in errors.items():
        for run in (refused, readable):
            assert f"{directory / name}: {reason} (" in run.stderr, (name, reason, run)
    assert "corrupt after 30 dead letters" in errors["truncated.avro"]
    assert "empty (0 bytes)" in errors["empty.avro"]
    assert "not a dead-letter file" in errors["other.avro"] and "Other" in errors["other.avro"]
    assert report["total"] == 630


def test_replay_that_skips_files_does_not_exit_0(
    kinesalite: LocalKinesis, new_stream: Callable[[int], str], damaged_set: tuple[Path, dict],
    tmp_path: Path,
) -> None:
    # The folder of the bug report: good dead letters, a 0-byte .avro and an Avro file of another
    # schema (replay used to skip the last two, write the rest and exit 0).
    directory, letters = damaged_set
    (directory / "truncated.avro").unlink()
    _, readable, records, _ = replay_both_ways(
        kinesalite, new_stream, directory, tmp_path, {"empty.avro": 0, "other.avro": 0}
    )
    assert summary_value(readable.stdout, "written") == len(letters["good"])
    assert sorted(r["data"] for r in records) == sorted(dl.data for dl in letters["good"])
