"""Oracles for the tests, computed apart from the code under test."""

from __future__ import annotations

import hashlib
from typing import Optional


# Apart from beam_kinesis_sink.sharding on purpose: a placement check must not reuse the code it checks.
def hash_key_of(partition_key: str, explicit_hash_key: Optional[str] = None) -> int:
    """The MD5 of the UTF-8 partition key as a big-endian 128-bit int, or the explicit hash key."""
    if explicit_hash_key is not None:
        return int(explicit_hash_key)
    return int.from_bytes(hashlib.md5(partition_key.encode("utf-8")).digest(), "big")
