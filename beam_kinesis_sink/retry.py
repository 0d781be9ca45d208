"""Error classification and backoff. Pure: no I/O, randomness injected.

Kinesis fails in two ways. A whole PutRecords call can fail (an exception
from botocore), or the call succeeds and single entries carry an
``ErrorCode``. botocore never retries the second kind; the sink does.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from typing import Callable, Tuple

from beam_kinesis_sink.records import ErrorCode


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


@dataclass(frozen=True)
class RetryPolicy:
    """How long a record may keep trying.

    A record gets up to ``max_attempts`` PutRecords attempts, and stops being
    retried once ``max_elapsed_seconds`` have passed since its first attempt.
    Waits use exponential backoff with full jitter:
    ``uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1)))``.
    """

    max_attempts: int = 20
    max_elapsed_seconds: float = 120.0
    base_delay: float = 0.1
    max_delay: float = 5.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must be >= 0")

    def may_retry(self, attempts: int, elapsed: float) -> bool:
        return attempts < self.max_attempts and elapsed < self.max_elapsed_seconds


@dataclass
class Backoff:
    """Full-jitter exponential backoff with an injected random source."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    rand: Callable[[], float] = field(default_factory=lambda: random.Random().random)

    def delay(self, attempts: int) -> float:
        """Seconds to wait before attempt number ``attempts + 1``."""
        exponent = max(0, attempts - 1)
        ceiling = min(self.policy.max_delay, self.policy.base_delay * (2**min(exponent, 30)))
        return ceiling * self.rand()


def split_in_two(count: int) -> Tuple[int, int]:
    """Sizes of the halves a refused batch is split into."""
    first = (count + 1) // 2
    return first, count - first
