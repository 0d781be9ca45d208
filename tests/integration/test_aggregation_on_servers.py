"""Aggregation against real local servers: every Kinesis record read back is
decoded with aws-kinesis-agg (an independent decoder), the user records
match the input, and every sub-record's hash lies in the range of the shard
that holds it (the KCL drops a whole aggregate otherwise)."""

from __future__ import annotations

import apache_beam as beam
import pytest

from beam_kinesis_sink import WriteToKinesis
from beam_kinesis_sink.aggregator import AggregationOptions
from beam_kinesis_sink.limits import record_size
from beam_kinesis_sink.metrics import AGGREGATES_RESENT, CountingMetrics
from beam_kinesis_sink.rate_limit import RateLimitConfig
from beam_kinesis_sink.records import KinesisRecord, WriteReceipt
from beam_kinesis_sink.testing.local_servers import wait_active
from beam_kinesis_sink.testing.readback import shard_ranges
from beam_kinesis_sink.writer import KinesisWriter, WriterOptions
from tests.conftest import unique_stream
from tests.integration.helpers import client_config, collect, collected, read_stream
from tests.kpl import is_aggregated, user_records
from tests.oracle import hash_key_of

pytestmark = pytest.mark.integration


def decode_stream(server, stream):
    """[(user data, user partition key, shard id, aggregated?)] of everything stored."""
    out = []
    for shard_id, stored in read_stream(server, stream).items():
        for r in stored:
            for data, pk, _ in user_records(r["data"], r["partition_key"]):
                out.append((data, pk, shard_id, is_aggregated(r["data"])))
    return out


def test_aggregated_records_decode_to_the_input_each_in_its_shards_range(server, tmp_path):
    stream = unique_stream("agg")
    server.create_stream(stream, shards=4)
    inputs = [{"user": f"user-{i}", "i": i, "pad": "x" * 60} for i in range(5000)]
    with beam.Pipeline() as p:
        result = p | beam.Create(inputs) | WriteToKinesis(
            stream, partition_key=lambda e: e["user"], client_config=client_config(server), aggregation=True
        )
        collect(result.written, str(tmp_path / "w"), "CollectWritten")
        collect(result.dead_letters, str(tmp_path / "d"), "CollectDead")
    assert collected(str(tmp_path / "d")) == []
    users = decode_stream(server, stream)
    assert sorted(pk for _, pk, _, _ in users) == sorted(e["user"] for e in inputs)
    assert all(aggregated for *_, aggregated in users)
    ranges = {r.shard_id: r for r in shard_ranges(server.client(), stream)}
    for _, pk, shard_id, _ in users:
        assert ranges[shard_id].holds(hash_key_of(pk)), (pk, shard_id)
    stored = sum(len(rs) for rs in read_stream(server, stream).values())
    assert stored <= 5000 // 100  # ~130-byte user records in 50 KiB aggregates: about 400 per record
    receipts = [w for w, _, _ in collected(str(tmp_path / "w"))]
    assert len(receipts) == 5000 and all(isinstance(r, WriteReceipt) for r in receipts)
    by_seq = {}
    for r in receipts:
        by_seq.setdefault((r.shard_id, r.sequence_number), []).append(r.sub_sequence_number)
    assert len(by_seq) == stored  # one sequence number per aggregate, shared by its user records
    assert all(sorted(subs) == list(range(len(subs))) for subs in by_seq.values())


def test_after_a_split_aggregates_follow_the_new_map_and_no_sub_record_is_lost(kinesalite):
    """kinesalite splits shards. A writer whose map predates the split sends
    an aggregate aimed at the closed parent: it lands on a child, and the
    sub-records outside that child's range are sent again; every user record
    ends up in an aggregate wholly inside its shard's range."""
    stream = unique_stream("aggsplit")
    kinesalite.create_stream(stream, shards=1)
    client = kinesalite.client()
    metrics = CountingMetrics()
    writer = KinesisWriter(
        client_config(kinesalite).create_client(), stream,
        WriterOptions(rate_limit=RateLimitConfig(enabled=False), aggregation=AggregationOptions(),
                      shard_map_min_refresh_seconds=0),
        metrics=metrics,
    )

    def write(start, n):
        for i in range(start, start + n):
            r = KinesisRecord(f"v{i}".encode(), f"key-{i}")
            writer.add(r, record_size(r.data, r.partition_key), context=i)
        writer.flush(60)
        return writer.take_outcomes()

    first = write(0, 1000)
    parent = shard_ranges(client, stream)[0]
    client.split_shard(StreamName=stream, ShardToSplit=parent.shard_id, NewStartingHashKey=str(2**127))
    wait_active(client, stream)
    second = write(1000, 1000)
    writer.close()

    outcomes = first + second
    assert metrics.counters[AGGREGATES_RESENT] >= 1  # the stale aim happened, and was caught
    assert sorted(c for _, c in outcomes) == list(range(2000))
    assert all(isinstance(o, WriteReceipt) for o, _ in outcomes)
    ranges = {r.shard_id: r for r in shard_ranges(client, stream)}
    whole = set()
    for shard_id, stored in read_stream(kinesalite, stream).items():
        for r in stored:
            users = user_records(r["data"], r["partition_key"])
            if all(ranges[shard_id].holds(hash_key_of(pk)) for _, pk, _ in users):
                whole.update(pk for _, pk, _ in users)
    assert whole == {f"key-{i}" for i in range(2000)}  # what a KCL consumer gets: everything
    for receipt, _ in second:
        assert receipt.shard_id != parent.shard_id
        assert ranges[receipt.shard_id].holds(hash_key_of(receipt.partition_key))
