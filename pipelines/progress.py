"""Counting and progress reporting for the pipelines.

Every count is kept twice:

- as a Beam metric in the namespace :data:`NAMESPACE`, which the launcher
  queries at the end for the summary (and, on runners whose ``run()`` returns
  at once, every few seconds for progress);
- in a process-wide tally read by a reporter thread that prints a progress
  line to stderr every ``interval`` seconds. It runs in the process that
  executes the DoFns: on the DirectRunner (and with Beam's ``LOOPBACK``
  environment) that is the launcher itself, so the lines appear on the
  console; on a cluster they go to the workers' logs, and the launcher polls
  the metrics instead.

The DirectRunner only publishes metrics at the end of a bundle, and a
single-file read is one bundle: that is why the tally exists.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, TextIO

import apache_beam as beam
from apache_beam.metrics import Metrics

NAMESPACE = "beam_kinesis_sink.pipelines"

READ = "records_read"
WRITTEN = "records_written"
DEAD = "dead_letters"
#: one counter per error code: dead_letters_<code>
DEAD_PREFIX = "dead_letters_"
FILES = "files_read"
FILES_UNREADABLE = "files_unreadable"
BLANK_LINES = "blank_lines_skipped"
#: records per writer schema (Avro input): schema_<fingerprint as 16 hex digits>
SCHEMA_PREFIX = "schema_"
REPLAYED = "records_replayed"
NOT_REPLAYABLE_PREFIX = "not_replayable_"

#: set by the launcher so that worker processes it spawns can tell they are not it
LAUNCHER_PID_ENV = "BEAM_KINESIS_SINK_LAUNCHER_PID"


@dataclass(frozen=True)
class ProgressConfig:
    #: seconds between progress lines; 0 turns them off
    interval: float = 5.0
    label: str = "progress"


class Tally:
    """Process-wide counts and the reporter thread that prints them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {READ: 0, WRITTEN: 0, DEAD: 0}
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self.lines_printed = 0

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        self.stop()
        with self._lock:
            self._counts = {READ: 0, WRITTEN: 0, DEAD: 0}
        self.lines_printed = 0

    @property
    def reporting(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, config: ProgressConfig, out: Optional[TextIO] = None) -> None:
        """Start the reporter once per process (later calls do nothing)."""
        if config.interval <= 0:
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop = threading.Event()
            thread = threading.Thread(
                target=self._run,
                args=(config, out, self._stop),
                name="pipelines-progress",
                daemon=True,
            )
            self._thread = thread
        thread.start()

    def stop(self) -> None:
        thread = self._thread
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._thread = None

    def _run(self, config: ProgressConfig, out: Optional[TextIO], stop: threading.Event) -> None:
        started = last_time = time.monotonic()
        last_written = self.snapshot()[WRITTEN]
        prefix = config.label
        launcher = os.environ.get(LAUNCHER_PID_ENV)
        if launcher and launcher != str(os.getpid()):
            prefix = f"{prefix} pid={os.getpid()}"
        while not stop.wait(config.interval):
            now = time.monotonic()
            counts = self.snapshot()
            rate = (counts[WRITTEN] - last_written) / max(now - last_time, 1e-9)
            last_time, last_written = now, counts[WRITTEN]
            print(
                format_progress(prefix, now - started, counts[READ], counts[WRITTEN], rate, counts[DEAD]),
                file=out or sys.stderr,
                flush=True,
            )
            self.lines_printed += 1


#: the tally of this process
TALLY = Tally()


def format_progress(label: str, elapsed: float, read: int, written: int, rate: float, dead: int) -> str:
    return (
        f"[{label}] {elapsed:6.1f}s  read {read:,}  written {written:,}  "
        f"({rate:,.0f} records/s)  dead letters {dead:,}"
    )


class Counter:
    """A Beam counter that also feeds the process tally (for READ/WRITTEN/DEAD)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._metric = Metrics.counter(NAMESPACE, name)
        self._tallied = name in (READ, WRITTEN, DEAD)

    def inc(self, amount: int = 1) -> None:
        self._metric.inc(amount)
        if self._tallied:
            TALLY.add(self.name, amount)


class CodeCounters:
    """``dead_letters`` plus ``dead_letters_<code>``, created on first use."""

    def __init__(self, prefix: str = DEAD_PREFIX, total: Optional[str] = DEAD) -> None:
        self._prefix = prefix
        self._total = Counter(total) if total else None
        self._by_code: dict[str, Counter] = {}

    def inc(self, code: str, amount: int = 1) -> None:
        if self._total is not None:
            self._total.inc(amount)
        counter = self._by_code.get(code)
        if counter is None:
            counter = self._by_code[code] = Counter(self._prefix + code)
        counter.inc(amount)


class CountFn(beam.DoFn):
    """Counts elements (written receipts, or dead letters by error code).

    ``kind`` is ``"written"`` (nothing is emitted) or ``"dead"`` (the dead
    letter is passed on).
    """

    def __init__(self, kind: str, progress: ProgressConfig) -> None:
        if kind not in ("written", "dead"):
            raise ValueError(kind)
        self.kind = kind
        self.progress = progress
        self._written: Optional[Counter] = None
        self._dead: Optional[CodeCounters] = None

    def setup(self) -> None:
        TALLY.start(self.progress)
        if self.kind == "written":
            self._written = Counter(WRITTEN)
        else:
            self._dead = CodeCounters()

    def process(self, element: Any) -> Iterable[Any]:
        if self._written is not None:
            self._written.inc()
            return
        assert self._dead is not None
        self._dead.inc(element.error_code)
        yield element


# --------------------------------------------------------------------------
# The launcher's side


def query_counters(result: Any) -> dict[str, int]:
    """Every counter of :data:`NAMESPACE`: committed values, else attempted."""
    from apache_beam.metrics.metric import MetricsFilter

    # PortableRunner's PipelineResult.metrics() caches its first answer: a query
    # while the job runs (progress lines) would freeze the counts the summary
    # reads at the end (seen on Flink: all zeros, exit code 0).
    if getattr(result, "_metrics", None) is not None and hasattr(result, "_job_service"):
        result._metrics = None

    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    except Exception:  # a runner without metrics support
        return {}
    values: dict[str, int] = {}
    for counter in counters:
        value = None
        try:
            value = counter.committed
        except Exception:
            value = None
        if value is None:
            value = counter.attempted
        name = counter.key.metric.name
        values[name] = values.get(name, 0) + int(value or 0)
    return values


def wait_with_progress(
    result: Any,
    config: ProgressConfig,
    out: Optional[TextIO] = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Wait for ``result``; while it runs (runners whose ``run()`` returns at
    once), print progress from its metrics, unless the reporter thread of
    this process already prints it. Returns the final state."""
    from apache_beam.runners.runner import PipelineState

    started = last_time = time.monotonic()
    last_written = 0
    next_line = started + config.interval
    while not PipelineState.is_terminal(result.state):
        sleep(0.25)
        now = time.monotonic()
        if config.interval > 0 and now >= next_line and not TALLY.reporting:
            counts = query_counters(result)
            written = counts.get(WRITTEN, 0)
            rate = (written - last_written) / max(now - last_time, 1e-9)
            last_time, last_written = now, written
            print(
                format_progress(
                    config.label, now - started, counts.get(READ, 0), written, rate, counts.get(DEAD, 0)
                ),
                file=out or sys.stderr,
                flush=True,
            )
            next_line = now + config.interval
    return result.wait_until_finish()
