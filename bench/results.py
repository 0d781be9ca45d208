"""The shape of every result: ``{"value", "baseline", "raw", "goal", "met"}``,
or an explicit skip with its reason.

``value`` is the figure the key names (mostly a ratio against ``baseline``,
measured in the same run); ``raw`` holds the measured figures behind it,
with ``value_is`` and ``baseline_is`` saying what the two numbers are.
A goal is ``{"op": ">=" | "<=", "target": x}``, and may name further
conditions on raw figures (``also``), all of which must hold for ``met``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

Entry = Dict[str, Any]


@dataclass(frozen=True)
class Goal:
    op: str
    target: float

    def holds(self, value: Optional[float]) -> bool:
        if value is None or not math.isfinite(value):
            return False
        return value >= self.target if self.op == ">=" else value <= self.target

    def to_dict(self) -> Dict[str, Any]:
        return {"op": self.op, "target": self.target}

    def __str__(self) -> str:
        return f"{'≥' if self.op == '>=' else '≤'} {self.target:g}"


def at_least(target: float) -> Goal:
    return Goal(">=", target)


def at_most(target: float) -> Goal:
    return Goal("<=", target)


#: every goal the issue sets, by key
GOALS: Dict[str, Goal] = {
    "overhead_ratio": at_least(0.75),
    "vs_bare_loop": at_least(1.1),
    "latency_hiding_ratio": at_least(0.9),
    "saturation": at_least(0.95),
    "throttled_per_record": at_most(0.02),
    "adaptive_saturation": at_least(0.9),
    "request_efficiency": at_most(1.02),
    "peak_rss_mb": at_most(100.0),
    "aggregation": at_least(7_500.0),
}
#: goals on raw figures that must hold too
ALSO: Dict[str, Dict[str, Goal]] = {"adaptive_saturation": {"throttled_per_record": at_most(0.1)}}


def entry(
    value: float,
    baseline: Optional[float],
    raw: Mapping[str, Any],
    goal: Optional[Goal] = None,
    also: Optional[Mapping[str, Goal]] = None,
) -> Entry:
    """A measured key; ``also`` names raw figures with goals of their own."""
    result: Entry = {"value": _round(value), "baseline": _round(baseline), "raw": dict(raw)}
    if goal is not None:
        result["goal"] = goal.to_dict()
        met = goal.holds(value)
        if also:
            result["goal"]["also"] = {name: g.to_dict() for name, g in also.items()}
            met = met and all(g.holds(raw.get(name)) for name, g in also.items())
        result["met"] = met
    return result


def skipped(reason: str, goal: Optional[Goal] = None, raw: Optional[Mapping[str, Any]] = None) -> Entry:
    """A key that was not measured, and why."""
    result: Entry = {"value": None, "baseline": None, "raw": dict(raw or {}), "skipped": reason}
    if goal is not None:
        result["goal"] = goal.to_dict()
        result["met"] = None
    return result


def failed(error: BaseException, goal: Optional[Goal] = None) -> Entry:
    """A key whose measurement raised: a skip whose reason starts with ``failed:``."""
    return skipped(f"failed: {type(error).__name__}: {error}", goal)


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def _round(value: Optional[float]) -> Optional[float]:
    if value is None:
        return None
    if not math.isfinite(value):
        return None
    return round(value, 4) if abs(value) < 100 else round(value, 1)
