"""Counting and progress lines: the DoFns' side (the launcher's is in ``launch.py``).

Every count is kept twice:

- as a Beam metric in the namespace :data:`NAMESPACE`, which the launcher
  reads at the end for the summary (and, on runners whose ``run()`` returns at
  once, every few seconds for progress);
- in the run's :class:`Tally`, which a thread prints as a progress line to
  stderr every ``interval`` seconds. The DirectRunner only publishes metrics
  at the end of a bundle, and a single-file read is one bundle: that is why
  the tally exists.

Which tally a DoFn counts into is decided by Beam's per-process shared
objects (:class:`apache_beam.utils.shared.Shared`), whose handle travels in
:class:`ProgressConfig`. Before the job starts, the launcher registers its own
tally under that handle (:func:`launcher_tally`), and starts and stops its
thread around the run: DoFns that run in the launcher's process (the
DirectRunner, Beam's ``LOOPBACK`` environment) find it, so the lines appear on
the console. In any other process (a cluster's workers, the DirectRunner's
``multi_processing`` workers) the first DoFn makes one for that process,
labelled with its pid, which prints to that worker's log while DoFns hold it;
the launcher polls the job's metrics instead.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, TextIO

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

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

#: the counters a progress line shows (the others are only Beam metrics)
TALLIED = (READ, WRITTEN, DEAD)


@dataclass(frozen=True)
class ProgressConfig:
    """How a run reports progress. One per run: ``shared`` names the run's tally."""

    #: seconds between progress lines; 0 turns them off
    interval: float = 5.0
    label: str = "progress"
    #: the handle under which the launcher registers the run's tally for DoFns in its process
    shared: Shared = field(default_factory=Shared, compare=False, repr=False)


def format_progress(label: str, elapsed: float, read: int, written: int, rate: float, dead: int) -> str:
    return (
        f"[{label}] {elapsed:6.1f}s  read {read:,}  written {written:,}  "
        f"({rate:,.0f} records/s)  dead letters {dead:,}"
    )


