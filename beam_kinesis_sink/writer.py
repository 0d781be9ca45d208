"""The writer engine: a short orchestrator of the parts a record passes.

    add ─▶ stream route ─▶ shard locator ─▶ shard buffers ─▶ dispatch policy
        (per stream)     (hash key → shard)  (queue per shard)  (who may send)
      ─▶ batcher ─────────────────────────▶ submitter ─▶ settle: classifier ─▶ retry plan ─▶ outcomes
        (order, aggregation, limits, tokens)  (thread pool)  (answer → verdict)  (requeue or give up)

It knows nothing of Beam: the DoFns feed it records and take outcomes, each
with an opaque context (such as the element's window). All bookkeeping runs
in the caller's thread; only the PutRecords calls run on the pool.

Guarantees:

* every record added ends as exactly one outcome: a receipt or a dead letter;
* at most ``max_in_flight`` calls in flight across all streams, and one per
  shard (two with the rate limiter off and ``ordered=False``: see dispatch);
* with ``ordered``, no record of a partition key is sent while an earlier one
  of that key is in flight or waiting for its retry;
* ``add`` blocks (back-pressure) while more than ``max_buffered_records`` or
  ``max_buffered_bytes`` are held: no queue grows without bound;
* ``flush`` returns by its deadline plus at most one call's grace period.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Tuple

from beam_kinesis_sink import metrics as m
from beam_kinesis_sink.advice import DEADLINE_ADVICE
from beam_kinesis_sink.batcher import Batcher
from beam_kinesis_sink.client import stream_arguments
from beam_kinesis_sink.convert import Rejection
from beam_kinesis_sink.dispatch import CallsPerShard, KeysInFlight, calls_per_shard
from beam_kinesis_sink.limits import Limits, check_size
from beam_kinesis_sink.messages import redact
from beam_kinesis_sink.outcomes import Outcome, Outcomes
from beam_kinesis_sink.rate_limit import RateLimiter
from beam_kinesis_sink.records import ErrorCode, KinesisRecord
from beam_kinesis_sink.retry import Backoff
from beam_kinesis_sink.settle import Settler
from beam_kinesis_sink.shard_buffers import Batch, Item, QueueKey, ShardBuffers, ShardQueue
from beam_kinesis_sink.shard_locator import ShardLocator
from beam_kinesis_sink.sharding import ShardMap, hash_key_of
from beam_kinesis_sink.stream_routes import StreamRoute, StreamRoutes
from beam_kinesis_sink.submitter import Completed, Submitter
from beam_kinesis_sink.writer_options import WriterOptions

#: what :meth:`KinesisWriter.add_many` takes for each record: ``(record, size, context,
#: element_timestamp_micros, hash_key or None, shard_id or None)``
Entry = Tuple[KinesisRecord, int, Any, Optional[int], Optional[int], Optional[str]]

#: how long the pump waits when nothing tells it when to look again
_IDLE_WAIT = 0.05


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
        """``stream``: the stream of records added without one."""
        self.stream = stream
        self.options = options
        self.metrics = metrics or m.MetricsSink()
        self._client = client
        self._clock = clock
        self._sleep = sleep
        self._redact = redactor or (lambda text: redact(text, secrets))
        self._backoff = Backoff(options.retry, rand or random.Random().random)
        self.rate_limiter = RateLimiter(options.rate_limit, clock, options.max_records_per_second)
        self.buffers = ShardBuffers(spare_limit=options.max_buffered_records,
                                    max_records=options.max_buffered_records,
                                    max_bytes=options.max_buffered_bytes)
        self._routes = StreamRoutes(
            self._new_route, lambda route: self.buffers.rebucket(route.name, route.locator.shard_of)
        )
        self._dispatch = CallsPerShard(
            options.max_in_flight, calls_per_shard(options.ordered, options.rate_limit.enabled))
        self._keys_in_flight = KeysInFlight()
        self._batcher = Batcher(
            self._limits_of,
            self.rate_limiter,
            ordered=options.ordered,
            busy=self._keys_in_flight.busy,
            aggregation=options.aggregation,
            shard_start=lambda name, shard_id: self._routes[name].shard_start(shard_id),
        )
        self._submitter = Submitter(client, options.max_in_flight, options.request_codec)
        self._outcomes = Outcomes(self.metrics, wall_clock, self._redact)
        self._settler = Settler(options, self.buffers, self._routes, self._outcomes, self.metrics,
                                self.rate_limiter, self._keys_in_flight, clock, self._backoff, self._redact)
        #: the clock time at which some queue may send without a new record
        #: (a backoff or a wait for tokens ends); see _after_add
        self._wake_at = float("inf")

    def _limits_of(self, stream: str) -> Limits:
        """The current limits of ``stream`` (a stream the writer has a route for)."""
        return self._routes[stream].limits

    # ------------------------------------------------------------------ API
    def locate(self, record: KinesisRecord, stream: Optional[str] = None) -> Tuple[int, str]:
        """The hash key of ``record`` and the shard the current map sends it to."""
        route = self._routes.fresh(self.stream if stream is None else stream)
        hash_key = hash_key_of(record.partition_key, record.explicit_hash_key)
        return hash_key, route.locator.shard_of(hash_key)

    def add(
        self,
        record: KinesisRecord,
        size: int,
        context: Any = None,
        element_timestamp_micros: Optional[int] = None,
        *,
        hash_key: Optional[int] = None,
        shard_id: Optional[str] = None,
        stream: Optional[str] = None,
    ) -> None:
        """Buffer a valid record (see ``convert``) for ``stream`` (default: the
        writer's). Blocks while buffers are full.

        ``hash_key`` and ``shard_id`` may come from an earlier :meth:`locate`
        (the stateful mode keys its batches by shard); a shard the current
        map does not know is located again.
        """
        self.add_many(((record, size, context, element_timestamp_micros, hash_key, shard_id),), stream)

    def add_many(self, entries: Iterable[Entry], stream: Optional[str] = None) -> None:
        """:meth:`add` for each entry, ``(record, size, context,
        element_timestamp_micros, hash_key, shard_id)`` (the last two may be
        None), all for ``stream``: the stream's route, its limits and the
        clock are looked at once; the buffer bound after every record (and
        ``add_many`` blocks as :meth:`add` does); and each queue that got
        records, a completed call and an ended wait once, at the end."""
        now = self._clock()
        route = self._routes.fresh(self.stream if stream is None else stream, now)
        name, limits, locator = route.name, route.limits, route.locator
        max_record_bytes = limits.max_record_bytes
        buffers = self.buffers
        room_records, room_bytes = buffers.room()
        touched = set()
        touch = touched.add
        for record, size, context, timestamp, hash_key, shard_id in entries:
            if size > max_record_bytes:
                self._too_large(record, size, route, context, timestamp)
                continue
            if hash_key is None:
                hash_key = hash_key_of(record.partition_key, record.explicit_hash_key)
            if shard_id is None or not locator.knows(shard_id):
                shard_id = locator.shard_of(hash_key)
            queue = buffers.add((name, shard_id), record, size, hash_key, context, timestamp)
            touch(queue)
            room_records -= 1
            room_bytes -= size
            if room_records < 0 or room_bytes < 0:  # over the bound: back-pressure
                self._after_add(queue, route, now)
                now = self._clock()
                room_records, room_bytes = buffers.room()
        for queue in touched:
            self._after_add(queue, route, now)
        if not touched:
            self._after_add(None, route, now)

    def let_calls_run(self) -> None:
        """With calls in flight, hand the GIL to their pool threads for a
        moment (a zero-second sleep): a thread whose answer has arrived then
        reads and parses it now, rather than waiting for the interpreter to
        force the bundle's thread off the GIL (its switch interval, 5 ms).
        The DoFn calls this between chunks of elements. Calls then end
        sooner, so fewer are in flight at once, and fewer threads contend
        for the GIL: on the fast loopback endpoint, about a quarter fewer
        context switches and a sixth less CPU per record (docs/benchmarks.md)."""
        if len(self._submitter):
            self._sleep(0)

    def reject(self, rejection: Rejection, context: Any = None,
               element_timestamp_micros: Optional[int] = None, stream: Optional[str] = None) -> None:
        """Route an element refused before any request to the same outcomes."""
        name = self.stream if stream is None else stream
        self._outcomes.rejected(name, rejection, context, element_timestamp_micros)

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

    def take_outcomes(self) -> Sequence[Outcome]:
        """The outcomes made since the last take (``()`` if none)."""
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
        """The shard map of the writer's stream."""
        route = self._routes.get(self.stream)
        return None if route is None else route.locator.shard_map

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
        self._keys_in_flight.clear()
        return self.buffers.clear()

    def close(self) -> None:
        self._submitter.close()

    # --------------------------------------------------------------- routes
    def _new_route(self, name: str) -> StreamRoute:
        o = self.options
        args = stream_arguments(name)
        locator = ShardLocator(
            self._client, name, args, self._clock,
            refresh_seconds=o.shard_map_refresh_seconds,
            min_refresh_seconds=o.shard_map_min_refresh_seconds,
            fail_on_fatal=o.on_fatal_error == "fail",
            redact=self._redact,
            metrics=self.metrics,
            read_record_limit=o.record_limit_from_stream,
        )
        return StreamRoute(name, args, locator, o.limits, o.record_limit_from_stream, o.request_limit_given)

    def _too_large(self, record: KinesisRecord, size: int, route: StreamRoute, context: Any,
                   element_timestamp_micros: Optional[int]) -> None:
        whose = "the stream's limit" if self.options.record_limit_from_stream else "the limit"
        problem = check_size(size, route.limits, whose)
        assert problem is not None, "called for a record over the limit"
        code, message = problem
        rejection = Rejection(code, message, record.data, record.partition_key,
                              record.explicit_hash_key, None)
        self._outcomes.rejected(route.name, rejection, context, element_timestamp_micros)

    # ----------------------------------------------------------------- pump
    def _after_add(self, queue: Optional[ShardQueue], route: StreamRoute, now: float) -> None:
        """One look after records were added: only ``queue`` changed (None:
        none needs a look), so unless a call completed, a wait ended or the
        buffers are over their bound, only it may have a request to send
        (a full one)."""
        submitter = self._submitter
        completed = submitter.completed() if submitter.any_done else ()
        if completed or self.buffers.over_bound() or now >= self._wake_at:
            self._settle_all(completed)
            self._pump(drain=False, deadline=None)
            return
        limits = route.limits
        if queue is None or not self._batcher.may_have_full(queue, limits):
            return  # the common case: one cheap look
        if not self._dispatch.may_send(queue, len(submitter), limits, drain=False):
            return
        decision = self._batcher.next_batch(queue, now, force=False, limits=limits)
        if decision.batch is not None:
            self._send(queue, decision.batch, now)
        elif decision.wake is not None:
            self._wake_at = min(self._wake_at, decision.wake)

    def _pump(self, drain: bool, deadline: Optional[float]) -> None:
        for _ in self._steps(drain, deadline):
            pass

    def _steps(self, drain: bool, deadline: Optional[float]) -> Iterator[None]:
        """The pump loop: settle what completed, send what may be sent, wait.
        Yields after each wait for calls or tokens."""
        while True:
            self._settle_all(self._submitter.completed())
            wake = self._send_ready(force=drain or self.buffers.over_bound(), drain=drain)
            if not drain and not self.buffers.over_bound():
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

    def _send_ready(self, force: bool, drain: bool) -> Optional[float]:
        """Send what may be sent now (``force``: partial requests too;
        ``drain``: the last records of a flush). Returns when the next send
        may be possible."""
        now = self._clock()
        wake: Optional[float] = None
        dispatch, in_flight = self._dispatch, self._submitter.__len__
        for queue in dispatch.until_full(self.buffers.queues(), in_flight):
            while dispatch.may_send(queue, in_flight(), self._limits_of(queue.stream), drain):
                decision = self._batcher.next_batch(queue, now, force)
                if decision.batch is None:
                    if decision.wake is not None:
                        wake = decision.wake if wake is None else min(wake, decision.wake)
                    break
                self._send(queue, decision.batch, now)
        self._wake_at = float("inf") if wake is None else wake
        return wake

    def _send(self, queue: ShardQueue, batch: Batch, now: float) -> None:
        """Submit ``batch``, a request of ``queue`` (settle counts its call back)."""
        queue.in_flight += 1
        users = batch.items if self.options.aggregation is None else [
            item for unit in batch.items for item in unit.users()]
        for item in users:
            item.attempts += 1
            if item.first_attempt is None:
                item.first_attempt = now
        if self.options.ordered:
            self._keys_in_flight.sent(batch)
        self.metrics.inc(m.PUT_RECORDS_CALLS)
        self.metrics.dist(m.BATCH_SIZE, len(batch.items))
        self.metrics.dist(m.BATCH_BYTES, batch.nbytes)
        self._submitter.submit(batch, self._routes[batch.stream].args)

    # ---------------------------------------------------------------- settle
    def _settle_all(self, completed: Sequence[Completed]) -> None:
        for done in completed:
            self._settler.settle(done)

    def _expire(self) -> None:
        """The flush deadline passed: give in-flight calls a grace period, then
        dead-letter everything still unwritten."""
        grace_end = self._clock() + self.options.in_flight_grace_seconds
        while len(self._submitter) and self._clock() < grace_end:
            self._settle_all(self._submitter.completed(wait=max(0.0, grace_end - self._clock())))
        self._keys_in_flight.clear()  # nothing is in flight for the writer any more
        for batch in self._submitter.abandon():
            self.buffers.queue(batch.key).in_flight -= 1
            for unit in batch.items:
                self._settler.give_up(unit, ErrorCode.DEADLINE_EXCEEDED,
                                      "a PutRecords call was still in flight at the flush deadline; "
                                      "it may have been written (a replay can duplicate it)", batch.key)
        for queue in list(self.buffers.queues()):
            for unit in queue.take_all():
                for item in unit.users():
                    self._expired(item, queue.key)

    def _expired(self, item: Item, key: QueueKey) -> None:
        if item.last_code:
            # It was failing: its own error is the cause (and what a replay
            # filters on); the deadline only ended its retries.
            self._settler.give_up(item, item.last_code, f"{item.last_message} (still failing after "
                                  f"{item.attempts} attempts when the flush deadline passed): "
                                  f"{DEADLINE_ADVICE}", key)
        else:
            self._settler.give_up(item, ErrorCode.DEADLINE_EXCEEDED,
                                  f"not written before the flush deadline: {DEADLINE_ADVICE}", key)
