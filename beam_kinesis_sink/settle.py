"""Settle: act on the verdict of one finished PutRecords call.

    finished call ─▶ classifier ─▶ verdict ─▶ learn (metrics, the shard's rate limiter)
      ─▶ outcomes (receipts, dead letters) ─▶ split parts, a stale map, retries
         (the retry plan; back to the head of the shard's queue)

A part of the writer engine: :class:`~beam_kinesis_sink.writer.KinesisWriter`
builds one over its own parts and hands it each call that completed, in the
caller's thread.
"""

from __future__ import annotations

from typing import Callable, List, Tuple

from beam_kinesis_sink import metrics as m
from beam_kinesis_sink.aggregator import held_by
from beam_kinesis_sink.classifier import Verdict, judge_answer, judge_failure
from beam_kinesis_sink.dispatch import KeysInFlight
from beam_kinesis_sink.errors import FatalStreamError
from beam_kinesis_sink.outcomes import Outcomes
from beam_kinesis_sink.rate_limit import RateLimiter
from beam_kinesis_sink.records import ErrorCode
from beam_kinesis_sink.retry import Backoff, Failure, plan_retries
from beam_kinesis_sink.shard_buffers import Batch, Item, QueueKey, ShardBuffers
from beam_kinesis_sink.stream_routes import StreamRoute, StreamRoutes
from beam_kinesis_sink.submitter import Completed
from beam_kinesis_sink.writer_options import WriterOptions


class Settler:
    """What a writer does with a finished call: every record of it ends as
    an outcome, or goes back to its queue for another attempt."""

    def __init__(
        self,
        options: WriterOptions,
        buffers: ShardBuffers,
        routes: StreamRoutes,
        outcomes: Outcomes,
        metrics: m.MetricsSink,
        rate_limiter: RateLimiter,
        keys_in_flight: KeysInFlight,
        clock: Callable[[], float],
        backoff: Backoff,
        redact: Callable[[str], str],
    ) -> None:
        self.options = options
        self.buffers = buffers
        self._routes = routes
        self._outcomes = outcomes
        self.metrics = metrics
        self.rate_limiter = rate_limiter
        self._keys_in_flight = keys_in_flight
        self._clock = clock
        self._backoff = backoff
        self._redact = redact

    def settle(self, done: Completed) -> None:
        """Act on the verdict of one finished call."""
        batch = done.batch
        route = self._routes[batch.stream]
        queue = self.buffers.queue(batch.key)
        queue.in_flight -= 1
        queue.ready_at = 0.0
        if self.options.ordered:
            self._keys_in_flight.landed(batch)
        count = len(batch.items)
        if done.error is not None:
            verdict = judge_failure(done.error, count)
        else:
            verdict = judge_answer(done.response, count, batch.shard_id, batch.split)
        self._learn(batch, verdict)
        if verdict.fatal is not None and self.options.on_fatal_error == "fail":
            code, message = verdict.fatal
            raise FatalStreamError(batch.stream, code, self._redact(message))
        misplaced = self._finish(batch, verdict)
        if verdict.split is not None:
            queue.push_splits([[batch.items[i] for i in half] for half in verdict.split])
        if verdict.map_stale:
            route.locator.mark_stale()
            self._routes.fresh(batch.stream)
        failures = [Failure(batch.items[i], code, msg) for i, code, msg in verdict.retry]
        failures += self._placed(route, misplaced)
        if failures:
            self._retry(batch, failures)

    def _learn(self, batch: Batch, verdict: Verdict) -> None:
        """Metrics of the call, and feedback for the shard's rate limiter."""
        if verdict.call_failed:
            self.metrics.inc(m.PUT_RECORDS_FAILED_CALLS)
            if not verdict.throttled:
                # The shard did not take these records: the tokens go back, or
                # an outage's retries would wait for tokens of records never sent.
                self.rate_limiter.give_back(batch.key, len(batch.items), batch.nbytes)
        if verdict.throttled:
            self.metrics.inc(m.RECORDS_THROTTLED, verdict.throttled)
        if verdict.feedback is not None:
            self.rate_limiter.on_result(batch.key, verdict.feedback)

    def _finish(self, batch: Batch, verdict: Verdict) -> List[Tuple[Item, str, str]]:
        """Outcomes for the records this call settled for good. Returns the
        aggregates that landed on another shard than the one aimed at."""
        misplaced: List[Tuple[Item, str, str]] = []
        if self.options.aggregation is None:
            # Every unit is a user record: receipts straight from the verdict;
            # then nothing refers to these items any more (the batch is done).
            count, nbytes = self._outcomes.written_by_index(batch.stream, batch.items, verdict.written)
            self.buffers.release_many(count, nbytes)
            # Indices are unique: as many as the items means every one of them.
            self.buffers.recycle(batch.items if count == len(batch.items)
                                 else [batch.items[i] for i, _, _ in verdict.written])
        else:
            misplaced = self._aggregates_written(batch, verdict)
        for i, code, message in verdict.dead:
            self.give_up(batch.items[i], code, message, batch.key)
        return misplaced

    def _aggregates_written(self, batch: Batch, verdict: Verdict) -> List[Tuple[Item, str, str]]:
        """Receipts for the units written where they were aimed; returns the
        aggregates that landed elsewhere."""
        written: List[Tuple[Item, str, str]] = []
        misplaced: List[Tuple[Item, str, str]] = []
        for i, shard_id, seq in verdict.written:
            unit = batch.items[i]
            aimed_elsewhere = unit.members is not None and shard_id != batch.shard_id
            (misplaced if aimed_elsewhere else written).append((unit, shard_id, seq))
        self._receipts(batch.stream, written)
        return misplaced

    def _receipts(self, stream: str, written: List[Tuple[Item, str, str]]) -> None:
        for unit, _, _ in written:
            for item in unit.users():
                self.buffers.release(item)
        self._outcomes.written(stream, written)

    def _placed(self, route: StreamRoute, misplaced: List[Tuple[Item, str, str]]) -> List[Failure]:
        """Aggregates that landed on another shard (the map was stale): kept
        if every sub-record's hash lies in that shard's range, else sent
        again (the KCL would drop the whole aggregate)."""
        failures: List[Failure] = []
        for unit, shard_id, seq in misplaced:
            if held_by(unit, shard_id, route.locator.shard_map):
                self._receipts(route.name, [(unit, shard_id, seq)])
                continue
            self.metrics.inc(m.AGGREGATES_RESENT)
            failures.append(Failure(unit, ErrorCode.INTERNAL_FAILURE,
                                    f"its aggregate landed on {shard_id}, whose range does not hold every "
                                    "sub-record (the shard map was stale); it was sent again"))
        return failures

    def _retry(self, batch: Batch, failures: List[Failure]) -> None:
        users = [Failure(item, f.code, f.message) for f in failures for item in f.item.users()]
        plan = plan_retries(users, self._clock(), self.options.retry, self._backoff)
        for item, message in plan.give_up:
            self.give_up(item, item.last_code, message, batch.key)
        if plan.retry:
            self.metrics.inc(m.RECORDS_RETRIED, len(plan.retry))
            self.buffers.queue(batch.key).requeue(plan.retry)
            locator = self._routes[batch.stream].locator
            if not locator.knows(batch.shard_id):  # the map changed under them
                self.buffers.rebucket(batch.stream, locator.shard_of)

    def give_up(self, unit: Item, code: str, message: str, key: QueueKey) -> None:
        """Dead letters for ``unit``'s user records, with ``code`` and ``message``."""
        for item in unit.users():
            self.buffers.release(item)
            self._outcomes.gave_up(key[0], item, code, message, key[1])