class Tally:
    """The counts of one run in one process, and the thread that prints them.

    The thread prints only once some DoFn has counted here (:meth:`attach`).
    With ``follow_dofns`` (a worker's tally) the first DoFn starts it and the
    last one stops it; otherwise (the launcher's) :meth:`start` and
    :meth:`stop` do.
    """

    def __init__(
        self, label: str, interval: float, out: Optional[TextIO] = None, follow_dofns: bool = False
    ) -> None:
        self.label = label
        self.interval = interval
        self._out = out
        self._follow_dofns = follow_dofns
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(TALLIED, 0)
        self._dofns = 0
        #: some DoFn has counted into this tally (so its counts are live)
        self.attached = False
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def attach(self) -> None:
        """A DoFn counts here from now on (until :meth:`detach`)."""
        with self._lock:
            self._dofns += 1
            self.attached = True
        if self._follow_dofns:
            self.start()

    def detach(self) -> None:
        with self._lock:
            self._dofns = max(0, self._dofns - 1)
            last = self._dofns == 0
        if last and self._follow_dofns:
            self.stop()

    @property
    def reporting(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (once; an interval of 0 means no thread)."""
        if self.interval <= 0:
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop = threading.Event()
            # The thread holds the tally weakly: a worker's tally goes when its DoFns do.
            self._thread = threading.Thread(
                target=_report, args=(weakref.ref(self), self._stop), name="pipelines-progress", daemon=True
            )
            thread = self._thread
        thread.start()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def print_line(self, elapsed: float, rate_since: tuple[float, int]) -> tuple[float, int]:
        """Print one progress line; returns ``(time, written)`` for the next line's rate."""
        now = time.monotonic()
        counts = self.snapshot()
        last_time, last_written = rate_since
        rate = (counts[WRITTEN] - last_written) / max(now - last_time, 1e-9)
        line = format_progress(self.label, elapsed, counts[READ], counts[WRITTEN], rate, counts[DEAD])
        print(line, file=self._out or sys.stderr, flush=True)
        return now, counts[WRITTEN]


def _report(ref: weakref.ref[Tally], stop: threading.Event) -> None:
    tally = ref()
    if tally is None:
        return
    interval = tally.interval
    started = time.monotonic()
    rate_since = (started, tally.snapshot()[WRITTEN])
    del tally
    while not stop.wait(interval):
        tally = ref()
        if tally is None:
            return
        if tally.attached:
            rate_since = tally.print_line(time.monotonic() - started, rate_since)
        del tally


def launcher_tally(config: ProgressConfig, out: Optional[TextIO] = None) -> Tally:
    """The run's tally in the launcher, registered under ``config.shared`` so that DoFns
    of this process count into it. Keep it for the run (Beam's Shared holds it weakly)."""
    return config.shared.acquire(lambda: Tally(config.label, config.interval, out))


def process_tally(config: ProgressConfig) -> Tally:
    """The tally of this process for a DoFn being set up, attached: the launcher's,
    or else one of this worker process's own (see the module doc)."""
    tally: Tally = config.shared.acquire(
        lambda: Tally(f"{config.label} pid={os.getpid()}", config.interval, follow_dofns=True)
    )
    tally.attach()
    return tally


class Counter:
    """A Beam counter that also feeds a tally (for the :data:`TALLIED` names)."""

    def __init__(self, name: str, tally: Optional[Tally] = None) -> None:
        self.name = name
        self._metric = Metrics.counter(NAMESPACE, name)
        self._tally = tally if name in TALLIED else None

    def inc(self, amount: int = 1) -> None:
        self._metric.inc(amount)
        if self._tally is not None:
            self._tally.add(self.name, amount)


class CodeCounters:
    """``total`` (if any) plus ``<prefix><code>``, created on first use."""

    def __init__(self, prefix: str = DEAD_PREFIX, total: Optional[str] = DEAD,
                 tally: Optional[Tally] = None) -> None:
        self._prefix = prefix
        self._tally = tally
        self._total = Counter(total, tally) if total else None
        self._by_code: dict[str, Counter] = {}

    def inc(self, code: str, amount: int = 1) -> None:
        if self._total is not None:
            self._total.inc(amount)
        counter = self._by_code.get(code)
        if counter is None:
            counter = self._by_code[code] = Counter(self._prefix + code, self._tally)
        counter.inc(amount)


class CountingFn(beam.DoFn):
    """A DoFn that counts: from setup to teardown it holds its process's tally
    (:func:`process_tally`), which its counters feed."""

    def __init__(self, progress: ProgressConfig) -> None:
        self.progress = progress
        self._tally: Optional[Tally] = None

    def setup(self) -> None:
        self._tally = process_tally(self.progress)

    def teardown(self) -> None:
        if self._tally is not None:
            self._tally.detach()
            self._tally = None

    def counter(self, name: str) -> Counter:
        return Counter(name, self._tally)

    def code_counters(self, prefix: str = DEAD_PREFIX, total: Optional[str] = DEAD) -> CodeCounters:
        return CodeCounters(prefix, total, self._tally)


class CountFn(CountingFn):
    """Counts elements (written receipts, or dead letters by error code).

    ``kind`` is ``"written"`` (nothing is emitted) or ``"dead"`` (the dead
    letter is passed on).
    """

    def __init__(self, kind: str, progress: ProgressConfig) -> None:
        if kind not in ("written", "dead"):
            raise ValueError(kind)
        super().__init__(progress)
        self.kind = kind
        self._written: Optional[Counter] = None
        self._dead: Optional[CodeCounters] = None

    def setup(self) -> None:
        super().setup()
        if self.kind == "written":
            self._written = self.counter(WRITTEN)
        else:
            self._dead = self.code_counters()

    def process(self, element: Any) -> Iterable[Any]:
        if self._written is not None:
            self._written.inc()
            return
        assert self._dead is not None
        self._dead.inc(element.error_code)
        yield element
