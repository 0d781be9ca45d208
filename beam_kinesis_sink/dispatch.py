"""Dispatch policy: which shard queues may send a request now.

The default policy allows at most one call in flight per shard (so a
shard's records reach it in order, and its rate limiter sees one answer
before the next request) and at most ``max_in_flight`` calls in all.

Ordered mode adds :class:`KeysInFlight`: the partition keys of the records
in flight, so that no request holds a key another one in flight holds (the
batcher skips those keys; a failed record goes back to its queue's head,
before any later record of its key).
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Iterable, Iterator

from beam_kinesis_sink.shard_buffers import Batch, ShardQueue


class OneCallPerShard:
    """At most one call per shard, at most ``max_in_flight`` in all."""

    def __init__(self, max_in_flight: int) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self.max_in_flight = max_in_flight

    def sendable(self, queues: Iterable[ShardQueue], in_flight: Callable[[], int]) -> Iterator[ShardQueue]:
        """The queues that may send now, in order. ``in_flight()`` is read
        again before each one, as the caller submits between them."""
        for queue in queues:
            if in_flight() >= self.max_in_flight:
                return
            if not queue.in_flight:
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
