"""Ordered mode through the fault front (per-record failures, throttling),
and a stream per element, against real local servers: read back and check."""

from __future__ import annotations

import collections

import apache_beam as beam
import pytest

from beam_kinesis_sink import ClientConfig, ErrorCode, KinesisRecord, WriteToKinesis
from beam_kinesis_sink.testing.fault_front import FaultConfig, start_fault_front_process
from tests.conftest import unique_stream
from tests.integration.helpers import client_config, collect, collected, read_stream

pytestmark = pytest.mark.integration

N = 3000
KEYS = 400


@pytest.fixture
def front(kinesalite):
    front = start_fault_front_process(
        kinesalite.endpoint_url,
        FaultConfig(throttle=True, shard_records_per_second=300.0, burst_seconds=0.3, record_timeline=False,
                    record_internal_failure_rate=0.15, seed=7),
    )
    try:
        yield front
    finally:
        front.stop()


def keyed_inputs(tag):
    return [KinesisRecord(f"{tag}:{i}".encode(), f"key-{(i * 7) % KEYS}") for i in range(N)]


def positions_per_key(stored_by_shard):
    per_key = collections.defaultdict(list)
    for records in stored_by_shard.values():
        for r in records:  # each shard in sequence order
            per_key[r["partition_key"]].append(int(r["data"].split(b":")[1]))
    return per_key


def write(front, stream, inputs, tmp_path, ordered):
    with beam.Pipeline() as p:
        result = p | beam.Create(inputs, reshuffle=False) | WriteToKinesis(
            stream, client_config=ClientConfig(region_name="us-east-1", endpoint_url=front.endpoint_url),
            ordered=ordered, max_records_per_request=100,
        )
        collect(result.dead_letters, str(tmp_path / f"dead-{ordered}"), "CollectDead")
    return [d for d, _, _ in collected(str(tmp_path / f"dead-{ordered}"))]


def test_ordered_mode_keeps_each_keys_input_order_under_failures_and_throttling(kinesalite, front, tmp_path,
                                                                             report):
    stream = unique_stream("ordered")
    kinesalite.create_stream(stream, shards=2)
    dead = write(front, stream, keyed_inputs("o"), tmp_path, ordered=True)
    stats = front.stats()
    assert stats.records_internal_failure > 0 and stats.records_throttled > 0  # the faults fired
    per_key = positions_per_key(read_stream(kinesalite, stream))
    stored = sum(len(p) for p in per_key.values())
    assert stored + len(dead) >= N and not dead
    for key, positions in per_key.items():
        assert positions == sorted(positions), key
        assert len(positions) == len(set(positions))
    report(f"ordered mode: {N} records over {KEYS} keys, {stats.records_internal_failure} injected "
           f"failures, {stats.records_throttled} throttled: every key in input order")


def test_the_same_faults_reorder_records_without_ordered_mode(kinesalite, front, tmp_path):
    """The check above can fail: unordered, the same run breaks some key's order."""
    stream = unique_stream("unordered")
    kinesalite.create_stream(stream, shards=2)
    write(front, stream, keyed_inputs("u"), tmp_path, ordered=False)
    assert front.stats().records_internal_failure > 0
    per_key = positions_per_key(read_stream(kinesalite, stream))
    assert any(p != sorted(p) for p in per_key.values())


@pytest.mark.parametrize("batching", ["bundle", "stateful"])
def test_a_stream_per_element_reads_back_per_stream(server, tmp_path, batching):
    names = [unique_stream(f"per{i}") for i in range(3)]
    for name in names:
        server.create_stream(name, shards=2)
    missing = unique_stream("missing")
    targets = names + [missing]
    inputs = [{"i": i, "to": i % 5} for i in range(2000)]

    def stream_of(e):
        if e["to"] == 4:
            raise KeyError("no route for this one")
        return targets[e["to"]]

    with beam.Pipeline() as p:
        result = p | beam.Create(inputs) | WriteToKinesis(
            stream_of, partition_key=lambda e: f"k{e['i']}", client_config=client_config(server),
            max_buffered_records=1000, batching=batching,
        )
        collect(result.written, str(tmp_path / "w"), "CollectWritten")
        collect(result.dead_letters, str(tmp_path / "d"), "CollectDead")
    receipts = [w for w, _, _ in collected(str(tmp_path / "w"))]
    dead = [d for d, _, _ in collected(str(tmp_path / "d"))]
    for index, name in enumerate(names):
        stored = sorted(int(r["partition_key"][1:]) for rs in read_stream(server, name).values() for r in rs)
        assert stored == list(range(index, 2000, 5))
        assert sorted(int(r.partition_key[1:]) for r in receipts if r.stream == name) == stored
    by_code = collections.Counter((d.error_code, d.stream) for d in dead)
    assert by_code == {(ErrorCode.RESOURCE_NOT_FOUND, missing): 400,
                       (ErrorCode.STREAM_SELECTION_ERROR, ""): 400}
    selection = next(d for d in dead if d.error_code == ErrorCode.STREAM_SELECTION_ERROR)
    assert "stream function failed" in selection.error_message and "KeyError" in selection.error_message
    assert selection.data is not None  # the record was made: a replay can send it on
