"""Shard buffers: the records waiting to be written, one queue per shard.

A record is *held* from :meth:`ShardBuffers.add` until its outcome is made
(:meth:`ShardBuffers.release`), whether it is queued, in flight or waiting
for a retry. Each count has one owner: a queue counts its own records and
bytes, the buffers count what they hold; nobody else adds or subtracts.

Queues are keyed by ``(stream, shard_id)``: with a stream per element,
each stream has its own queues, and the bounds count all of them together.
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Tuple

from beam_kinesis_sink.packing import fitting
from beam_kinesis_sink.records import KinesisRecord

#: a queue's key: ``(stream, shard_id)``
QueueKey = Tuple[str, str]


class Item:
    """A record on its way: what the sink knows of it between add and outcome."""

    __slots__ = (
        "data", "partition_key", "explicit_hash_key", "size", "hash_key", "context",
        "element_timestamp_micros",
        "attempts", "first_attempt", "not_before", "last_code", "last_message",
        "seq", "members",
    )

    def fill(
        self,
        record: KinesisRecord,
        size: int,
        hash_key: int,
        context: Any = None,
        element_timestamp_micros: Optional[int] = None,
    ) -> None:
        """Make this item a new record's: what ``Item(...)`` does to a new one."""
        # The record's fields, not the record: the element's tuple need not
        # outlive its ``process`` call (a tracked object less per record
        # held, for the garbage collector to walk and promote).
        self.data, self.partition_key, self.explicit_hash_key = record
        self.size = size
        self.hash_key = hash_key
        self.context = context
        self.element_timestamp_micros = element_timestamp_micros
        #: PutRecords attempts made so far
        self.attempts = 0
        #: clock time of the first attempt
        self.first_attempt: Optional[float] = None
        #: the next attempt may not start before this clock time (backoff)
        self.not_before = 0.0
        #: the last error, kept for the dead letter if the budget runs out
        self.last_code = ""
        self.last_message = ""
        #: the order in which the buffers got it (kept when records move queues)
        self.seq = 0
        #: for an aggregated record: the user records inside it, in order
        self.members: Optional[List[Item]] = None

    __init__ = fill

    def users(self) -> List[Item]:
        """The user records this item stands for: itself, or an aggregate's members."""
        return [self] if self.members is None else self.members


class _Keyed:
    """A queue or a batch: its ``key`` names its stream and shard."""

    __slots__ = ()
    key: QueueKey

    @property
    def stream(self) -> str:
        return self.key[0]

    @property
    def shard_id(self) -> str:
        return self.key[1]


class Batch(_Keyed):
    """The records of one PutRecords request, all of one shard of one stream."""

    __slots__ = ("key", "items", "nbytes", "split")

    def __init__(self, key: QueueKey, items: List[Item], nbytes: int, split: bool = False) -> None:
        self.key = key
        self.items = items
        self.nbytes = nbytes
        #: a part of a batch the service refused for its content
        self.split = split



class ShardQueue(_Keyed):
    """The records of one shard, in input order; retries go back to the head."""

    __slots__ = ("key", "_items", "_splits", "_nbytes", "in_flight", "ready_at")

    def __init__(self, key: QueueKey) -> None:
        self.key = key
        self._items: Deque[Item] = deque()
        #: parts of a refused batch, sent as they are before anything else
        self._splits: Deque[List[Item]] = deque()
        self._nbytes = 0
        #: calls of this shard in flight (see dispatch.calls_per_shard)
        self.in_flight = 0
        #: the rate limiter cannot admit a full batch before this clock time;
        #: reset when a call of this shard completes (its rate may have changed)
        self.ready_at = 0.0

    def __len__(self) -> int:
        return len(self._items)


    def could_fill(self, max_records: int, max_bytes: int) -> bool:
        """Whether the queued records could fill a request of these limits."""
        return len(self._items) >= max_records or self._nbytes > max_bytes

    def items(self) -> Iterator[Item]:
        """The queued records, from the head (not the split parts)."""
        return iter(self._items)

    def remove(self, chosen: List[Item]) -> None:
        """Remove ``chosen`` (queued records, in queue order) wherever they are."""
        ids = {id(item) for item in chosen}
        self._items = deque(item for item in self._items if id(item) not in ids)
        self._nbytes -= sum(item.size for item in chosen)

    def merge(self, items: List[Item]) -> None:
        """Add ``items`` where their arrival order puts them."""
        self._items = deque(sorted([*self._items, *items], key=lambda item: item.seq))
        self._nbytes += sum(item.size for item in items)

    @property
    def nbytes(self) -> int:
        """Bytes of the queued records (not of the split parts)."""
        return self._nbytes

    @property
    def head(self) -> Optional[Item]:
        return self._items[0] if self._items else None

    def sizes(self) -> Iterator[int]:
        """Sizes of the queued records, from the head."""
        return (item.size for item in self._items)

    def append(self, item: Item) -> None:
        self._items.append(item)
        self._nbytes += item.size

    def requeue(self, items: List[Item]) -> None:
        """Put ``items`` back at the head, in their order."""
        self._items.extendleft(reversed(items))
        self._nbytes += sum(item.size for item in items)

    def take(self, count: int, nbytes: Optional[int] = None) -> List[Item]:
        """Remove and return the first ``count`` records (``nbytes``: their
        sizes' sum, when the caller has just added them up)."""
        popleft = self._items.popleft
        taken = [popleft() for _ in range(count)]
        self._nbytes -= sum(item.size for item in taken) if nbytes is None else nbytes
        return taken

    def take_fitting(self, max_records: int, max_bytes: int, now: float, scan: int) -> List[Item]:
        """Remove and return queued records that fill what a request has
        left (:func:`~beam_kinesis_sink.packing.fitting`), looking at the
        first ``scan`` of them; records in backoff are left."""
        window = list(islice(self._items, scan))
        sizes = (None if item.not_before > now else item.size for item in window)
        chosen = [window[i] for i in fitting(sizes, max_records, max_bytes)]
        if chosen:
            self.remove(chosen)
        return chosen

    def push_splits(self, parts: List[List[Item]]) -> None:
        """Send ``parts`` next, in order, each as its own request."""
        self._splits.extendleft(reversed(parts))

    def pop_split(self) -> Optional[List[Item]]:
        return self._splits.popleft() if self._splits else None

    @property
    def has_splits(self) -> bool:
        return bool(self._splits)

    def take_all(self) -> List[Item]:
        """Remove and return everything queued, split parts first."""
        items = [item for part in self._splits for item in part]
        self._splits.clear()
        items.extend(self.take(len(self._items)))
        return items


