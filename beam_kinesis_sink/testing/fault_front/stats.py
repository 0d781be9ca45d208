"""What the fault front saw and did: :class:`FrontStats` (a snapshot), the
thread-safe :class:`StatsRecorder` behind it, and the per-shard timeline of
accepted records with the rates read from it (:func:`achieved_rates`,
:func:`peak_rates`).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

#: per shard, ``(time.monotonic(), records accepted)`` for every accepted batch
Timeline = dict[str, list[tuple[float, int]]]


@dataclass(frozen=True)
class FrontStats:
    """A snapshot of what the front saw and did. Counts are cumulative since
    the front started or since ``reset_stats()``."""

    #: every proxied HTTP request (admin requests not counted)
    requests: int = 0
    requests_by_operation: dict[str, int] = field(default_factory=dict)
    put_records_calls: int = 0
    put_record_calls: int = 0
    #: records in PutRecords/PutRecord requests, rejected ones included
    records_received: int = 0
    #: records sent upstream
    records_forwarded: int = 0
    #: records of a raised stream the front kept itself, not forwarded (the
    #: upstream cannot store them: see ``fault_front.record_size``)
    records_kept_large: int = 0
    #: records the upstream accepted (got a SequenceNumber), whatever the
    #: client was told afterwards; the records the front kept count too
    records_accepted: int = 0
    records_accepted_by_shard: dict[str, int] = field(default_factory=dict)
    #: data + partition key bytes of the accepted records
    bytes_accepted: int = 0
    #: per-record errors the upstream itself returned
    records_failed_upstream: int = 0
    #: per-record ProvisionedThroughputExceededException from the buckets
    records_throttled: int = 0
    records_throttled_by_shard: dict[str, int] = field(default_factory=dict)
    #: PutRecord (single) requests throttled as a whole
    requests_throttled: int = 0
    #: per-record InternalFailure entries injected
    records_internal_failure: int = 0
    #: whole-request faults injected (before or after forwarding)
    http_500_injected: int = 0
    http_503_injected: int = 0
    connections_dropped: int = 0
    errors_injected: int = 0
    #: how many of the 500/503/drops above came after forwarding
    failures_after_forward: int = 0
    #: records written upstream whose response the client never saw (the
    #: duplicates a retrying client will produce)
    records_written_but_failed: int = 0
    #: requests rejected by the limits, and why
    validation_rejections: int = 0
    rejections_by_reason: dict[str, int] = field(default_factory=dict)
    access_denied: int = 0
    resource_not_found: int = 0
    latency_injected_requests: int = 0
    latency_injected_seconds: float = 0.0
    #: non-2xx upstream answers passed through
    upstream_error_responses: int = 0
    #: upstream unreachable (the client got HTTP 502)
    upstream_connection_errors: int = 0
    #: PutRecords bodies the front could not read (not JSON): forwarded as is
    unparsed_requests: int = 0
    #: upstream PutRecords answers whose entry count did not match
    merge_mismatches: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FrontStats:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


_COUNTER_FIELDS = tuple(
    f.name for f in dataclasses.fields(FrontStats) if f.type in ("int", "float", int, float)
)
_MAP_FIELDS = tuple(f.name for f in dataclasses.fields(FrontStats) if f.name not in _COUNTER_FIELDS)


class StatsRecorder:
    """The front's running counts, shared by its handler threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._counts: Counter[str] = Counter()
            self._seconds = 0.0
            self._maps: dict[str, Counter[str]] = {name: Counter() for name in _MAP_FIELDS}
            self._timeline: defaultdict[str, list[tuple[float, int]]] = defaultdict(list)

    def add(self, **counts: int) -> None:
        with self._lock:
            self._counts.update(counts)

    def request(self, operation: str) -> None:
        with self._lock:
            self._counts["requests"] += 1
            self._maps["requests_by_operation"][operation or "?"] += 1

    def latency(self, seconds: float) -> None:
        with self._lock:
            self._counts["latency_injected_requests"] += 1
            self._seconds += seconds

    def rejection(self, reason: str) -> None:
        with self._lock:
            self._counts["validation_rejections"] += 1
            self._maps["rejections_by_reason"][reason] += 1

    def held_back(self, throttled_by_shard: Mapping[str, int], internal_failures: int) -> None:
        """Records the front answered itself: throttled, or failed on purpose."""
        with self._lock:
            self._counts["records_throttled"] += sum(throttled_by_shard.values())
            self._counts["records_internal_failure"] += internal_failures
            self._maps["records_throttled_by_shard"].update(throttled_by_shard)

    def accepted(
        self,
        by_shard: Mapping[str, int],
        nbytes: int,
        failed_upstream: int,
        at: float,
        timeline: bool,
    ) -> None:
        """What the upstream accepted of one forwarded request."""
        with self._lock:
            self._counts["records_accepted"] += sum(by_shard.values())
            self._counts["bytes_accepted"] += nbytes
            self._counts["records_failed_upstream"] += failed_upstream
            self._maps["records_accepted_by_shard"].update(by_shard)
            if timeline:
                for shard_id, count in by_shard.items():
                    self._timeline[shard_id].append((at, count))

    def snapshot(self) -> FrontStats:
        with self._lock:
            values: dict[str, Any] = {name: self._counts.get(name, 0) for name in _COUNTER_FIELDS}
            values["latency_injected_seconds"] = self._seconds
            for name in _MAP_FIELDS:
                values[name] = dict(self._maps[name])
        return FrontStats(**values)

    def timeline(self) -> Timeline:
        with self._lock:
            return {shard: list(events) for shard, events in self._timeline.items()}


class RatesFromTimeline:
    """``achieved_rates`` and ``peak_rates`` of a front, read from its ``timeline()``."""

    def timeline(self) -> Timeline:
        raise NotImplementedError

    def achieved_rates(self, start: Optional[float] = None, end: Optional[float] = None) -> dict[str, float]:
        return achieved_rates(self.timeline(), start, end)

    def peak_rates(self, window_s: float = 1.0) -> dict[str, int]:
        return peak_rates(self.timeline(), window_s)


def achieved_rates(
    timeline: Mapping[str, Sequence[Sequence[float]]],
    start: Optional[float] = None,
    end: Optional[float] = None,
) -> dict[str, float]:
    """Accepted records per second per shard over [start, end] (default: from
    the first to the last accepted batch of any shard)."""
    times = [event[0] for events in timeline.values() for event in events]
    if not times:
        return {}
    start = min(times) if start is None else start
    end = max(times) if end is None else end
    span = max(end - start, 1e-9)
    return {
        shard: sum(n for t, n in events if start <= t <= end) / span for shard, events in timeline.items()
    }


def peak_rates(timeline: Mapping[str, Sequence[Sequence[float]]], window_s: float = 1.0) -> dict[str, int]:
    """The most records accepted per shard in any window of ``window_s``."""
    peaks: dict[str, int] = {}
    for shard, events in timeline.items():
        ordered = sorted((float(t), int(n)) for t, n in events)
        best = running = 0
        left = 0
        for t, n in ordered:
            running += n
            while ordered[left][0] < t - window_s:
                running -= ordered[left][1]
                left += 1
            best = max(best, running)
        peaks[shard] = best
    return peaks
