"""``python -m pipelines.replay_dead_letters`` against kinesalite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import apache_beam as beam
import pytest

from beam_kinesis_sink import DeadLetter, ErrorCode
from beam_kinesis_sink.dead_letter_io import WriteDeadLetters, read_file
from beam_kinesis_sink.testing.local_servers import LocalKinesis
from beam_kinesis_sink.testing.readback import shard_ranges
from pipelines.replay_dead_letters import join_key
from tests.oracle import hash_key_of
from tests.pipelines.conftest import run_many, stream_records, summary_value

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


def new_letters(directory: Path) -> list[DeadLetter]:
    return [dl for f in sorted(directory.glob("*.avro")) for dl in read_file(str(f))]


def test_replay_writes_what_it_can_and_carries_attempts(
    kinesalite: LocalKinesis, dead_letter_set: tuple[Path, list[DeadLetter], str], tmp_path: Path,
) -> None:
    source, letters, target = dead_letter_set
    endpoint = ["--endpoint-url", kinesalite.endpoint_url, "--region", "us-east-1", "--no-rate-limit"]
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
