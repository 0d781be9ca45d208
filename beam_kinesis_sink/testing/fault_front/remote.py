"""The fault front in its own process, so that it does not share a GIL with
the pipeline under test: :func:`start_fault_front_process` starts
``python -m beam_kinesis_sink.testing.fault_front`` in its own process
group, and :class:`RemoteFaultFront` controls it over its admin endpoints
(``GET /_fault/stats``, ``GET|POST /_fault/config``, ``POST /_fault/reset``,
``GET /_fault/timeline``, ``GET /_fault/large-records?stream=NAME``), with
the methods of ``FaultFront``.
"""

from __future__ import annotations

import base64
import http.client
import json
import queue
import subprocess
import sys
import threading
import time
from typing import IO, Any, Mapping, Optional
from urllib.parse import quote, urlsplit

from beam_kinesis_sink.testing.fault_front.config import FaultConfig
from beam_kinesis_sink.testing.fault_front.large_records import LargeRecord
from beam_kinesis_sink.testing.fault_front.proxy import ADMIN_PREFIX
from beam_kinesis_sink.testing.fault_front.stats import FrontStats, RatesFromTimeline, Timeline
from beam_kinesis_sink.testing.local_servers import make_client
from beam_kinesis_sink.testing.processes import LOOPBACK, stop_group

#: how long stop() waits after SIGTERM before SIGKILL
_TERM_TIMEOUT_S = 5.0


class RemoteFaultFront(RatesFromTimeline):
    """Control a front that runs in another process, over its admin
    endpoints. ``configure``/``stats``/``reset``/``timeline`` mirror
    ``FaultFront``."""

    def __init__(self, endpoint_url: str, process: Optional[subprocess.Popen[bytes]] = None) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        parts = urlsplit(self.endpoint_url)
        self._host = parts.hostname or LOOPBACK
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
        payload = {k: _jsonable(v) for k, v in changes.items()}
        return FaultConfig.from_dict(self._call("POST", "config", payload))

    def set_max_record_size(self, stream: str, kib: int) -> FaultConfig:
        return FaultConfig.from_dict(self._call("POST", "max-record-size", {"stream": stream, "kib": kib}))

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

    def timeline(self) -> Timeline:
        raw = self._call("GET", "timeline")
        return {shard: [(float(t), int(n)) for t, n in events] for shard, events in raw.items()}

    def large_records(self, stream: str) -> list[LargeRecord]:
        raw = self._call("GET", "large-records?stream=" + quote(stream, safe=""))
        return [
            LargeRecord(shard, seq, key, base64.b64decode(data)) for shard, seq, key, data in raw["Records"]
        ]

    def clear_large_records(self) -> None:
        self._call("POST", "clear-large-records", {})

    def client(self, **config: Any) -> Any:
        return make_client(self.endpoint_url, **config)

    def stop(self) -> None:
        """SIGTERM the front's process group, SIGKILL it if it lingers; safe twice."""
        process, self.process = self.process, None
        if process is not None:
            stop_group(process, _TERM_TIMEOUT_S)

    def __enter__(self) -> RemoteFaultFront:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def start_fault_front_process(
    upstream_url: str,
    config: Optional[FaultConfig] = None,
    *,
    port: int = 0,
    host: str = LOOPBACK,
    python: Optional[str] = None,
    startup_timeout: float = 30.0,
) -> RemoteFaultFront:
    """Run the front as a child process (its own process group) and wait
    until it serves. Stop it with ``.stop()`` or ``with``."""
    argv = [
        python or sys.executable,
        "-m",
        "beam_kinesis_sink.testing.fault_front",
        "--upstream",
        upstream_url,
        "--host",
        host,
        "--port",
        str(port),
        "--config-json",
        json.dumps((config or FaultConfig()).to_dict()),
    ]
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        return RemoteFaultFront(_wait_ready(process, startup_timeout), process)
    except BaseException:
        stop_group(process)
        raise


def _wait_ready(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The endpoint the front prints (``READY <url>``) once it serves."""
    lines: queue.Queue[Optional[str]] = queue.Queue()
    # Reads its output until it exits, so that it never blocks on a full pipe.
    threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        remaining = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(remaining, 0.001))
        except queue.Empty:
            line = None
        if line is None or remaining <= 0:
            raise RuntimeError(
                f"fault front process did not start within {timeout:.0f}s:\n" + "".join(seen[-40:])
            )
        seen.append(line)
        if line.startswith("READY "):
            return line.split()[1]


def _pump(stream: IO[bytes], lines: queue.Queue[Optional[str]]) -> None:
    for raw in iter(stream.readline, b""):
        lines.put(raw.decode("utf-8", "replace"))
    lines.put(None)
