"""The service's limits on PutRecords/PutRecord, checked as Kinesis checks
them, and the service's error shapes the front answers with.

A check that fails raises :class:`Rejected` (HTTP 400, the whole request
refused, nothing written) with the code and message the service gives:
``ValidationException`` for a count, a record's size, a partition key's
length or a malformed explicit hash key; ``InvalidArgumentException`` for
the request's total size or an explicit hash key over 2^128-1. The limits
are the stream's (``FaultConfig.record_limit`` / ``request_limit``: raised
for a stream in ``max_record_size_kib``). The other answers the front makes
up (throttled, not found, access denied, a malformed value) are here too, so
that every message has one home.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from beam_kinesis_sink.testing.fault_front.config import MIB, FaultConfig
from beam_kinesis_sink.testing.fault_front.wire import Response, error_response

MAX_HASH_KEY = 2**128 - 1
THROTTLED = "ProvisionedThroughputExceededException"
#: the entry of a record the front fails on purpose (not forwarded)
INTERNAL_FAILURE_ENTRY = {"ErrorCode": "InternalFailure", "ErrorMessage": "Internal service failure."}
_EXPLICIT_HASH_KEY = re.compile(r"0|[1-9]\d{0,38}")
_ONE_ERROR = "1 validation error detected: "


class FrontError(Exception):
    """An answer the front gives instead of forwarding the request."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> Response:
        return error_response(self.status, self.code, self.message)


class Rejected(FrontError):
    """A request that breaks a limit; ``reason`` names the limit in the stats."""

    def __init__(self, reason: str, code: str, message: str) -> None:
        super().__init__(400, code, message)
        self.reason = reason


# -- the service's other answers -------------------------------------------------------


def not_found(stream: str, account: str) -> FrontError:
    return FrontError(400, "ResourceNotFoundException", f"Stream {stream} under account {account} not found.")


def access_denied(operation: str, stream: Any, account: str, region: str) -> FrontError:
    return FrontError(
        400,
        "AccessDeniedException",
        f"User: arn:aws:iam::{account}:user/testing is not authorized to perform: "
        f"kinesis:{operation} on resource: arn:aws:kinesis:{region}:{account}:stream/{stream} "
        f"because no identity-based policy allows the kinesis:{operation} action",
    )


def _throttled_message(shard_id: str, stream: str, account: str) -> str:
    return f"Rate exceeded for shard {shard_id} in stream {stream} under account {account}."


def throttled_entry(shard_id: str, stream: str, account: str) -> dict[str, str]:
    """The PutRecords entry of a record over its shard's budget."""
    return {"ErrorCode": THROTTLED, "ErrorMessage": _throttled_message(shard_id, stream, account)}


def throttled_error(shard_id: str, stream: str, account: str) -> FrontError:
    """The answer to a PutRecord over its shard's budget."""
    return FrontError(400, THROTTLED, _throttled_message(shard_id, stream, account))


# -- sizes -------------------------------------------------------------------------------


def b64_len(text: str) -> int:
    """Decoded length of an (unwrapped) base64 string, without decoding it."""
    n = len(text)
    if n == 0:
        return 0
    pad = 2 if text.endswith("==") else 1 if text.endswith("=") else 0
    return n * 3 // 4 - pad


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def record_size(record: dict[str, Any]) -> int:
    """Data plus partition key bytes, what the limits and the buckets count."""
    return b64_len(record.get("Data", "")) + _utf8_len(str(record.get("PartitionKey", "")))


# -- the checks ------------------------------------------------------------------------


def check_put_records(records: Any, cfg: FaultConfig, stream: Optional[str] = None) -> None:
    """The ``Records`` of a PutRecords to ``stream``: a list, each entry well
    formed and, if ``cfg.enforce_limits``, the count and sizes within the
    stream's limits."""
    if not isinstance(records, list):
        raise null_value("records_missing", "records")
    if cfg.enforce_limits:
        _check_count(records, cfg)
    limit = cfg.record_limit(stream)
    total = sum(
        check_record(record, f"records.{n}.member.", cfg, limit) for n, record in enumerate(records, 1)
    )
    request_limit = cfg.request_limit(stream)
    if cfg.enforce_limits and total > request_limit:
        raise Rejected(
            "request_too_large",
            "InvalidArgumentException",
            f"Records size exceeds {request_limit // MIB} MB limit",
        )


