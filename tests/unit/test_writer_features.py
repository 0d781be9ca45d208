"""The engine's beyond-the-peers features, on the scripted fake client:
ordered mode, aggregation, a stream per element and limits read from the
stream. (Each is also tested against real local servers in tests/integration.)"""

from __future__ import annotations

import random
import threading
from collections import defaultdict

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from beam_kinesis_sink.aggregator import AggregationOptions
from beam_kinesis_sink.limits import Limits, MiB
from beam_kinesis_sink.metrics import AGGREGATES_RESENT, CountingMetrics
from beam_kinesis_sink.records import ErrorCode, KinesisRecord
from beam_kinesis_sink.sharding import ShardMap, hash_key_of
from beam_kinesis_sink.writer import KinesisWriter
from tests.kpl import is_aggregated, user_records
from tests.unit.fakes import FakeKinesis, client_error, one_shard
from tests.unit.test_writer import options, run, split

PROPERTY = settings(max_examples=40, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def keyed(n, keys, seed=0):
    """``n`` records over ``keys`` keys; the data says the record's place in the input."""
    rng = random.Random(seed)
    return [KinesisRecord(f"{i}".encode(), f"key-{rng.randrange(keys)}") for i in range(n)]


class OrderWatch:
    """A script that fails records at random and checks, as the server
    sees it, that no two calls in flight hold the same key."""

    def __init__(self, seed, record_fail, call_fail):
        self.rng = random.Random(seed)
        self.record_fail = record_fail
        self.call_fail = call_fail
        self.lock = threading.Lock()
        self.in_flight = defaultdict(int)
        self.overlaps = 0
        self.repeated_keys = 0

    def __call__(self, call, recs):
        keys = [r["PartitionKey"] for r in recs]
        with self.lock:
            self.repeated_keys += len(keys) - len(set(keys))
            self.overlaps += sum(1 for k in set(keys) if self.in_flight[k])
            for k in keys:
                self.in_flight[k] += 1
            fail_call = self.rng.random() < self.call_fail
            codes = [self.rng.choice(["ProvisionedThroughputExceededException", "InternalFailure"])
                     if self.rng.random() < self.record_fail else None for _ in recs]
        try:
            if fail_call:
                raise client_error("ServiceUnavailable", status=503)
            return codes
        finally:
            with self.lock:
                for k in keys:
                    self.in_flight[k] -= 1


def order_per_key(fake):
    """Per key, the input positions in the order the server stored them."""
    stored = defaultdict(list)
    for r in fake.written:
        stored[r["PartitionKey"]].append(int(r["Data"]))
    return stored


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 800), keys=st.integers(1, 30),
       record_fail=st.floats(0, 0.5), call_fail=st.floats(0, 0.3))
def test_ordered_mode_keeps_each_keys_order_through_failures_and_retries(seed, n, keys, record_fail,
                                                                       call_fail):
    watch = OrderWatch(seed, record_fail, call_fail)
    fake = FakeKinesis(watch)
    writer = KinesisWriter(fake, "s", options(ordered=True), rand=random.Random(seed).random)
    written, dead = split(run(writer, keyed(n, keys, seed)))
    assert len(written) + len(dead) == n
    for key, positions in order_per_key(fake).items():
        assert positions == sorted(positions), key  # input order, gaps only for dead letters
    assert watch.overlaps == 0  # never two calls holding one key at once
    assert watch.repeated_keys == 0  # never two records of one key in one request


def test_without_ordered_mode_a_retried_record_lands_after_later_ones():
    """The failure ordered mode prevents: record 0 fails once, record 1 of
    the same key is written first."""
    fake = FakeKinesis(lambda call, recs: ["InternalFailure"] + [None] * (len(recs) - 1) if call == 0
                       else [None] * len(recs))
    run(KinesisWriter(fake, "s", options()), [KinesisRecord(b"0", "k"), KinesisRecord(b"1", "k")])
    assert order_per_key(fake)["k"] == [1, 0]


def test_ordered_mode_sends_a_hot_key_one_record_per_request():
    fake = FakeKinesis()
    written, _ = split(run(KinesisWriter(fake, "s", options(ordered=True)), keyed(20, keys=1)))
    assert len(written) == 20 and len(fake.calls) == 20
    assert order_per_key(fake)["key-0"] == list(range(20))


# ---------------------------------------------------------------- aggregation
def decoded(fake):
    """(user record, shard id the fake stored its aggregate on, aggregated?)."""
    out = []
    shard_map = ShardMap.from_list_shards(fake.shards)
    for r in fake.written:
        shard = shard_map.shard_for(hash_key_of(r["PartitionKey"], r.get("ExplicitHashKey")))
        for data, pk, _ in user_records(r["Data"], r["PartitionKey"]):
            out.append((data, pk, shard, is_aggregated(r["Data"])))
    return out


