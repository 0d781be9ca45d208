"""kinesalite behind the fault front, throttling each shard like the service,
and what a writer achieved there, read from the front.

The front (its own process) keeps, per shard, the ``time.monotonic()`` and
count of every batch the upstream accepted: its timeline. Monotonic time is
system-wide on Linux, so the bench reads the write phase from it, from the
first to the last accepted record, whatever the writer spent before (a
pipeline's construction) or after.

The front's buckets start full (one second's worth, :data:`BURST_S`), and a
writer a little above the limit spends that second's worth over its whole
run, so records/s ÷ the provisioned rate passes 1.0 in a short run.
:func:`admissible` is what the front could have admitted over the phase:
the provisioned rate times the phase, plus the full buckets it started
with. Accepted ÷ admissible is 1.0 for a writer always at the limit,
whatever the length of its run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

from beam_kinesis_sink.testing.fault_front import FaultConfig, RemoteFaultFront, start_fault_front_process
from beam_kinesis_sink.testing.fault_front.stats import Timeline
from beam_kinesis_sink.testing.local_servers import LocalKinesis, make_client, start_kinesalite

#: the front's bucket capacity, in seconds of its rate (FaultConfig.burst_seconds)
BURST_S = 1.0
SHARD_RECORDS_PER_S = 1000.0
SHARD_BYTES_PER_S = 1024.0 * 1024.0


@dataclass(frozen=True)
class WritePhase:
    """What the front accepted between its first and last accepted batch."""

    accepted: int
    first: float
    last: float
    #: accepted records/s from ``window_start`` on (the whole phase if it starts at ``first``)
    records_per_s: float
    #: where the measured window starts (monotonic), and the records accepted from then on
    window_start: float
    window_accepted: int

    @property
    def seconds(self) -> float:
        return self.last - self.first


def shards_rate(timeline: Timeline, start: float) -> float:
    """Accepted records/s from ``start`` on, summed over the shards. Per shard:
    the records of its batches after its first one from ``start`` on, over
    the time from that first batch to its last (the first batch spent tokens
    that had accrued before)."""
    total = 0.0
    for events in timeline.values():
        inside = sorted((t, n) for t, n in events if t >= start)
        if len(inside) >= 2 and inside[-1][0] > inside[0][0]:
            total += sum(n for _, n in inside[1:]) / (inside[-1][0] - inside[0][0])
    return total


def write_phase(timeline: Timeline, skip_s: float = 0.0) -> WritePhase:
    """The write phase read from a front's timeline; its rate is taken after
    its first ``skip_s`` seconds (over the whole phase if the phase is not
    twice that long)."""
    times = [t for events in timeline.values() for t, _ in events]
    if not times:
        return WritePhase(0, 0.0, 0.0, 0.0, 0.0, 0)
    first, last = min(times), max(times)
    accepted = sum(n for events in timeline.values() for _, n in events)
    start = first + skip_s if skip_s and last - first > 2 * skip_s else first
    counted = sum(n for events in timeline.values() for t, n in events if t >= start)
    return WritePhase(accepted, first, last, shards_rate(timeline, start), start, counted)


def admissible(phase: WritePhase, provisioned_per_s: float) -> float:
    """The most records the front could have admitted from the phase's first
    accepted record to its last: full buckets at the start, then the rate."""
    return provisioned_per_s * (phase.seconds + BURST_S)


class StatsSampler:
    """Polls the front's counts every ``interval_s`` while a writer runs, so
    that the throttled attempts of a window can be told (the timeline holds
    only accepted batches)."""

    def __init__(self, front: RemoteFaultFront, interval_s: float = 0.2) -> None:
        self.front = front
        self.interval_s = interval_s
        self.samples: List[Tuple[float, int, int]] = []  # (monotonic, throttled, accepted)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="front-sampler", daemon=True)

    def _sample(self) -> None:
        stats = self.front.stats()
        self.samples.append((time.monotonic(), stats.records_throttled, stats.records_accepted))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> StatsSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def throttled_at(self, when: float) -> int:
        """Throttled attempts counted by ``when`` (the last sample before it)."""
        before = [throttled for t, throttled, _ in self.samples if t <= when]
        return before[-1] if before else 0


class ThrottlingFront:
    """kinesalite (in memory) with the fault front before it, in its own
    process, throttling every shard (records/s and 1 MiB/s)."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.server: Optional[LocalKinesis] = None
        self.front: Optional[RemoteFaultFront] = None
        self._streams = 0
        self.server = start_kinesalite(shard_limit=1000)
        config = FaultConfig(throttle=True, shard_records_per_second=SHARD_RECORDS_PER_S,
                             shard_bytes_per_second=SHARD_BYTES_PER_S, burst_seconds=BURST_S,
                             record_timeline=True)
        try:
            self.front = start_fault_front_process(self.server.endpoint_url, config)
        except BaseException:
            self.close()
            raise
        log(f"    kinesalite at {self.server.endpoint_url}, fault front at {self.front.endpoint_url}")

    @property
    def endpoint_url(self) -> str:
        assert self.front is not None
        return self.front.endpoint_url

    def new_stream(self, prefix: str, shards: int = 4,
                   shard_records_per_s: float = SHARD_RECORDS_PER_S) -> str:
        """A fresh stream, the front's counts and buckets reset, throttling at the given rate."""
        assert self.server is not None and self.front is not None
        self._streams += 1
        name = f"{prefix}-{self._streams}"
        self.server.create_stream(name, shards=shards)
        self.front.configure(shard_records_per_second=shard_records_per_s)
        self.front.reset()
        return name

    def client(self, **config: Any) -> Any:
        return make_client(self.endpoint_url, max_pool_connections=16, **config)

    def close(self) -> None:
        front, self.front = self.front, None
        server, self.server = self.server, None
        try:
            if front is not None:
                front.stop()
        finally:
            if server is not None:
                server.stop()

    def __enter__(self) -> ThrottlingFront:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
