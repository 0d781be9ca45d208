"""read_all returns what put_records wrote, shard by shard."""

from __future__ import annotations

from typing import Callable

import pytest

from beam_kinesis_sink.testing.local_servers import LocalKinesis
from beam_kinesis_sink.testing.readback import (
    read_all,
    read_all_flat,
    shard_for,
    shard_ranges,
)
from tests.oracle import hash_key_of

pytestmark = pytest.mark.integration


def test_read_all_returns_what_was_written(
    kinesalite: LocalKinesis, new_stream: Callable[[int], str]
) -> None:
    stream = new_stream(4)
    client = kinesalite.client()
    sent = [{"Data": f"payload-{i}".encode() * (i % 7 + 1), "PartitionKey": f"key-{i}"} for i in range(1200)]
    receipts = []
    for start in range(0, len(sent), 500):
        result = client.put_records(StreamName=stream, Records=sent[start : start + 500])
        assert result["FailedRecordCount"] == 0
        receipts.extend(result["Records"])

    by_shard = read_all(client, stream)
    assert set(by_shard) == {r.shard_id for r in shard_ranges(client, stream)}
    got = {(r["partition_key"], r["data"]): r for records in by_shard.values() for r in records}
    assert len(got) == len(sent)
    ranges = shard_ranges(client, stream)
    for record, receipt in zip(sent, receipts):
        read = got[(record["PartitionKey"], record["Data"])]
        assert read["sequence_number"] == receipt["SequenceNumber"]
        assert read["shard_id"] == receipt["ShardId"] == shard_for(ranges, record["PartitionKey"])
    for records in by_shard.values():  # each shard in sequence order
        numbers = [int(r["sequence_number"]) for r in records]
        assert numbers == sorted(numbers)
    assert len(read_all_flat(client, stream)) == len(sent)


def test_shard_ranges_cover_the_hash_space(
    kinesalite: LocalKinesis, new_stream: Callable[[int], str]
) -> None:
    stream = new_stream(5)
    ranges = shard_ranges(kinesalite.client(), stream)
    assert len(ranges) == 5 and all(r.is_open for r in ranges)
    assert ranges[0].start == 0 and ranges[-1].end == 2**128 - 1
    for left, right in zip(ranges, ranges[1:]):
        assert right.start == left.end + 1


def test_explicit_hash_key_lands_in_its_shard(
    kinesalite: LocalKinesis, new_stream: Callable[[int], str]
) -> None:
    stream = new_stream(3)
    client = kinesalite.client()
    ranges = shard_ranges(client, stream)
    records = [{"Data": b"x", "PartitionKey": "same", "ExplicitHashKey": str(r.start)} for r in ranges]
    client.put_records(StreamName=stream, Records=records)
    by_shard = read_all(client, stream)
    assert all(len(by_shard[r.shard_id]) == 1 for r in ranges)
    assert hash_key_of("same", str(ranges[1].start)) == ranges[1].start


def test_read_all_of_a_split_stream_reads_closed_shards(
    kinesalite: LocalKinesis, new_stream: Callable[[int], str]
) -> None:
    from beam_kinesis_sink.testing.local_servers import wait_active

    stream = new_stream(1)
    client = kinesalite.client()
    client.put_records(StreamName=stream, Records=[{"Data": b"before", "PartitionKey": "a"}])
    client.split_shard(StreamName=stream, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**127))
    wait_active(client, stream)
    client.put_records(StreamName=stream, Records=[{"Data": b"after", "PartitionKey": "a"}])
    by_shard = read_all(client, stream)
    assert len(by_shard) == 3
    assert [r["data"] for r in by_shard["shardId-000000000000"]] == [b"before"]
    assert sorted(r["data"] for records in by_shard.values() for r in records) == [b"after", b"before"]
    assert len(shard_ranges(client, stream, open_only=True)) == 2