def test_aggregates_are_per_shard_and_every_sub_record_lies_in_its_shards_range():
    fake = FakeKinesis()
    recs = [KinesisRecord(b"x" * 100, f"user-{i}") for i in range(4000)]
    written, dead = split(run(KinesisWriter(fake, "s", options(aggregation=AggregationOptions())), recs))
    assert not dead and len(written) == 4000
    users = decoded(fake)
    assert sorted(data + pk.encode() for data, pk, _, _ in users) == sorted(r.data + r.partition_key.encode()
                                                                            for r in recs)
    assert all(agg for *_, agg in users)
    for _, pk, shard, _ in users:
        assert shard.holds(hash_key_of(pk)), (pk, shard)
    # 100-byte records, 50 KiB aggregates: far fewer Kinesis records than user records.
    assert len(fake.written) <= 4000 * 130 // (50 * 1024) + 8
    assert all(r["ExplicitHashKey"] == str(ShardMap.from_list_shards(fake.shards).shard_for(
        int(r["ExplicitHashKey"])).start) for r in fake.written)


def test_receipts_stay_per_user_record_with_their_index_in_the_aggregate():
    fake = FakeKinesis(shards=one_shard())
    recs = [KinesisRecord(f"d{i}".encode(), f"k{i}") for i in range(50)]
    written, _ = split(run(KinesisWriter(fake, "s", options(aggregation=AggregationOptions())), recs))
    receipts = [r for r, _ in written]
    assert len(fake.written) == 1 and {r.sequence_number for r in receipts} == {"1"}
    by_key = {r.partition_key: r for r in receipts}
    order = [pk for _, pk, _ in user_records(fake.written[0]["Data"])]
    assert [by_key[pk].sub_sequence_number for pk in order] == list(range(50))


def test_a_failed_aggregate_gives_each_user_record_its_dead_letter():
    fake = FakeKinesis(lambda call, recs: ["InternalFailure"] * len(recs), shards=one_shard())
    recs = [KinesisRecord(f"d{i}".encode(), f"k{i}") for i in range(30)]
    written, dead = split(run(KinesisWriter(fake, "s", options(aggregation=AggregationOptions())), recs))
    assert not written and len(dead) == 30
    assert sorted(d.data for d, _ in dead) == sorted(r.data for r in recs)
    assert {d.error_code for d, _ in dead} == {ErrorCode.INTERNAL_FAILURE}
    assert all(len(call) == 1 for call in fake.calls)  # one aggregate per call, each retried


def test_a_record_too_large_to_aggregate_goes_on_its_own():
    fake = FakeKinesis(shards=one_shard())
    big = KinesisRecord(b"b" * 60_000, "big")
    small = [KinesisRecord(b"s", f"k{i}") for i in range(10)]
    recs = small[:5] + [big] + small[5:]
    written, _ = split(run(KinesisWriter(fake, "s", options(aggregation=AggregationOptions())), recs))
    assert len(written) == 11
    plain = [r for r in fake.written if not is_aggregated(r["Data"])]
    assert [r["Data"] for r in plain] == [big.data]
    assert [len(user_records(r["Data"])) for r in fake.written] == [5, 1, 5]


def test_an_aggregate_that_landed_on_a_shard_not_holding_it_is_sent_again():
    """The client's map says one shard; the server has four (a reshard it
    has not seen). The aggregate aimed at the old shard lands on the first
    new one: its sub-records of other shards are sent again after the map
    refreshes, so each user record has an aggregate wholly in range."""
    fake = FakeKinesis()
    metrics = CountingMetrics()
    writer = KinesisWriter(fake, "s", options(aggregation=AggregationOptions(),
                                              shard_map_min_refresh_seconds=0), metrics=metrics)
    real = fake.shards
    parent = dict(one_shard()[0], ShardId="shardId-000000000099")  # closed since; ids are never reused
    fake.shards = [parent]
    writer.locate(KinesisRecord(b"x", "k"))
    fake.shards = real
    recs = [KinesisRecord(b"x" * 50, f"user-{i}") for i in range(400)]
    written, dead = split(run(writer, recs))
    assert not dead and len(written) == 400
    assert metrics.counters[AGGREGATES_RESENT] >= 1
    shard_map = ShardMap.from_list_shards(real)
    whole = defaultdict(int)
    for r in fake.written:
        shard = shard_map.shard_for(int(r["ExplicitHashKey"]))
        users = user_records(r["Data"], r["PartitionKey"])
        if all(shard.holds(hash_key_of(pk)) for _, pk, _ in users):
            for _, pk, _ in users:
                whole[pk] += 1
    assert set(whole) == {r.partition_key for r in recs}
    for receipt, _ in written:
        assert shard_map.shard(receipt.shard_id).holds(hash_key_of(receipt.partition_key))


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 1500), record_fail=st.floats(0, 0.5),
       ordered=st.booleans())
