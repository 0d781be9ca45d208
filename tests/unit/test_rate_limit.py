from beam_kinesis_sink.rate_limit import RateLimitConfig, RateLimiter, TokenBucket


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_token_bucket_refills_at_rate_up_to_capacity():
    clock = FakeClock()
    bucket = TokenBucket(rate=100, capacity=20, clock=clock)
    assert bucket.available() == 20
    bucket.take(20)
    assert bucket.available() == 0
    assert bucket.wait_time(10) == 0.1
    clock.now = 0.05
    assert bucket.available() == 5
    clock.now = 10
    assert bucket.available() == 20  # capped
    bucket.take(50)  # a debt is allowed
    assert bucket.available() == -30
    assert abs(bucket.wait_time(20) - 0.5) < 1e-9


def test_aimd_decreases_on_throttle_and_recovers_to_nominal():
    clock = FakeClock()
    limiter = RateLimiter(RateLimitConfig(records_per_second=1000, decrease_factor=0.5,
                                          increase_fraction=0.1), clock)
    shard = limiter.shard("s")
    limiter.on_result("s", 1.0)  # a wholly throttled request halves the rate
    assert shard.factor == 0.5
    assert shard.records.rate == 500
    limiter.on_result("s", 1.0)
    assert shard.factor == 0.25
    for _ in range(100):
        limiter.on_result("s", 0.0)
    assert shard.factor == 1.0  # capped at max_rate_factor
    assert shard.records.rate == 1000


def test_decrease_is_proportional_to_the_throttled_share():
    limiter = RateLimiter(RateLimitConfig(decrease_factor=0.5, min_decrease=0.05), FakeClock())
    shard = limiter.shard("s")
    limiter.on_result("s", 0.2)  # 20% throttled: 20% slower
    assert abs(shard.factor - 0.8) < 1e-9
    limiter.on_result("s", 0.01)  # a trace of throttling still costs min_decrease
    assert abs(shard.factor - 0.8 * 0.95) < 1e-9
    limiter.on_result("s", 0.9)  # never below decrease_factor in one step
    assert abs(shard.factor - 0.8 * 0.95 * 0.5) < 1e-9


def test_rate_never_falls_below_the_floor():
    limiter = RateLimiter(RateLimitConfig(min_rate_fraction=0.05), FakeClock())
    for _ in range(100):
        limiter.on_result("s", 1.0)
    assert limiter.shard("s").factor == 0.05


def test_sustained_rate_matches_config():
    clock = FakeClock()
    limiter = RateLimiter(RateLimitConfig(records_per_second=1000), clock)
    sent = 0
    while clock.now < 10:
        wait = limiter.wait_time("s", 100, 100)
        if wait > 0:
            clock.now += wait
            continue
        limiter.acquire("s", 100, 100)
        sent += 100
    # 10 s at 1000/s plus the initial burst (burst_seconds worth).
    burst = RateLimitConfig().burst_seconds * 1000
    assert 10_000 <= sent <= 10_000 + burst + 100


def test_global_cap_limits_across_shards():
    clock = FakeClock()
    limiter = RateLimiter(RateLimitConfig(enabled=False), clock, max_records_per_second=50)
    assert limiter.budget("a") == (10, None)
    limiter.acquire("a", 10, 0)
    assert limiter.budget("b") == (0, None)
    assert limiter.wait_time("b", 10, 0) == 0.2