class ShardBuffers:
    """The queues of all shards, and the records held until their outcome.

    Items of records written are kept (up to ``spare_limit``) and filled
    again by :meth:`add`: at tens of thousands of records a second,
    a new object per record that lives for a few requests is what makes the
    garbage collector run its full collections, over every object of the
    process (Beam's and botocore's included); a reused one costs none."""

    def __init__(self, spare_limit: int = 0, max_records: float = float("inf"),
                 max_bytes: float = float("inf")) -> None:
        #: the bounds :meth:`over_bound` checks (the writer's max_buffered_records and _bytes)
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._queues: Dict[QueueKey, ShardQueue] = {}
        self._spare: List[Item] = []
        self._spare_limit = spare_limit
        self._added = 0
        self._records = 0
        self._bytes = 0
        #: the most records and bytes held at once (for bounds checks and benchmarks)
        self.peak_records = 0
        self.peak_bytes = 0

    @property
    def records(self) -> int:
        """Records held: queued, in flight or waiting for a retry."""
        return self._records

    @property
    def nbytes(self) -> int:
        return self._bytes

    def room(self) -> Tuple[float, float]:
        """Records and bytes that can still be added before the buffers are
        over a bound (:meth:`over_bound`: either below 0)."""
        return self.max_records - self._records, self.max_bytes - self._bytes

    def over_bound(self) -> bool:
        """Whether the records held are over either bound."""
        records, nbytes = self.room()
        return records < 0 or nbytes < 0

    def queue(self, key: QueueKey) -> ShardQueue:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = ShardQueue(key)
        return queue

    def queues(self) -> Iterable[ShardQueue]:
        return self._queues.values()

    def recycle(self, items: Iterable[Item]) -> None:
        """``items`` (user records) have their outcomes and nothing refers to
        them any more: keep them for :meth:`add`, emptied (no data or
        context of theirs stays alive)."""
        spare = self._spare
        for item in items:
            if len(spare) >= self._spare_limit:
                return
            item.data = item.partition_key = item.explicit_hash_key = item.context = None
            spare.append(item)

    def add(self, key: QueueKey, record: KinesisRecord, size: int, hash_key: int, context: Any = None,
            element_timestamp_micros: Optional[int] = None) -> ShardQueue:
        """Queue a new record on its stream's shard (``key``); returns that
        queue. Its item is a spare one filled again, or a new one."""
        spare = self._spare
        if spare:
            item = spare.pop()
            item.fill(record, size, hash_key, context, element_timestamp_micros)
        else:
            item = Item(record, size, hash_key, context, element_timestamp_micros)
        queue = self._queues.get(key)
        if queue is None:
            queue = self.queue(key)
        self._added += 1
        item.seq = self._added
        queue.append(item)
        self._records += 1
        self._bytes += size
        if self._records > self.peak_records:
            self.peak_records = self._records
        if self._bytes > self.peak_bytes:
            self.peak_bytes = self._bytes
        return queue

    def release(self, item: Item) -> None:
        """``item`` (a user record) has its outcome: it is no longer held."""
        self._records -= 1
        self._bytes -= item.size

    def release_many(self, count: int, nbytes: int) -> None:
        """``count`` user records of ``nbytes`` in all have their outcomes."""
        self._records -= count
        self._bytes -= nbytes

    def rebucket(self, stream: str, shard_of: Callable[[int], str]) -> None:
        """Move the queued records of ``stream`` to the queues of their shards
        under a new map, each where its arrival order puts it.

        Queues with a call in flight or split parts pending keep their
        records: those follow on their next attempt, and the service has the
        last word on placement anyway.
        """
        moved: Dict[QueueKey, List[Item]] = {}
        for queue in list(self._queues.values()):
            if queue.stream != stream or queue.in_flight or queue.has_splits or not len(queue):
                continue
            for item in queue.take_all():
                moved.setdefault((stream, shard_of(item.hash_key)), []).append(item)
        for key, items in moved.items():
            self.queue(key).merge(items)

    def clear(self) -> int:
        """Forget everything; returns how many records were held."""
        forgotten = self._records
        self._queues.clear()
        self._records = 0
        self._bytes = 0
        return forgotten
