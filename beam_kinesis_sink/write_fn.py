"""The DoFns that drive the writer engine inside Beam.

``_WriteFn`` (the default, no shuffle) buffers inside the bundle and drains
in ``finish_bundle``. ``_AssignShardFn`` + ``GroupIntoBatches`` +
``_WriteBatchesFn`` is the cross-bundle mode for streaming runners whose
bundles are tiny.

Each element's window, timestamp and pane travel with its record, and its
receipt or dead letter is emitted in them.
"""

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Iterable, List, NamedTuple, Optional, Tuple, Union

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput
from apache_beam.utils.windowed_value import WindowedValue

from beam_kinesis_sink.client import ClientConfig, redactor_for
from beam_kinesis_sink.convert import Converted, Converter, Rejection
from beam_kinesis_sink.metrics import BeamMetrics
from beam_kinesis_sink.records import ErrorCode, KinesisRecord, WriteReceipt
from beam_kinesis_sink.stream_routes import StreamChoice
from beam_kinesis_sink.writer import KinesisWriter, WriterOptions

_LOG = logging.getLogger(__name__)

WRITTEN = "written"
DEAD_LETTERS = "dead_letters"


@dataclass(frozen=True)
class SinkSettings:
    """Everything a worker needs; small and picklable (no client inside)."""

    #: a stream name or ARN, or a :class:`StreamChoice` (element → stream)
    stream: Union[str, StreamChoice]
    client_config: ClientConfig
    converter: Converter
    writer: WriterOptions
    flush_timeout_seconds: float

    @property
    def default_stream(self) -> str:
        """The writer's stream; with a stream function, only a placeholder name."""
        return self.stream if isinstance(self.stream, str) else "(chosen per element)"


def _prepare(settings: SinkSettings, element: Any) -> tuple:
    """Convert ``element`` and choose its stream: ``(converted or rejection, stream)``.
    ``stream`` is None for the writer's one stream."""
    converted = settings.converter.convert(element)
    if isinstance(settings.stream, str):
        return converted, None
    stream, problem = settings.stream(element)
    if problem is None or isinstance(converted, Rejection):
        return converted, stream
    record = converted.record
    return Rejection(ErrorCode.STREAM_SELECTION_ERROR, problem, record.data, record.partition_key,
                     record.explicit_hash_key, None), ""


def _micros(timestamp: Any) -> Optional[int]:
    try:
        micros = int(timestamp.micros)
    except (AttributeError, TypeError, ValueError):
        return None
    return _event_time(micros)


def _event_time(micros: int) -> Optional[int]:
    # MIN/MAX timestamps mean "no event time".
    return None if abs(micros) >= 2**62 else micros


def _emit(outcomes: Iterable[Any]) -> List[Any]:
    """Each outcome to its output, in its element's timestamp, windows and
    pane (``context``, a ``WindowedValue``), or in the input's when None.
    Receipts go to the main output (``WRITTEN``): no ``TaggedOutput`` per
    receipt. A list, not a generator: Beam walks it faster."""
    out: List[Any] = []
    append = out.append
    for value, context in outcomes:
        windowed = value if context is None else context.with_value(value)
        append(windowed if type(value) is WriteReceipt else TaggedOutput(DEAD_LETTERS, windowed))
    return out


