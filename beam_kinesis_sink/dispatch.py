"""Dispatch policy: which shard queues may send a request now.

At most ``max_in_flight`` calls are in flight in all, and at most
:func:`calls_per_shard` per shard:

* **one** while the rate limiter is on, or in ordered mode. The limiter then
  sees each answer (a throttle, a new rate) before the shard's next request,
  and a shard's records reach it in order. One call is not what caps a
  shard here: a shard admits 1,000 records or 1 MiB a second (two full
  requests of small records), and one call takes tens of milliseconds.
* **two** with the limiter off (``rate_limit=False``) and ``ordered=False``.
  Nothing but the calls then paces a shard, and with one call the shard
  waits while its answer travels and is read (and while the pool thread
  waits for the GIL behind the bundle's thread). A second call keeps the
  shard busy: a bundle no longer ends with a backlog behind one call per
  shard (``latency_hiding_ratio`` in docs/benchmarks.md). The second call
  goes only for a backlog (two full requests' worth queued) or in a drain,
  so the packer still has records to fill gaps from (:meth:`CallsPerShard.may_send`).

Ordered mode adds :class:`KeysInFlight`: the partition keys of the records
in flight, so that no request holds a key another one in flight holds (the
batcher skips those keys; a failed record goes back to its queue's head,
before any later record of its key).
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Iterable, Iterator

from beam_kinesis_sink.limits import Limits
from beam_kinesis_sink.shard_buffers import Batch, ShardQueue

#: calls in flight per shard when nothing else paces it (see the module's docstring)
UNPACED_CALLS_PER_SHARD = 2


def calls_per_shard(ordered: bool, rate_limited: bool) -> int:
    """How many calls of one shard may be in flight at once."""
    return 1 if ordered or rate_limited else UNPACED_CALLS_PER_SHARD


class CallsPerShard:
    """At most ``per_shard`` calls per shard, at most ``max_in_flight`` in all."""

    def __init__(self, max_in_flight: int, per_shard: int = 1) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        if per_shard < 1:
            raise ValueError("per_shard must be >= 1")
        self.max_in_flight = max_in_flight
        self.per_shard = per_shard

    def may_send(self, queue: ShardQueue, in_flight: int, limits: Limits, drain: bool) -> bool:
        """Whether ``queue`` may send one more call, with ``in_flight`` calls
        in flight in all, under its stream's ``limits``.

        A queue with a call in flight sends another only for a backlog: two
        full requests' worth, so that after the second call takes one, a
        request's worth is left for the packer to fill the next one's gaps
        from (records of mixed sizes: ``request_efficiency``). Over the
        buffer bound too: a second call there would be a partial one. When
        draining (``drain``: the flush's last records, no more to come), it
        sends what is left at once.
        """
        if queue.in_flight >= self.per_shard or in_flight >= self.max_in_flight:
            return False
        return (not queue.in_flight or drain
                or queue.could_fill(2 * limits.max_records_per_request, 2 * limits.max_request_bytes))

    def until_full(self, queues: Iterable[ShardQueue], in_flight: Callable[[], int]) -> Iterator[ShardQueue]:
        """The queues in order, until ``max_in_flight`` calls are in flight
        (``in_flight()`` is read again before each, as the caller sends
        between them; :meth:`may_send` says how many a queue may send)."""
        for queue in queues:
            if in_flight() >= self.max_in_flight:
                return
            yield queue


class KeysInFlight:
    """Ordered mode: the ``(stream, partition key)`` pairs of the records in flight."""

    def __init__(self) -> None:
        self._counts: Counter = Counter()

    def busy(self, stream: str, partition_key: str) -> bool:
        return (stream, partition_key) in self._counts

    def sent(self, batch: Batch) -> None:
        for unit in batch.items:
            for item in unit.users():
                self._counts[(batch.stream, item.partition_key)] += 1

    def landed(self, batch: Batch) -> None:
        for unit in batch.items:
            for item in unit.users():
                key = (batch.stream, item.partition_key)
                self._counts[key] -= 1
                if self._counts[key] <= 0:
                    del self._counts[key]

    def clear(self) -> None:
        self._counts.clear()
