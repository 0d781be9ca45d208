"""The bench's parts that its figures rest on: the request lower bound, the
write-phase rate read from a front's timeline, and the fast loopback
endpoint (a child process on a free port; about a second)."""

from __future__ import annotations

import os

import pytest

from beam_kinesis_sink.sharding import ShardMap, hash_key_of
from beam_kinesis_sink.testing.local_servers import make_client
from bench.efficiency import first_fit_decreasing, lower_bound
from bench.endpoint import start_loopback_endpoint
from bench.endpoint_server import base64_length
from bench.kinesis_front import admissible, write_phase
from bench.workload import mixed_size_records, record_bytes, small_records

MIB = 1024 * 1024


def test_lower_bound_takes_the_larger_of_the_count_and_the_bytes_per_shard() -> None:
    assert lower_bound({"a": {"records": 1000, "bytes": 100}}) == 2
    assert lower_bound({"a": {"records": 501, "bytes": 100}}) == 2
    assert lower_bound({"a": {"records": 20, "bytes": 11 * MIB}}) == 3
    assert lower_bound({"a": {"records": 500, "bytes": 5 * MIB}, "b": {"records": 0, "bytes": 0}}) == 1


Timeline = dict[str, list[tuple[float, int]]]


def _steady(shards: int, per_batch: int, every_s: float, seconds: float) -> Timeline:
    steps = int(seconds / every_s) + 1
    return {f"s{i}": [(100.0 + k * every_s, per_batch) for k in range(steps)] for i in range(shards)}


def test_write_phase_of_a_steady_writer_is_its_rate() -> None:
    phase = write_phase(_steady(4, 500, 0.5, 10.0))
    assert phase.records_per_s == pytest.approx(4000.0)
    assert phase.accepted == 4 * 21 * 500
    assert phase.seconds == pytest.approx(10.0)


def test_a_window_leaves_the_start_out() -> None:
    timeline = _steady(2, 500, 0.5, 10.0)
    for events in timeline.values():  # a burst of a full bucket at the start
        events.insert(0, (99.9, 1000))
    assert write_phase(timeline).records_per_s > 2000.0
    phase = write_phase(timeline, skip_s=1.0)
    assert phase.records_per_s == pytest.approx(2000.0)
    assert phase.window_start == pytest.approx(100.9)


def test_a_writer_at_the_limit_fills_what_the_front_could_admit() -> None:
    # a full bucket of 1,000 at the start, then 1,000/s: 11,000 by t = 10 s, per shard
    timeline = {f"s{i}": [(0.0, 1000)] + [(k * 0.5, 500) for k in range(1, 21)] for i in range(4)}
    phase = write_phase(timeline)
    assert phase.accepted / admissible(phase, 4000.0) == pytest.approx(1.0)


def test_base64_length_is_the_decoded_length() -> None:
    import base64

    for n in range(0, 9):
        assert base64_length(base64.b64encode(b"x" * n).decode()) == n


def test_mixed_records_span_their_range_and_repeat() -> None:
    sizes = [len(d) for d, _ in mixed_size_records(2000)]
    assert min(sizes) < 100 and max(sizes) > 100_000 and max(sizes) <= 900 * 1024
    assert sizes == [len(d) for d, _ in mixed_size_records(2000)]


def test_the_endpoint_answers_like_kinesis_and_counts(tmp_path) -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with start_loopback_endpoint(4, log_dir=tmp_path) as endpoint:
        client = make_client(endpoint.endpoint_url)
        shards = client.list_shards(StreamName="any")["Shards"]
        shard_map = ShardMap.from_list_shards(shards)
        assert len(shard_map) == 4
        summary = client.describe_stream_summary(StreamName="any")["StreamDescriptionSummary"]
        assert summary["OpenShardCount"] == 4
        records = list(small_records(300))
        entries = [{"Data": d, "PartitionKey": k} for d, k in records]
        answer = client.put_records(StreamName="any", Records=entries)
        assert answer["FailedRecordCount"] == 0
        for (_, key), entry in zip(records, answer["Records"]):
            assert entry["ShardId"] == shard_map.shard_for(hash_key_of(key)).shard_id
            assert entry["SequenceNumber"]
        stats = endpoint.stats()
        assert (stats.put_records_calls, stats.records) == (1, 300)
        assert stats.bytes == sum(record_bytes(d, k) for d, k in records)

        endpoint.configure(throttle_records_per_second=10)
        answer = client.put_records(StreamName="any", Records=entries)
        assert 0 < answer["FailedRecordCount"] < 300
        codes = {e.get("ErrorCode") for e in answer["Records"]}
        assert codes == {None, "ProvisionedThroughputExceededException"}
        assert endpoint.stats().throttled == answer["FailedRecordCount"]
        process = endpoint.process
    assert process is not None and process.poll() is not None  # stopped on leaving the block


def test_first_fit_decreasing_packs_by_count_and_by_bytes() -> None:
    assert first_fit_decreasing([10] * 1000) == 2
    assert first_fit_decreasing([3 * MIB, 3 * MIB, 2 * MIB, 2 * MIB]) == 2
    assert first_fit_decreasing([]) == 0
