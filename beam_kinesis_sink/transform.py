"""``WriteToKinesis``: the one public PTransform.

The expanded graph, default mode (``batching="bundle"``, no shuffle)::

    elements ─▶ ParDo(_WriteFn) ─┬─▶ written       PCollection[WriteReceipt]
                                 └─▶ dead_letters  PCollection[DeadLetter]

Cross-bundle mode (``batching="stateful"``), for streaming runners whose
bundles hold a handful of elements::

    elements ─▶ ParDo(_AssignShardFn) ─┬─▶ (shard_id, record) ─▶ GroupIntoBatches
                                       │        ─▶ ParDo(_WriteBatchesFn) ─┬─▶ written
                                       └─▶ dead_letters ───────── Flatten ◀┴─▶ dead_letters
"""

from __future__ import annotations

import logging
from typing import Any, Callable, NamedTuple, Optional, Tuple, Union

import apache_beam as beam
from apache_beam.transforms import window

from beam_kinesis_sink.aggregation import DEFAULT_AGGREGATE_BYTES
from beam_kinesis_sink.aggregator import AggregationOptions
from beam_kinesis_sink.client import ClientConfig
from beam_kinesis_sink.convert import Converter, KeyFn, as_function
from beam_kinesis_sink.limits import (
    DEFAULT_REQUEST_BYTES,
    MAX_RECORD_KIB,
    MAX_RECORDS_PER_REQUEST,
    RAISED_REQUEST_BYTES,
    Limits,
    MiB,
)
from beam_kinesis_sink.messages import redact
from beam_kinesis_sink.rate_limit import RateLimitConfig
from beam_kinesis_sink.records import DeadLetter, WriteReceipt
from beam_kinesis_sink.retry import RetryPolicy
from beam_kinesis_sink.stream_routes import STREAM_FORMS, StreamChoice, is_stream
from beam_kinesis_sink.submitter import CODECS, DEFAULT_CODEC
from beam_kinesis_sink.write_fn import (
    DEAD_LETTERS,
    WRITTEN,
    ShardedRecord,
    SinkSettings,
    _AssignShardFn,
    _WriteBatchesFn,
    _WriteFn,
)
from beam_kinesis_sink.writer import WriterOptions

_LOG = logging.getLogger(__name__)

#: what ``expand`` logs for ``batching="stateful"`` on Beam Python's DirectRunner
STATEFUL_ON_DIRECT_RUNNER = (
    'WriteToKinesis(batching="stateful") on the Python DirectRunner meets two Beam bugs around '
    "GroupIntoBatches: a GroupByKey after the sink (assert_that, Count, CombinePerKey) can fail with a "
    "bare AssertionError (apache/beam#28716), and in streaming a windowed aggregation after it misses "
    'the outcomes of batches released at the end of a window (apache/beam#21071). batching="stateful" '
    'is for streaming runners with tiny bundles, such as Flink; on the DirectRunner use batching="bundle" '
    "(the default)."
)


def _stream_setting(stream: Any) -> Union[str, StreamChoice]:
    if callable(stream):
        return StreamChoice(stream)
    if not is_stream(stream):
        raise ValueError(f"stream must be {STREAM_FORMS}, or a function element -> stream; got {stream!r}")
    return stream


def _limits(max_records: int, max_request_bytes: Optional[int], max_record_bytes: Union[int, str]
            ) -> Tuple[Limits, Limits]:
    """The writer's limits and the converter's (which, with ``"auto"``, only
    refuses what no stream could take: the stream's own limit is checked
    when the record is added)."""
    if max_record_bytes == "auto":
        request = DEFAULT_REQUEST_BYTES if max_request_bytes is None else max_request_bytes
        writer = Limits(max_records, request, min(MiB, request))
        return writer, Limits(max_records, RAISED_REQUEST_BYTES, MAX_RECORD_KIB * 1024)
    if isinstance(max_record_bytes, bool) or not isinstance(max_record_bytes, int):
        raise ValueError(f"max_record_bytes must be 'auto' or a number of bytes, got {max_record_bytes!r}")
    request = max_request_bytes
    if request is None:
        request = RAISED_REQUEST_BYTES if max_record_bytes > MiB else DEFAULT_REQUEST_BYTES
    limits = Limits(max_records, request, max_record_bytes)
    return limits, limits


