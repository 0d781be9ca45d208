"""Per-shard client-side rate limiting: token buckets adapted by AIMD.

Kinesis admits 1,000 records/s and 1 MiB/s per shard. Each shard gets a
token bucket for records and one for bytes. The rate adapts to feedback
(AIMD): when a request to the shard is throttled, the rate is multiplied by
``1 - throttled_share`` (the share of the request's records that were
throttled, at least ``min_decrease``), but never by less than
``decrease_factor``; a request that was wholly throttled halves it. After
each request without throttling the rate grows by ``increase_fraction`` of
the nominal rate, up to ``max_rate_factor`` times the nominal rate. A
proportional decrease keeps a shard that is a few percent too fast from
losing a third of its rate, which at two requests per second per shard
takes seconds to win back. A shard whose real limit is lower (a busy shard shared with
live producers, a hot key) settles near that limit; a stream with a higher
limit can be allowed to probe above nominal with ``max_rate_factor > 1``.

Pure: the clock is injected.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Dict, Hashable, Optional

Clock = Callable[[], float]


@dataclass(frozen=True)
class RateLimitConfig:
    records_per_second: float = 1000.0
    bytes_per_second: float = 1024.0 * 1024.0
    #: bucket capacity, in seconds of the current rate
    burst_seconds: float = 1.0
    decrease_factor: float = 0.5
    min_decrease: float = 0.05
    increase_fraction: float = 0.05
    min_rate_fraction: float = 0.02
    max_rate_factor: float = 1.0
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.records_per_second <= 0 or self.bytes_per_second <= 0:
            raise ValueError("rates must be positive")
        if not 0 < self.decrease_factor < 1:
            raise ValueError("decrease_factor must be in (0, 1)")


class TokenBucket:
    """A bucket refilled at ``rate`` tokens/s up to ``capacity``.

    ``take`` may drive the level negative (a debt): a request bigger than the
    bucket is allowed once the bucket is full, and the debt delays the next.
    """

    def __init__(self, rate: float, capacity: float, clock: Clock) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self.level = capacity
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._last
        if elapsed > 0:
            self.level = min(self.capacity, self.level + elapsed * self.rate)
            self._last = now

    def available(self) -> float:
        self._refill()
        return self.level

    def wait_time(self, amount: float) -> float:
        """Seconds until ``amount`` tokens (capped at capacity) are available."""
        self._refill()
        needed = min(amount, self.capacity) - self.level
        if needed <= 1e-6:  # float residue must not become a wait that never ends
            return 0.0
        return needed / self.rate

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= amount

    def give_back(self, amount: float) -> None:
        self._refill()
        self.level = min(self.capacity, self.level + amount)

    def set_rate(self, rate: float, capacity: float) -> None:
        self._refill()
        self.rate = rate
        self.capacity = capacity
        self.level = min(self.level, capacity)


class ShardLimiter:
    """The two buckets of one shard, and its AIMD rate."""

    def __init__(self, config: RateLimitConfig, clock: Clock) -> None:
        self.config = config
        self.factor = 1.0  # current rate as a fraction of nominal
        self.records = TokenBucket(
            config.records_per_second, config.records_per_second * config.burst_seconds, clock
        )
        self.bytes = TokenBucket(
            config.bytes_per_second, config.bytes_per_second * config.burst_seconds, clock
        )

    def budget(self) -> tuple[int, int]:
        """Records and bytes that may be sent now (at least 0)."""
        return max(0, int(self.records.available())), max(0, int(self.bytes.available()))

    def wait_time(self, records: int, nbytes: int) -> float:
        return max(self.records.wait_time(records), self.bytes.wait_time(nbytes))

    def acquire(self, records: int, nbytes: int) -> None:
        self.records.take(records)
        self.bytes.take(nbytes)

    def give_back(self, records: int, nbytes: int) -> None:
        self.records.give_back(records)
        self.bytes.give_back(nbytes)

    def on_result(self, throttled_share: float) -> None:
        """Adapt to one request's outcome: the share of its records throttled."""
        cfg = self.config
        if throttled_share > 0:
            keep = max(cfg.decrease_factor, 1.0 - max(cfg.min_decrease, throttled_share))
            self.factor = max(cfg.min_rate_fraction, self.factor * keep)
        else:
            self.factor = min(cfg.max_rate_factor, self.factor + cfg.increase_fraction)
        self._apply()

    def _apply(self) -> None:
        cfg = self.config
        r = cfg.records_per_second * self.factor
        b = cfg.bytes_per_second * self.factor
        self.records.set_rate(r, max(1.0, r * cfg.burst_seconds))
        self.bytes.set_rate(b, max(1.0, b * cfg.burst_seconds))


