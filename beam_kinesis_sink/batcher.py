"""Batcher: the next PutRecords request of a shard, within the limits and
what the rate limiter admits now.

One look at a queue decides: send its split parts first; wait for the
head's backoff; wait for tokens; wait for a full request (unless forced,
e.g. at the end of a bundle); or take the records that fit both the request
limits and the limiter's budget: the longest prefix of the queue, then any
later records that fill the gap it left (first fit). Taking a batch takes
its tokens.

* The limits are the stream's (:class:`~beam_kinesis_sink.limits.Limits`,
  read from the stream where asked).
* Ordered mode (:func:`eligible`) takes at most one record per partition
  key, skips keys with a record in flight or waiting for its retry, and
  leaves the rest in their order.
* Aggregation (:mod:`~beam_kinesis_sink.aggregator`) packs the chosen user
  records into aggregated records; an aggregate is one record here.
"""

from __future__ import annotations

from itertools import islice
from typing import Callable, Iterable, Iterator, List, NamedTuple, Optional

from beam_kinesis_sink.aggregator import AggregationOptions, pack
from beam_kinesis_sink.limits import Limits
from beam_kinesis_sink.packing import take_prefix
from beam_kinesis_sink.rate_limit import RateLimiter
from beam_kinesis_sink.shard_buffers import Batch, Item, ShardQueue


class Decision(NamedTuple):
    """A batch to send now, or the clock time to look again (``None``: when
    more records arrive or a call completes)."""

    batch: Optional[Batch]
    wake: Optional[float]


_NOTHING = Decision(None, None)

#: how many queued records a request's gap is filled from (at most)
_GAP_SCAN = 1000


def eligible(
    items: Iterable[Item], now: float, busy: Callable[[str], bool], one_per_key: bool
) -> Iterator[Item]:
    """Ordered mode: the queued records that may go now, in order.

    A key is skipped from its first record that may not go (in backoff, or
    its key has a record in flight elsewhere) on, so no record overtakes an
    earlier one of its key. With ``one_per_key``, a key's second record
    waits for the first one's outcome (a request's records can fail apart).
    """
    blocked: set = set()
    taken: set = set()
    for item in items:
        key = item.partition_key
        if key in blocked:
            continue
        if item.not_before > now or busy(key) or (one_per_key and key in taken):
            blocked.add(key)
            continue
        taken.add(key)
        yield item


