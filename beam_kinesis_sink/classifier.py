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

from beam_kinesis_sink.advice import advised
from beam_kinesis_sink.records import ErrorCode
from beam_kinesis_sink.retry import split_in_two


class Action(enum.Enum):
    #: retry the same records later, with backoff
    RETRY = "retry"
    #: the request was refused for its content: split it to find the bad records
    SPLIT = "split"
    #: will never succeed for this stream: dead-letter (or fail, if asked)
    FATAL = "fatal"
    #: these records will never succeed: dead-letter them (not fatal)
    DROP_RECORD = "drop_record"


E = ErrorCode

#: Other names services and SDKs give throttling: reported as ``THROTTLED``.
THROTTLING_ALIASES = frozenset(
    {
        "LimitExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
    }
)

#: "Too fast": retried, and fed to the rate limiter.
THROTTLING_CODES = frozenset({E.THROTTLED, E.KMS_THROTTLED}) | THROTTLING_ALIASES

#: Transient service codes → the documented code they are reported as. Retried.
TRANSIENT_CODES = {
    "InternalFailure": E.INTERNAL_FAILURE,
    "InternalError": E.INTERNAL_FAILURE,
    "InternalServerError": E.INTERNAL_FAILURE,
    "ServiceUnavailable": E.SERVICE_UNAVAILABLE,
    "ServiceUnavailableException": E.SERVICE_UNAVAILABLE,
    "RequestTimeout": E.SERVICE_UNAVAILABLE,
    "RequestTimeoutException": E.SERVICE_UNAVAILABLE,
    "ResourceInUseException": E.RESOURCE_IN_USE,
}

#: The request's content was refused: split the batch to isolate the records.
SPLIT_CODES = frozenset({E.VALIDATION, E.INVALID_ARGUMENT, E.SERIALIZATION_EXCEPTION})

#: Will fail again for every record of this stream and this identity: the
#: only codes that ``on_fatal_error="fail"`` fails the pipeline on.
FATAL_CODES = frozenset(
    {
        E.RESOURCE_NOT_FOUND,
        E.ACCESS_DENIED,
        E.KMS_ACCESS_DENIED,
        E.KMS_DISABLED,
        E.KMS_INVALID_STATE,
        E.KMS_NOT_FOUND,
        E.KMS_OPT_IN_REQUIRED,
        E.UNRECOGNIZED_CLIENT,
        E.INVALID_SIGNATURE,
        E.INCOMPLETE_SIGNATURE,
        E.MISSING_AUTHENTICATION_TOKEN,
        E.EXPIRED_TOKEN,
        E.INVALID_CLIENT_TOKEN_ID,
        E.SIGNATURE_DOES_NOT_MATCH,
        E.NO_CREDENTIALS,
        E.PARTIAL_CREDENTIALS,
        E.NO_REGION,
    }
)


@dataclass(frozen=True)
class Classified:
    action: Action
    error_code: str
    error_message: str
    throttled: bool = False


def _named(original: str, code: str, message: str) -> str:
    """The message, naming the original code when it was normalised."""
    if not original or original == code:
        return message
    return f"{original}: {message}" if message else original


def _known(code: str, message: str) -> Optional[Classified]:
    """The classification of a code in the tables, or None."""
    if code in THROTTLING_CODES:
        reported = E.KMS_THROTTLED if code == E.KMS_THROTTLED else E.THROTTLED
        return Classified(Action.RETRY, reported, _named(code, reported, message), throttled=True)
    if code in TRANSIENT_CODES:
        return Classified(Action.RETRY, TRANSIENT_CODES[code], _named(code, TRANSIENT_CODES[code], message))
    if code in SPLIT_CODES:
        return Classified(Action.SPLIT, code, message)
    if code in FATAL_CODES:
        return Classified(Action.FATAL, code, advised(code, message))
    return None


def classify_record_error(code: str, message: str) -> Classified:
    """Decide what to do with one failed entry of a PutRecords response."""
    known = _known(code, message)
    if known is None:
        # Not a documented per-record code: worth another attempt, within the budget.
        return Classified(Action.RETRY, E.UNKNOWN, _named(code, E.UNKNOWN, message))
    if known.action is Action.RETRY:
        return known
    # e.g. kinesis-mock answers an oversized record with a per-record
    # InvalidArgumentException, and KMS errors come per record: retrying cannot help.
    return Classified(Action.DROP_RECORD, known.error_code, known.error_message)


def classify_exception(exc: BaseException) -> Classified:
    """Decide what to do with a whole PutRecords call that raised."""
    from botocore import exceptions as bx  # local: keep this module importable without I/O

    if isinstance(exc, bx.ClientError):
        response = exc.response if isinstance(exc.response, dict) else {}
        error = response.get("Error") or {}
        code = str(error.get("Code") or "")
        message = str(error.get("Message") or exc)
        status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
        return classify_service_error(code, message, status)
    if isinstance(exc, (bx.ConnectTimeoutError, bx.ReadTimeoutError)):
        return Classified(Action.RETRY, E.CONNECTION_ERROR, f"timeout: {exc}")
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectionClosedError, bx.HTTPClientError)):
        return Classified(Action.RETRY, E.CONNECTION_ERROR, f"connection failed: {exc}")
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError, bx.NoRegionError)):
        return Classified(Action.FATAL, type(exc).__name__, advised(type(exc).__name__, str(exc)))
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return Classified(Action.RETRY, E.CONNECTION_ERROR, f"{type(exc).__name__}: {exc}")
    # Not an answer of the service: a bug, which another attempt would repeat.
    return Classified(Action.FATAL, E.UNKNOWN, f"{type(exc).__name__}: {exc}")


def _by_status(status: int, message: str) -> Classified:
    """A service error that gave only its HTTP status."""
    text = f"HTTP {status}: {message}" if message else f"HTTP {status}"
    if status == 429:
        return Classified(Action.RETRY, E.THROTTLED, text, throttled=True)
    if status == 500:
        return Classified(Action.RETRY, E.INTERNAL_FAILURE, text)
    if status > 500:
        return Classified(Action.RETRY, E.SERVICE_UNAVAILABLE, text)
    if status == 413:
        # kinesalite answers a request over ~7 MiB with a bare HTTP 413.
        return Classified(Action.SPLIT, E.INVALID_ARGUMENT, text)
    if 400 <= status < 500:
        return Classified(Action.DROP_RECORD, E.UNKNOWN, text)
    return Classified(Action.RETRY, E.UNKNOWN, text)


def classify_service_error(code: str, message: str, http_status: int = 0) -> Classified:
    """Classify a service error by its code, then by its HTTP status.

    A code the tables do not know becomes ``UnknownError`` (the original code
    in the message): retried within the budget, unless the status is a 4xx,
    which another attempt would repeat; never fatal.
    """
    if not code or code.isdigit():  # botocore names a bare status by its number
        return _by_status(http_status, "" if message == code else message)
    known = _known(code, message)
    if known is not None:
        return known
    action = Action.DROP_RECORD if 400 <= http_status < 500 else Action.RETRY
    return Classified(action, E.UNKNOWN, _named(code, E.UNKNOWN, message))


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
    return Verdict(written=tuple(written), retry=tuple(retry), dead=tuple(dead), throttled=throttled,
                   feedback=throttled / count, map_stale=map_stale)


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
    if c.action in (Action.SPLIT, Action.DROP_RECORD):
        return Verdict(dead=_all(count, c.error_code, c.error_message), call_failed=True)
    return Verdict(dead=_all(count, c.error_code, c.error_message), call_failed=True,
                   fatal=(c.error_code, c.error_message))