class _WriterDoFn(beam.DoFn):
    """Base of the sink's DoFns: holds only the picklable settings; creates
    the client and the engine in ``setup``, once per DoFn instance."""

    def __init__(self, settings: SinkSettings) -> None:
        super().__init__()
        self.settings = settings
        self._writer: Optional[KinesisWriter] = None

    def setup(self) -> None:
        self._open()

    def teardown(self) -> None:
        self._close()

    def _open(self) -> KinesisWriter:
        if self._writer is None:
            cfg = self.settings.client_config
            if cfg.max_pool_connections < self.settings.writer.max_in_flight:
                # One pooled connection per call in flight, or botocore blocks on the pool.
                cfg = dataclasses.replace(cfg, max_pool_connections=self.settings.writer.max_in_flight)
            client = cfg.create_client()
            self._writer = KinesisWriter(
                client,
                self.settings.default_stream,
                self.settings.writer,
                metrics=BeamMetrics(),
                # The credentials the client really uses, wherever they came from.
                redactor=redactor_for(client, cfg),
            )
        return self._writer

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class _WriteFn(_WriterDoFn):
    """Default mode: pack inside the bundle, drain in finish_bundle.

    ``process`` only keeps each windowed element; every ``CHUNK`` of them
    (and the rest in ``finish_bundle``) are converted and handed to the
    engine together (:meth:`KinesisWriter.add_many`): the per-record work
    in one loop, not a dozen calls per element."""

    #: elements kept by ``process`` before they are converted and buffered
    CHUNK = 64

    def __init__(self, settings: SinkSettings) -> None:
        super().__init__(settings)
        #: the windowed elements ``process`` kept and ``_write_pending`` has not written
        self._pending: List[WindowedValue] = []

    def start_bundle(self) -> None:
        # A bundle that failed half-way is retried by the runner: drop what it left.
        self._pending = []
        forgotten = self._open().reset()
        if forgotten:
            _LOG.warning("dropped %d records left by a failed bundle; the runner retries them", forgotten)

    def process(self, element: Any, windowed: Any = beam.DoFn.WindowedValueParam) -> Iterable[Any]:
        # The whole windowed element, one parameter to bind (not timestamp,
        # window and pane), and an element in several windows once (a
        # WindowParam would have Beam call process once per window: the
        # record written once per window).
        pending = self._pending
        pending.append(windowed)
        if len(pending) < self.CHUNK:
            return ()
        self._write_pending()
        return self._outcomes_from(windowed)

    #: the last element's context and event time (see _context_of)
    _last: Optional[Tuple[WindowedValue, Optional[int]]] = None

    def _outcomes_from(self, windowed: Any) -> Iterable[Any]:
        """The outcomes made so far, for ``process`` of ``windowed`` to emit;
        none while that element is in more than one window (or none): Beam
        repeats the windows of whatever ``process`` emits once per window of
        the element being processed, so each outcome would land in its
        windows several times. They wait for the next element in one
        window, or ``finish_bundle``."""
        if len(windowed.windows) != 1:
            return ()
        outcomes = self._open().take_outcomes()
        return _emit(outcomes) if outcomes else ()

    def _context_of(self, windowed: Any) -> Tuple[WindowedValue, Optional[int]]:
        """The element's timestamp, windows and pane, without the element (the
        context is held until the record's outcome, and the buffer bound
        counts records, not elements), and its event time in µs (None for
        none). Elements that share them (a batch pipeline's, an upstream
        FlatMap's outputs) share one context: one object less per record
        held for the garbage collector to walk, and one look at the time."""
        last = self._last
        if last is not None:
            context = last[0]
            if (windowed.timestamp_micros == context.timestamp_micros
                    and (windowed.pane_info is context.pane_info or windowed.pane_info == context.pane_info)
                    and (windowed.windows is context.windows or windowed.windows == context.windows)):
                return last
        # timestamp_micros: reading .timestamp would build a Timestamp
        micros = windowed.timestamp_micros
        self._last = last = (windowed.with_value(None), _event_time(micros))
        return last

    def _write_pending(self) -> None:
        """Convert the kept elements, then hand their records (or their
        rejections) to the engine, each with its element's windowed value as
        its context."""
        writer = self._open()
        writer.let_calls_run()  # once per chunk: the answered calls finish now
        pending, self._pending = self._pending, []
        settings = self.settings
        context_of = self._context_of
        if type(settings.stream) is str:  # one stream: none to choose (_prepare's first step)
            convert = settings.converter.convert
            entries = []
            append = entries.append
            for windowed in pending:
                context, ts = context_of(windowed)
                converted = convert(windowed.value)
                if type(converted) is Converted:
                    append((converted.record, converted.size, context, ts, None, None))
                else:
                    writer.reject(converted, context, ts)
            writer.add_many(entries)
        else:
            for windowed in pending:
                context, ts = context_of(windowed)
                converted, stream = _prepare(settings, windowed.value)
                if isinstance(converted, Rejection):
                    writer.reject(converted, context, ts, stream=stream)
                else:
                    writer.add(converted.record, converted.size, context, ts, stream=stream)

    def finish_bundle(self) -> Iterable[Any]:
        writer = self._open()
        self._write_pending()
        # Emit receipts as calls complete, not only at the end of the drain:
        # downstream counters (progress) move during a long, rate-capped flush.
        for _ in writer.drain(self.settings.flush_timeout_seconds):
            yield from _emit(writer.take_outcomes())
        yield from _emit(writer.take_outcomes())


