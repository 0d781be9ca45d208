"""Outcomes: the one place that builds :class:`WriteReceipt` and
:class:`DeadLetter`, with one clock, redaction and metrics.

Every record the sink is given ends here exactly once: written, rejected
before any request (a :class:`~beam_kinesis_sink.convert.Rejection`), or
given up on. Each outcome travels with its opaque context (for the DoFns:
the element's timestamp, windows and pane) until the caller takes it.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple, Union

from beam_kinesis_sink import metrics as m
from beam_kinesis_sink.convert import Rejection
from beam_kinesis_sink.records import DeadLetter, WriteReceipt
from beam_kinesis_sink.shard_buffers import Item
from beam_kinesis_sink.sharding import UNKNOWN_SHARD

Outcome = Tuple[Union[WriteReceipt, DeadLetter], Any]

_new_tuple = tuple.__new__


class Outcomes:
    """Builds outcomes and keeps them until they are taken."""

    def __init__(
        self,
        metrics: m.MetricsSink,
        wall_clock: Callable[[], float],
        redact: Callable[[str], str],
    ) -> None:
        self.metrics = metrics
        self._wall = wall_clock
        self.redact = redact
        self._pending: List[Outcome] = []

    def __len__(self) -> int:
        return len(self._pending)

    def take(self) -> Sequence[Outcome]:
        """The outcomes made since the last take, in order (``()`` if none:
        a look per element costs no new list)."""
        pending = self._pending
        if not pending:
            return ()
        self._pending = []
        return pending

    def clear(self) -> None:
        self._pending.clear()

    def _now_micros(self) -> int:
        return int(self._wall() * 1_000_000)

    def written(self, stream: str, units: List[Tuple[Item, str, str]]) -> None:
        """Receipts for ``(unit, shard_id, sequence_number)`` triples: one per
        user record, an aggregate's members with their index in it."""
        count = nbytes = 0
        pending = self._pending
        for unit, shard_id, sequence_number in units:
            aggregated = unit.members is not None
            for index, item in enumerate(unit.users()):
                # WriteReceipt's fields in order, without its keyword __new__
                # (a fifth of its cost; test_writer.py checks each field by name)
                receipt = _new_tuple(WriteReceipt, (
                    stream, item.partition_key, item.explicit_hash_key, shard_id, sequence_number,
                    item.attempts, item.size, item.element_timestamp_micros,
                    index if aggregated else None,
                ))
                pending.append((receipt, item.context))
                count += 1
                nbytes += item.size
        if count:
            self.metrics.inc(m.RECORDS_WRITTEN, count)
            self.metrics.inc(m.BYTES_WRITTEN, nbytes)

    def written_by_index(self, stream: str, items: List[Item],
                         written: Iterable[Tuple[int, str, str]]) -> Tuple[int, int]:
        """Receipts for ``(index, shard_id, sequence_number)`` triples of a
        call's ``items``, every one a user record (no aggregation): the
        common case, without ``written``'s per-unit steps. Returns the
        records and bytes written."""
        count = nbytes = 0
        append = self._pending.append
        for index, shard_id, sequence_number in written:
            item = items[index]
            size = item.size
            # WriteReceipt's fields in order (test_writer.py checks each by name)
            append((_new_tuple(WriteReceipt, (
                stream, item.partition_key, item.explicit_hash_key, shard_id, sequence_number,
                item.attempts, size, item.element_timestamp_micros, None,
            )), item.context))
            count += 1
            nbytes += size
        if count:
            self.metrics.inc(m.RECORDS_WRITTEN, count)
            self.metrics.inc(m.BYTES_WRITTEN, nbytes)
        return count, nbytes

    def gave_up(self, stream: str, item: Item, code: str, message: str, shard_id: Optional[str]) -> None:
        """A dead letter for a record the sink tried (or meant) to send."""
        self._dead(
            DeadLetter(
                stream=stream,
                data=item.data,
                partition_key=item.partition_key,
                explicit_hash_key=item.explicit_hash_key,
                error_code=code,
                error_message=self.redact(message),
                attempts=item.attempts,
                shard_id=None if shard_id == UNKNOWN_SHARD else shard_id,
                failed_at_micros=self._now_micros(),
                element_timestamp_micros=item.element_timestamp_micros,
                element_preview=None,
            ),
            item.context,
        )

    def rejected(self, stream: str, rejection: Rejection, context: Any,
                 element_timestamp_micros: Optional[int]) -> None:
        """A dead letter for an element refused before any request."""
        self._dead(
            DeadLetter(
                stream=stream,
                data=rejection.data,
                partition_key=rejection.partition_key,
                explicit_hash_key=rejection.explicit_hash_key,
                error_code=rejection.error_code,
                error_message=self.redact(rejection.error_message),
                attempts=0,
                shard_id=None,
                failed_at_micros=self._now_micros(),
                element_timestamp_micros=element_timestamp_micros,
                element_preview=rejection.element_preview,
            ),
            context,
        )

    def _dead(self, letter: DeadLetter, context: Any) -> None:
        self.metrics.dead_letter(letter.error_code)
        self._pending.append((letter, context))