def _name_of(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


class WriteToKinesisResult(NamedTuple):
    """What :class:`WriteToKinesis` returns; always both collections."""

    #: one receipt per record Kinesis accepted
    written: beam.PCollection
    #: one dead letter per element that was not written, with the reason
    dead_letters: beam.PCollection


class WriteToKinesis(beam.PTransform):
    """Write a PCollection to an Amazon Kinesis data stream.

    Args:
      stream: the stream name, or its ARN (then sent as ``StreamARN``); or a
        function element → stream name or ARN, for a stream per element.
        Each stream gets its own shard map, queues and rate limits; the
        buffer and in-flight bounds hold for all streams together. An
        element whose function raises, or returns no valid stream, is
        dead-lettered with ``StreamSelectionError`` (and ``stream=""``).
      partition_key: element → str, or the name of a field of the element.
        Not needed when the elements are :class:`KinesisRecord`.
      serializer: element → bytes. Default: bytes as-is, str as UTF-8,
        anything else as compact JSON.
      explicit_hash_key: element → decimal str or int (0..2**128-1), or a
        field name, or None.
      client_config: where and how to reach Kinesis (default: boto3's chain).
      max_records_per_request: default 500.
      max_request_bytes: default ``None``: 5 MiB, or 10 MiB for a stream whose
        record limit is above 1 MiB; counting partition keys.
      max_record_bytes: ``"auto"`` (default) reads each stream's record limit
        (``MaxRecordSizeInKiB`` of DescribeStreamSummary, when the writer
        starts and when the shard map refreshes; 1 MiB when the answer has
        no such field or the call fails); or a number of bytes (data plus
        partition key, at most 10 MiB).
      max_attempts: PutRecords attempts per record before it is dead-lettered
        (default 20).
      max_retry_seconds: time budget per record from its first attempt
        (default 120).
      base_backoff_seconds / max_backoff_seconds: full-jitter exponential
        backoff between attempts (defaults 0.1 and 5).
      on_fatal_error: ``"dead_letter"`` (default) sends records refused with
        ResourceNotFound, AccessDenied or KMS* errors to ``dead_letters``;
        ``"fail"`` fails the pipeline with a clear message.
      max_in_flight: concurrent PutRecords calls per worker (default 8; at
        most one per shard, or two with ``rate_limit=False`` and
        ``ordered=False``).
      max_buffered_records / max_buffered_bytes: buffer bound per worker;
        when reached, ``process`` blocks until calls complete (back-pressure).
        Besides, ``process`` keeps up to 64 elements before it converts and
        buffers them together.
      rate_limit: ``True`` (default) keeps per-shard token buckets adapted by
        AIMD; ``False`` sends as fast as possible.
      shard_records_per_second / shard_bytes_per_second: the nominal per-shard
        rate (defaults 1,000 and 1 MiB, the Kinesis limits).
      max_rate_factor: how far above nominal the adaptive rate may probe
        (default 1.0).
      max_records_per_second: a cap on records/s per worker across shards,
        e.g. to leave room for live producers during a replay (default none).
      flush_timeout_seconds: deadline for ``finish_bundle`` to drain
        (default 600). What is left after it is dead-lettered: with
        ``DeadlineExceeded``, or with its own last error if it was failing.
      batching: ``"bundle"`` (default) or ``"stateful"`` (cross-bundle, via
        ``GroupIntoBatches`` keyed by shard, for streaming runners with tiny
        bundles; on Beam Python's DirectRunner it meets Beam bugs, and the
        sink logs a warning: see ``STATEFUL_ON_DIRECT_RUNNER``).
      max_buffering_seconds: in stateful mode, the longest a record waits
        for its batch to fill (default 1.0).
      ordered: ``True`` keeps the input order of the records of each
        partition key in the stream, through partial failures, throttling
        and retries (default ``False``). A request then holds at most one
        record per key (or one aggregate), and a key's next record waits
        for the outcome of the one before. Needs ``batching="bundle"``.
      aggregation: ``True`` packs records into KPL aggregated records, one
        or more per request, built per shard with the shard's starting hash
        key, for consumers that deaggregate (the KCL, ``aws-kinesis-agg``).
        Default ``False``.
      max_aggregate_bytes: the largest aggregated record, in bytes
        (default 50 KiB, as the KPL; at most the record limit).
      request_codec: ``"fast"`` (the default, also for ``None``) builds PutRecords bodies and reads
        answers with the sink's own codec (byte-identical requests, the same
        answers and exceptions as boto3, at about a third of boto3's CPU per
        record); ``"boto3"`` uses boto3's ``put_records`` as it is.
    """

    def __init__(
        self,
        stream: Union[str, Callable[[Any], str]],
        *,
        partition_key: KeyFn = None,
        serializer: Optional[Callable[[Any], bytes]] = None,
        explicit_hash_key: KeyFn = None,
        client_config: Optional[ClientConfig] = None,
        max_records_per_request: int = MAX_RECORDS_PER_REQUEST,
        max_request_bytes: Optional[int] = None,
        max_record_bytes: Union[int, str] = "auto",
        max_attempts: int = 20,
        max_retry_seconds: float = 120.0,
        base_backoff_seconds: float = 0.1,
        max_backoff_seconds: float = 5.0,
        on_fatal_error: str = "dead_letter",
        max_in_flight: int = 8,
        max_buffered_records: int = 20_000,
        max_buffered_bytes: int = 64 * MiB,
        rate_limit: bool = True,
        shard_records_per_second: float = 1000.0,
        shard_bytes_per_second: float = 1.0 * MiB,
        max_rate_factor: float = 1.0,
        max_records_per_second: Optional[float] = None,
        flush_timeout_seconds: float = 600.0,
        batching: str = "bundle",
        max_buffering_seconds: float = 1.0,
        ordered: bool = False,
        aggregation: bool = False,
        max_aggregate_bytes: int = DEFAULT_AGGREGATE_BYTES,
        request_codec: Optional[str] = None,
        label: Optional[str] = None,
    ) -> None:
        super().__init__(label)
        if batching not in ("bundle", "stateful"):
            raise ValueError(f"batching must be 'bundle' or 'stateful', got {batching!r}")
        if request_codec is not None and request_codec not in CODECS:
            raise ValueError(f"request_codec must be one of {CODECS}, got {request_codec!r}")
        if serializer is not None and not callable(serializer):
            raise TypeError(f"serializer must be a function element -> bytes (or None), got "
                            f"{type(serializer).__name__}")
        for name, seconds in (("flush_timeout_seconds", flush_timeout_seconds),
                              ("max_buffering_seconds", max_buffering_seconds)):
            if not 0 < seconds < float("inf"):  # NaN too
                raise ValueError(f"{name} must be a number of seconds > 0, got {seconds!r}")
        if ordered and batching != "bundle":
            raise ValueError("ordered=True needs batching='bundle': GroupIntoBatches does not keep the "
                             "order of its input")
        limits, converter_limits = _limits(max_records_per_request, max_request_bytes, max_record_bytes)
        self._batching = batching
        self._max_buffering_seconds = max_buffering_seconds
        self._settings = SinkSettings(
            stream=_stream_setting(stream),
            client_config=client_config or ClientConfig(),
            converter=Converter(
                partition_key=as_function(partition_key),
                serializer=serializer,
                explicit_hash_key=as_function(explicit_hash_key),
                limits=converter_limits,
            ),
            writer=WriterOptions(
                limits=limits,
                retry=RetryPolicy(
                    max_attempts=max_attempts,
                    max_elapsed_seconds=max_retry_seconds,
                    base_delay=base_backoff_seconds,
                    max_delay=max_backoff_seconds,
                ),
                rate_limit=RateLimitConfig(
                    records_per_second=shard_records_per_second,
                    bytes_per_second=shard_bytes_per_second,
                    max_rate_factor=max_rate_factor,
                    enabled=rate_limit,
                ),
                max_records_per_second=max_records_per_second,
                max_in_flight=max_in_flight,
                max_buffered_records=max_buffered_records,
                max_buffered_bytes=max_buffered_bytes,
                on_fatal_error=on_fatal_error,
                ordered=ordered,
                aggregation=AggregationOptions(max_aggregate_bytes) if aggregation else None,
                record_limit_from_stream=max_record_bytes == "auto",
                request_limit_given=max_request_bytes is not None,
                request_codec=request_codec,
            ),
            flush_timeout_seconds=flush_timeout_seconds,
        )

    @property
    def settings(self) -> SinkSettings:
        return self._settings

    def display_data(self) -> dict:
        """What runners show of this transform (never a credential)."""
        s = self._settings
        w = s.writer
        stream = s.stream if isinstance(s.stream, str) else f"(per element: {_name_of(s.stream.fn)})"
        return {
            "stream": stream,
            "batching": self._batching,
            "ordered": w.ordered,
            "aggregation": w.aggregation is not None,
            "request_codec": w.request_codec or DEFAULT_CODEC,
            "region_name": s.client_config.region_name or "(default chain)",
            # an endpoint may carry user-info (https://user:password@host)
            "endpoint_url": redact(s.client_config.endpoint_url or "(default)"),
            "max_records_per_request": w.limits.max_records_per_request,
            "max_request_bytes": w.limits.max_request_bytes,
            "max_record_bytes": "auto" if w.record_limit_from_stream else w.limits.max_record_bytes,
            "max_attempts": w.retry.max_attempts,
            "max_retry_seconds": w.retry.max_elapsed_seconds,
            "on_fatal_error": w.on_fatal_error,
            "max_in_flight": w.max_in_flight,
            "rate_limit": w.rate_limit.enabled,
            "flush_timeout_seconds": s.flush_timeout_seconds,
        }

    def expand(self, pcoll: beam.PCollection) -> WriteToKinesisResult:
        windowfn = getattr(getattr(pcoll, "windowing", None), "windowfn", None)
        if isinstance(windowfn, window.SlidingWindows):
            # Beam runs a window-aware DoFn once per window of an element: each
            # record would be written once per sliding window.
            raise ValueError(
                "WriteToKinesis got elements in SlidingWindows: each record would be written once per "
                "window. Apply beam.WindowInto(beam.window.GlobalWindows()) (or FixedWindows) before "
                "the sink."
            )
        if self._batching == "bundle":
            outputs = pcoll | "Write" >> beam.ParDo(_WriteFn(self._settings)).with_outputs(
                DEAD_LETTERS, main=WRITTEN
            )
            written, dead = outputs[WRITTEN], outputs[DEAD_LETTERS]
        else:
            if type(pcoll.pipeline.runner).__module__.startswith("apache_beam.runners.direct."):
                _LOG.warning(STATEFUL_ON_DIRECT_RUNNER)
            keyed = pcoll | "AssignShard" >> beam.ParDo(_AssignShardFn(self._settings)).with_outputs(
                DEAD_LETTERS, main="keyed"
            )
            keyed["keyed"].element_type = beam.typehints.KV[str, ShardedRecord]
            batches = keyed["keyed"] | "Batch" >> beam.GroupIntoBatches(
                self._settings.writer.limits.max_records_per_request,
                max_buffering_duration_secs=self._max_buffering_seconds,
            )
            outputs = batches | "WriteBatches" >> beam.ParDo(_WriteBatchesFn(self._settings)).with_outputs(
                DEAD_LETTERS, main=WRITTEN
            )
            keyed[DEAD_LETTERS].element_type = DeadLetter
            outputs[DEAD_LETTERS].element_type = DeadLetter
            written = outputs[WRITTEN]
            dead = (keyed[DEAD_LETTERS], outputs[DEAD_LETTERS]) | "FlattenDeadLetters" >> beam.Flatten()
        written.element_type = WriteReceipt
        dead.element_type = DeadLetter
        return WriteToKinesisResult(written=written, dead_letters=dead)