def check_put_record(request: dict[str, Any], cfg: FaultConfig, stream: Optional[str] = None) -> None:
    check_record(request, "", cfg, cfg.record_limit(stream))


def check_record(record: Any, position: str, cfg: FaultConfig, limit: Optional[int] = None) -> int:
    """Check one entry; returns its size (data + partition key bytes). The
    entry's shape is always checked, the limits if ``cfg.enforce_limits``;
    ``limit`` is the record's (default ``cfg.max_record_bytes``)."""
    if not isinstance(record, dict):
        raise Rejected("malformed", "SerializationException", "Start of structure expected")
    key, data = record.get("PartitionKey"), record.get("Data")
    if not isinstance(key, str):
        raise null_value("partition_key_missing", f"{position}partitionKey")
    if not isinstance(data, str):
        raise null_value("data_missing", f"{position}data")
    size = b64_len(data) + _utf8_len(key)
    if cfg.enforce_limits:
        _check_key_length(key, position, cfg)
        _check_record_size(b64_len(data), size, position, cfg.max_record_bytes if limit is None else limit)
        _check_explicit_hash_key(record.get("ExplicitHashKey"), position)
    return size


def invalid_value(reason: str, value: Any, where: str, constraint: str) -> Rejected:
    """A ValidationException for a value out of its range (``constraint``:
    e.g. "Member must have value less than or equal to 10240")."""
    return Rejected(
        reason,
        "ValidationException",
        f"{_ONE_ERROR}Value '{value}' at '{where}' failed to satisfy constraint: {constraint}",
    )


def null_value(reason: str, where: str) -> Rejected:
    """A ValidationException for a missing member."""
    return Rejected(
        reason,
        "ValidationException",
        f"{_ONE_ERROR}Value null at '{where}' failed to satisfy constraint: Member must not be null",
    )


def _check_count(records: list[Any], cfg: FaultConfig) -> None:
    if not records:
        raise Rejected(
            "too_few_records",
            "ValidationException",
            f"{_ONE_ERROR}Value '[]' at 'records' failed to satisfy "
            "constraint: Member must have length greater than or equal to 1",
        )
    if len(records) > cfg.max_records_per_request:
        raise Rejected(
            "too_many_records",
            "ValidationException",
            f"{_ONE_ERROR}Value '[{len(records)} records]' at 'records' "
            "failed to satisfy constraint: Member must have length less than or equal to "
            f"{cfg.max_records_per_request}",
        )


def _check_key_length(key: str, position: str, cfg: FaultConfig) -> None:
    if 1 <= len(key) <= cfg.max_partition_key_chars:
        return
    limit = cfg.max_partition_key_chars
    bound = f"less than or equal to {limit}" if key else "greater than or equal to 1"
    raise Rejected(
        "partition_key_length",
        "ValidationException",
        f"{_ONE_ERROR}Value '{key}' at '{position}partitionKey' "
        f"failed to satisfy constraint: Member must have length {bound}",
    )


def _check_record_size(data_len: int, size: int, position: str, limit: int) -> None:
    if data_len > limit:
        raise Rejected(
            "record_too_large",
            "ValidationException",
            f"{_ONE_ERROR}Value 'java.nio.HeapByteBuffer[pos=0 lim={data_len} "
            f"cap={data_len}]' at '{position}data' failed to satisfy constraint: "
            f"Member must have length less than or equal to {limit}",
        )
    if size > limit:
        raise Rejected(
            "record_too_large",
            "ValidationException",
            f"{_ONE_ERROR}Value at '{position.rstrip('.')}' failed to satisfy "
            f"constraint: Record size (data + partition key) of {size} bytes exceeds the "
            f"limit of {limit} bytes",
        )


def _check_explicit_hash_key(ehk: Any, position: str) -> None:
    if ehk is None:
        return
    if not isinstance(ehk, str) or not _EXPLICIT_HASH_KEY.fullmatch(ehk):
        raise Rejected(
            "explicit_hash_key",
            "ValidationException",
            f"{_ONE_ERROR}Value '{ehk}' at '{position}explicitHashKey' "
            "failed to satisfy constraint: Member must satisfy regular expression "
            "pattern: 0|([1-9]\\d{0,38})",
        )
    if int(ehk) > MAX_HASH_KEY:
        raise Rejected(
            "explicit_hash_key",
            "InvalidArgumentException",
            "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: "
            f"[0, 2^128-1]. Specified value was {ehk}",
        )