class GlobalLimiter:
    """A cap on records/s across all shards of one writer (e.g. for a replay)."""

    def __init__(self, records_per_second: float, clock: Clock, burst_seconds: float = 0.2) -> None:
        self.bucket = TokenBucket(records_per_second, max(1.0, records_per_second * burst_seconds), clock)


class RateLimiter:
    """Per-shard limiters, created on first use; plus an optional global cap."""

    def __init__(
        self,
        config: Optional[RateLimitConfig] = None,
        clock: Clock = time.monotonic,
        max_records_per_second: Optional[float] = None,
    ) -> None:
        self.config = config or RateLimitConfig()
        self._clock = clock
        #: by shard key: a shard id, or a (stream, shard id) pair
        self._shards: Dict[Hashable, ShardLimiter] = {}
        self.global_limit = (
            GlobalLimiter(max_records_per_second, clock) if max_records_per_second else None
        )

    def shard(self, key: Hashable) -> ShardLimiter:
        limiter = self._shards.get(key)
        if limiter is None:
            limiter = self._shards[key] = ShardLimiter(self.config, self._clock)
        return limiter

    def largest_batch(self, key: Hashable) -> Optional[int]:
        """The most records one request to the shard ``key`` may carry when the
        buckets are full (``None``: no limit). The batcher waits for tokens
        for a batch this big, so requests stay large and evenly spaced."""
        cap: Optional[int] = None
        if self.config.enabled:
            cap = max(1, int(self.shard(key).records.capacity))
        if self.global_limit is not None:
            g = max(1, int(self.global_limit.bucket.capacity))
            cap = g if cap is None else min(cap, g)
        return cap

    def largest_bytes(self, key: Hashable) -> Optional[int]:
        """The most bytes one request to the shard ``key`` may carry when the
        buckets are full (``None``: no limit)."""
        return max(1, int(self.shard(key).bytes.capacity)) if self.config.enabled else None

    def budget(self, key: Hashable) -> tuple[Optional[int], Optional[int]]:
        """Records/bytes budget for a request to the shard ``key``; ``None`` = unlimited."""
        records: Optional[int] = None
        nbytes: Optional[int] = None
        if self.config.enabled:
            records, nbytes = self.shard(key).budget()
        if self.global_limit is not None:
            g = max(0, int(self.global_limit.bucket.available()))
            records = g if records is None else min(records, g)
        return records, nbytes

    def wait_time(self, key: Hashable, records: int, nbytes: int) -> float:
        wait = 0.0
        if self.config.enabled:
            wait = self.shard(key).wait_time(records, nbytes)
        if self.global_limit is not None:
            wait = max(wait, self.global_limit.bucket.wait_time(records))
        return wait

    def acquire(self, key: Hashable, records: int, nbytes: int) -> None:
        if self.config.enabled:
            self.shard(key).acquire(records, nbytes)
        if self.global_limit is not None:
            self.global_limit.bucket.take(records)

    def give_back(self, key: Hashable, records: int, nbytes: int) -> None:
        """Return the tokens of a request that never reached the shard."""
        if self.config.enabled:
            self.shard(key).give_back(records, nbytes)
        if self.global_limit is not None:
            self.global_limit.bucket.give_back(records)

    def on_result(self, key: Hashable, throttled_share: float) -> None:
        if self.config.enabled:
            self.shard(key).on_result(throttled_share)

