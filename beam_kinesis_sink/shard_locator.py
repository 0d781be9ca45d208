"""Shard locator: a record's hash key → the open shard that holds it, with
the stream's shard map kept fresh.

The map is loaded with ListShards on first use, refreshed every
``refresh_seconds``, and sooner (but never more often than
``min_refresh_seconds``) once marked stale, e.g. when a receipt names a
shard the map does not know. While the stream cannot be described, all
records go to one pseudo-shard (:data:`~beam_kinesis_sink.sharding.UNKNOWN_SHARD`),
so that PutRecords can tell each record its fate.

With ``read_record_limit``, each load also reads the stream's record limit
(``MaxRecordSizeInKiB`` of DescribeStreamSummary, raised up to 10 MiB with
UpdateMaxRecordSize). An answer without it, or a failed call, means the
default 1 MiB; a failed call is logged once.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional

from beam_kinesis_sink import metrics as m
from beam_kinesis_sink.classifier import Action, classify_exception
from beam_kinesis_sink.errors import FatalStreamError
from beam_kinesis_sink.limits import MAX_RECORD_KIB
from beam_kinesis_sink.sharding import ShardMap, list_open_shards

_LOG = logging.getLogger(__name__)


class ShardLocator:
    def __init__(
        self,
        client: Any,
        stream: str,
        stream_args: Dict[str, str],
        clock: Callable[[], float],
        *,
        refresh_seconds: float,
        min_refresh_seconds: float,
        fail_on_fatal: bool,
        redact: Callable[[str], str],
        metrics: m.MetricsSink,
        read_record_limit: bool = False,
    ) -> None:
        self._client = client
        self._stream = stream
        self._stream_args = stream_args
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._min_refresh_seconds = min_refresh_seconds
        self._fail_on_fatal = fail_on_fatal
        self._redact = redact
        self._metrics = metrics
        self.shard_map: Optional[ShardMap] = None
        self._loaded_at = float("-inf")
        self._stale = True
        #: the clock time from which the map is due for a reload
        self.next_look = float("-inf")
        self._read_record_limit = read_record_limit
        #: the stream's record limit in bytes, as last read (None: not read, or 1 MiB)
        self.record_limit_bytes: Optional[int] = None
        self._limit_warned = False
        #: maps loaded so far (a change tells the route to look at the limit again)
        self.loads = 0

    def shard_of(self, hash_key: int) -> str:
        assert self.shard_map is not None, "call refresh() first"
        return self.shard_map.shard_for(hash_key).shard_id

    def knows(self, shard_id: str) -> bool:
        """Whether ``shard_id`` is an open shard of the current map."""
        return self.shard_map is not None and shard_id in self.shard_map

    def mark_stale(self) -> None:
        self._stale = True
        self._set_next_look()

    def _set_next_look(self) -> None:
        """When the map is next due: at once with no map; a stale map after
        the shorter wait, a fresh one after the refresh period."""
        if self.shard_map is None:
            self.next_look = float("-inf")
            return
        wait = min(self._refresh_seconds, self._min_refresh_seconds) if self._stale else self._refresh_seconds
        self.next_look = self._loaded_at + wait

    def _due(self) -> bool:
        return self._clock() >= self.next_look

    def refresh(self) -> bool:
        """Reload the map if it is due. Returns whether the open shards changed
        (the buffers then move queued records to their new shards)."""
        if not self._due():
            return False
        self._loaded_at = self._clock()
        self._stale = False
        try:
            return self._load()
        finally:
            self._set_next_look()

    def _load(self) -> bool:
        try:
            new_map = list_open_shards(self._client, self._stream_args)
        except Exception as exc:
            self._on_failure(exc)
            return False
        self._metrics.inc(m.SHARD_MAP_REFRESHES)
        self.loads += 1
        if self._read_record_limit:
            self._read_limit()
        old, self.shard_map = self.shard_map, new_map
        return old is not None and [s.shard_id for s in old.shards] != [s.shard_id for s in new_map.shards]

    def _read_limit(self) -> None:
        try:
            summary = self._client.describe_stream_summary(**self._stream_args)["StreamDescriptionSummary"]
        except Exception as exc:
            if not self._limit_warned:
                self._limit_warned = True
                c = classify_exception(exc)
                _LOG.warning("DescribeStreamSummary failed for stream %r (%s: %s); assuming the default "
                             "record limit of 1 MiB (grant kinesis:DescribeStreamSummary, or pass "
                             "max_record_bytes=<bytes>)", self._stream, c.error_code,
                             self._redact(c.error_message))
            return
        kib = summary.get("MaxRecordSizeInKiB") if isinstance(summary, dict) else None
        valid = isinstance(kib, int) and not isinstance(kib, bool) and 1 <= kib <= MAX_RECORD_KIB
        self.record_limit_bytes = kib * 1024 if valid else None

    def _on_failure(self, exc: BaseException) -> None:
        c = classify_exception(exc)
        message = self._redact(c.error_message)
        if c.action is Action.FATAL and self._fail_on_fatal:
            raise FatalStreamError(self._stream, c.error_code, message) from None
        _LOG.warning("ListShards failed for stream %r: %s: %s", self._stream, c.error_code, message)
        if self.shard_map is None:
            # Keep going: PutRecords will tell each record its fate.
            self.shard_map = ShardMap.single()
            self._stale = True
