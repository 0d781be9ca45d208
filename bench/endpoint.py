"""The fast loopback endpoint, parent side: start :mod:`bench.endpoint_server`
as a child process (its own process group, killed if the bench dies), read
its counts, change its latency or throttling, stop it.

It runs in its own process because a server in the bench's process would
compete for the GIL with the pipeline it measures. The child writes its
port to a ready file; its output goes to a log file, never to a pipe
(a child blocked on a full pipe nobody reads hangs the bench).

    with start_loopback_endpoint(shards=4, log_dir=out) as endpoint:
        ... endpoint.endpoint_url ...
        endpoint.configure(latency_ms=25)
        endpoint.stats().put_records_calls
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from beam_kinesis_sink.testing.processes import LOOPBACK, dying_with_parent, stop_group

REPO_ROOT = Path(__file__).resolve().parent.parent
_STARTUP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class EndpointStats:
    put_records_calls: int
    list_shards_calls: int
    records: int
    bytes: int
    throttled: int
    #: shard id -> {"records", "bytes", "throttled"}
    by_shard: Dict[str, Dict[str, int]]

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> EndpointStats:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


class LoopbackEndpoint:
    """A running :mod:`bench.endpoint_server` child."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process: Optional[subprocess.Popen[bytes]] = process
        self.port = port
        self.log_path = log_path
        self.endpoint_url = f"http://{LOOPBACK}:{port}"

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid if self.process is not None else None

    def _call(self, method: str, command: str, payload: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=30)
        try:
            body = json.dumps(payload).encode() if payload is not None else None
            conn.request(method, f"/_bench/{command}", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            data = json.loads(response.read() or b"{}")
        finally:
            conn.close()
        if response.status != 200:
            raise RuntimeError(f"loopback endpoint {command}: HTTP {response.status}: {data}")
        return data

    def stats(self) -> EndpointStats:
        return EndpointStats.from_dict(self._call("GET", "stats"))

    def reset(self) -> None:
        self._call("POST", "reset", {})

    def configure(self, *, latency_ms: Optional[float] = None,
                  throttle_records_per_second: Optional[float] = None) -> None:
        """Change the settings (and reset the counts)."""
        settings: Dict[str, Any] = {}
        if latency_ms is not None:
            settings["latency_ms"] = latency_ms
        if throttle_records_per_second is not None:
            settings["throttle_records_per_second"] = throttle_records_per_second
        self._call("POST", "config", settings)

    def stop(self) -> None:
        """SIGTERM the child's group, SIGKILL it if it lingers; safe twice."""
        process, self.process = self.process, None
        if process is not None:
            stop_group(process, term_timeout=2.0)

    def __enter__(self) -> LoopbackEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def child_env() -> Dict[str, str]:
    """The environment of a bench child: this one, with the checkout importable."""
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path)


def start_loopback_endpoint(
    shards: int = 4,
    *,
    latency_ms: float = 0.0,
    throttle_records_per_second: float = 0.0,
    log_dir: Optional[Path] = None,
) -> LoopbackEndpoint:
    """Start the child and wait until its ready file names its port."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-endpoint-"))
    ready = workdir / "ready.json"
    log_path = (log_dir or workdir) / f"loopback-endpoint-{os.getpid()}-{time.monotonic_ns()}.log"
    argv = [sys.executable, "-m", "bench.endpoint_server", "--ready-file", str(ready),
            "--shards", str(shards), "--latency-ms", str(latency_ms),
            "--throttle-records-per-second", str(throttle_records_per_second)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(dying_with_parent(argv), stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, env=child_env(), cwd=str(REPO_ROOT),
                                   start_new_session=True)
    try:
        port = _wait_ready(process, ready, log_path)
    except BaseException:
        stop_group(process)
        raise
    return LoopbackEndpoint(process, port, log_path)


def _wait_ready(process: subprocess.Popen[bytes], ready: Path, log_path: Path) -> int:
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready.exists():
            return int(json.loads(ready.read_text())["port"])
        if process.poll() is not None:
            break
        time.sleep(0.02)
    tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
    raise RuntimeError(f"the loopback endpoint did not start (exit code {process.poll()}):\n{tail}")
