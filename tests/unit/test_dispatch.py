"""How many calls of one shard the writer keeps in flight (dispatch.py).

One, while the rate limiter paces the shard or in ordered mode; two with
the limiter off and ordered mode off. The fake holds each call until a
second call of its shard arrives (or a wait ends), and then a while longer
for a third: the most calls seen at once is the most the writer allowed (a
writer that allowed more, or fewer, makes these fail).
"""

import threading

import pytest

from beam_kinesis_sink.dispatch import CallsPerShard, calls_per_shard
from beam_kinesis_sink.limits import Limits
from beam_kinesis_sink.rate_limit import RateLimitConfig
from beam_kinesis_sink.records import KinesisRecord, WriteReceipt
from beam_kinesis_sink.retry import RetryPolicy
from beam_kinesis_sink.shard_buffers import Item, ShardQueue
from beam_kinesis_sink.writer import KinesisWriter, WriterOptions
from tests.unit.fakes import FakeKinesis, one_shard

FAST = RetryPolicy(max_attempts=5, max_elapsed_seconds=30, base_delay=0.001, max_delay=0.005)
#: on, but far above what these tests send: the limiter paces, it never waits
HIGH_RATE = RateLimitConfig(records_per_second=1e7, bytes_per_second=1e10)


class Overlap:
    """A PutRecords script that holds each call until a second call is in
    flight with it (at most ``pair_wait`` seconds), then ``linger`` seconds
    more for a third; it keeps the most calls seen at once."""

    def __init__(self, pair_wait: float, linger: float) -> None:
        self.pair_wait = pair_wait
        self.linger = linger
        self.now = 0
        self.most = 0
        self._cond = threading.Condition()

    def __call__(self, index: int, records: list) -> list:
        with self._cond:
            self.now += 1
            self.most = max(self.most, self.now)
            self._cond.notify_all()
            if self._cond.wait_for(lambda: self.now >= 2, timeout=self.pair_wait):
                self._cond.wait_for(lambda: self.now >= 3, timeout=self.linger)
            self.now -= 1
        return [None] * len(records)


def most_calls_at_once(pair_wait: float, **options) -> int:
    script = Overlap(pair_wait, linger=0.3)
    fake = FakeKinesis(script, shards=one_shard())
    writer = KinesisWriter(fake, "s", WriterOptions(retry=FAST, max_in_flight=8, **options))
    for i in range(3_000):  # six full requests, all for the one shard
        writer.add(KinesisRecord(b"x" * 10, f"k{i}"), 10 + len(f"k{i}"))
    writer.flush(120)
    outcomes = writer.take_outcomes()
    writer.close()
    assert len(outcomes) == 3_000 and all(type(o[0]) is WriteReceipt for o in outcomes)
    assert len(fake.calls) == 6
    return script.most


def test_unpaced_shard_has_two_calls_in_flight():
    # A call waits (up to 10 s) for a second of its shard, then lingers for a third.
    assert most_calls_at_once(pair_wait=10, rate_limit=RateLimitConfig(enabled=False)) == 2


@pytest.mark.parametrize("options", [
    dict(rate_limit=HIGH_RATE),
    dict(rate_limit=RateLimitConfig(enabled=False), ordered=True),
], ids=["rate-limited", "ordered"])
def test_paced_or_ordered_shard_has_one_call_in_flight(options):
    # A call waits a while for a second of its shard, which never comes.
    assert most_calls_at_once(pair_wait=0.3, **options) == 1


def test_calls_per_shard_and_the_total_bound():
    assert calls_per_shard(ordered=False, rate_limited=False) == 2
    assert calls_per_shard(ordered=True, rate_limited=False) == 1
    assert calls_per_shard(ordered=False, rate_limited=True) == 1
    policy = CallsPerShard(max_in_flight=3, per_shard=2)
    limits = Limits()
    queue = ShardQueue(("s", "shardId-0"))
    assert policy.may_send(queue, 0, limits, drain=False)
    queue.in_flight = 2
    assert not policy.may_send(queue, 2, limits, drain=True)
    queue.in_flight = 1
    assert policy.may_send(queue, 2, limits, drain=True)
    assert not policy.may_send(queue, 3, limits, drain=True)  # the total bound
    with pytest.raises(ValueError):
        CallsPerShard(max_in_flight=4, per_shard=0)


def test_a_second_call_waits_for_a_backlog_of_two_full_requests_but_in_a_drain():
    """But for a drain, a queue with a call in flight sends another only when
    it holds two full requests' worth (by records or by bytes)."""
    policy = CallsPerShard(max_in_flight=8, per_shard=2)
    limits = Limits()
    records = ShardQueue(("s", "shardId-0"))
    records.in_flight = 1
    for i in range(2 * limits.max_records_per_request - 1):
        records.append(Item(KinesisRecord(b"x", f"k{i}"), 1 + len(f"k{i}"), 0))
    assert not policy.may_send(records, 1, limits, drain=False)
    assert policy.may_send(records, 1, limits, drain=True)
    records.append(Item(KinesisRecord(b"x", "last"), 5, 0))
    assert policy.may_send(records, 1, limits, drain=False)

    big = ShardQueue(("s", "shardId-1"))
    big.in_flight = 1
    for i in range(2):
        big.append(Item(KinesisRecord(b"", f"k{i}"), limits.max_request_bytes, 0))
    assert not policy.may_send(big, 1, limits, drain=False)  # exactly two requests' bytes
    big.append(Item(KinesisRecord(b"", "k"), 1, 0))
    assert policy.may_send(big, 1, limits, drain=False)
