"""The records every measurement writes, as ``(data, partition_key)`` pairs.

Standard library only: the peers' runner scripts import this module with
their own virtual environment's Python, so that every writer gets the very
same records.
"""

from __future__ import annotations

import math
import random
from typing import Iterator, Tuple

Record = Tuple[bytes, str]

#: distinct partition keys of the small records: many keys, spread evenly over the shards
SMALL_KEYS = 10_007
MIXED_MIN_BYTES = 10
MIXED_MAX_BYTES = 900 * 1024


def small_records(n: int, run: str = "bench") -> Iterator[Record]:
    """About 100-byte JSON records (``run`` names the run inside each one)."""
    pad = "x" * max(0, 60 - len(run))
    for i in range(n):
        yield f'{{"n":{i:07d},"run":"{run}","p":"{pad}"}}'.encode(), f"key-{i % SMALL_KEYS}"


def mixed_size(rng: random.Random) -> int:
    """A record size log-uniform between 10 B and 900 KB: as many records
    of 10-100 B as of 100-900 KB, per factor of ten."""
    low, high = math.log(MIXED_MIN_BYTES), math.log(MIXED_MAX_BYTES)
    return int(math.exp(rng.uniform(low, high)))


def mixed_size_records(n: int, seed: int = 7) -> Iterator[Record]:
    """Records of mixed sizes (see :func:`mixed_size`), from a seeded draw."""
    rng = random.Random(seed)
    filler = b"m" * MIXED_MAX_BYTES
    for i in range(n):
        yield filler[: mixed_size(rng)], f"mixed-{i}"


def record_bytes(data: bytes, partition_key: str) -> int:
    """What Kinesis counts of a record: data plus the UTF-8 partition key."""
    return len(data) + len(partition_key.encode("utf-8"))
