"""The writer engine: a short orchestrator of the parts a record passes.

    add ─▶ shard locator ─▶ shard buffers ─▶ dispatch policy ─▶ batcher
        (hash key → shard)   (queue per shard)  (who may send)    (limits, rate limiter)
      ─▶ submitter ─▶ classifier ─▶ retry plan ─▶ outcomes
        (thread pool)  (answer → verdict)  (requeue or give up)  (receipts, dead letters)

It knows nothing of Beam: the DoFns feed it records and take outcomes, each
with an opaque context (such as the element's window). All bookkeeping runs
in the caller's thread; only the PutRecords calls run on the pool.

Guarantees:

* every record added ends as exactly one outcome: a receipt or a dead letter;
* at most ``max_in_flight`` calls in flight, at most one per shard;
* ``add`` blocks (back-pressure) while more than ``max_buffered_records`` or
  ``max_buffered_bytes`` are held: no queue grows without bound;
* ``flush`` returns by its deadline plus at most one call's grace period.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional, Tuple

from beam_kinesis_sink import metrics as m
from beam_kinesis_sink.batcher import Batcher
from beam_kinesis_sink.classifier import Verdict, judge_answer, judge_failure
from beam_kinesis_sink.client import stream_arguments
from beam_kinesis_sink.convert import Rejection
from beam_kinesis_sink.dispatch import OneCallPerShard
from beam_kinesis_sink.errors import FatalStreamError
from beam_kinesis_sink.limits import Limits
from beam_kinesis_sink.messages import redact
from beam_kinesis_sink.outcomes import Outcome, Outcomes
from beam_kinesis_sink.rate_limit import RateLimitConfig, RateLimiter
from beam_kinesis_sink.records import ErrorCode, KinesisRecord
from beam_kinesis_sink.retry import Backoff, Failure, RetryPolicy, plan_retries
from beam_kinesis_sink.shard_buffers import Batch, Item, ShardBuffers, ShardQueue
from beam_kinesis_sink.shard_locator import ShardLocator
from beam_kinesis_sink.sharding import ShardMap, hash_key_of
from beam_kinesis_sink.submitter import Completed, Submitter

#: how long the pump waits when nothing tells it when to look again
_IDLE_WAIT = 0.05


@dataclass(frozen=True)
class WriterOptions:
    limits: Limits = Limits()
    retry: RetryPolicy = RetryPolicy()
    rate_limit: RateLimitConfig = RateLimitConfig()
    #: cap on records/s across all shards of this writer (None: no cap)
    max_records_per_second: Optional[float] = None
    max_in_flight: int = 8
    max_buffered_records: int = 20_000
    max_buffered_bytes: int = 64 * 1024 * 1024
    #: "dead_letter" (default) or "fail"
    on_fatal_error: str = "dead_letter"
    shard_map_refresh_seconds: float = 300.0
    #: never refresh the shard map more often than this
    shard_map_min_refresh_seconds: float = 5.0
    #: how long to wait for an in-flight call after the flush deadline
    in_flight_grace_seconds: float = 35.0

    def __post_init__(self) -> None:
        if self.on_fatal_error not in ("dead_letter", "fail"):
            raise ValueError(f"on_fatal_error must be 'dead_letter' or 'fail', got {self.on_fatal_error!r}")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        if self.max_buffered_records < self.limits.max_records_per_request:
            raise ValueError("max_buffered_records must hold at least one full request")


class KinesisWriter:
    def __init__(
        self,
        client: Any,
        stream: str,
        options: WriterOptions = WriterOptions(),
        *,
        metrics: Optional[m.MetricsSink] = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rand: Optional[Callable[[], float]] = None,
        secrets: Tuple[Optional[str], ...] = (),
        redactor: Optional[Callable[[str], str]] = None,
    ) -> None:
        self.stream = stream
        self.options = options
        self.metrics = metrics or m.MetricsSink()
        self._clock = clock
        self._sleep = sleep
        self._redact = redactor or (lambda text: redact(text, secrets))
        self._backoff = Backoff(options.retry, rand or random.Random().random)
        self.rate_limiter = RateLimiter(options.rate_limit, clock, options.max_records_per_second)
        self.locator = ShardLocator(
            client, stream, stream_arguments(stream), clock,
            refresh_seconds=options.shard_map_refresh_seconds,
            min_refresh_seconds=options.shard_map_min_refresh_seconds,
            fail_on_fatal=options.on_fatal_error == "fail",
            redact=self._redact,
            metrics=self.metrics,
        )
        self.buffers = ShardBuffers()
        self._dispatch = OneCallPerShard(options.max_in_flight)
        self._batcher = Batcher(options.limits, self.rate_limiter)
        self._submitter = Submitter(client, stream_arguments(stream), options.max_in_flight)
        self._outcomes = Outcomes(stream, self.metrics, wall_clock, self._redact)
        #: the clock time at which some queue may send without a new record
        #: (a backoff or a wait for tokens ends); see _after_add
        self._wake_at = float("inf")

    # ------------------------------------------------------------------ API
    def locate(self, record: KinesisRecord) -> Tuple[int, str]:
        """The hash key of ``record`` and the shard the current map sends it to."""
        self._refresh_map()
        hash_key = hash_key_of(record.partition_key, record.explicit_hash_key)
        return hash_key, self.locator.shard_of(hash_key)

    def add(
        self,
        record: KinesisRecord,
        size: int,
        context: Any = None,
        element_timestamp_micros: Optional[int] = None,
        *,
        hash_key: Optional[int] = None,
        shard_id: Optional[str] = None,
    ) -> None:
        """Buffer a valid record (see ``convert``). Blocks while buffers are full.

        ``hash_key`` and ``shard_id`` may come from an earlier :meth:`locate`
        (the stateful mode keys its batches by shard); a shard the current
        map does not know is located again.
        """
        self._refresh_map()
        if hash_key is None:
            hash_key = hash_key_of(record.partition_key, record.explicit_hash_key)
        if shard_id is None or not self.locator.knows(shard_id):
            shard_id = self.locator.shard_of(hash_key)
        queue = self.buffers.add(Item(record, size, hash_key, context, element_timestamp_micros), shard_id)
        self._after_add(queue)

    def reject(self, rejection: Rejection, context: Any = None,
               element_timestamp_micros: Optional[int] = None) -> None:
        """Route an element refused before any request to the same outcomes."""
        self._outcomes.rejected(rejection, context, element_timestamp_micros)

    def flush(self, timeout: Optional[float] = None) -> None:
        """Write or dead-letter everything buffered. Returns within ``timeout``
        seconds plus at most one call's grace period."""
        for _ in self.drain(timeout):
            pass

    def drain(self, timeout: Optional[float] = None) -> Iterator[None]:
        """``flush``, step by step: yields whenever outcomes are waiting, so a
        caller can emit receipts while a long drain (e.g. under a rate cap)
        is still under way."""
        deadline = None if timeout is None else self._clock() + timeout
        for _ in self._steps(drain=True, deadline=deadline):
            if len(self._outcomes):
                yield

    def take_outcomes(self) -> List[Outcome]:
        return self._outcomes.take()

    @property
    def pending_outcomes(self) -> int:
        """Outcomes made and not yet taken."""
        return len(self._outcomes)

    @property
    def buffered_records(self) -> int:
        return self.buffers.records

    @property
    def shard_map(self) -> Optional[ShardMap]:
        return self.locator.shard_map

    def reset(self) -> int:
        """Forget everything buffered, in flight or not yet emitted.

        Called at the start of each bundle: if the previous bundle failed
        half-way, the runner retries its elements, so the leftovers of the
        failed attempt must not be written or reported a second time. Calls
        still in flight finish on their own; their results are ignored.
        Returns the number of records forgotten.
        """
        self._submitter.abandon()
        self._outcomes.clear()
        return self.buffers.clear()

    def close(self) -> None:
        self._submitter.close()

    # ----------------------------------------------------------------- pump
    def _after_add(self, queue: ShardQueue) -> None:
        """One look per record: only ``queue`` changed, so unless a call
        completed, a wait ended or the buffers are over their bound, only it
        may have a request to send (a full one)."""
        completed = self._submitter.completed()
        if completed or self._over_bound() or self._clock() >= self._wake_at:
            self._settle_all(completed)
            self._pump(drain=False, deadline=None)
            return
        if queue.in_flight or len(self._submitter) >= self.options.max_in_flight:
            return
        now = self._clock()
        decision = self._batcher.next_batch(queue, now, force=False)
        if decision.batch is not None:
            queue.in_flight = True
            self._send(decision.batch, now)
        elif decision.wake is not None:
            self._wake_at = min(self._wake_at, decision.wake)

    def _refresh_map(self) -> None:
        if self.locator.refresh():
            self.buffers.rebucket(self.locator.shard_of)

    def _over_bound(self) -> bool:
        return self.buffers.over(self.options.max_buffered_records, self.options.max_buffered_bytes)

    def _pump(self, drain: bool, deadline: Optional[float]) -> None:
        for _ in self._steps(drain, deadline):
            pass

    def _steps(self, drain: bool, deadline: Optional[float]) -> Iterator[None]:
        """The pump loop: settle what completed, send what may be sent, wait.
        Yields after each wait for calls or tokens."""
        while True:
            self._settle_all(self._submitter.completed())
            wake = self._send_ready(force=drain or self._over_bound())
            if not drain and not self._over_bound():
                return
            if drain and self.buffers.records == 0:
                return
            now = self._clock()
            if deadline is not None and now >= deadline:
                self._expire()
                return
            wait = _IDLE_WAIT if wake is None else max(0.0, wake - now)
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - now))
            if len(self._submitter):
                self._settle_all(self._submitter.completed(wait=wait))
            elif wait > 0:
                self._sleep(wait)
            yield

    def _send_ready(self, force: bool) -> Optional[float]:
        """Send what may be sent now. Returns when the next send may be possible."""
        now = self._clock()
        wake: Optional[float] = None
        for queue in self._dispatch.sendable(self.buffers.queues(), lambda: len(self._submitter)):
            decision = self._batcher.next_batch(queue, now, force)
            if decision.batch is not None:
                queue.in_flight = True
                self._send(decision.batch, now)
            elif decision.wake is not None:
                wake = decision.wake if wake is None else min(wake, decision.wake)
        self._wake_at = float("inf") if wake is None else wake
        return wake

    def _send(self, batch: Batch, now: float) -> None:
        for item in batch.items:
            item.attempts += 1
            if item.first_attempt is None:
                item.first_attempt = now
        self.metrics.inc(m.PUT_RECORDS_CALLS)
        self.metrics.dist(m.BATCH_SIZE, len(batch.items))
        self.metrics.dist(m.BATCH_BYTES, batch.nbytes)
        self._submitter.submit(batch)

    # ---------------------------------------------------------------- settle
    def _settle_all(self, completed: List[Completed]) -> None:
        for done in completed:
            self._settle(done)

    def _settle(self, done: Completed) -> None:
        """Act on the verdict of one finished call."""
        batch = done.batch
        queue = self.buffers.queue(batch.shard_id)
        queue.in_flight = False
        queue.ready_at = 0.0
        count = len(batch.items)
        if done.error is not None:
            verdict = judge_failure(done.error, count)
        else:
            verdict = judge_answer(done.response, count, batch.shard_id, batch.split)
        self._learn(batch, verdict)
        if verdict.fatal is not None and self.options.on_fatal_error == "fail":
            code, message = verdict.fatal
            raise FatalStreamError(self.stream, code, self._redact(message))
        self._finish(batch, verdict)
        if verdict.split is not None:
            queue.push_splits([[batch.items[i] for i in half] for half in verdict.split])
        if verdict.retry:
            self._retry(batch, [Failure(batch.items[i], code, msg) for i, code, msg in verdict.retry])
        if verdict.map_stale:
            self.locator.mark_stale()
            self._refresh_map()

    def _learn(self, batch: Batch, verdict: Verdict) -> None:
        """Metrics of the call, and feedback for the shard's rate limiter."""
        if verdict.call_failed:
            self.metrics.inc(m.PUT_RECORDS_FAILED_CALLS)
            if not verdict.throttled:
                # The shard did not take these records: the tokens go back, or
                # an outage's retries would wait for tokens of records never sent.
                self.rate_limiter.give_back(batch.shard_id, len(batch.items), batch.nbytes)
        if verdict.throttled:
            self.metrics.inc(m.RECORDS_THROTTLED, verdict.throttled)
        if verdict.feedback is not None:
            self.rate_limiter.on_result(batch.shard_id, verdict.feedback)

    def _finish(self, batch: Batch, verdict: Verdict) -> None:
        """Outcomes for the records this call settled for good."""
        written = [(batch.items[i], shard_id, seq) for i, shard_id, seq in verdict.written]
        for item, _, _ in written:
            self.buffers.release(item)
        self._outcomes.written(written)
        for i, code, message in verdict.dead:
            self._give_up(batch.items[i], code, message, batch.shard_id)

    def _retry(self, batch: Batch, failures: List[Failure]) -> None:
        plan = plan_retries(failures, self._clock(), self.options.retry, self._backoff)
        for item, message in plan.give_up:
            self._give_up(item, item.last_code, message, batch.shard_id)
        if plan.retry:
            self.metrics.inc(m.RECORDS_RETRIED, len(plan.retry))
            self.buffers.queue(batch.shard_id).requeue(plan.retry)

    def _give_up(self, item: Item, code: str, message: str, shard_id: Optional[str]) -> None:
        self.buffers.release(item)
        self._outcomes.gave_up(item, code, message, shard_id)

    def _expire(self) -> None:
        """The flush deadline passed: give in-flight calls a grace period, then
        dead-letter everything still unwritten."""
        grace_end = self._clock() + self.options.in_flight_grace_seconds
        while len(self._submitter) and self._clock() < grace_end:
            self._settle_all(self._submitter.completed(wait=max(0.0, grace_end - self._clock())))
        for batch in self._submitter.abandon():
            self.buffers.queue(batch.shard_id).in_flight = False
            for item in batch.items:
                self._give_up(item, ErrorCode.DEADLINE_EXCEEDED,
                              "a PutRecords call was still in flight at the flush deadline; "
                              "it may have been written (a replay can duplicate it)", batch.shard_id)
        for queue in list(self.buffers.queues()):
            for item in queue.take_all():
                if item.last_code:
                    # It was failing: its own error is the cause (and what a
                    # replay filters on); the deadline only ended its retries.
                    self._give_up(item, item.last_code,
                                  f"{item.last_message} (still failing after {item.attempts} attempts "
                                  "when the flush deadline passed)", queue.shard_id)
                else:
                    self._give_up(item, ErrorCode.DEADLINE_EXCEEDED,
                                  "not written before the flush deadline", queue.shard_id)
