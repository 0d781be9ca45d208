"""A fault-injecting front for a local Kinesis server.

The front is an HTTP server on loopback that sits between a client (boto3 with
``endpoint_url`` set to the front) and a real local Kinesis server (the
upstream: kinesalite or kinesis-mock). It forwards every request to the
upstream and every response back, unchanged, except that for ``PutRecords``
(and ``PutRecord``) it

- enforces the limits the emulators leave out, with the service's error
  shapes (HTTP 400, ``{"__type": ..., "message": ...}``): at most 500 records
  and 5 MiB (data + partition keys) per request (``InvalidArgumentException``
  for the size, ``ValidationException`` for the count), at most 1 MiB per
  record counting data plus partition key (``ValidationException``), a
  partition key of 1 to 256 characters (``ValidationException``), a valid
  explicit hash key;
- throttles per shard with a token bucket (1,000 records/s and 1 MiB/s by
  default, capacity one second's worth): a record over the budget gets a
  ``ProvisionedThroughputExceededException`` entry and is not forwarded;
- injects faults at configurable rates, from ``random.Random(seed)``:
  per-record ``InternalFailure`` entries (not forwarded), whole-request HTTP
  500 ``InternalFailure`` and 503 ``ServiceUnavailable``, dropped connections
  (each either before forwarding, nothing written, or after forwarding,
  written but failed: ``fail_after_forward_fraction``), a custom whole-request
  error, added latency, ``AccessDeniedException`` and
  ``ResourceNotFoundException`` on demand.

Records that pass go upstream in one PutRecords, in their original order; the
front merges the upstream result entries back into the original positions and
recomputes ``FailedRecordCount``. When nothing was held back, the request and
the response bytes are passed through untouched.

Protocol: botocore (1.44 here) speaks JSON 1.1 to Kinesis
(``Content-Type: application/x-amz-json-1.1``, ``X-Amz-Target:
Kinesis_20131202.PutRecords``, base64 ``Data``); its Kinesis model lists only
the ``json`` protocol. A body in another content type (for example the AWS
Java SDK's CBOR, ``application/x-amz-cbor-1.1``) is forwarded as is, with only
the whole-request faults applied, and counted in ``unparsed_requests``;
configure such a client to use JSON (Java SDK v1:
``com.amazonaws.sdk.disableCbor``; SDK v2: ``aws.cborEnabled=false``).

Use in-process::

    with FaultFront(kinesalite.endpoint_url, FaultConfig(seed=1)) as front:
        client = front.client()
        front.configure(record_internal_failure_rate=0.3)
        ...
        front.stats().records_internal_failure

or as its own process (so that it does not share a GIL with a pipeline)::

    python -m beam_kinesis_sink.testing.fault_front --upstream URL --port P \\
        --record-internal-failure-rate 0.1 --seed 7

with ``start_fault_front_process`` / ``RemoteFaultFront``, which change the
config and read the stats over the front's admin endpoints
(``GET /_fault/stats``, ``GET|POST /_fault/config``, ``POST /_fault/reset``,
``GET /_fault/timeline``).
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import hashlib
import http.client
import json
import os
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Iterable, Mapping, Optional, Sequence
from urllib.parse import urlsplit

MIB = 1024 * 1024
MAX_HASH_KEY = 2**128 - 1
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
ADMIN_PREFIX = "/_fault/"
_EXPLICIT_HASH_KEY = re.compile(r"0|[1-9]\d{0,38}")
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "content-length",
    }
)
_SEPARATORS = (",", ":")


# --------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class FaultConfig:
    """What the front enforces and injects. Immutable: change a running
    front's config with ``FaultFront.configure(**changes)`` (thread-safe)."""

    # -- service limits (PutRecords/PutRecord), whole request rejected
    max_records_per_request: int = 500
    max_request_bytes: int = 5 * MIB  # data + partition keys (UTF-8)
    max_record_bytes: int = 1 * MIB  # data + partition key (UTF-8)
    max_partition_key_chars: int = 256
    enforce_limits: bool = True

    # -- per-shard throttling (token bucket; capacity = rate * burst_seconds)
    throttle: bool = True
    shard_records_per_second: float = 1000.0
    shard_bytes_per_second: float = float(MIB)
    burst_seconds: float = 1.0

    # -- per-record injected InternalFailure (the record is not forwarded)
    record_internal_failure_rate: float = 0.0

    # -- whole-request faults, one draw per request in ``fault_operations``
    http_500_rate: float = 0.0
    http_503_rate: float = 0.0
    drop_connection_rate: float = 0.0
    #: share of the 500/503/dropped-connection faults that happen *after* the
    #: request was forwarded (written upstream, yet the client sees a failure:
    #: the cause of duplicates); the rest happen before, nothing written
    fail_after_forward_fraction: float = 0.0
    http_500_error_code: str = "InternalFailure"
    http_503_error_code: str = "ServiceUnavailable"
    #: a custom whole-request error (before forwarding), e.g. a KMS error or
    #: a whole-request ProvisionedThroughputExceededException
    error_rate: float = 0.0
    error_status: int = 400
    error_code: str = "KMSThrottlingException"
    error_message: str = "Rate exceeded for KMS."

    # -- latency added before handling each request in ``fault_operations``
    #: uniform in [latency_min_s, latency_max_s] (equal: fixed)
    latency_min_s: float = 0.0
    latency_max_s: float = 0.0

    # -- access
    #: AccessDeniedException for every request in ``fault_operations``
    deny_access: bool = False
    #: AccessDeniedException for these streams (names) only
    deny_streams: frozenset[str] = frozenset()
    #: ResourceNotFoundException for any request naming these streams
    missing_streams: frozenset[str] = frozenset()

    #: operations that get the whole-request faults, latency and deny_access
    fault_operations: frozenset[str] = frozenset({"PutRecords", "PutRecord"})

    # -- other
    #: seed of the front's ``random.Random``; setting it via configure() reseeds
    seed: Optional[int] = None
    #: account named in error messages when the request gave a stream name
    account_id: str = "000000000000"
    region: str = "us-east-1"
    #: rewrite ``StreamARN`` to ``StreamName`` before forwarding (kinesalite
    #: 3.3.3 knows only names; kinesis-mock knows both)
    arn_to_name: bool = True
    #: how long the front trusts its copy of a stream's shards (ListShards)
    shard_map_ttl_s: float = 5.0
    #: keep (time.monotonic(), n) per shard for every accepted batch
    record_timeline: bool = True

    def __post_init__(self) -> None:
        for name in (
            "record_internal_failure_rate",
            "http_500_rate",
            "http_503_rate",
            "drop_connection_rate",
            "error_rate",
            "fail_after_forward_fraction",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        total = self.http_500_rate + self.http_503_rate + self.drop_connection_rate + self.error_rate
        if total > 1.0 + 1e-9:
            raise ValueError(f"the whole-request fault rates add up to {total} > 1")
        if self.latency_max_s < self.latency_min_s:
            raise ValueError("latency_max_s must be >= latency_min_s")
        for name in ("deny_streams", "missing_streams", "fault_operations"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, frozenset):
                object.__setattr__(self, name, frozenset(value))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: the sets become sorted lists."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = sorted(value) if isinstance(value, frozenset) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultConfig:
        return cls().replace(**data)

    def replace(self, **changes: Any) -> FaultConfig:
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise TypeError(f"unknown FaultConfig fields: {sorted(unknown)}")
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------
# statistics


@dataclass(frozen=True)
class FrontStats:
    """A snapshot of what the front saw and did. Counts are cumulative since
    the front started or since ``reset_stats()``."""

    #: every proxied HTTP request (admin requests not counted)
    requests: int = 0
    requests_by_operation: dict[str, int] = field(default_factory=dict)
    put_records_calls: int = 0
    put_record_calls: int = 0
    #: records in PutRecords/PutRecord requests, rejected ones included
    records_received: int = 0
    #: records sent upstream
    records_forwarded: int = 0
    #: records the upstream accepted (got a SequenceNumber), whatever the
    #: client was told afterwards
    records_accepted: int = 0
    records_accepted_by_shard: dict[str, int] = field(default_factory=dict)
    #: data + partition key bytes of the accepted records
    bytes_accepted: int = 0
    #: per-record errors the upstream itself returned
    records_failed_upstream: int = 0
    #: per-record ProvisionedThroughputExceededException from the buckets
    records_throttled: int = 0
    records_throttled_by_shard: dict[str, int] = field(default_factory=dict)
    #: PutRecord (single) requests throttled as a whole
    requests_throttled: int = 0
    #: per-record InternalFailure entries injected
    records_internal_failure: int = 0
    #: whole-request faults injected (before or after forwarding)
    http_500_injected: int = 0
    http_503_injected: int = 0
    connections_dropped: int = 0
    errors_injected: int = 0
    #: how many of the 500/503/drops above came after forwarding
    failures_after_forward: int = 0
    #: records written upstream whose response the client never saw (the
    #: duplicates a retrying client will produce)
    records_written_but_failed: int = 0
    #: requests rejected by the limits, and why
    validation_rejections: int = 0
    rejections_by_reason: dict[str, int] = field(default_factory=dict)
    access_denied: int = 0
    resource_not_found: int = 0
    latency_injected_requests: int = 0
    latency_injected_seconds: float = 0.0
    #: non-2xx upstream answers passed through
    upstream_error_responses: int = 0
    #: upstream unreachable (the client got HTTP 502)
    upstream_connection_errors: int = 0
    #: PutRecords bodies the front could not read (not JSON): forwarded as is
    unparsed_requests: int = 0
    #: upstream PutRecords answers whose entry count did not match
    merge_mismatches: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FrontStats:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


_COUNTER_FIELDS = tuple(
    f.name for f in dataclasses.fields(FrontStats) if f.type in ("int", "float", int, float)
)
_MAP_FIELDS = tuple(f.name for f in dataclasses.fields(FrontStats) if f.name not in _COUNTER_FIELDS)


class _Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.counts: Counter[str] = Counter()
        self.seconds = 0.0
        self.maps: dict[str, Counter[str]] = {name: Counter() for name in _MAP_FIELDS}
        self.timeline: dict[str, list[tuple[float, int]]] = defaultdict(list)

    def add(self, **counts: int) -> None:
        with self.lock:
            self.counts.update(counts)

    def snapshot(self) -> FrontStats:
        with self.lock:
            values: dict[str, Any] = {name: self.counts.get(name, 0) for name in _COUNTER_FIELDS}
            values["latency_injected_seconds"] = self.seconds
            for name in _MAP_FIELDS:
                values[name] = dict(self.maps[name])
        return FrontStats(**values)


# --------------------------------------------------------------------------
# shard maps and token buckets


class _ShardMap:
    def __init__(self, shards: Iterable[tuple[int, int, str]], expires: float) -> None:
        ordered = sorted(shards)
        self.starts = [s[0] for s in ordered]
        self.ends = [s[1] for s in ordered]
        self.ids = [s[2] for s in ordered]
        self.expires = expires

    def shard_for(self, hash_key: int) -> Optional[str]:
        index = bisect.bisect_right(self.starts, hash_key) - 1
        if index < 0 or hash_key > self.ends[index]:
            return None
        return self.ids[index]


class _Bucket:
    __slots__ = ("records", "bytes", "updated")

    def __init__(self, records: float, nbytes: float, now: float) -> None:
        self.records = records
        self.bytes = nbytes
        self.updated = now


def _hash_key(partition_key: str, explicit_hash_key: Optional[str]) -> int:
    if explicit_hash_key is not None:
        return int(explicit_hash_key)
    return int.from_bytes(hashlib.md5(partition_key.encode("utf-8")).digest(), "big")


def _b64_len(text: str) -> int:
    """Decoded length of an (unwrapped) base64 string, without decoding it."""
    n = len(text)
    if n == 0:
        return 0
    pad = 2 if text.endswith("==") else 1 if text.endswith("=") else 0
    return n * 3 // 4 - pad


class _Abort(Exception):
    """An early answer to the client."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class _Upstream:
    """One keep-alive HTTP connection to the upstream (one per client
    connection thread)."""

    IDLE_REOPEN_S = 3.0  # node's server closes idle keep-alive sockets after 5 s

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.conn: Optional[http.client.HTTPConnection] = None
        self.last_used = 0.0
        self.reconnects = 0

    def _connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        conn.connect()
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        for attempt in (0, 1):
            now = time.monotonic()
            if self.conn is not None and now - self.last_used > self.IDLE_REOPEN_S:
                self.close()
            fresh = self.conn is None
            if fresh:
                self.conn = self._connect()
            conn = self.conn
            assert conn is not None
            try:
                conn.request(method, path, body, dict(headers))
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if fresh or attempt:
                    raise
                self.reconnects += 1
                continue
            except BaseException:
                self.close()
                raise
            self.last_used = time.monotonic()
            if response.will_close:
                self.close()
            return response.status, response.reason, response.getheaders(), data
        raise AssertionError("unreachable")


# --------------------------------------------------------------------------
# the front


class FaultFront:
    """The fault-injecting front. ``start()`` (or ``with``) serves it from a
    background thread; ``endpoint_url`` is where clients go."""

    def __init__(
        self,
        upstream_url: str,
        config: Optional[FaultConfig] = None,
        *,
        host: str = "127.0.0.1",
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
        self._rng = random.Random(self._config.seed)
        self._rng_lock = threading.Lock()
        self._stats = _Stats()
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._bucket_lock = threading.Lock()
        self._shard_maps: dict[str, _ShardMap] = {}
        self._shard_map_lock = threading.Lock()
        self._server = _Server((host, port), _Handler, self)
        self.host = host
        self.port = int(self._server.server_address[1])
        self.endpoint_url = f"http://{host}:{self.port}"
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle -------------------------------------------------------

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

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.close_all_connections()
        self._server.server_close()

    def __enter__(self) -> FaultFront:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FaultFront({self.endpoint_url} -> {self.upstream_url})"

    # -- config ----------------------------------------------------------

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
            with self._rng_lock:
                self._rng = random.Random(config.seed)
        return config

    def configure(self, **changes: Any) -> FaultConfig:
        """Change some fields of the running config; returns the new config."""
        with self._config_lock:
            new = self._config.replace(**changes)
            self._config = new
        if "seed" in changes and new.seed is not None:
            with self._rng_lock:
                self._rng = random.Random(new.seed)
        return new

    def reset_buckets(self) -> None:
        """Refill every shard's token bucket."""
        with self._bucket_lock:
            self._buckets.clear()

    def invalidate_shard_maps(self) -> None:
        """Forget the cached shard maps. Not needed after a reshard: the front
        notices when the upstream puts a record on another shard than it
        expected, and otherwise re-reads the shards every shard_map_ttl_s."""
        with self._shard_map_lock:
            self._shard_maps.clear()

    def invalidate_shard_map(self, stream: str) -> None:
        with self._shard_map_lock:
            self._shard_maps.pop(stream, None)

    # -- stats -----------------------------------------------------------

    def stats(self) -> FrontStats:
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        with self._stats.lock:
            self._stats.reset()

    def reset(self) -> None:
        """Stats, buckets and shard maps back to their initial state."""
        self.reset_stats()
        self.reset_buckets()
        self.invalidate_shard_maps()

    def timeline(self) -> dict[str, list[tuple[float, int]]]:
        """Per shard, ``(time.monotonic(), records accepted)`` for every batch
        the upstream accepted (time of forwarding). ``time.monotonic`` is
        system-wide on Linux, so a benchmark in another process can compare."""
        with self._stats.lock:
            return {shard: list(events) for shard, events in self._stats.timeline.items()}

    def achieved_rates(self, start: Optional[float] = None, end: Optional[float] = None) -> dict[str, float]:
        return achieved_rates(self.timeline(), start, end)

    def peak_rates(self, window_s: float = 1.0) -> dict[str, int]:
        return peak_rates(self.timeline(), window_s)

    def client(self, **config: Any) -> Any:
        """A boto3 Kinesis client pointed at the front (dummy credentials,
        retries disabled unless ``max_attempts`` is given)."""
        from beam_kinesis_sink.testing.local_servers import make_client

        return make_client(self.endpoint_url, **config)

    # -- internals used by the handler -------------------------------------

    def _draw(self, n: int = 1) -> list[float]:
        with self._rng_lock:
            rnd = self._rng.random
            return [rnd() for _ in range(n)]

    def _uniform(self, low: float, high: float) -> float:
        with self._rng_lock:
            return self._rng.uniform(low, high)

    def _shard_map(
        self, stream: str, upstream: _Upstream, headers: Mapping[str, str], cfg: FaultConfig
    ) -> _ShardMap:
        now = time.monotonic()
        shard_map = self._shard_maps.get(stream)
        if shard_map is not None and shard_map.expires > now:
            return shard_map
        with self._shard_map_lock:
            shard_map = self._shard_maps.get(stream)
            if shard_map is not None and shard_map.expires > now:
                return shard_map
            shards: list[tuple[int, int, str]] = []
            request: dict[str, Any] = {"StreamName": stream}
            list_headers = {
                k: v
                for k, v in headers.items()
                if k.lower() not in _HOP_BY_HOP and k.lower() != "x-amz-target"
            }
            list_headers["X-Amz-Target"] = "Kinesis_20131202.ListShards"
            while True:
                body = json.dumps(request).encode()
                list_headers["Content-Length"] = str(len(body))
                status, reason, resp_headers, data = upstream.request("POST", "/", body, list_headers)
                if status != 200:
                    raise _UpstreamAnswer(status, reason, resp_headers, data)
                answer = json.loads(data)
                for shard in answer.get("Shards", []):
                    if "EndingSequenceNumber" in shard.get("SequenceNumberRange", {}):
                        continue
                    hash_range = shard["HashKeyRange"]
                    shards.append(
                        (
                            int(hash_range["StartingHashKey"]),
                            int(hash_range["EndingHashKey"]),
                            shard["ShardId"],
                        )
                    )
                token = answer.get("NextToken")
                if not token:
                    break
                request = {"NextToken": token}
            shard_map = _ShardMap(shards, time.monotonic() + cfg.shard_map_ttl_s)
            self._shard_maps[stream] = shard_map
            return shard_map

    def _take(
        self,
        stream: str,
        wanted: Sequence[tuple[int, str, int]],
        cfg: FaultConfig,
    ) -> tuple[list[int], list[int]]:
        """Token-bucket check for ``(index, shard_id, nbytes)`` in request
        order; returns (accepted indexes, throttled indexes)."""
        accepted: list[int] = []
        throttled: list[int] = []
        rec_rate = cfg.shard_records_per_second
        byte_rate = cfg.shard_bytes_per_second
        rec_cap = rec_rate * cfg.burst_seconds
        byte_cap = byte_rate * cfg.burst_seconds
        with self._bucket_lock:
            now = time.monotonic()
            buckets = self._buckets
            for index, shard_id, nbytes in wanted:
                key = (stream, shard_id)
                bucket = buckets.get(key)
                if bucket is None:
                    bucket = buckets[key] = _Bucket(rec_cap, byte_cap, now)
                elif bucket.updated != now:
                    elapsed = now - bucket.updated
                    bucket.records = min(rec_cap, bucket.records + elapsed * rec_rate)
                    bucket.bytes = min(byte_cap, bucket.bytes + elapsed * byte_rate)
                    bucket.updated = now
                if bucket.records >= 1.0 and bucket.bytes >= nbytes:
                    bucket.records -= 1.0
                    bucket.bytes -= nbytes
                    accepted.append(index)
                else:
                    throttled.append(index)
        return accepted, throttled


def achieved_rates(
    timeline: Mapping[str, Sequence[Sequence[float]]],
    start: Optional[float] = None,
    end: Optional[float] = None,
) -> dict[str, float]:
    """Accepted records per second per shard over [start, end] (default: from
    the first to the last accepted batch of any shard)."""
    times = [event[0] for events in timeline.values() for event in events]
    if not times:
        return {}
    start = min(times) if start is None else start
    end = max(times) if end is None else end
    span = max(end - start, 1e-9)
    return {
        shard: sum(n for t, n in events if start <= t <= end) / span for shard, events in timeline.items()
    }


def peak_rates(timeline: Mapping[str, Sequence[Sequence[float]]], window_s: float = 1.0) -> dict[str, int]:
    """The most records accepted per shard in any window of ``window_s``."""
    peaks: dict[str, int] = {}
    for shard, events in timeline.items():
        ordered = sorted((float(t), int(n)) for t, n in events)
        best = running = 0
        left = 0
        for t, n in ordered:
            running += n
            while ordered[left][0] < t - window_s:
                running -= ordered[left][1]
                left += 1
            best = max(best, running)
        peaks[shard] = best
    return peaks


class _UpstreamAnswer(Exception):
    """An upstream error answer to pass back to the client as is."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, front: FaultFront) -> None:
        self.front = front
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_all_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
            self._open.clear()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _stream_of(request: Mapping[str, Any]) -> tuple[Optional[str], Optional[str]]:
    """(stream name, account from the ARN or None)."""
    name = request.get("StreamName")
    arn = request.get("StreamARN")
    account = None
    if isinstance(arn, str) and arn.startswith("arn:"):
        parts = arn.split(":", 5)
        if len(parts) == 6:
            account = parts[4] or None
            if not name:
                name = parts[5].rsplit("/", 1)[-1]
    return (name if isinstance(name, str) else None), account


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        front = self.server.front
        self.front = front
        self.upstream = _Upstream(front.upstream_host, front.upstream_port, front.upstream_timeout)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.upstream.close()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    # -- plumbing ----------------------------------------------------------

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length))
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _send(
        self,
        status: int,
        reason: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
    ) -> None:
        lines = [f"HTTP/1.1 {status} {reason}\r\n"]
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                lines.append(f"{name}: {value}\r\n")
        lines.append(f"Content-Length: {len(body)}\r\n")
        if self.close_connection:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        self.wfile.write("".join(lines).encode("latin-1") + body)

    def _send_json(self, status: int, payload: Any, reason: Optional[str] = None) -> None:
        body = json.dumps(payload, separators=_SEPARATORS).encode()
        self._send(
            status,
            reason or http.client.responses.get(status, ""),
            [("Content-Type", JSON_CONTENT_TYPE), ("x-amzn-RequestId", str(uuid.uuid4()))],
            body,
        )

    def _send_error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"__type": code, "message": message}, separators=_SEPARATORS).encode()
        self._send(
            status,
            http.client.responses.get(status, ""),
            [
                ("Content-Type", JSON_CONTENT_TYPE),
                ("x-amzn-RequestId", str(uuid.uuid4())),
                ("x-amzn-ErrorType", f"{code}:"),
            ],
            body,
        )

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        return self.upstream.request(self.command, self.path, body, headers)

    def _forward_and_reply(self, body: bytes) -> None:
        try:
            status, reason, headers, data = self._forward(body)
        except _UPSTREAM_ERRORS as error:
            self.front._stats.add(upstream_connection_errors=1)
            self._send_error(502, "InternalFailure", f"fault front: upstream unreachable: {error!r}")
            return
        if status >= 300:
            self.front._stats.add(upstream_error_responses=1)
        self._send(status, reason, headers, data)

    # -- entry points --------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self.path.startswith(ADMIN_PREFIX):
            self._admin(b"")
            return
        self._proxy(self._read_body())

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        body = self._read_body()
        if self.path.startswith(ADMIN_PREFIX):
            self._admin(body)
            return
        self._proxy(body)

    def _admin(self, body: bytes) -> None:
        front = self.front
        path = self.path[len(ADMIN_PREFIX) :].split("?", 1)[0]
        try:
            if path == "stats":
                self._send_json(200, front.stats().to_dict())
            elif path == "config" and self.command == "GET":
                self._send_json(200, front.config.to_dict())
            elif path == "config":
                changes = json.loads(body or b"{}")
                self._send_json(200, front.configure(**changes).to_dict())
            elif path == "reset":
                front.reset()
                self._send_json(200, {})
            elif path == "reset-stats":
                front.reset_stats()
                self._send_json(200, {})
            elif path == "reset-buckets":
                front.reset_buckets()
                self._send_json(200, {})
            elif path == "invalidate-shard-maps":
                front.invalidate_shard_maps()
                self._send_json(200, {})
            elif path == "timeline":
                self._send_json(200, front.timeline())
            elif path == "ping":
                self._send_json(200, {"upstream": front.upstream_url})
            else:
                self._send_json(404, {"error": f"unknown admin path {self.path}"})
        except (TypeError, ValueError) as error:
            self._send_json(400, {"error": str(error)})

    def _proxy(self, body: bytes) -> None:
        front = self.front
        cfg = front._config
        target = self.headers.get("X-Amz-Target", "")
        operation = target.rpartition(".")[2]
        stats = front._stats
        with stats.lock:
            stats.counts["requests"] += 1
            stats.maps["requests_by_operation"][operation or "?"] += 1
        is_json = "json" in self.headers.get("Content-Type", "")
        faulty = operation in cfg.fault_operations

        if faulty and cfg.latency_max_s > 0:
            delay = cfg.latency_min_s
            if cfg.latency_max_s > cfg.latency_min_s:
                delay = front._uniform(cfg.latency_min_s, cfg.latency_max_s)
            time.sleep(delay)
            with stats.lock:
                stats.counts["latency_injected_requests"] += 1
                stats.seconds += delay

        request: Optional[dict[str, Any]] = None
        if is_json and (
            operation in _PARSED_OPS
            or cfg.missing_streams
            or (faulty and cfg.deny_streams)
            or (cfg.arn_to_name and b'"StreamARN"' in body)
        ):
            try:
                parsed = json.loads(body) if body else {}
                request = parsed if isinstance(parsed, dict) else None
            except ValueError:
                request = None
        if operation in _PARSED_OPS and request is None:
            stats.add(unparsed_requests=1)

        try:
            stream, account = _stream_of(request) if request is not None else (None, None)
            account = account or cfg.account_id
            if stream is not None and stream in cfg.missing_streams:
                stats.add(resource_not_found=1)
                raise _Abort(
                    400,
                    "ResourceNotFoundException",
                    f"Stream {stream} under account {account} not found.",
                )
            records: Optional[list[Any]] = None
            if request is not None and operation == "PutRecords":
                records = request.get("Records")
                self._validate_put_records(records, cfg, stats)
            elif request is not None and operation == "PutRecord":
                self._validate_put_record(request, cfg, stats)
            if faulty and (cfg.deny_access or (stream is not None and stream in cfg.deny_streams)):
                stats.add(access_denied=1)
                raise _Abort(
                    400,
                    "AccessDeniedException",
                    f"User: arn:aws:iam::{account}:user/testing is not authorized to perform: "
                    f"kinesis:{operation} on resource: "
                    f"arn:aws:kinesis:{cfg.region}:{account}:stream/{stream} because no "
                    f"identity-based policy allows the kinesis:{operation} action",
                )
        except _Abort as abort:
            self._send_error(abort.status, abort.code, abort.message)
            return

        # whole-request faults
        fault: Optional[str] = None
        after = False
        if faulty and (cfg.http_500_rate or cfg.http_503_rate or cfg.drop_connection_rate or cfg.error_rate):
            u, v = front._draw(2)
            edge = cfg.http_500_rate
            if u < edge:
                fault = "500"
            elif u < (edge := edge + cfg.http_503_rate):
                fault = "503"
            elif u < (edge := edge + cfg.drop_connection_rate):
                fault = "drop"
            elif u < edge + cfg.error_rate:
                fault = "error"
            after = fault in ("500", "503", "drop") and v < cfg.fail_after_forward_fraction
            if fault is not None and not after:
                self._inject(fault, cfg, after=False, written=0)
                return

        if cfg.arn_to_name and request is not None and "StreamARN" in request and stream:
            request.pop("StreamARN")
            request["StreamName"] = stream
            body = json.dumps(request, separators=_SEPARATORS).encode()

        if operation == "PutRecords" and records is not None and stream is not None:
            assert request is not None
            self._put_records(request, records, stream, account, body, cfg, fault if after else None)
            return
        if operation == "PutRecord" and request is not None and stream is not None:
            self._put_record(request, stream, account, body, cfg, fault if after else None)
            return

        # anything else: forward as is
        if fault is not None:  # after forwarding
            try:
                self._forward(body)
            except _UPSTREAM_ERRORS:
                stats.add(upstream_connection_errors=1)
            self._inject(fault, cfg, after=True, written=0)
            return
        self._forward_and_reply(body)

    # -- faults ----------------------------------------------------------------

    def _inject(self, fault: str, cfg: FaultConfig, *, after: bool, written: int) -> None:
        stats = self.front._stats
        counts: dict[str, int] = {}
        if after:
            counts["failures_after_forward"] = 1
            counts["records_written_but_failed"] = written
        if fault == "500":
            counts["http_500_injected"] = 1
            stats.add(**counts)
            self._send_error(500, cfg.http_500_error_code, "Internal service failure.")
        elif fault == "503":
            counts["http_503_injected"] = 1
            stats.add(**counts)
            self._send_error(503, cfg.http_503_error_code, "Service Unavailable. Please retry.")
        elif fault == "drop":
            counts["connections_dropped"] = 1
            stats.add(**counts)
            self._drop()
        else:
            stats.add(errors_injected=1)
            self._send_error(cfg.error_status, cfg.error_code, cfg.error_message)

    # -- validation ----------------------------------------------------------

    def _reject(self, stats: _Stats, reason: str, code: str, message: str) -> _Abort:
        with stats.lock:
            stats.counts["validation_rejections"] += 1
            stats.maps["rejections_by_reason"][reason] += 1
        return _Abort(400, code, message)

    def _check_record(self, record: Any, position: str, cfg: FaultConfig, stats: _Stats) -> int:
        """Validate one entry; returns its size (data + partition key bytes).
        The entry's shape is always checked, the limits if ``enforce_limits``."""
        if not isinstance(record, dict):
            raise self._reject(stats, "malformed", "SerializationException", "Start of structure expected")
        key = record.get("PartitionKey")
        data = record.get("Data")
        if not isinstance(key, str):
            raise self._reject(
                stats,
                "partition_key_missing",
                "ValidationException",
                f"1 validation error detected: Value null at '{position}partitionKey' "
                "failed to satisfy constraint: Member must not be null",
            )
        if not isinstance(data, str):
            raise self._reject(
                stats,
                "data_missing",
                "ValidationException",
                f"1 validation error detected: Value null at '{position}data' "
                "failed to satisfy constraint: Member must not be null",
            )
        if not cfg.enforce_limits:
            return _b64_len(data) + len(key.encode("utf-8"))
        if not 1 <= len(key) <= cfg.max_partition_key_chars:
            bound = (
                "greater than or equal to 1"
                if not key
                else f"less than or equal to {cfg.max_partition_key_chars}"
            )
            raise self._reject(
                stats,
                "partition_key_length",
                "ValidationException",
                f"1 validation error detected: Value '{key}' at '{position}partitionKey' "
                f"failed to satisfy constraint: Member must have length {bound}",
            )
        data_len = _b64_len(data)
        if data_len > cfg.max_record_bytes:
            raise self._reject(
                stats,
                "record_too_large",
                "ValidationException",
                f"1 validation error detected: Value 'java.nio.HeapByteBuffer[pos=0 lim={data_len} "
                f"cap={data_len}]' at '{position}data' failed to satisfy constraint: "
                f"Member must have length less than or equal to {cfg.max_record_bytes}",
            )
        size = data_len + (len(key) if key.isascii() else len(key.encode("utf-8")))
        if size > cfg.max_record_bytes:
            raise self._reject(
                stats,
                "record_too_large",
                "ValidationException",
                f"1 validation error detected: Value at '{position.rstrip('.')}' failed to satisfy "
                f"constraint: Record size (data + partition key) of {size} bytes exceeds the "
                f"limit of {cfg.max_record_bytes} bytes",
            )
        ehk = record.get("ExplicitHashKey")
        if ehk is not None:
            if not isinstance(ehk, str) or not _EXPLICIT_HASH_KEY.fullmatch(ehk):
                raise self._reject(
                    stats,
                    "explicit_hash_key",
                    "ValidationException",
                    f"1 validation error detected: Value '{ehk}' at '{position}explicitHashKey' "
                    "failed to satisfy constraint: Member must satisfy regular expression "
                    "pattern: 0|([1-9]\\d{0,38})",
                )
            if int(ehk) > MAX_HASH_KEY:
                raise self._reject(
                    stats,
                    "explicit_hash_key",
                    "InvalidArgumentException",
                    "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: "
                    f"[0, 2^128-1]. Specified value was {ehk}",
                )
        return size

    def _validate_put_records(self, records: Any, cfg: FaultConfig, stats: _Stats) -> None:
        if not isinstance(records, list):
            with stats.lock:
                stats.counts["put_records_calls"] += 1
            raise self._reject(
                stats,
                "records_missing",
                "ValidationException",
                "1 validation error detected: Value null at 'records' failed to satisfy "
                "constraint: Member must not be null",
            )
        with stats.lock:
            stats.counts["put_records_calls"] += 1
            stats.counts["records_received"] += len(records)
        if not cfg.enforce_limits:
            for number, record in enumerate(records, 1):
                self._check_record(record, f"records.{number}.member.", cfg, stats)
            return
        if not records:
            raise self._reject(
                stats,
                "too_few_records",
                "ValidationException",
                "1 validation error detected: Value '[]' at 'records' failed to satisfy "
                "constraint: Member must have length greater than or equal to 1",
            )
        if len(records) > cfg.max_records_per_request:
            raise self._reject(
                stats,
                "too_many_records",
                "ValidationException",
                f"1 validation error detected: Value '[{len(records)} records]' at 'records' "
                "failed to satisfy constraint: Member must have length less than or equal to "
                f"{cfg.max_records_per_request}",
            )
        total = 0
        for number, record in enumerate(records, 1):
            total += self._check_record(record, f"records.{number}.member.", cfg, stats)
        if total > cfg.max_request_bytes:
            raise self._reject(
                stats,
                "request_too_large",
                "InvalidArgumentException",
                f"Records size exceeds {cfg.max_request_bytes // MIB} MB limit",
            )

    def _validate_put_record(self, request: dict[str, Any], cfg: FaultConfig, stats: _Stats) -> None:
        with stats.lock:
            stats.counts["put_record_calls"] += 1
            stats.counts["records_received"] += 1
        self._check_record(request, "", cfg, stats)

    # -- PutRecords ------------------------------------------------------------

    def _put_records(
        self,
        request: dict[str, Any],
        records: list[dict[str, Any]],
        stream: str,
        account: str,
        body: bytes,
        cfg: FaultConfig,
        after_fault: Optional[str],
    ) -> None:
        front = self.front
        stats = front._stats
        n = len(records)
        entries: list[Optional[dict[str, Any]]] = [None] * n
        failed_internal = 0
        candidates: list[int] = list(range(n))
        if cfg.record_internal_failure_rate > 0:
            draws = front._draw(n)
            rate = cfg.record_internal_failure_rate
            candidates = []
            for index, u in enumerate(draws):
                if u < rate:
                    entries[index] = {
                        "ErrorCode": "InternalFailure",
                        "ErrorMessage": "Internal service failure.",
                    }
                    failed_internal += 1
                else:
                    candidates.append(index)

        sizes: dict[int, int] = {}
        shard_of: dict[int, str] = {}
        throttled_by_shard: Counter[str] = Counter()
        if cfg.throttle and candidates:
            try:
                shard_map = front._shard_map(stream, self.upstream, self.headers, cfg)
            except _UpstreamAnswer as answer:
                stats.add(upstream_error_responses=1)
                self._send(answer.status, answer.reason, answer.headers, answer.body)
                return
            except _UPSTREAM_ERRORS as error:
                stats.add(upstream_connection_errors=1)
                self._send_error(502, "InternalFailure", f"fault front: upstream unreachable: {error!r}")
                return
            wanted: list[tuple[int, str, int]] = []
            for index in candidates:
                record = records[index]
                key = record["PartitionKey"]
                shard_id = shard_map.shard_for(_hash_key(key, record.get("ExplicitHashKey")))
                if shard_id is None:  # stale map (reshard): refresh once
                    front.invalidate_shard_maps()
                    try:
                        shard_map = front._shard_map(stream, self.upstream, self.headers, cfg)
                    except (_UpstreamAnswer, *_UPSTREAM_ERRORS):
                        pass
                    shard_id = shard_map.shard_for(_hash_key(key, record.get("ExplicitHashKey"))) or "?"
                size = _b64_len(record["Data"]) + len(key.encode("utf-8"))
                sizes[index] = size
                shard_of[index] = shard_id
                wanted.append((index, shard_id, size))
            accepted, throttled = front._take(stream, wanted, cfg)
            for index in throttled:
                shard_id = shard_of[index]
                throttled_by_shard[shard_id] += 1
                entries[index] = {
                    "ErrorCode": "ProvisionedThroughputExceededException",
                    "ErrorMessage": f"Rate exceeded for shard {shard_id} in stream {stream} "
                    f"under account {account}.",
                }
            forward_indexes: Sequence[int] = accepted
        else:
            forward_indexes = candidates

        if throttled_by_shard or failed_internal:
            with stats.lock:
                stats.counts["records_throttled"] += sum(throttled_by_shard.values())
                stats.counts["records_internal_failure"] += failed_internal
                stats.maps["records_throttled_by_shard"].update(throttled_by_shard)

        held_back = len(forward_indexes) != n
        status, reason, headers, data = 200, "OK", [("Content-Type", JSON_CONTENT_TYPE)], b""
        answer: Optional[dict[str, Any]] = None
        forwarded_at = time.monotonic()
        if forward_indexes:
            if held_back:
                out = dict(request)
                out["Records"] = [records[i] for i in forward_indexes]
                body = json.dumps(out, separators=_SEPARATORS).encode()
            try:
                status, reason, headers, data = self._forward(body)
            except _UPSTREAM_ERRORS as error:
                stats.add(upstream_connection_errors=1)
                self._send_error(502, "InternalFailure", f"fault front: upstream unreachable: {error!r}")
                return
            with stats.lock:
                stats.counts["records_forwarded"] += len(forward_indexes)
            if status != 200:
                stats.add(upstream_error_responses=1)
                if after_fault is not None:
                    self._inject(after_fault, cfg, after=True, written=0)
                else:
                    self._send(status, reason, headers, data)
                return
            try:
                answer = json.loads(data)
                upstream_entries = answer["Records"]
            except (ValueError, KeyError, TypeError):
                stats.add(merge_mismatches=1)
                self._send(status, reason, headers, data)
                return
            if len(upstream_entries) != len(forward_indexes):
                stats.add(merge_mismatches=1)
                self._send(status, reason, headers, data)
                return
        else:
            upstream_entries = []
            answer = {"FailedRecordCount": 0, "Records": [], "EncryptionType": "NONE"}

        accepted_by_shard: Counter[str] = Counter()
        accepted_bytes = 0
        upstream_failed = 0
        stale_map = False
        for index, entry in zip(forward_indexes, upstream_entries):
            entries[index] = entry
            shard_id = entry.get("ShardId")
            if shard_id is not None and not entry.get("ErrorCode"):  # kinesis-mock sends nulls
                accepted_by_shard[shard_id] += 1
                if shard_of and shard_of[index] != shard_id:
                    stale_map = True  # the stream was resharded
                size = sizes.get(index)
                if size is None:
                    record = records[index]
                    size = _b64_len(record["Data"]) + len(record["PartitionKey"].encode("utf-8"))
                accepted_bytes += size
            else:
                upstream_failed += 1
        if stale_map:
            front.invalidate_shard_map(stream)
        accepted_total = sum(accepted_by_shard.values())
        with stats.lock:
            stats.counts["records_accepted"] += accepted_total
            stats.counts["bytes_accepted"] += accepted_bytes
            stats.counts["records_failed_upstream"] += upstream_failed
            stats.maps["records_accepted_by_shard"].update(accepted_by_shard)
            if cfg.record_timeline:
                for shard_id, count in accepted_by_shard.items():
                    stats.timeline[shard_id].append((forwarded_at, count))

        if after_fault is not None:
            self._inject(after_fault, cfg, after=True, written=accepted_total)
            return
        if not held_back:
            self._send(status, reason, headers, data)
            return
        assert answer is not None
        answer["Records"] = entries
        answer["FailedRecordCount"] = sum(1 for e in entries if e is None or e.get("ErrorCode"))
        if not forward_indexes:
            headers = [("Content-Type", JSON_CONTENT_TYPE), ("x-amzn-RequestId", str(uuid.uuid4()))]
        self._send(200, "OK", headers, json.dumps(answer, separators=_SEPARATORS).encode())

    # -- PutRecord ---------------------------------------------------------------

    def _put_record(
        self,
        request: dict[str, Any],
        stream: str,
        account: str,
        body: bytes,
        cfg: FaultConfig,
        after_fault: Optional[str],
    ) -> None:
        front = self.front
        stats = front._stats
        key = request.get("PartitionKey", "")
        size = _b64_len(request.get("Data", "")) + len(str(key).encode("utf-8"))
        if cfg.throttle:
            try:
                shard_map = front._shard_map(stream, self.upstream, self.headers, cfg)
            except _UpstreamAnswer as answer:
                stats.add(upstream_error_responses=1)
                self._send(answer.status, answer.reason, answer.headers, answer.body)
                return
            except _UPSTREAM_ERRORS as error:
                stats.add(upstream_connection_errors=1)
                self._send_error(502, "InternalFailure", f"fault front: upstream unreachable: {error!r}")
                return
            shard_id = shard_map.shard_for(_hash_key(str(key), request.get("ExplicitHashKey"))) or "?"
            _, throttled = front._take(stream, [(0, shard_id, size)], cfg)
            if throttled:
                with stats.lock:
                    stats.counts["records_throttled"] += 1
                    stats.counts["requests_throttled"] += 1
                    stats.maps["records_throttled_by_shard"][shard_id] += 1
                self._send_error(
                    400,
                    "ProvisionedThroughputExceededException",
                    f"Rate exceeded for shard {shard_id} in stream {stream} under account {account}.",
                )
                return
        forwarded_at = time.monotonic()
        try:
            status, reason, headers, data = self._forward(body)
        except _UPSTREAM_ERRORS as error:
            stats.add(upstream_connection_errors=1)
            self._send_error(502, "InternalFailure", f"fault front: upstream unreachable: {error!r}")
            return
        with stats.lock:
            stats.counts["records_forwarded"] += 1
        written = 0
        if status == 200:
            try:
                shard_id = json.loads(data)["ShardId"]
                written = 1
                with stats.lock:
                    stats.counts["records_accepted"] += 1
                    stats.counts["bytes_accepted"] += size
                    stats.maps["records_accepted_by_shard"][shard_id] += 1
                    if cfg.record_timeline:
                        stats.timeline[shard_id].append((forwarded_at, 1))
            except (ValueError, KeyError, TypeError):
                stats.add(merge_mismatches=1)
        else:
            stats.add(upstream_error_responses=1)
        if after_fault is not None:
            self._inject(after_fault, cfg, after=True, written=written)
            return
        self._send(status, reason, headers, data)


_PARSED_OPS = frozenset({"PutRecords", "PutRecord"})
_UPSTREAM_ERRORS = (OSError, http.client.HTTPException)


# --------------------------------------------------------------------------
# running it as its own process


class RemoteFaultFront:
    """Control a front that runs in another process, over its admin
    endpoints. ``configure``/``stats``/``reset``/``timeline`` mirror
    ``FaultFront``."""

    def __init__(self, endpoint_url: str, process: Optional[subprocess.Popen[bytes]] = None) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        parts = urlsplit(self.endpoint_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self.process = process

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=30)
        try:
            body = json.dumps(payload).encode() if payload is not None else None
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, ADMIN_PREFIX + path, body, headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        result = json.loads(data) if data else None
        if response.status != 200:
            raise RuntimeError(f"fault front {path}: HTTP {response.status}: {result}")
        return result

    def ping(self) -> bool:
        try:
            self._call("GET", "ping")
            return True
        except (OSError, http.client.HTTPException, RuntimeError, ValueError):
            return False

    @property
    def config(self) -> FaultConfig:
        return FaultConfig.from_dict(self._call("GET", "config"))

    def configure(self, **changes: Any) -> FaultConfig:
        payload = {k: sorted(v) if isinstance(v, (set, frozenset)) else v for k, v in changes.items()}
        return FaultConfig.from_dict(self._call("POST", "config", payload))

    def set_config(self, config: FaultConfig) -> FaultConfig:
        return FaultConfig.from_dict(self._call("POST", "config", config.to_dict()))

    def stats(self) -> FrontStats:
        return FrontStats.from_dict(self._call("GET", "stats"))

    def reset(self) -> None:
        self._call("POST", "reset", {})

    def reset_stats(self) -> None:
        self._call("POST", "reset-stats", {})

    def reset_buckets(self) -> None:
        self._call("POST", "reset-buckets", {})

    def invalidate_shard_maps(self) -> None:
        self._call("POST", "invalidate-shard-maps", {})

    def timeline(self) -> dict[str, list[tuple[float, int]]]:
        raw = self._call("GET", "timeline")
        return {shard: [(float(t), int(n)) for t, n in events] for shard, events in raw.items()}

    def achieved_rates(self, start: Optional[float] = None, end: Optional[float] = None) -> dict[str, float]:
        return achieved_rates(self.timeline(), start, end)

    def peak_rates(self, window_s: float = 1.0) -> dict[str, int]:
        return peak_rates(self.timeline(), window_s)

    def client(self, **config: Any) -> Any:
        from beam_kinesis_sink.testing.local_servers import make_client

        return make_client(self.endpoint_url, **config)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> RemoteFaultFront:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()


def start_fault_front_process(
    upstream_url: str,
    config: Optional[FaultConfig] = None,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    python: Optional[str] = None,
    startup_timeout: float = 20.0,
) -> RemoteFaultFront:
    """Run the front as a child process (its own process group) and wait
    until it serves. Stop it with ``.stop()`` or ``with``."""

    # Run this file by path rather than with -m: that skips importing the
    # beam_kinesis_sink package (and Apache Beam with it); the front needs
    # only the standard library.
    argv = [
        python or sys.executable,
        str(Path(__file__).resolve()),
        "--upstream",
        upstream_url,
        "--host",
        host,
        "--port",
        str(port),
        "--config-json",
        json.dumps((config or FaultConfig()).to_dict()),
    ]
    env = dict(os.environ)
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    lines: queue.Queue[Optional[str]] = queue.Queue()
    # Reads its output until it exits, so that it never blocks on a full pipe.
    threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
    deadline = time.monotonic() + startup_timeout
    seen: list[str] = []
    while True:
        remaining = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(remaining, 0.001))
        except queue.Empty:
            line = None
        if line is None or remaining <= 0:
            RemoteFaultFront("http://127.0.0.1:1", process).stop()
            raise RuntimeError("fault front process did not start:\n" + "".join(seen[-40:]))
        seen.append(line)
        if line.startswith("READY "):
            return RemoteFaultFront(line.split()[1], process)