class ShardedRecord(NamedTuple):
    """A record on its way through GroupIntoBatches (cross-bundle mode)."""

    data: bytes
    partition_key: str
    explicit_hash_key: Optional[str]
    size: int
    #: the 128-bit hash key, as a decimal str (computed once, when assigned)
    hash_key: str
    element_timestamp_micros: Optional[int]
    #: the element's stream, when a stream function chose it (else None: the one stream)
    stream: Optional[str] = None


beam.coders.registry.register_coder(ShardedRecord, beam.coders.RowCoder)


class _AssignShardFn(_WriterDoFn):
    """Cross-bundle mode, step 1: convert, check, key each record by its shard."""

    def process(self, element: Any, timestamp: Any = beam.DoFn.TimestampParam) -> Iterable[Any]:
        writer = self._open()
        ts = _micros(timestamp)
        converted, stream = _prepare(self.settings, element)
        if isinstance(converted, Rejection):
            writer.reject(converted, None, ts, stream=stream)
            for letter, _ in writer.take_outcomes():
                yield TaggedOutput(DEAD_LETTERS, letter)
            return
        assert isinstance(converted, Converted)
        record = converted.record
        hash_key, shard_id = writer.locate(record, stream)
        # The key GroupIntoBatches batches by: the shard, of its stream when chosen per element.
        key = shard_id if stream is None else f"{stream}/{shard_id}"
        yield (
            key,
            ShardedRecord(record.data, record.partition_key, record.explicit_hash_key, converted.size,
                          str(hash_key), ts, stream),
        )


class _WriteBatchesFn(_WriterDoFn):
    """Cross-bundle mode, step 2: write each batch GroupIntoBatches released."""

    def process(
        self,
        keyed_batch: Any,
        timestamp: Any = beam.DoFn.TimestampParam,
        window: Any = beam.DoFn.WindowParam,
        pane: Any = beam.DoFn.PaneInfoParam,
    ) -> Iterable[Any]:
        key, batch = keyed_batch
        shard_id = key.rsplit("/", 1)[-1]
        writer = self._open()
        writer.reset()  # leftovers of a failed attempt are retried by the runner
        # Outcomes come out in the batch's window at the batch's own timestamp
        # (the timer's output timestamp, which the watermark has not passed):
        # at their elements' timestamps they would be late data downstream,
        # and dropped. Each keeps its element's event time in
        # element_timestamp_micros.
        end = getattr(window, "max_timestamp", None)
        if end is not None and timestamp > end():
            timestamp = end()  # a timer at the window's end fires at end + 1 µs: keep it inside
        context = WindowedValue(None, timestamp, (window,), pane)
        for item in batch:
            writer.add(KinesisRecord(item.data, item.partition_key, item.explicit_hash_key), item.size,
                       context, item.element_timestamp_micros, hash_key=int(item.hash_key), shard_id=shard_id,
                       stream=item.stream)
            yield from _emit(writer.take_outcomes())
        writer.flush(self.settings.flush_timeout_seconds)
        yield from _emit(writer.take_outcomes())
