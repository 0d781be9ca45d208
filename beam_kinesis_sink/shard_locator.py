"""Shard locator: a record's hash key → the open shard that holds it, with
the stream's shard map kept fresh.

The map is loaded with ListShards on first use, refreshed every
``refresh_seconds``, and sooner (but never more often than
``min_refresh_seconds``) once marked stale, e.g. when a receipt names a
shard the map does not know. While the stream cannot be described, all
records go to one pseudo-shard (:data:`~beam_kinesis_sink.sharding.UNKNOWN_SHARD`),
so that PutRecords can tell each record its fate.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional

from beam_kinesis_sink import metrics as m
from beam_kinesis_sink.classifier import Action, classify_exception
from beam_kinesis_sink.errors import FatalStreamError
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

    def shard_of(self, hash_key: int) -> str:
        assert self.shard_map is not None, "call refresh() first"
        return self.shard_map.shard_for(hash_key).shard_id

    def knows(self, shard_id: str) -> bool:
        """Whether ``shard_id`` is an open shard of the current map."""
        return self.shard_map is not None and shard_id in self.shard_map

    def mark_stale(self) -> None:
        self._stale = True

    def _due(self) -> bool:
        if self.shard_map is None:
            return True
        age = self._clock() - self._loaded_at
        return age >= self._refresh_seconds or (self._stale and age >= self._min_refresh_seconds)

    def refresh(self) -> bool:
        """Reload the map if it is due. Returns whether the open shards changed
        (the buffers then move queued records to their new shards)."""
        if not self._due():
            return False
        self._loaded_at = self._clock()
        self._stale = False
        try:
            new_map = list_open_shards(self._client, self._stream_args)
        except Exception as exc:
            self._on_failure(exc)
            return False
        self._metrics.inc(m.SHARD_MAP_REFRESHES)
        old, self.shard_map = self.shard_map, new_map
        return old is not None and [s.shard_id for s in old.shards] != [s.shard_id for s in new_map.shards]

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
