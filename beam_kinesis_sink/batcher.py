"""Batcher: the next PutRecords request of a shard, within the limits and
what the rate limiter admits now.

One look at a queue decides: send its split parts first; wait for the
head's backoff; wait for tokens; wait for a full request (unless forced,
e.g. at the end of a bundle); or take the longest prefix that fits both the
request limits and the limiter's budget. Taking a batch takes its tokens.

Where the coming features go: limits read from the stream change the
:class:`~beam_kinesis_sink.limits.Limits` this part is given; aggregation
puts a different record builder in front of it (an aggregate is one
record here).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from beam_kinesis_sink.limits import Limits
from beam_kinesis_sink.packing import take_prefix
from beam_kinesis_sink.rate_limit import RateLimiter
from beam_kinesis_sink.shard_buffers import Batch, ShardQueue


class Decision(NamedTuple):
    """A batch to send now, or the clock time to look again (``None``: when
    more records arrive or a call completes)."""

    batch: Optional[Batch]
    wake: Optional[float]


_NOTHING = Decision(None, None)


class Batcher:
    def __init__(self, limits: Limits, limiter: RateLimiter) -> None:
        self.limits = limits
        self.limiter = limiter

    def next_batch(self, queue: ShardQueue, now: float, force: bool) -> Decision:
        """The request ``queue`` should send now, if any.

        ``force`` sends a partial request (draining, or over the buffer
        bound); otherwise only a full one is sent.
        """
        part = queue.pop_split()
        if part is not None:
            return self._take_tokens(Batch(queue.shard_id, part, sum(i.size for i in part), split=True))
        head = queue.head
        if head is None:
            return _NOTHING
        if head.not_before > now:
            return Decision(None, head.not_before)
        if queue.ready_at > now:
            return Decision(None, queue.ready_at)  # waiting for tokens: no need to rescan
        if not force and not self._may_be_full(queue):
            return _NOTHING
        full_count, full_bytes = take_prefix(queue.sizes(), self.limits)
        if not force and not (full_count < len(queue) or full_count >= self.limits.max_records_per_request):
            return _NOTHING
        wait = self._wait_for_tokens(queue, full_count, full_bytes)
        if wait > 0:
            queue.ready_at = now + wait
            return Decision(None, queue.ready_at)
        budget_records, budget_bytes = self.limiter.budget(queue.shard_id)
        count, nbytes = take_prefix(queue.sizes(), self.limits, max_records=budget_records,
                                    max_bytes=budget_bytes)
        return self._take_tokens(Batch(queue.shard_id, queue.take(count), nbytes))

    def _may_be_full(self, queue: ShardQueue) -> bool:
        """Cheap test before the scan: could the queue fill a request?"""
        return len(queue) >= self.limits.max_records_per_request or (
            queue.nbytes > self.limits.max_request_bytes
        )

    def _wait_for_tokens(self, queue: ShardQueue, full_count: int, full_bytes: int) -> float:
        """Seconds until the buckets hold a whole batch, as big as they allow."""
        count, nbytes = full_count, full_bytes
        cap = self.limiter.largest_batch(queue.shard_id)
        if cap is not None and cap < full_count:
            count = cap
            nbytes = sum(size for _, size in zip(range(cap), queue.sizes()))
        return self.limiter.wait_time(queue.shard_id, count, nbytes)

    def _take_tokens(self, batch: Batch) -> Decision:
        self.limiter.acquire(batch.shard_id, len(batch.items), batch.nbytes)
        return Decision(batch, None)