class Batcher:
    def __init__(
        self,
        limits_of: Callable[[str], Limits],
        limiter: RateLimiter,
        *,
        ordered: bool = False,
        busy: Callable[[str, str], bool] = lambda stream, key: False,
        aggregation: Optional[AggregationOptions] = None,
        shard_start: Callable[[str, str], Optional[int]] = lambda stream, shard_id: None,
    ) -> None:
        self.limits_of = limits_of
        self.limiter = limiter
        self.ordered = ordered
        self._busy = busy
        self.aggregation = aggregation
        self._shard_start = shard_start

    def next_batch(self, queue: ShardQueue, now: float, force: bool,
                   limits: Optional[Limits] = None) -> Decision:
        """The request ``queue`` should send now, if any.

        ``force`` sends a partial request (draining, or over the buffer
        bound); otherwise only a full one is sent. ``limits``: the queue's
        stream's, when the caller has them at hand.
        """
        if limits is None:
            limits = self.limits_of(queue.stream)
        if not force and not self.may_have_full(queue, limits):
            return _NOTHING
        part = queue.pop_split()
        if part is not None:
            return self._take_tokens(Batch(queue.key, part, sum(i.size for i in part), split=True))
        head = queue.head
        if head is None:
            return _NOTHING
        if head.not_before > now and not self.ordered:
            return Decision(None, head.not_before)
        if queue.ready_at > now:
            return Decision(None, queue.ready_at)  # waiting for tokens: no need to rescan
        if self.ordered or self._aggregates(queue):
            return self._chosen(queue, now, limits)
        full_count, full_bytes = take_prefix(queue.sizes(), limits)
        if not force and not (full_count < len(queue) or full_count >= limits.max_records_per_request):
            return _NOTHING
        wait = self._wait_for_tokens(queue, full_count, full_bytes)
        if wait > 0:
            queue.ready_at = now + wait
            return Decision(None, queue.ready_at)
        budget_records, budget_bytes = self.limiter.budget(queue.key)
        if ((budget_records is None or budget_records >= full_count)
                and (budget_bytes is None or budget_bytes >= full_bytes)):
            count, nbytes = full_count, full_bytes  # the budget cuts nothing off: no second scan
        else:
            count, nbytes = take_prefix(queue.sizes(), limits, max_records=budget_records,
                                        max_bytes=budget_bytes)
        items = queue.take(count, nbytes)
        max_records = limits.max_records_per_request if budget_records is None else max(
            1, min(limits.max_records_per_request, budget_records))
        max_bytes = limits.max_request_bytes if budget_bytes is None else min(
            limits.max_request_bytes, budget_bytes)
        if len(queue) and count < max_records and nbytes < max_bytes:
            # The prefix stopped at a record that did not fit: fill the gap
            # with later ones that do (order is what ordered=True keeps).
            extra = queue.take_fitting(max_records - count, max_bytes - nbytes, now, _GAP_SCAN)
            items += extra
            nbytes += sum(item.size for item in extra)
        return self._take_tokens(Batch(queue.key, items, nbytes))

    def _aggregates(self, queue: ShardQueue) -> bool:
        return self.aggregation is not None and self._shard_start(queue.stream, queue.shard_id) is not None

    def _chosen(self, queue: ShardQueue, now: float, limits: Limits) -> Decision:
        """Ordered mode or aggregation: the records that may go, packed, then
        cut to the request limits and the limiter's budget."""
        one_per_key = self.ordered and self.aggregation is None
        if self.ordered:
            candidates: Iterable[Item] = eligible(
                queue.items(), now, lambda key: self._busy(queue.stream, key), one_per_key
            )
        else:
            candidates = queue.items()
        wanted_bytes = min(queue.nbytes, limits.max_request_bytes)
        wait = self.limiter.wait_time(queue.key, 1, min(wanted_bytes, self.limiter.largest_bytes(queue.key)
                                                        or wanted_bytes))
        if wait > 0:
            queue.ready_at = now + wait
            return Decision(None, queue.ready_at)
        budget_records, budget_bytes = self.limiter.budget(queue.key)
        max_units = limits.max_records_per_request
        if self.ordered and self.aggregation is not None:
            # One aggregate per request: it succeeds or fails whole, so a
            # key's records in it keep their order; two could fail apart.
            max_units = 1
        if budget_records is not None:
            max_units = max(1, min(max_units, budget_records))
        max_bytes = limits.max_request_bytes if budget_bytes is None else min(limits.max_request_bytes,
                                                                                budget_bytes)
        units, used = self._pack(queue, candidates, limits, max_units, max_bytes)
        if not units:
            waits = [item.not_before for item in queue.items() if item.not_before > now]
            return Decision(None, min(waits) if waits else None)
        if self.ordered:
            queue.remove(used)
        else:
            queue.take(len(used))  # a prefix of the queue
        return self._take_tokens(Batch(queue.key, units, sum(unit.size for unit in units)))

    def _pack(self, queue: ShardQueue, candidates: Iterable[Item], limits: Limits, max_units: int,
              max_bytes: int) -> tuple[List[Item], List[Item]]:
        start = self._shard_start(queue.stream, queue.shard_id)
        if self.aggregation is not None and start is not None:
            return pack(candidates, start, limits, self.aggregation, max_units, max_bytes)
        chosen = list(islice(candidates, max_units))
        count, _ = take_prefix((item.size for item in chosen), limits, max_records=max_units,
                               max_bytes=max_bytes)
        return chosen[:count], chosen[:count]

    def may_have_full(self, queue: ShardQueue, limits: Limits) -> bool:
        """The cheap test before any scan: whether ``queue`` could send a
        request without ``force`` (a full one, or a split part). False for
        all but about one add in a request's worth."""
        if queue.has_splits:
            return True
        if self.aggregation is not None and self._aggregates(queue):
            return queue.nbytes >= limits.max_request_bytes
        return queue.could_fill(limits.max_records_per_request, limits.max_request_bytes)

    def _wait_for_tokens(self, queue: ShardQueue, full_count: int, full_bytes: int) -> float:
        """Seconds until the buckets hold a whole batch, as big as they allow."""
        count, nbytes = full_count, full_bytes
        cap = self.limiter.largest_batch(queue.key)
        if cap is not None and cap < full_count:
            count = cap
            nbytes = sum(size for _, size in zip(range(cap), queue.sizes()))
        return self.limiter.wait_time(queue.key, count, nbytes)

    def _take_tokens(self, batch: Batch) -> Decision:
        self.limiter.acquire(batch.key, len(batch.items), batch.nbytes)
        return Decision(batch, None)
