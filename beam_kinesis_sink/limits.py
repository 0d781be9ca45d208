"""Kinesis PutRecords limits, and the checks a record must pass before any request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from beam_kinesis_sink.records import ErrorCode

MiB = 1024 * 1024
MAX_HASH_KEY = 2**128 - 1
MAX_PARTITION_KEY_CHARS = 256


@dataclass(frozen=True)
class Limits:
    """Service limits the packer and validator respect.

    Defaults are the Kinesis defaults. ``max_record_bytes`` counts data plus the
    UTF-8 partition key; a stream whose ``MaxRecordSizeInKiB`` was raised (up to
    10 MiB) can raise it. ``max_request_bytes`` also counts partition keys, as
    the service does.
    """

    max_records_per_request: int = 500
    max_request_bytes: int = 5 * MiB
    max_record_bytes: int = 1 * MiB

    def __post_init__(self) -> None:
        if self.max_records_per_request < 1:
            raise ValueError(f"max_records_per_request must be >= 1, got {self.max_records_per_request}")
        if self.max_record_bytes < 1:
            raise ValueError(f"max_record_bytes must be >= 1, got {self.max_record_bytes}")
        if self.max_request_bytes < self.max_record_bytes:
            raise ValueError(
                f"max_request_bytes ({self.max_request_bytes}) must be >= max_record_bytes "
                f"({self.max_record_bytes}), or a record at the limit could never be sent"
            )


Problem = Tuple[str, str]  # (error_code, error_message)


def check_partition_key(key: object) -> Optional[Problem]:
    if key is None:
        return ErrorCode.INVALID_PARTITION_KEY, "partition key is missing (None)"
    if not isinstance(key, str):
        return (
            ErrorCode.INVALID_PARTITION_KEY,
            f"partition key must be a str, got {type(key).__name__}",
        )
    if not key:
        return ErrorCode.INVALID_PARTITION_KEY, "partition key is empty; it needs 1 to 256 characters"
    if len(key) > MAX_PARTITION_KEY_CHARS:
        return (
            ErrorCode.INVALID_PARTITION_KEY,
            f"partition key has {len(key)} characters; at most {MAX_PARTITION_KEY_CHARS} are allowed",
        )
    return None


def normalize_explicit_hash_key(value: object) -> Tuple[Optional[str], Optional[Problem]]:
    """Return the canonical decimal string of an explicit hash key, or a problem.

    Accepts ``None`` (no explicit key), an ``int`` or a decimal ``str`` within
    0..2**128-1. ``bool`` is refused: ``True`` is almost surely a bug.
    """
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None, (
            ErrorCode.INVALID_EXPLICIT_HASH_KEY,
            f"explicit hash key must be a decimal str or int, got {type(value).__name__}",
        )
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit():
            return None, (
                ErrorCode.INVALID_EXPLICIT_HASH_KEY,
                f"explicit hash key {value[:60]!r} is not a non-negative decimal integer",
            )
        number = int(text)
    else:
        number = value
    if number < 0 or number > MAX_HASH_KEY:
        return None, (
            ErrorCode.INVALID_EXPLICIT_HASH_KEY,
            f"explicit hash key {number} is outside 0..2**128-1",
        )
    return str(number), None


def record_size(data: bytes, partition_key: str) -> int:
    """Bytes a record counts against the limits: data plus the UTF-8 partition key."""
    return len(data) + len(partition_key.encode("utf-8"))


def check_size(size: int, limits: Limits) -> Optional[Problem]:
    if size > limits.max_record_bytes:
        return (
            ErrorCode.RECORD_TOO_LARGE,
            f"record is {size} bytes (data + partition key); the limit is {limits.max_record_bytes}",
        )
    return None
