"""Every metric the sink reports, in one place.

All Beam metrics live in the namespace ``beam_kinesis_sink``. The writer
engine reports through the small :class:`MetricsSink` interface so that it
can run (and be tested) outside Beam; :class:`BeamMetrics` forwards to Beam.
Metrics are only ever updated from the DoFn's own thread.
"""

from __future__ import annotations

from collections import Counter
from typing import Dict

NAMESPACE = "beam_kinesis_sink"

RECORDS_WRITTEN = "records_written"
BYTES_WRITTEN = "bytes_written"
PUT_RECORDS_CALLS = "put_records_calls"
PUT_RECORDS_FAILED_CALLS = "put_records_failed_calls"
RECORDS_RETRIED = "records_retried"
RECORDS_THROTTLED = "records_throttled"
DEAD_LETTERS = "dead_letters"
#: one counter per error code: dead_letters_<ErrorCode>
DEAD_LETTERS_PREFIX = "dead_letters_"
BATCH_SIZE = "batch_size_records"
BATCH_BYTES = "batch_size_bytes"
SHARD_MAP_REFRESHES = "shard_map_refreshes"
#: aggregates sent again because they landed on a shard whose range does not hold them all
AGGREGATES_RESENT = "aggregates_resent"


class MetricsSink:
    """What the writer reports. The base class records nothing."""

    def inc(self, name: str, value: int = 1) -> None:  # pragma: no cover - interface
        pass

    def dist(self, name: str, value: int) -> None:  # pragma: no cover - interface
        pass

    def dead_letter(self, error_code: str) -> None:
        self.inc(DEAD_LETTERS)
        self.inc(DEAD_LETTERS_PREFIX + error_code)


class CountingMetrics(MetricsSink):
    """Keeps counts in memory: for tests, benchmarks and the demo."""

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self.distributions: Dict[str, list[int]] = {}

    def inc(self, name: str, value: int = 1) -> None:
        self.counters[name] += value

    def dist(self, name: str, value: int) -> None:
        self.distributions.setdefault(name, []).append(value)


class BeamMetrics(MetricsSink):
    """Forwards to ``apache_beam.metrics.Metrics`` under :data:`NAMESPACE`."""

    def __init__(self) -> None:
        self._counters: dict = {}
        self._dists: dict = {}

    def inc(self, name: str, value: int = 1) -> None:
        counter = self._counters.get(name)
        if counter is None:
            from apache_beam.metrics import Metrics

            counter = self._counters[name] = Metrics.counter(NAMESPACE, name)
        counter.inc(value)

    def dist(self, name: str, value: int) -> None:
        d = self._dists.get(name)
        if d is None:
            from apache_beam.metrics import Metrics

            d = self._dists[name] = Metrics.distribution(NAMESPACE, name)
        d.update(value)