# Several aggregates' worth of records, half of them failing: with two
# aggregates of one request holding a key, one failing would reorder it.
@example(seed=0, n=1500, record_fail=0.5, ordered=True)
@example(seed=3, n=1500, record_fail=0.5, ordered=True)
def test_aggregation_loses_and_doubles_nothing_under_faults(seed, n, record_fail, ordered):
    rng = random.Random(seed)
    fake = FakeKinesis(lambda call, recs: ["InternalFailure" if rng.random() < record_fail else None
                                           for _ in recs])
    writer = KinesisWriter(fake, "s", options(aggregation=AggregationOptions(), ordered=ordered),
                           rand=random.Random(seed).random)
    # ~200-byte records: ~250 per 50 KiB aggregate, so a request holds several
    # aggregates (unordered) and a key's records span aggregates.
    recs = [KinesisRecord(r.data + b"." * 200, r.partition_key) for r in keyed(n, keys=50, seed=seed)]
    outcomes = run(writer, recs)
    written, dead = split(outcomes)
    assert sorted(c for _, c in outcomes) == list(range(n))
    stored = [(data, pk) for data, pk, _, _ in decoded(fake)]
    # Each receipt is one stored user record, and nothing is stored twice or without a receipt.
    assert sorted(stored) == sorted((recs[c].data, recs[c].partition_key) for _, c in written)
    assert {d.data for d, _ in dead}.isdisjoint({data for data, _ in stored})
    if ordered:
        per_key = defaultdict(list)
        for data, pk in stored:
            per_key[pk].append(int(data.rstrip(b".")))
        assert all(p == sorted(p) for p in per_key.values())


# --------------------------------------------------------- a stream per element
class Streams(FakeKinesis):
    """A fake with several streams: each has its own shards; ``missing`` do not exist."""

    def __init__(self, missing=(), limits_kib=None):
        super().__init__()
        self.missing = set(missing)
        self.limits_kib = limits_kib or {}
        self.by_stream = defaultdict(list)

    def list_shards(self, **kwargs):
        if kwargs.get("StreamName") in self.missing:
            raise client_error("ResourceNotFoundException", "Stream not found")
        return super().list_shards(**kwargs)

    def describe_stream_summary(self, StreamName):  # noqa: N803 - boto3's name
        summary = {"StreamName": StreamName, "OpenShardCount": 4}
        if StreamName in self.limits_kib:
            summary["MaxRecordSizeInKiB"] = self.limits_kib[StreamName]
        return {"StreamDescriptionSummary": summary}

    def put_records(self, Records, StreamName):  # noqa: N803 - boto3's name
        if StreamName in self.missing:
            raise client_error("ResourceNotFoundException", "Stream not found")
        limit = self.limits_kib.get(StreamName, 1024) * 1024
        request_limit = 10 * MiB if limit > MiB else 5 * MiB
        sizes = [len(r["Data"]) + len(r["PartitionKey"]) for r in Records]
        if max(sizes) > limit or sum(sizes) > request_limit:
            raise client_error("ValidationException", "too large")
        with self._lock:
            self.by_stream[StreamName].extend(r["Data"] for r in Records)
        return super().put_records(Records)


def test_each_stream_gets_its_records_and_a_missing_one_dead_letters_only_its_own():
    fake = Streams(missing={"gone"})
    writer = KinesisWriter(fake, "default", options(max_buffered_records=600))
    names = ["a", "b", "c", "gone"]
    for i in range(2000):
        r = KinesisRecord(f"{i}".encode(), f"k{i}")
        writer.add(r, len(r.data) + len(r.partition_key), context=i, stream=names[i % 4])
    writer.flush(30)
    written, dead = split(writer.take_outcomes())
    assert {int(d.data) % 4 for d, _ in dead} == {3} and len(dead) == 500
    assert {d.error_code for d, _ in dead} == {ErrorCode.RESOURCE_NOT_FOUND}
    assert {d.stream for d, _ in dead} == {"gone"}
    for index, name in enumerate(names[:3]):
        assert sorted(int(x) for x in fake.by_stream[name]) == list(range(index, 2000, 4))
        assert sorted(c for r, c in written if r.stream == name) == list(range(index, 2000, 4))
    assert writer.buffers.peak_records <= 600 + 500  # the bound holds across streams


def test_records_between_1_and_10_mib_go_to_a_raised_stream_and_not_to_others():
    fake = Streams(limits_kib={"raised": 10240})
    writer = KinesisWriter(fake, "plain", options(limits=Limits(500, 5 * MiB, MiB),
                                                  record_limit_from_stream=True))
    big = KinesisRecord(b"x" * (3 * MiB), "big")
    for stream in ("raised", "plain"):
        for i in range(3):
            writer.add(big, len(big.data) + 3, context=(stream, i), stream=stream)
    writer.flush(30)
    written, dead = split(writer.take_outcomes())
    assert sorted(c for _, c in written) == [("raised", i) for i in range(3)]
    assert sorted(c for _, c in dead) == [("plain", i) for i in range(3)]
    assert {d.error_code for d, _ in dead} == {ErrorCode.RECORD_TOO_LARGE}
    assert "the stream's limit is 1048576" in dead[0][0].error_message
    assert len([c for c in fake.calls if len(c) == 3]) == 1  # 9 MiB in one request (10 MiB limit)
