"""Which shard a record goes to: hash keys and the shard map."""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, Optional, Sequence

#: the id of the one pseudo-shard used while a stream cannot be described
UNKNOWN_SHARD = "unknown"


try:
    # CPython's own MD5: for keys of a few bytes, a third of the cost per
    # call of OpenSSL's (hashlib.md5), which some builds leave out.
    from _md5 import md5 as _new_md5
except ImportError:  # pragma: no cover - a Python built without it
    _new_md5 = hashlib.md5


def hash_key_of(partition_key: str, explicit_hash_key: Optional[str] = None) -> int:
    """The 128-bit hash key Kinesis uses to place a record.

    The explicit hash key when given, else the MD5 of the UTF-8 partition key
    read as a big-endian unsigned integer.
    """
    if explicit_hash_key is not None:
        return int(explicit_hash_key)
    return int.from_bytes(_new_md5(partition_key.encode("utf-8")).digest(), "big")


@dataclass(frozen=True)
class Shard:
    shard_id: str
    start: int  # inclusive
    end: int  # inclusive

    def holds(self, hash_key: int) -> bool:
        return self.start <= hash_key <= self.end


class ShardMap:
    """The open shards of a stream, looked up by hash key with bisect."""

    def __init__(self, shards: Iterable[Shard]) -> None:
        ordered = sorted(shards, key=lambda s: s.start)
        if not ordered:
            raise ValueError("a shard map needs at least one open shard")
        for left, right in zip(ordered, ordered[1:]):
            if right.start <= left.end:
                raise ValueError(f"shards {left.shard_id} and {right.shard_id} overlap")
        self._shards: List[Shard] = ordered
        self._starts = [s.start for s in ordered]
        self._by_id = {s.shard_id: s for s in ordered}

    @property
    def shards(self) -> Sequence[Shard]:
        return tuple(self._shards)

    def __len__(self) -> int:
        return len(self._shards)

    def __contains__(self, shard_id: object) -> bool:
        """Whether ``shard_id`` is one of the map's open shards."""
        return shard_id in self._by_id

    def shard(self, shard_id: str) -> Shard:
        """The open shard ``shard_id`` (KeyError if the map has no such shard)."""
        return self._by_id[shard_id]

    def shard_for(self, hash_key: int) -> Shard:
        """The open shard whose range holds ``hash_key``.

        If the open ranges leave a gap (possible for a moment during a
        reshard), the nearest shard below is returned; the service has the
        last word and the receipt tells the truth.
        """
        index = bisect.bisect_right(self._starts, hash_key) - 1
        return self._shards[index if index > 0 else 0]

    @classmethod
    def from_list_shards(cls, shards: Iterable[dict[str, Any]]) -> ShardMap:
        """Build from ListShards ``Shards`` entries, keeping only open shards."""
        open_shards = [
            Shard(
                shard_id=s["ShardId"],
                start=int(s["HashKeyRange"]["StartingHashKey"]),
                end=int(s["HashKeyRange"]["EndingHashKey"]),
            )
            for s in shards
            if "EndingSequenceNumber" not in s.get("SequenceNumberRange", {})
        ]
        return cls(open_shards)

    @classmethod
    def single(cls, shard_id: str = UNKNOWN_SHARD) -> ShardMap:
        """A one-shard map for when the stream cannot be described."""
        return cls([Shard(shard_id, 0, 2**128 - 1)])


def list_shards(
    list_page: Callable[..., dict[str, Any]], stream_args: dict[str, str]
) -> list[dict[str, Any]]:
    """Every shard of a stream (open and closed), following ``NextToken``.

    ``list_page(**kwargs)`` makes one ListShards call: ``client.list_shards``
    of a boto3 client, or any callable that answers the same shape. The
    first page names the stream; later pages carry only the token, as the
    service requires.
    """
    shards: list[dict[str, Any]] = []
    response = list_page(**stream_args)
    shards.extend(response.get("Shards") or [])
    while response.get("NextToken"):
        response = list_page(NextToken=response["NextToken"])
        shards.extend(response.get("Shards") or [])
    return shards


def list_open_shards(client: Any, stream_args: dict[str, str]) -> ShardMap:
    """Call ListShards (with pagination) and build the map of open shards."""
    return ShardMap.from_list_shards(list_shards(client.list_shards, stream_args))
