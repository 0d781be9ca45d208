"""The in-process fault front, :class:`FaultFront`: its lifecycle, its
config and its stats. The work per request is in :mod:`.proxy`."""

from __future__ import annotations

import threading
from typing import Any, Optional
from urllib.parse import urlsplit

from beam_kinesis_sink.testing.fault_front.config import FaultConfig
from beam_kinesis_sink.testing.fault_front.faults import Dice
from beam_kinesis_sink.testing.fault_front.large_records import LargeRecord, LargeRecordStore
from beam_kinesis_sink.testing.fault_front.proxy import FrontServer
from beam_kinesis_sink.testing.fault_front.stats import FrontStats, RatesFromTimeline, StatsRecorder, Timeline
from beam_kinesis_sink.testing.fault_front.throttling import ShardBuckets, ShardMaps
from beam_kinesis_sink.testing.local_servers import make_client
from beam_kinesis_sink.testing.processes import LOOPBACK


class FaultFront(RatesFromTimeline):
    """The fault-injecting front. ``start()`` (or ``with``) serves it from a
    background thread; ``endpoint_url`` is where clients go."""

    def __init__(
        self,
        upstream_url: str,
        config: Optional[FaultConfig] = None,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        upstream_timeout: float = 60.0,
    ) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, got {upstream_url!r}")
        self.upstream_url = upstream_url
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.upstream_timeout = upstream_timeout
        self._config = config or FaultConfig()
        self._config_lock = threading.Lock()
        #: the parts the request handlers share
        self.recorder = StatsRecorder()
        self.dice = Dice(self._config.seed)
        self.buckets = ShardBuckets()
        self.shard_maps = ShardMaps()
        self.large = LargeRecordStore()
        self._server = FrontServer((host, port), self)
        self.host = host
        self.port = int(self._server.server_address[1])
        self.endpoint_url = f"http://{host}:{self.port}"
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> FaultFront:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"fault-front-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread (the command-line entry point)."""
        self._server.serve_forever(poll_interval=0.1)

    def shutdown(self) -> None:
        """Make ``serve_forever()`` return; call it from another thread."""
        self._server.shutdown()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.close_all_connections()
        self._server.server_close()

    def __enter__(self) -> FaultFront:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FaultFront({self.endpoint_url} -> {self.upstream_url})"

    # -- config --------------------------------------------------------------------------

    @property
    def config(self) -> FaultConfig:
        return self._config

    @config.setter
    def config(self, config: FaultConfig) -> None:
        self.set_config(config)

    def set_config(self, config: FaultConfig) -> FaultConfig:
        with self._config_lock:
            old, self._config = self._config, config
        if config.seed is not None and config.seed != old.seed:
            self.dice.reseed(config.seed)
        return config

    def configure(self, **changes: Any) -> FaultConfig:
        """Change some fields of the running config; returns the new config."""
        with self._config_lock:
            new = self._config = self._config.replace(**changes)
        if "seed" in changes and new.seed is not None:
            self.dice.reseed(new.seed)
        return new

    def set_max_record_size(self, stream: str, kib: int) -> FaultConfig:
        """Raise ``stream`` (name or ARN) to ``kib`` KiB per record, as
        ``UpdateMaxRecordSize`` through the front does; returns the new config."""
        with self._config_lock:
            sizes = self._config.max_record_size_kib.with_size(stream, kib)
            new = self._config = self._config.replace(max_record_size_kib=sizes)
        return new

    def reset_buckets(self) -> None:
        """Refill every shard's token bucket."""
        self.buckets.reset()

    def invalidate_shard_maps(self) -> None:
        """Forget the cached shard maps. Not needed after a reshard: the front
        notices when the upstream puts a record on another shard than it
        expected, and otherwise re-reads the shards every shard_map_ttl_s."""
        self.shard_maps.invalidate()

    def invalidate_shard_map(self, stream: str) -> None:
        self.shard_maps.invalidate(stream)

    # -- stats ---------------------------------------------------------------------------

    def stats(self) -> FrontStats:
        return self.recorder.snapshot()

    def reset_stats(self) -> None:
        self.recorder.reset()

    def reset(self) -> None:
        """Stats, buckets and shard maps back to their initial state."""
        self.reset_stats()
        self.reset_buckets()
        self.invalidate_shard_maps()

    def large_records(self, stream: str) -> list[LargeRecord]:
        """The records of a raised stream (name or ARN) that the front kept
        itself, oldest first: ``(shard_id, sequence_number, partition_key,
        data)`` each (see :mod:`.record_size`). ``reset()`` keeps them."""
        return self.large.records(stream)

    def clear_large_records(self) -> None:
        self.large.clear()

    def timeline(self) -> Timeline:
        """Per shard, ``(time.monotonic(), records accepted)`` for every batch
        the upstream accepted (time of forwarding). ``time.monotonic`` is
        system-wide on Linux, so a benchmark in another process can compare."""
        return self.recorder.timeline()

    def client(self, **config: Any) -> Any:
        """A boto3 Kinesis client pointed at the front (dummy credentials,
        retries disabled unless ``max_attempts`` is given)."""
        return make_client(self.endpoint_url, **config)
