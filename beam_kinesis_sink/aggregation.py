"""The KPL aggregated record format, written by hand (no protobuf runtime).

An aggregated record's data is ``MAGIC + body + md5(body)``, where ``body`` is a protobuf
``AggregatedRecord`` (awslabs/amazon-kinesis-producer, ``aggregation-format.md``)::

    AggregatedRecord { repeated string partition_key_table = 1; repeated string explicit_hash_key_table = 2;
                       repeated Record records = 3; }
    Record { required uint64 partition_key_index = 1; optional uint64 explicit_hash_key_index = 2;
             required bytes data = 3; repeated Tag tags = 4; }

Only these fields are written, in field-number order (what protobuf itself would emit). Keys are
deduplicated: a key seen before reuses its table index. A record without an explicit hash key
omits field 2. Validation (key lengths, hash-key range, size limits) is the caller's job.
"""

from __future__ import annotations

import hashlib
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = ["DEFAULT_AGGREGATE_BYTES", "DIGEST_BYTES", "MAGIC", "OVERHEAD", "AggregateBuilder",
           "encode_aggregate"]

MAGIC = b"\xf3\x89\x9a\xc2"
DIGEST_BYTES = 16
DEFAULT_AGGREGATE_BYTES = 50 * 1024
OVERHEAD = len(MAGIC) + DIGEST_BYTES

# Field keys, (field_number << 3) | wire_type; wire type 0 is a varint, 2 is length-delimited.
_PK_TABLE = b"\x0a"  # AggregatedRecord.partition_key_table (1, string)
_EHK_TABLE = b"\x12"  # AggregatedRecord.explicit_hash_key_table (2, string)
_RECORD = b"\x1a"  # AggregatedRecord.records (3, message)
_PK_INDEX = b"\x08"  # Record.partition_key_index (1, uint64)
_EHK_INDEX = b"\x10"  # Record.explicit_hash_key_index (2, uint64)
_DATA = b"\x1a"  # Record.data (3, bytes)

_ONE_BYTE_VARINTS = [bytes((value,)) for value in range(0x80)]


def _varint_len(value: int) -> int:
    """Bytes of ``value`` (>= 0) as a protobuf varint: 7 bits per byte, at least one byte."""
    return (value.bit_length() + 6) // 7 or 1


def _varint(value: int) -> bytes:
    """``value`` (>= 0) as a protobuf varint, low 7-bit group first, high bit meaning "more"."""
    if value < 0x80:
        return _ONE_BYTE_VARINTS[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field_len(payload_len: int) -> int:
    """Bytes of a length-delimited field (one-byte key, length, payload)."""
    return 1 + _varint_len(payload_len) + payload_len


def _record_header(pk_index: int, ehk_index: Optional[int], data_len: int) -> bytes:
    """A ``records`` entry up to, not including, the data bytes."""
    fields = _PK_INDEX + _varint(pk_index)
    if ehk_index is not None:
        fields += _EHK_INDEX + _varint(ehk_index)
    fields += _DATA + _varint(data_len)
    return _RECORD + _varint(len(fields) + data_len) + fields


class AggregateBuilder:
    """An aggregate under construction that knows its exact encoded size at every step.

    ``size_with`` tells what the size would become, so a caller can stop before a limit;
    ``add`` and ``size_with`` cost O(1) in what is already in (nothing is re-encoded), and
    ``encode`` is one join and one MD5.
    """

    def __init__(self) -> None:
        self._pk_indexes: Dict[str, int] = {}
        self._ehk_indexes: Dict[str, int] = {}
        self._pk_pieces: List[bytes] = []
        self._ehk_pieces: List[bytes] = []
        self._record_pieces: List[bytes] = []
        self._count = 0
        self._size = OVERHEAD

    def size_with(self, data: bytes, partition_key: str, explicit_hash_key: Optional[str]) -> int:
        """Exact ``len(encode())`` if this record were added now; the builder is not changed."""
        size = self._size
        pk_index = self._pk_indexes.get(partition_key)
        if pk_index is None:
            pk_index = len(self._pk_indexes)
            size += _field_len(len(partition_key.encode("utf-8")))
        record_len = 1 + _varint_len(pk_index) + 1 + _varint_len(len(data)) + len(data)
        if explicit_hash_key is not None:
            ehk_index = self._ehk_indexes.get(explicit_hash_key)
            if ehk_index is None:
                ehk_index = len(self._ehk_indexes)
                size += _field_len(len(explicit_hash_key.encode("utf-8")))
            record_len += 1 + _varint_len(ehk_index)
        return size + _field_len(record_len)

    def add(self, data: bytes, partition_key: str, explicit_hash_key: Optional[str]) -> None:
        """Append one user record (``explicit_hash_key`` a decimal string, or None to omit it)."""
        pk_index = self._key_index(self._pk_indexes, self._pk_pieces, _PK_TABLE, partition_key)
        ehk_index = None
        if explicit_hash_key is not None:
            ehk_index = self._key_index(self._ehk_indexes, self._ehk_pieces, _EHK_TABLE, explicit_hash_key)
        header = _record_header(pk_index, ehk_index, len(data))
        self._record_pieces += (header, data)
        self._size += len(header) + len(data)
        self._count += 1

    def _key_index(self, indexes: Dict[str, int], pieces: List[bytes], field_key: bytes, key: str) -> int:
        """The table index of ``key``, appending it to the table if it is new."""
        index = indexes.get(key)
        if index is None:
            index = indexes[key] = len(indexes)
            encoded = key.encode("utf-8")
            prefix = field_key + _varint(len(encoded))
            pieces += (prefix, encoded)
            self._size += len(prefix) + len(encoded)
        return index

    def __len__(self) -> int:
        """User records added so far."""
        return self._count

    @property
    def size(self) -> int:
        """Exact ``len(encode())`` now (``OVERHEAD`` when empty)."""
        return self._size

    def encode(self) -> bytes:
        """The aggregated record's data: magic, protobuf body, MD5 of the body. Can be called at any time."""
        body = b"".join(self._pk_pieces + self._ehk_pieces + self._record_pieces)
        return b"".join((MAGIC, body, hashlib.md5(body, usedforsecurity=False).digest()))


def encode_aggregate(records: Sequence[Tuple[bytes, str, Optional[str]]]) -> bytes:
    """The aggregated record data of ``(data, partition_key, explicit_hash_key)`` user records, in order."""
    builder = AggregateBuilder()
    for data, partition_key, explicit_hash_key in records:
        builder.add(data, partition_key, explicit_hash_key)
    return builder.encode()
