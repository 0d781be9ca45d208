"""Seeded fault drawing: which request fails as a whole, which records fail
one by one, how much latency is added; and the answer each fault gives.

Every draw comes from one ``random.Random(seed)`` per front (:class:`Dice`),
in the order requests arrive: with one client thread and the same seed, the
same requests and records fail.
"""

from __future__ import annotations

import random
import threading
from typing import NamedTuple, Optional

from beam_kinesis_sink.testing.fault_front.config import FaultConfig
from beam_kinesis_sink.testing.fault_front.stats import StatsRecorder
from beam_kinesis_sink.testing.fault_front.wire import Response, error_response

HTTP_500 = "500"
HTTP_503 = "503"
DROP = "drop"
ERROR = "error"
#: the faults that may happen after forwarding (written, yet failed)
_MAY_COME_AFTER = (HTTP_500, HTTP_503, DROP)


class Fault(NamedTuple):
    """A whole-request fault: its kind, and whether it comes after the
    request was forwarded (the records written, the client told otherwise)."""

    kind: str
    after: bool


class Dice:
    """The front's seeded random numbers, shared by its handler threads."""

    def __init__(self, seed: Optional[int]) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def reseed(self, seed: Optional[int]) -> None:
        with self._lock:
            self._rng = random.Random(seed)

    def draw(self, n: int = 1) -> list[float]:
        with self._lock:
            rnd = self._rng.random
            return [rnd() for _ in range(n)]

    def uniform(self, low: float, high: float) -> float:
        with self._lock:
            return self._rng.uniform(low, high)


def draw_latency(dice: Dice, cfg: FaultConfig) -> float:
    """Seconds to wait before handling a request (uniform in the configured range)."""
    if cfg.latency_max_s > cfg.latency_min_s:
        return dice.uniform(cfg.latency_min_s, cfg.latency_max_s)
    return cfg.latency_min_s


def draw_request_fault(dice: Dice, cfg: FaultConfig) -> Optional[Fault]:
    """At most one whole-request fault, by the configured rates."""
    if not cfg.any_request_fault:
        return None
    u, v = dice.draw(2)
    edge = 0.0
    for kind, rate in (
        (HTTP_500, cfg.http_500_rate),
        (HTTP_503, cfg.http_503_rate),
        (DROP, cfg.drop_connection_rate),
        (ERROR, cfg.error_rate),
    ):
        edge += rate
        if u < edge:
            return Fault(kind, kind in _MAY_COME_AFTER and v < cfg.fail_after_forward_fraction)
    return None


def draw_record_failures(dice: Dice, cfg: FaultConfig, n: int) -> list[bool]:
    """For each of ``n`` records, whether it gets an injected InternalFailure."""
    rate = cfg.record_internal_failure_rate
    if rate <= 0:
        return [False] * n
    return [u < rate for u in dice.draw(n)]


def fault_response(
    fault: Fault, cfg: FaultConfig, stats: StatsRecorder, written: int = 0
) -> Optional[Response]:
    """Count the fault and give its answer; None: drop the connection.
    ``written``: the records the upstream accepted before a fault after forwarding."""
    if fault.kind == ERROR:
        stats.add(errors_injected=1)
        return error_response(cfg.error_status, cfg.error_code, cfg.error_message)
    after = {"failures_after_forward": 1, "records_written_but_failed": written} if fault.after else {}
    if fault.kind == HTTP_500:
        stats.add(http_500_injected=1, **after)
        return error_response(500, cfg.http_500_error_code, "Internal service failure.")
    if fault.kind == HTTP_503:
        stats.add(http_503_injected=1, **after)
        return error_response(503, cfg.http_503_error_code, "Service Unavailable. Please retry.")
    stats.add(connections_dropped=1, **after)
    return None
