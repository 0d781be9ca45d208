"""Dispatch policy: which shard queues may send a request now.

The default policy allows at most one call in flight per shard (so a
shard's records reach it in order, and its rate limiter sees one answer
before the next request) and at most ``max_in_flight`` calls in all.

Where the coming features go: an ordered-per-key mode is another policy
here (retries of a key before any later record of that key; no two
requests holding one key in flight).
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from beam_kinesis_sink.shard_buffers import ShardQueue


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
