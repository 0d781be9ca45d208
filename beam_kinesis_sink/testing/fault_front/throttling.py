"""Per-shard throttling: which shard a record goes to, and whether that
shard's budget admits it.

:class:`ShardMaps` keeps each stream's open shards for ``shard_map_ttl_s``
(a :class:`beam_kinesis_sink.sharding.ShardMap`, read with
:func:`beam_kinesis_sink.sharding.list_shards` through any callable that
makes one ListShards call). :class:`ShardBuckets` gives each (stream, shard)
two token buckets (:class:`beam_kinesis_sink.rate_limit.TokenBucket`), one
for records and one for bytes, refilled at the configured rates up to
``rate * burst_seconds`` (the byte bucket of a stream with a raised record
size holds at least one record at its limit: ``FaultConfig.shard_bytes_capacity``);
a record is admitted when its shard has a record token and its size in byte
tokens left, else it is throttled.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional, Sequence

from beam_kinesis_sink.client import stream_arguments
from beam_kinesis_sink.rate_limit import Clock, TokenBucket
from beam_kinesis_sink.sharding import UNKNOWN_SHARD, Shard, ShardMap, hash_key_of, list_shards
from beam_kinesis_sink.testing.fault_front.config import FaultConfig

#: one ListShards call: keyword arguments in, the parsed answer out
ListPage = Callable[..., dict[str, Any]]


class ShardMaps:
    """The open shards of each stream, re-read after ``ttl_s`` seconds, or
    at once when the front sees that the upstream resharded."""

    def __init__(self) -> None:
        self._maps: dict[str, tuple[ShardMap, float]] = {}
        self._lock = threading.Lock()

    def get(self, stream: str, list_page: ListPage, ttl_s: float) -> ShardMap:
        cached = self._maps.get(stream)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        with self._lock:  # one reader per miss; the others wait for its answer
            cached = self._maps.get(stream)
            if cached is not None and cached[1] > time.monotonic():
                return cached[0]
            shard_map = _open_shards(list_shards(list_page, stream_arguments(stream)))
            self._maps[stream] = (shard_map, time.monotonic() + ttl_s)
            return shard_map

    def invalidate(self, stream: Optional[str] = None) -> None:
        """Forget one stream's shards, or every stream's."""
        with self._lock:
            if stream is None:
                self._maps.clear()
            else:
                self._maps.pop(stream, None)


def _open_shards(shards: list[dict[str, Any]]) -> ShardMap:
    try:
        return ShardMap.from_list_shards(shards)
    except ValueError:  # no open shard (a stream going away): one bucket for all
        return ShardMap.single(UNKNOWN_SHARD)


def shard_of(shard_map: ShardMap, record: dict[str, Any]) -> Optional[Shard]:
    """The open shard that holds the record's hash key; None when the map
    has a gap there (the stream was resharded since it was read)."""
    hash_key = hash_key_of(str(record["PartitionKey"]), record.get("ExplicitHashKey"))
    shard = shard_map.shard_for(hash_key)
    return shard if shard.holds(hash_key) else None


class ShardBuckets:
    """A records bucket and a bytes bucket per (stream, shard).

    All the records of one request are weighed at one instant, so that the
    answer does not depend on how fast the front walks through them.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._buckets: dict[tuple[str, str], tuple[TokenBucket, TokenBucket]] = {}
        self._lock = threading.Lock()
        self._read_clock = clock
        self._now = clock()

    def _clock(self) -> float:
        return self._now

    def reset(self) -> None:
        """Every bucket full again."""
        with self._lock:
            self._buckets.clear()

    def take(
        self, stream: str, wanted: Sequence[tuple[int, str, int]], cfg: FaultConfig
    ) -> tuple[list[int], list[int]]:
        """Weigh ``(index, shard_id, nbytes)`` in request order; returns
        (admitted indexes, throttled indexes)."""
        admitted: list[int] = []
        throttled: list[int] = []
        with self._lock:
            self._now = self._read_clock()
            for index, shard_id, nbytes in wanted:
                records, data = self._pair(stream, shard_id, cfg)
                if records.available() >= 1.0 and data.available() >= nbytes:
                    records.take(1)
                    data.take(nbytes)
                    admitted.append(index)
                else:
                    throttled.append(index)
        return admitted, throttled

    def _pair(self, stream: str, shard_id: str, cfg: FaultConfig) -> tuple[TokenBucket, TokenBucket]:
        """The shard's buckets, at the configured rates (created full)."""
        shape = (
            (cfg.shard_records_per_second, cfg.shard_records_per_second * cfg.burst_seconds),
            (cfg.shard_bytes_per_second, cfg.shard_bytes_capacity(stream)),
        )
        pair = self._buckets.get((stream, shard_id))
        if pair is None:
            records, data = (TokenBucket(rate, capacity, self._clock) for rate, capacity in shape)
            pair = self._buckets[(stream, shard_id)] = (records, data)
            return pair
        for bucket, (rate, capacity) in zip(pair, shape):
            if (bucket.rate, bucket.capacity) != (rate, capacity):  # the config changed
                bucket.set_rate(rate, capacity)
        return pair
