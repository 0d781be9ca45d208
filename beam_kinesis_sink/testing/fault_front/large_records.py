"""Where the fault front keeps the large records of a raised stream that its
upstream cannot store (:class:`LargeRecordStore`); why and when is in
:mod:`.record_size`.

Each kept record gets a sequence number that looks like the service's (56
decimal digits, increasing in the order the front keeps them) and the shard
its hash key maps to; tests read them back with ``FaultFront.large_records``
(``RemoteFaultFront.large_records`` for a front in its own process).
"""

from __future__ import annotations

import threading
import time
from typing import NamedTuple

from beam_kinesis_sink.client import stream_name_of


class LargeRecord(NamedTuple):
    """One record the front kept: ``(shard_id, sequence_number, partition_key, data)``."""

    shard_id: str
    sequence_number: str
    partition_key: str
    data: bytes


class LargeRecordStore:
    """The records the front kept, per stream name, in the order it kept
    them; shared by the front's handler threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, list[LargeRecord]] = {}
        # start from the clock so that a restarted front does not repeat numbers
        self._next = time.time_ns()

    def add(self, stream: str, shard_id: str, partition_key: str, data: bytes) -> LargeRecord:
        with self._lock:
            self._next += 1
            record = LargeRecord(shard_id, f"49{self._next:054d}", partition_key, data)
            self._records.setdefault(stream, []).append(record)
        return record

    def records(self, stream: str) -> list[LargeRecord]:
        """The kept records of ``stream`` (name or ARN), oldest first (a copy)."""
        with self._lock:
            return list(self._records.get(stream_name_of(stream), ()))

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
