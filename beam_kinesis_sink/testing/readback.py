"""Read a whole stream back, shard by shard, to check what a writer wrote.

``read_all(client, stream)`` returns ``{shard_id: [record, ...]}`` with the
records of each shard in sequence-number order. Each record is a dict:

- ``data``: bytes
- ``partition_key``: str
- ``sequence_number``: str (decimal)
- ``shard_id``: str
- ``approximate_arrival_timestamp``: datetime or None
- ``encryption_type``: str or None

The explicit hash key a writer gave is not stored by Kinesis, so it cannot be
read back; check instead that the record landed on the shard whose range
holds it (``shard_ranges`` / ``ShardRange.holds``). Hash keys, shard ranges
and ListShards paging come from :mod:`beam_kinesis_sink.sharding`, stream
arguments from :mod:`beam_kinesis_sink.client`: the reader places records as
the sink does.

``stream`` is a stream name or a stream ARN (kinesalite 3.3.3 only knows
names; an ARN is turned into its name for the calls there, see ``by_name``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

from beam_kinesis_sink import sharding
from beam_kinesis_sink.client import stream_arguments, stream_name_of
from beam_kinesis_sink.sharding import Shard, hash_key_of


@dataclass(frozen=True)
class ShardRange(Shard):
    """A shard as ListShards tells it, open or closed: its hash key range
    (``start``/``end``, ``holds`` from :class:`beam_kinesis_sink.sharding.Shard`)
    with its parents and sequence number range."""

    parent_shard_id: Optional[str] = None
    adjacent_parent_shard_id: Optional[str] = None
    starting_sequence_number: str = ""
    ending_sequence_number: Optional[str] = None

    @property
    def is_open(self) -> bool:
        return self.ending_sequence_number is None

    @classmethod
    def from_list_shards(cls, shard: dict[str, Any]) -> ShardRange:
        """From one ListShards ``Shards`` entry."""
        seq = shard.get("SequenceNumberRange", {})
        return cls(
            shard_id=shard["ShardId"],
            start=int(shard["HashKeyRange"]["StartingHashKey"]),
            end=int(shard["HashKeyRange"]["EndingHashKey"]),
            parent_shard_id=shard.get("ParentShardId"),
            adjacent_parent_shard_id=shard.get("AdjacentParentShardId"),
            starting_sequence_number=seq.get("StartingSequenceNumber", ""),
            ending_sequence_number=seq.get("EndingSequenceNumber"),
        )


def _stream_args(stream: str, by_name: bool) -> dict[str, str]:
    return stream_arguments(stream_name_of(stream) if by_name else stream)


def list_shards(client: Any, stream: str, *, by_name: bool = True) -> list[dict[str, Any]]:
    """Every shard of the stream (open and closed), following NextToken."""
    return sharding.list_shards(client.list_shards, _stream_args(stream, by_name))


def shard_ranges(
    client: Any, stream: str, *, open_only: bool = False, by_name: bool = True
) -> list[ShardRange]:
    """The shards' hash key ranges, sorted by starting hash key."""
    ranges = [ShardRange.from_list_shards(shard) for shard in list_shards(client, stream, by_name=by_name)]
    if open_only:
        ranges = [r for r in ranges if r.is_open]
    return sorted(ranges, key=lambda r: (r.start, r.shard_id))


def shard_for(ranges: list[ShardRange], partition_key: str, explicit_hash_key: Optional[str] = None) -> str:
    """The id of the open shard that a record with this key goes to."""
    hash_key = hash_key_of(partition_key, explicit_hash_key)
    for shard_range in ranges:
        if shard_range.is_open and shard_range.holds(hash_key):
            return shard_range.shard_id
    raise KeyError(f"no open shard holds hash key {hash_key}")


def _record_dict(record: dict[str, Any], shard_id: str) -> dict[str, Any]:
    return {
        "data": bytes(record["Data"]),
        "partition_key": record["PartitionKey"],
        "sequence_number": record["SequenceNumber"],
        "shard_id": shard_id,
        "approximate_arrival_timestamp": record.get("ApproximateArrivalTimestamp"),
        "encryption_type": record.get("EncryptionType"),
    }


def read_shard(
    client: Any,
    stream: str,
    shard_id: str,
    *,
    by_name: bool = True,
    empty_reads: int = 2,
    limit: int = 10000,
    timeout: float = 60.0,
) -> list[dict[str, Any]]:
    """All records of one shard from TRIM_HORIZON.

    Stops when the shard is closed and fully read (no NextShardIterator), or
    after ``empty_reads`` consecutive reads that return no record while
    MillisBehindLatest is 0 (or absent).
    """
    iterator = client.get_shard_iterator(
        ShardId=shard_id, ShardIteratorType="TRIM_HORIZON", **_stream_args(stream, by_name)
    )["ShardIterator"]
    records: list[dict[str, Any]] = []
    empties = 0
    deadline = time.monotonic() + timeout
    while iterator is not None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading {shard_id} of {stream} took over {timeout:.0f}s")
        response = client.get_records(ShardIterator=iterator, Limit=limit)
        batch = response.get("Records", [])
        records.extend(_record_dict(r, shard_id) for r in batch)
        iterator = response.get("NextShardIterator")
        if batch:
            empties = 0
            continue
        if response.get("MillisBehindLatest", 0) == 0:
            empties += 1
            if empties >= empty_reads:
                break
    return records


def read_all(
    client: Any, stream: str, *, by_name: bool = True, empty_reads: int = 2
) -> dict[str, list[dict[str, Any]]]:
    """Every record of every shard (open or closed): ``{shard_id: [record, ...]}``."""
    result: dict[str, list[dict[str, Any]]] = {}
    for shard in list_shards(client, stream, by_name=by_name):
        shard_id = shard["ShardId"]
        result[shard_id] = read_shard(client, stream, shard_id, by_name=by_name, empty_reads=empty_reads)
    return result


def read_all_flat(client: Any, stream: str, *, by_name: bool = True) -> list[dict[str, Any]]:
    """``read_all`` as one list, ordered by shard id then sequence number."""
    by_shard = read_all(client, stream, by_name=by_name)
    return [record for shard_id in sorted(by_shard) for record in by_shard[shard_id]]
