"""Retry bookkeeping: how long a record may keep trying, the backoff
between its attempts, and how a refused batch is split. Pure: randomness
and the clock are injected.

botocore never retries the per-record failures of PutRecords; the sink
does, here.
"""

from __future__ import annotations

import numbers
import random
from dataclasses import dataclass, field
from typing import Callable, List, NamedTuple, Sequence, Tuple

from beam_kinesis_sink.advice import gave_up
from beam_kinesis_sink.shard_buffers import Item


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
        attempts = self.max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, numbers.Integral) or attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {attempts!r}")
        if not self.max_elapsed_seconds > 0:  # NaN too
            raise ValueError(f"max_retry_seconds (each record's time budget) must be > 0, "
                             f"got {self.max_elapsed_seconds!r}")
        if not (self.base_delay >= 0 and self.max_delay >= 0):
            raise ValueError(f"backoff delays must be >= 0, got {self.base_delay!r} and {self.max_delay!r}")

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


class Failure(NamedTuple):
    """A record whose attempt failed, with the error of that attempt."""

    item: Item
    code: str
    message: str


class RetryPlan(NamedTuple):
    #: records to put back at the head of their queue, in order
    retry: List[Item]
    #: records whose budget is spent, with the message of their dead letter
    give_up: List[Tuple[Item, str]]


def plan_retries(failures: Sequence[Failure], now: float, policy: RetryPolicy, backoff: Backoff) -> RetryPlan:
    """Decide, for each failed record, another attempt or the end.

    Each record keeps its own last error (an empty code keeps the one it
    had). Retried records all wait for the earliest of their backoffs, so
    the head of the queue keeps its order.
    """
    retry: List[Item] = []
    give_up: List[Tuple[Item, str]] = []
    for item, code, message in failures:
        item.last_code = code or item.last_code
        item.last_message = message or item.last_message
        elapsed = now - (item.first_attempt if item.first_attempt is not None else now)
        if policy.may_retry(item.attempts, elapsed):
            item.not_before = now + backoff.delay(item.attempts)
            retry.append(item)
        else:
            give_up.append(
                (item, f"{item.last_message} (gave up after {item.attempts} attempts, {elapsed:.1f}s): "
                       f"{gave_up(item.last_code)}")
            )
    if retry:
        first_ready = min(item.not_before for item in retry)
        for item in retry:
            item.not_before = first_ready
    return RetryPlan(retry, give_up)
