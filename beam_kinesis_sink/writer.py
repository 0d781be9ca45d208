"""The writer engine: per-shard buffers, packing, rate limiting, bounded
concurrent PutRecords calls, retries, and the outcome of every record.

It knows nothing of Beam: the DoFn feeds it records and drains outcomes
(receipts and dead letters, each with an opaque context such as the
element's window). All bookkeeping runs in the caller's thread; only the
PutRecords calls run on a small thread pool. So Beam metrics, which are
bound to the bundle's thread, are always updated from the right thread.

Guarantees:

* every record added ends as exactly one outcome: a receipt or a dead letter;
* at most ``max_in_flight`` calls in flight, at most one per shard;
* ``add`` blocks (back-pressure) while more than ``max_buffered_records`` or
  ``max_buffered_bytes`` are buffered: no queue grows without bound;
* ``flush`` returns by its deadline plus at most one call's timeout.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Tuple, Union

from beam_kinesis_sink import metrics as m
from beam_kinesis_sink.client import stream_arguments
from beam_kinesis_sink.errors import FatalStreamError
from beam_kinesis_sink.limits import Limits
from beam_kinesis_sink.messages import redact
from beam_kinesis_sink.packing import take_prefix
from beam_kinesis_sink.rate_limit import RateLimitConfig, RateLimiter
from beam_kinesis_sink.records import DeadLetter, ErrorCode, KinesisRecord, WriteReceipt
from beam_kinesis_sink.retry import (
    Action,
    Backoff,
    RetryPolicy,
    classify_exception,
    classify_record_error,
    split_in_two,
)
from beam_kinesis_sink.sharding import UNKNOWN_SHARD, ShardMap, hash_key_of, list_open_shards

_LOG = logging.getLogger(__name__)

Outcome = Tuple[Union[WriteReceipt, DeadLetter], Any]


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


@dataclass
class _Pending:
    record: KinesisRecord
    size: int
    hash_key: int
    context: Any
    element_timestamp_micros: Optional[int]
    attempts: int = 0
    first_attempt: Optional[float] = None
    not_before: float = 0.0
    last_code: str = ""
    last_message: str = ""


@dataclass
class _Batch:
    shard_id: str
    items: List[_Pending]
    nbytes: int
    #: sent as an isolated part of a refused batch
    split: bool = False


@dataclass
class _ShardQueue:
    shard_id: str
    items: Deque[_Pending] = field(default_factory=deque)
    #: parts of a refused batch, sent as they are, before anything else
    splits: Deque[List[_Pending]] = field(default_factory=deque)
    in_flight: bool = False
    nbytes: int = 0
    #: the rate limiter cannot admit a full batch before this time; reset
    #: when a call of this shard completes (its rate may then have changed)
    ready_at: float = 0.0


@dataclass
class WriterStats:
    """Counts kept by the engine itself (the benchmark and tests read them)."""

    calls: int = 0
    failed_calls: int = 0
    records_sent: int = 0
    records_written: int = 0
    records_retried: int = 0
    records_throttled: int = 0
    dead_letters: int = 0
    shard_map_refreshes: int = 0
    max_buffered_records: int = 0
    max_buffered_bytes: int = 0


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
    ) -> None:
        self.client = client
        self.stream = stream
        self.options = options
        self.metrics = metrics or m.MetricsSink()
        self._clock = clock
        self._wall = wall_clock
        self._sleep = sleep
        self._backoff = Backoff(options.retry, rand or random.Random().random)
        self._secrets = secrets
        self._stream_args = stream_arguments(stream)
        self.rate_limiter = RateLimiter(options.rate_limit, clock, options.max_records_per_second)
        self._queues: Dict[str, _ShardQueue] = {}
        self._outcomes: List[Outcome] = []
        self._futures: Dict[cf.Future, _Batch] = {}
        self._pool = cf.ThreadPoolExecutor(
            max_workers=options.max_in_flight, thread_name_prefix="kinesis-put"
        )
        self._buffered_records = 0
        self._buffered_bytes = 0
        self.stats = WriterStats()
        self.shard_map: Optional[ShardMap] = None
        self._map_loaded_at = float("-inf")
        self._map_stale = True

    # ------------------------------------------------------------------ API
    def add(self, record: KinesisRecord, size: int, context: Any = None,
            element_timestamp_micros: Optional[int] = None) -> None:
        """Buffer a valid record (see ``convert``). Blocks while buffers are full."""
        self._ensure_shard_map()
        pending = _Pending(
            record, size, hash_key_of(record.partition_key, record.explicit_hash_key), context,
            element_timestamp_micros,
        )
        queue = self._queue_for(pending.hash_key)
        queue.items.append(pending)
        queue.nbytes += size
        self._buffered_records += 1
        self._buffered_bytes += size
        if self._buffered_records > self.stats.max_buffered_records:
            self.stats.max_buffered_records = self._buffered_records
        if self._buffered_bytes > self.stats.max_buffered_bytes:
            self.stats.max_buffered_bytes = self._buffered_bytes
        self._pump(drain=False, deadline=None)

    def shard_of(self, record: KinesisRecord) -> str:
        """The shard the current map sends ``record`` to (loading the map if needed)."""
        self._ensure_shard_map()
        assert self.shard_map is not None
        return self.shard_map.shard_for(hash_key_of(record.partition_key, record.explicit_hash_key)).shard_id

    def dead_letter(self, letter: DeadLetter, context: Any = None) -> None:
        """Route a record rejected before any request through the same outcome stream."""
        self.metrics.dead_letter(letter.error_code)
        self.stats.dead_letters += 1
        self._outcomes.append((letter, context))

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
            if self._outcomes:
                yield

    def take_outcomes(self) -> List[Outcome]:
        out, self._outcomes = self._outcomes, []
        return out

    @property
    def buffered_records(self) -> int:
        return self._buffered_records

    def reset(self) -> int:
        """Forget everything buffered, in flight or not yet emitted.

        Called at the start of each bundle: if the previous bundle failed
        half-way, the runner retries its elements, so the leftovers of the
        failed attempt must not be written or reported a second time. Calls
        still in flight finish on their own; their results are ignored.
        Returns the number of records forgotten.
        """
        forgotten = self._buffered_records
        for future in self._futures:
            future.cancel()
        self._futures.clear()
        self._queues.clear()
        self._outcomes.clear()
        self._buffered_records = 0
        self._buffered_bytes = 0
        return forgotten

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ shard map
    def _ensure_shard_map(self) -> None:
        now = self._clock()
        due = now - self._map_loaded_at >= self.options.shard_map_refresh_seconds
        if self.shard_map is not None and not due and not (
            self._map_stale and now - self._map_loaded_at >= self.options.shard_map_min_refresh_seconds
        ):
            return
        self._map_loaded_at = now
        self._map_stale = False
        try:
            new_map = list_open_shards(self.client, self._stream_args)
        except Exception as exc:
            c = classify_exception(exc)
            message = redact(c.error_message, self._secrets)
            if c.action is Action.FATAL and self.options.on_fatal_error == "fail":
                raise FatalStreamError(self.stream, c.error_code, message) from None
            _LOG.warning("ListShards failed for stream %r: %s: %s", self.stream, c.error_code, message)
            if self.shard_map is None:
                # Keep going: PutRecords will tell each record its fate.
                self.shard_map = ShardMap.single()
                self._map_stale = True
            return
        self.stats.shard_map_refreshes += 1
        self.metrics.inc(m.SHARD_MAP_REFRESHES)
        old = self.shard_map
        self.shard_map = new_map
        if old is not None and [s.shard_id for s in old.shards] != [s.shard_id for s in new_map.shards]:
            self._rebucket()

    def _rebucket(self) -> None:
        """Move queued records to the queues of their shards in the new map."""
        for shard_id, queue in list(self._queues.items()):
            if queue.in_flight or queue.splits:
                continue
            target_ids = {self.shard_map.shard_for(p.hash_key).shard_id for p in queue.items}  # type: ignore[union-attr]
            if target_ids <= {shard_id}:
                continue
            items = list(queue.items)
            queue.items.clear()
            queue.nbytes = 0
            for p in items:
                q = self._queue_for(p.hash_key)
                q.items.append(p)
                q.nbytes += p.size

    def _queue_for(self, hash_key: int) -> _ShardQueue:
        assert self.shard_map is not None
        shard_id = self.shard_map.shard_for(hash_key).shard_id
        queue = self._queues.get(shard_id)
        if queue is None:
            queue = self._queues[shard_id] = _ShardQueue(shard_id)
        return queue

    # ----------------------------------------------------------------- pump
    def _over_bound(self) -> bool:
        return (
            self._buffered_records > self.options.max_buffered_records
            or self._buffered_bytes > self.options.max_buffered_bytes
        )

    def _pump(self, drain: bool, deadline: Optional[float]) -> None:
        for _ in self._steps(drain, deadline):
            pass

    def _steps(self, drain: bool, deadline: Optional[float]) -> Iterator[None]:
        """The pump loop; yields after each wait for calls or tokens."""
        while True:
            self._collect(block=False, timeout=0)
            force = drain or self._over_bound()
            wake = self._dispatch(force)
            if not drain and not self._over_bound():
                return
            if drain and self._buffered_records == 0:
                return
            now = self._clock()
            if deadline is not None and now >= deadline:
                self._expire(deadline)
                return
            wait = 0.05 if wake is None else max(0.0, wake - now)
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - now))
            if self._futures:
                self._collect(block=True, timeout=wait)
            elif wait > 0:
                self._sleep(wait)
            yield

    def _dispatch(self, force: bool) -> Optional[float]:
        """Send what may be sent now. Returns when the next send may be possible."""
        now = self._clock()
        wake: Optional[float] = None
        limits = self.options.limits
        for queue in self._queues.values():
            if len(self._futures) >= self.options.max_in_flight:
                break
            if queue.in_flight:
                continue
            if queue.splits:
                part = queue.splits.popleft()
                self._submit(_Batch(queue.shard_id, part, sum(p.size for p in part), split=True), queue)
                continue
            if not queue.items:
                continue
            head = queue.items[0]
            if head.not_before > now:
                wake = head.not_before if wake is None else min(wake, head.not_before)
                continue
            if queue.ready_at > now:
                wake = queue.ready_at if wake is None else min(wake, queue.ready_at)
                continue  # waiting for tokens: no need to rescan the queue
            if not force and len(queue.items) < limits.max_records_per_request and (
                queue.nbytes <= limits.max_request_bytes
            ):
                continue  # cannot fill a request yet: skip the scan below
            full_count, full_bytes = take_prefix((p.size for p in queue.items), limits)
            is_full = full_count < len(queue.items) or full_count >= limits.max_records_per_request
            if not force and not is_full:
                continue
            # Rate limit: wait until the buckets hold a whole batch (as big as
            # the bucket allows), so requests stay large and evenly spaced.
            rl = self.rate_limiter
            cap = full_count
            if rl.config.enabled:
                cap = min(cap, max(1, int(rl.shard(queue.shard_id).records.capacity)))
            if rl.global_limit is not None:
                cap = min(cap, max(1, int(rl.global_limit.bucket.capacity)))
            cap_bytes = full_bytes
            if cap < full_count:
                cap_bytes = sum(p.size for _, p in zip(range(cap), queue.items))
            wait = rl.wait_time(queue.shard_id, cap, cap_bytes)
            if wait > 0:
                queue.ready_at = now + wait
                wake = queue.ready_at if wake is None else min(wake, queue.ready_at)
                continue
            budget_records, budget_bytes = rl.budget(queue.shard_id)
            count, nbytes = take_prefix(
                (p.size for p in queue.items), limits, max_records=budget_records, max_bytes=budget_bytes
            )
            items = [queue.items.popleft() for _ in range(count)]
            queue.nbytes -= nbytes
            self._submit(_Batch(queue.shard_id, items, nbytes), queue)
        return wake

    def _submit(self, batch: _Batch, queue: _ShardQueue) -> None:
        now = self._clock()
        for p in batch.items:
            p.attempts += 1
            if p.first_attempt is None:
                p.first_attempt = now
        self.rate_limiter.acquire(batch.shard_id, len(batch.items), batch.nbytes)
        queue.in_flight = True
        entries = []
        for p in batch.items:
            entry = {"Data": p.record.data, "PartitionKey": p.record.partition_key}
            if p.record.explicit_hash_key is not None:
                entry["ExplicitHashKey"] = p.record.explicit_hash_key
            entries.append(entry)
        self.stats.calls += 1
        self.stats.records_sent += len(entries)
        self.metrics.inc(m.PUT_RECORDS_CALLS)
        self.metrics.dist(m.BATCH_SIZE, len(entries))
        self.metrics.dist(m.BATCH_BYTES, batch.nbytes)
        future = self._pool.submit(self._call, entries)
        self._futures[future] = batch

    def _call(self, entries: List[dict]) -> Any:
        return self.client.put_records(Records=entries, **self._stream_args)

    def _collect(self, block: bool, timeout: float) -> None:
        if not self._futures:
            return
        if block:
            done, _ = cf.wait(list(self._futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        else:
            done = [f for f in self._futures if f.done()]
        for future in done:
            batch = self._futures.pop(future)
            queue = self._queues[batch.shard_id]
            queue.in_flight = False
            queue.ready_at = 0.0
            try:
                response = future.result()
            except Exception as exc:
                self._on_exception(batch, exc)
            else:
                self._on_response(batch, response)

    # ------------------------------------------------------------- outcomes
    def _release(self, p: _Pending) -> None:
        self._buffered_records -= 1
        self._buffered_bytes -= p.size

    def _write_receipt(self, p: _Pending, entry: dict) -> None:
        self._release(p)
        self.stats.records_written += 1
        self.metrics.inc(m.RECORDS_WRITTEN)
        self.metrics.inc(m.BYTES_WRITTEN, p.size)
        receipt = WriteReceipt(
            stream=self.stream,
            partition_key=p.record.partition_key,
            explicit_hash_key=p.record.explicit_hash_key,
            shard_id=entry.get("ShardId", ""),
            sequence_number=entry.get("SequenceNumber", ""),
            attempts=p.attempts,
            size_bytes=p.size,
            element_timestamp_micros=p.element_timestamp_micros,
        )
        self._outcomes.append((receipt, p.context))

    def _write_dead_letter(self, p: _Pending, code: str, message: str, shard_id: Optional[str]) -> None:
        self._release(p)
        self.stats.dead_letters += 1
        self.metrics.dead_letter(code)
        letter = DeadLetter(
            stream=self.stream,
            data=p.record.data,
            partition_key=p.record.partition_key,
            explicit_hash_key=p.record.explicit_hash_key,
            error_code=code,
            error_message=redact(message, self._secrets),
            attempts=p.attempts,
            shard_id=None if shard_id == UNKNOWN_SHARD else shard_id,
            failed_at_micros=int(self._wall() * 1_000_000),
            element_timestamp_micros=p.element_timestamp_micros,
            element_preview=None,
        )
        self._outcomes.append((letter, p.context))

    def _retry_or_drop(self, batch: _Batch, failed: List[_Pending], code: str, message: str) -> None:
        """Re-queue failed records at the head of their shard, in order, or
        dead-letter those whose budget is spent."""
        now = self._clock()
        requeue: List[_Pending] = []
        for p in failed:
            p.last_code, p.last_message = code or p.last_code, message or p.last_message
            elapsed = now - (p.first_attempt or now)
            if self.options.retry.may_retry(p.attempts, elapsed):
                p.not_before = now + self._backoff.delay(p.attempts)
                requeue.append(p)
            else:
                self._write_dead_letter(
                    p,
                    p.last_code,
                    f"{p.last_message} (gave up after {p.attempts} attempts, {elapsed:.1f}s)",
                    batch.shard_id,
                )
        if requeue:
            self.stats.records_retried += len(requeue)
            self.metrics.inc(m.RECORDS_RETRIED, len(requeue))
            queue = self._queues[batch.shard_id]
            # The head of the queue must wait for the earliest retry, to keep order.
            first_ready = min(p.not_before for p in requeue)
            for p in requeue:
                p.not_before = first_ready
            queue.items.extendleft(reversed(requeue))
            queue.nbytes += sum(p.size for p in requeue)

    def _on_response(self, batch: _Batch, response: dict) -> None:
        entries = response.get("Records") or []
        if len(entries) != len(batch.items):
            # Never trust a response we cannot match by index.
            self._retry_or_drop(
                batch,
                batch.items,
                ErrorCode.INTERNAL_FAILURE,
                f"PutRecords returned {len(entries)} entries for {len(batch.items)} records",
            )
            return
        failed: List[_Pending] = []
        throttled = 0
        for p, entry in zip(batch.items, entries):
            code = entry.get("ErrorCode")
            if not code:
                if entry.get("ShardId") and entry["ShardId"] != batch.shard_id and not batch.split:
                    self._map_stale = True
                self._write_receipt(p, entry)
                continue
            c = classify_record_error(code, entry.get("ErrorMessage", ""))
            if c.throttled:
                throttled += 1
            if c.action is Action.RETRY:
                # Each record keeps its own last error.
                p.last_code, p.last_message = c.error_code, c.error_message
                failed.append(p)
            else:
                self._write_dead_letter(p, c.error_code, c.error_message, batch.shard_id)
        if throttled:
            self.stats.records_throttled += throttled
            self.metrics.inc(m.RECORDS_THROTTLED, throttled)
        self.rate_limiter.on_result(batch.shard_id, throttled / len(batch.items))
        if failed:
            self._retry_or_drop(batch, failed, "", "")
        if self._map_stale:
            self._ensure_shard_map()

    def _on_exception(self, batch: _Batch, exc: BaseException) -> None:
        self.stats.failed_calls += 1
        self.metrics.inc(m.PUT_RECORDS_FAILED_CALLS)
        c = classify_exception(exc)
        message = redact(c.error_message, self._secrets)
        if c.action is Action.RETRY:
            if c.throttled:
                self.stats.records_throttled += len(batch.items)
                self.metrics.inc(m.RECORDS_THROTTLED, len(batch.items))
            self.rate_limiter.on_result(batch.shard_id, 1.0 if c.throttled else 0.0)
            self._retry_or_drop(batch, batch.items, c.error_code, message)
        elif c.action is Action.SPLIT:
            if len(batch.items) == 1:
                self._write_dead_letter(batch.items[0], c.error_code, message, batch.shard_id)
                return
            first, _ = split_in_two(len(batch.items))
            queue = self._queues[batch.shard_id]
            queue.splits.appendleft(batch.items[first:])
            queue.splits.appendleft(batch.items[:first])
        else:
            if self.options.on_fatal_error == "fail":
                raise FatalStreamError(self.stream, c.error_code, message)
            for p in batch.items:
                self._write_dead_letter(p, c.error_code, message, batch.shard_id)

    def _expire(self, deadline: float) -> None:
        """The flush deadline passed: give in-flight calls a grace period, then
        dead-letter everything still unwritten."""
        grace_end = self._clock() + self.options.in_flight_grace_seconds
        while self._futures and self._clock() < grace_end:
            self._collect(block=True, timeout=max(0.0, grace_end - self._clock()))
        for future, batch in list(self._futures.items()):
            future.cancel()
            self._queues[batch.shard_id].in_flight = False
            for p in batch.items:
                self._write_dead_letter(
                    p,
                    ErrorCode.DEADLINE_EXCEEDED,
                    "a PutRecords call was still in flight at the flush deadline; "
                    "it may have been written (a replay can duplicate it)",
                    batch.shard_id,
                )
        self._futures.clear()
        for queue in self._queues.values():
            pending = [p for part in queue.splits for p in part] + list(queue.items)
            queue.splits.clear()
            queue.items.clear()
            queue.nbytes = 0
            for p in pending:
                last = f"; last error: {p.last_code}: {p.last_message}" if p.last_code else ""
                self._write_dead_letter(
                    p,
                    ErrorCode.DEADLINE_EXCEEDED,
                    f"not written before the flush deadline{last}",
                    queue.shard_id,
                )
