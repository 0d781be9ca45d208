"""Classifier: an answer or an exception in; receipts, retries and dead
letters out, as values. Pure and table-tested: no I/O, no clock.

Kinesis fails in two ways. A whole PutRecords call can fail (an exception
from botocore), or the call succeeds and single entries carry an
``ErrorCode``. Both end here as a :class:`Verdict` that says, by index into
the batch, which records were written (with shard and sequence number),
which are worth another attempt and which will never succeed; and, for the
batch as a whole, whether to split it, whether the stream itself is
unusable, and what the rate limiter should learn.

An answer the classifier cannot trust is never read as "written": a
receipt needs a non-empty ``SequenceNumber`` and ``ShardId``.

Where the coming features go: new error codes change the tables here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Optional, Tuple

from beam_kinesis_sink.records import ErrorCode
from beam_kinesis_sink.retry import split_in_two


class Action(enum.Enum):
    #: retry the same records later, with backoff
    RETRY = "retry"
    #: the request was refused for its content: split it to find the bad records
    SPLIT = "split"
    #: will never succeed for this stream: dead-letter (or fail, if asked)
    FATAL = "fatal"
    #: this record will never succeed: dead-letter it
    DROP_RECORD = "drop_record"


#: Codes that mean "too fast": retried, and fed to the rate limiter.
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
        "KMSThrottlingException",
    }
)

#: Service-side transient codes: retried.
TRANSIENT_CODES = frozenset(
    {
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ResourceInUseException",
    }
)

#: The request's content was refused: split the batch to isolate the records.
SPLIT_CODES = frozenset({"ValidationException", "InvalidArgumentException", "SerializationException"})

#: Will fail again for every record of this stream and this identity.
FATAL_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "AccessDeniedException",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
        "KMSOptInRequired",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
    }
)

#: Per-record codes that are worth another attempt.
RETRYABLE_RECORD_CODES = frozenset({"ProvisionedThroughputExceededException", "InternalFailure"}) | (
    THROTTLING_CODES
)


@dataclass(frozen=True)
class Classified:
    action: Action
    error_code: str
    error_message: str
    throttled: bool = False


def classify_record_error(code: str, message: str) -> Classified:
    """Decide what to do with one failed entry of a PutRecords response."""
    if code in RETRYABLE_RECORD_CODES or code in TRANSIENT_CODES:
        return Classified(Action.RETRY, code, message, throttled=code in THROTTLING_CODES)
    # e.g. kinesis-mock answers an oversized record with a per-record
    # InvalidArgumentException: retrying cannot help.
    return Classified(Action.DROP_RECORD, code, message)


def classify_exception(exc: BaseException) -> Classified:
    """Decide what to do with a whole PutRecords call that raised."""
    from botocore import exceptions as bx  # local: keep this module importable without I/O

    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {}) if isinstance(exc.response, dict) else {}
        code = str(error.get("Code") or "")
        message = str(error.get("Message") or exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return classify_service_error(code, message, status)
    if isinstance(exc, (bx.ConnectTimeoutError, bx.ReadTimeoutError)):
        return Classified(Action.RETRY, ErrorCode.CONNECTION_ERROR, f"timeout: {exc}")
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectionClosedError, bx.HTTPClientError)):
        return Classified(Action.RETRY, ErrorCode.CONNECTION_ERROR, f"connection failed: {exc}")
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError, bx.NoRegionError)):
        return Classified(Action.FATAL, type(exc).__name__, str(exc))
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return Classified(Action.RETRY, ErrorCode.CONNECTION_ERROR, f"{type(exc).__name__}: {exc}")
    return Classified(Action.FATAL, ErrorCode.UNKNOWN, f"{type(exc).__name__}: {exc}")


def classify_service_error(code: str, message: str, http_status: int = 0) -> Classified:
    """Classify a service error by its code, then by its HTTP status."""
    if code in THROTTLING_CODES:
        return Classified(Action.RETRY, code, message, throttled=True)
    if code in TRANSIENT_CODES:
        return Classified(Action.RETRY, code, message)
    if code in SPLIT_CODES:
        return Classified(Action.SPLIT, code, message)
    if code in FATAL_CODES or code.startswith("KMS"):
        return Classified(Action.FATAL, code, message)
    if http_status >= 500 or http_status == 429:
        return Classified(
            Action.RETRY,
            code or ErrorCode.SERVICE_UNAVAILABLE,
            message or f"HTTP {http_status}",
            throttled=http_status == 429,
        )
    if http_status == 413:
        # kinesalite answers a request over ~7 MiB with a bare HTTP 413.
        return Classified(Action.SPLIT, code or ErrorCode.INVALID_ARGUMENT, message or "HTTP 413")
    return Classified(Action.FATAL, code or ErrorCode.UNKNOWN, message or f"HTTP {http_status}")


Indexed = Tuple[int, str, str]


@dataclass(frozen=True)
class Verdict:
    """What came of one PutRecords call, by index into its batch."""

    #: (index, shard_id, sequence_number) of each record written
    written: Tuple[Indexed, ...] = ()
    #: (index, error_code, error_message) of each record worth another attempt
    retry: Tuple[Indexed, ...] = ()
    #: (index, error_code, error_message) of each record that will never succeed
    dead: Tuple[Indexed, ...] = ()
    #: records refused as too fast (for metrics)
    throttled: int = 0
    #: the share of the request throttled, for the rate limiter (None: learn nothing)
    feedback: Optional[float] = None
    #: the call itself failed (no answer)
    call_failed: bool = False
    #: (first, second) halves to send as separate requests: the batch was
    #: refused for its content
    split: Optional[Tuple[range, range]] = None
    #: (error_code, error_message): the stream cannot be written at all
    fatal: Optional[Tuple[str, str]] = None
    #: a receipt named another shard than the batch's: the shard map is stale
    map_stale: bool = False


def _all(count: int, code: str, message: str) -> Tuple[Indexed, ...]:
    return tuple((i, code, message) for i in range(count))


def _untrusted(count: int, message: str) -> Verdict:
    return Verdict(retry=_all(count, ErrorCode.INTERNAL_FAILURE, message), feedback=0.0)


def judge_answer(response: Any, count: int, shard_id: str, split: bool = False) -> Verdict:
    """Judge a PutRecords answer for a batch of ``count`` records sent to
    ``shard_id`` (``split``: the batch is a part of a refused one)."""
    entries = response.get("Records") if isinstance(response, dict) else None
    if not isinstance(entries, list) or len(entries) != count:
        got = len(entries) if isinstance(entries, list) else "no list of"
        # Never trust a response we cannot match by index.
        return _untrusted(count, f"PutRecords returned {got} entries for {count} records")
    written, retry, dead = [], [], []
    throttled = 0
    map_stale = False
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            retry.append((index, ErrorCode.INTERNAL_FAILURE, "PutRecords answered this record with no entry"))
            continue
        code = entry.get("ErrorCode")
        if not code:
            sequence, shard = entry.get("SequenceNumber"), entry.get("ShardId")
            if not (isinstance(sequence, str) and sequence and isinstance(shard, str) and shard):
                retry.append((index, ErrorCode.INTERNAL_FAILURE,
                              "PutRecords answered this record with neither an error nor a sequence number "
                              "and shard id; it may or may not be written"))
                continue
            map_stale = map_stale or (shard != shard_id and not split)
            written.append((index, shard, sequence))
            continue
        c = classify_record_error(str(code), str(entry.get("ErrorMessage") or ""))
        throttled += c.throttled
        (retry if c.action is Action.RETRY else dead).append((index, c.error_code, c.error_message))
    return Verdict(tuple(written), tuple(retry), tuple(dead), throttled, throttled / count, False, None, None,
                   map_stale)


def judge_failure(exc: BaseException, count: int) -> Verdict:
    """Judge a PutRecords call of ``count`` records that raised ``exc``."""
    c = classify_exception(exc)
    if c.action is Action.RETRY:
        return Verdict(retry=_all(count, c.error_code, c.error_message),
                       throttled=count if c.throttled else 0,
                       feedback=1.0 if c.throttled else 0.0, call_failed=True)
    if c.action is Action.SPLIT and count > 1:
        first, _ = split_in_two(count)
        return Verdict(call_failed=True, split=(range(first), range(first, count)))
    if c.action is Action.SPLIT:
        return Verdict(dead=_all(count, c.error_code, c.error_message), call_failed=True)
    return Verdict(dead=_all(count, c.error_code, c.error_message), call_failed=True,
                   fatal=(c.error_code, c.error_message))