def _pump(stream: Any, lines: queue.Queue[Optional[str]]) -> None:
    for raw in iter(stream.readline, b""):
        lines.put(raw.decode("utf-8", "replace"))
    lines.put(None)


def _parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m beam_kinesis_sink.testing.fault_front",
        description="Fault-injecting front for a local Kinesis server.",
    )
    parser.add_argument("--upstream", required=True, help="upstream Kinesis URL, e.g. http://127.0.0.1:4567")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: pick a free port (printed)")
    parser.add_argument("--config-json", default=None, help="FaultConfig fields as a JSON object")
    for f in dataclasses.fields(FaultConfig):
        option = "--" + f.name.replace("_", "-")
        default = getattr(FaultConfig(), f.name)
        if isinstance(default, bool):
            parser.add_argument(option, dest=f.name, default=None, type=_parse_bool, metavar="BOOL")
        elif isinstance(default, frozenset):
            parser.add_argument(option, dest=f.name, default=None, help="comma-separated")
        elif f.name == "seed":
            parser.add_argument(option, dest=f.name, default=None, type=int)
        else:
            parser.add_argument(option, dest=f.name, default=None, type=type(default))
    return parser.parse_args(argv)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parse_args(argv)
    config = FaultConfig()
    if args.config_json:
        config = FaultConfig.from_dict(json.loads(args.config_json))
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(FaultConfig):
        value = getattr(args, f.name)
        if value is None:
            continue
        if isinstance(getattr(config, f.name), frozenset):
            value = frozenset(v.strip() for v in value.split(",") if v.strip())
        changes[f.name] = value
    config = config.replace(**changes)
    front = FaultFront(args.upstream, config, host=args.host, port=args.port)

    def _stop(signum: int, frame: Any) -> None:
        threading.Thread(target=front._server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"READY {front.endpoint_url}", flush=True)
    front.serve_forever()
    front.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
