"""A reshard while the writer runs: the receipts name shards the map does not
know, the map refreshes, and records keep landing on the shard that holds them."""

from __future__ import annotations

import time

import pytest

from beam_kinesis_sink.client import ClientConfig
from beam_kinesis_sink.limits import record_size
from beam_kinesis_sink.metrics import SHARD_MAP_REFRESHES, CountingMetrics
from beam_kinesis_sink.rate_limit import RateLimitConfig
from beam_kinesis_sink.records import KinesisRecord, WriteReceipt
from beam_kinesis_sink.sharding import hash_key_of
from beam_kinesis_sink.testing.readback import shard_ranges
from beam_kinesis_sink.writer import KinesisWriter, WriterOptions
from tests.conftest import unique_stream
from tests.integration.helpers import read_stream

pytestmark = pytest.mark.integration


def write(writer: KinesisWriter, start: int, n: int) -> list:
    for i in range(start, start + n):
        r = KinesisRecord(f"v{i}".encode(), f"key-{i}")
        writer.add(r, record_size(r.data, r.partition_key))
    writer.flush(60)
    return writer.take_outcomes()


def test_split_shard_refreshes_the_map(kinesalite):
    stream = unique_stream("reshard")
    kinesalite.create_stream(stream, shards=2)
    client = ClientConfig(region_name="us-east-1", endpoint_url=kinesalite.endpoint_url).create_client()
    metrics = CountingMetrics()
    writer = KinesisWriter(client, stream, WriterOptions(rate_limit=RateLimitConfig(enabled=False),
                                                         shard_map_min_refresh_seconds=0), metrics=metrics)
    before = write(writer, 0, 1000)
    assert len(writer.shard_map) == 2 and metrics.counters[SHARD_MAP_REFRESHES] == 1

    # Split shard 0 in the middle of its range, as an operator would.
    ranges = {r.shard_id: r for r in shard_ranges(kinesalite.client(), stream)}
    parent = ranges["shardId-000000000000"]
    kinesalite.client().split_shard(StreamName=stream, ShardToSplit=parent.shard_id,
                                    NewStartingHashKey=str((parent.start + parent.end) // 2 + 1))
    deadline = time.monotonic() + 30
    while kinesalite.client().describe_stream_summary(StreamName=stream)[
            "StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        assert time.monotonic() < deadline
        time.sleep(0.05)

    after = write(writer, 1000, 1000)
    receipts = [v for v, _ in before + after]
    assert len(receipts) == 2000 and all(isinstance(v, WriteReceipt) for v in receipts)
    # The receipts named the children; the map refreshed to the three open shards.
    assert metrics.counters[SHARD_MAP_REFRESHES] >= 2
    assert sorted(s.shard_id for s in writer.shard_map.shards) == [
        "shardId-000000000001", "shardId-000000000002", "shardId-000000000003"]
    children = {"shardId-000000000002", "shardId-000000000003"}
    assert children & {v.shard_id for v in receipts}

    # Read back: every record is on a shard whose range holds its hash; after the
    # split, nothing went to the closed parent.
    ranges = {r.shard_id: r for r in shard_ranges(kinesalite.client(), stream)}
    stored = read_stream(kinesalite, stream)
    assert sum(len(v) for v in stored.values()) == 2000
    for shard_id, records in stored.items():
        for r in records:
            assert ranges[shard_id].holds(hash_key_of(r["partition_key"]))
    late = {f"v{i}".encode() for i in range(1000, 2000)}
    assert not late & {r["data"] for r in stored["shardId-000000000000"]}
    writer.close()
