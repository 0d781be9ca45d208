"""Aggregator: a shard's queued user records → the records of one request,
each an aggregate in the KPL format or a record on its own.

It sits in front of the batcher's limits: the batcher chooses *which* user
records may go (order, backoff, keys in flight), this part packs them.

* Aggregates are built per shard, and each carries the explicit hash key of
  its shard's start, so the service puts it on that shard and every
  sub-record's hash lies in the shard's range (the KCL drops a whole
  aggregate when one sub-record's does not).
* An aggregate stays within ``max_aggregate_bytes`` (default 50 KiB, like
  the KPL) and the stream's record limit, counting its partition key.
* A record too large to share an aggregate is sent on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple

from beam_kinesis_sink.aggregation import DEFAULT_AGGREGATE_BYTES, AggregateBuilder
from beam_kinesis_sink.limits import Limits, record_size
from beam_kinesis_sink.records import KinesisRecord
from beam_kinesis_sink.shard_buffers import Item
from beam_kinesis_sink.sharding import ShardMap


@dataclass(frozen=True)
class AggregationOptions:
    #: the most bytes of one aggregated record (data plus its partition key)
    max_aggregate_bytes: int = DEFAULT_AGGREGATE_BYTES
    #: aggregates per request at most (1: one aggregate per call, ordered mode)
    max_aggregates_per_request: Optional[int] = None

    def __post_init__(self) -> None:
        if self.max_aggregate_bytes < 1024:
            raise ValueError(f"max_aggregate_bytes must be >= 1024, got {self.max_aggregate_bytes}")


class _Open:
    """The aggregate being filled."""

    def __init__(self, first: Item) -> None:
        self.builder = AggregateBuilder()
        self.members: List[Item] = []
        self.key_bytes = record_size(b"", first.partition_key)

    def size_with(self, item: Item) -> int:
        return self.builder.size_with(item.data, item.partition_key, item.explicit_hash_key) + self.key_bytes

    def add(self, item: Item) -> None:
        self.builder.add(item.data, item.partition_key, item.explicit_hash_key)
        self.members.append(item)

    @property
    def size(self) -> int:
        return self.builder.size + self.key_bytes

    def seal(self, shard_start: int) -> Item:
        """One member alone is sent as it is: an aggregate of one only costs bytes."""
        if len(self.members) == 1:
            return self.members[0]
        first = self.members[0]
        record = KinesisRecord(self.builder.encode(), first.partition_key, str(shard_start))
        unit = Item(record, self.size, shard_start, None, None)
        unit.members = self.members
        return unit


def pack(
    items: Iterable[Item],
    shard_start: int,
    limits: Limits,
    options: AggregationOptions,
    max_units: int,
    max_bytes: int,
) -> Tuple[List[Item], List[Item]]:
    """Pack ``items`` (user records, in order) into at most ``max_units``
    records of at most ``max_bytes`` in all. Stops at the first record that
    does not fit. Returns ``(units, user records used)``, the latter a prefix
    of ``items``. The first unit is always made, so a small budget cannot
    stall a shard."""
    cap = min(options.max_aggregate_bytes, limits.max_record_bytes)
    if options.max_aggregates_per_request is not None:
        max_units = min(max_units, options.max_aggregates_per_request)
    units: List[Item] = []
    used: List[Item] = []
    total = 0
    current: Optional[_Open] = None

    def room(size: int) -> bool:
        return not units or total + size <= max_bytes

    for item in items:
        grown = current.size_with(item) if current is not None else None
        if current is not None and grown is not None and grown <= cap:
            if not room(grown - current.size):
                break
            total += grown - current.size
            current.add(item)
            used.append(item)
            continue
        if current is not None:
            units.append(current.seal(shard_start))
            current = None
        if len(units) >= max_units:
            break
        candidate = _Open(item)
        if candidate.size_with(item) > cap:
            # Too large to aggregate: on its own, as it is.
            if not room(item.size):
                break
            units.append(item)
            used.append(item)
            total += item.size
            continue
        if not room(candidate.size_with(item)):
            break
        candidate.add(item)
        total += candidate.size
        current = candidate
        used.append(item)
    if current is not None:
        units.append(current.seal(shard_start))
    return units, used


def held_by(unit: Item, shard_id: str, shard_map: Optional[ShardMap]) -> bool:
    """Whether every user record of ``unit`` hashes into the range of the
    shard ``shard_id`` of ``shard_map`` (False when the map lacks the shard).

    An aggregate aimed at a shard that has since been split lands on a
    child: the KCL would then drop it whole, if one sub-record lies outside.
    """
    if shard_map is None or shard_id not in shard_map:
        return False
    shard = shard_map.shard(shard_id)
    return all(shard.holds(item.hash_key) for item in unit.users())
