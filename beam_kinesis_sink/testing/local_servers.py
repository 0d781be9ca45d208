"""Start real local Kinesis servers (kinesalite, kinesis-mock) as subprocesses.

Both come from npm (``package.json`` at the repo root; run ``npm ci`` there).
Each server listens on a free loopback port, in memory, and is stopped by
killing its whole process group.

    with start_kinesalite() as kinesis:
        kinesis.create_stream("s", shards=4)
        client = kinesis.client()

Measured startup on the 2-core dev machine (process start to the first
successful ListStreams): kinesalite 0.2-0.4 s, kinesis-mock 0.7-1.2 s
(more when the machine is busy); ``LocalKinesis.startup_seconds`` has the
value of each run. Creating a stream takes about 0.1 s (kinesalite) and
0.2 s (kinesis-mock) with the state-change delays set to 0.

kinesalite 3.3.3 knows stream names only (not ``StreamARN``); kinesis-mock
knows both. Both use account ``000000000000`` and region us-east-1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Mapping, Optional, Sequence

NODE_MODULES_ENV = "BEAM_KINESIS_SINK_NODE_MODULES"
DUMMY_REGION = "us-east-1"
DUMMY_ACCESS_KEY = "testing"
DUMMY_SECRET_KEY = "testing"


class LocalServerError(RuntimeError):
    """A local Kinesis server could not be found, started or used."""


class PortTakenError(LocalServerError):
    """Another process serves the port the server was given."""


def _kill_group(process: subprocess.Popen[bytes], term_timeout: float = 0.0) -> None:
    """SIGTERM (if ``term_timeout``), then SIGKILL the process group; reap."""
    steps = [(signal.SIGTERM, term_timeout)] if term_timeout > 0 else []
    steps.append((signal.SIGKILL, 10.0))
    for sig, wait in steps:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _listening_owner(port: int) -> Optional[int]:
    """The pid of the process listening on TCP ``port``, from /proc; None
    where that cannot be told (no /proc, or not permitted)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    try:
        pids = [entry for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return int(pid)
        except OSError:
            continue
    return None


def repo_root() -> Path:
    """The repository root: the parent of the ``beam_kinesis_sink`` package."""
    return Path(__file__).resolve().parent.parent.parent


def node_modules_dir() -> Path:
    """``$BEAM_KINESIS_SINK_NODE_MODULES``, else ``<repo root>/node_modules``."""
    configured = os.environ.get(NODE_MODULES_ENV)
    path = Path(configured) if configured else repo_root() / "node_modules"
    if not path.is_dir():
        raise LocalServerError(
            f"node_modules not found at {path}: run `npm ci` in {repo_root()} "
            f"(or set {NODE_MODULES_ENV} to a node_modules directory)"
        )
    return path


def _node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        raise LocalServerError("`node` is not on PATH; Node.js 20+ is needed for the local servers")
    return node


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def make_client(endpoint_url: str, *, max_attempts: int = 1, **config: Any) -> Any:
    """A boto3 Kinesis client for a local endpoint, with dummy credentials.

    ``max_attempts`` counts every attempt (botocore's ``total_max_attempts``):
    the default 1 means no retry at all. Note that botocore's
    ``retries={"max_attempts": 1}`` means one *retry* (two attempts).
    Other keyword arguments go to ``botocore.config.Config``.
    """
    import boto3
    from botocore.config import Config

    options: dict[str, Any] = {
        "retries": {"mode": "standard", "total_max_attempts": max_attempts},
        "connect_timeout": 5,
        "read_timeout": 30,
    }
    options.update(config)
    return boto3.session.Session().client(
        "kinesis",
        endpoint_url=endpoint_url,
        region_name=DUMMY_REGION,
        aws_access_key_id=DUMMY_ACCESS_KEY,
        aws_secret_access_key=DUMMY_SECRET_KEY,
        config=Config(**options),
    )


class LocalKinesis:
    """A running local Kinesis server (a subprocess in its own process group)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        env: Optional[Mapping[str, str]] = None,
        host: str = "127.0.0.1",
        startup_timeout: float = 60.0,
        term_timeout: float = 5.0,
    ) -> None:
        self.name = name
        #: how long stop() waits after SIGTERM before SIGKILL (0: SIGKILL at once)
        self.term_timeout = term_timeout
        self.host = host
        self.port = port
        self.endpoint_url = f"http://{host}:{port}"
        self.argv = list(argv)
        self.startup_seconds: Optional[float] = None
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix=f"{name}-", suffix=".log", delete=False
        )
        self.log_path = Path(self._log.name)
        full_env = dict(os.environ)
        full_env.update(env or {})
        started = time.monotonic()
        self._process: Optional[subprocess.Popen[bytes]] = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=str(repo_root()),
            start_new_session=True,
        )
        # Kill the server if this object is garbage-collected or the
        # interpreter exits without stop() (a test that failed half-way).
        self._finalizer = weakref.finalize(self, _kill_group, self._process)
        try:
            self._wait_ready(startup_timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    # -- lifecycle -------------------------------------------------------

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, max_bytes: int = 4000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-max_bytes:].decode("utf-8", "replace")

    def _wait_ready(self, timeout: float) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = make_client(self.endpoint_url, connect_timeout=1, read_timeout=5)
        deadline = time.monotonic() + timeout
        last_error: Optional[BaseException] = None
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                code = self._process.returncode if self._process is not None else None
                log = self.log_tail()
                owner = _listening_owner(self.port)
                if "EADDRINUSE" in log and owner is not None:
                    # Depending on timing, a server whose port is taken exits
                    # (EADDRINUSE) or keeps running beside the owner (below).
                    raise PortTakenError(
                        f"port {self.port} is served by pid {owner}, not by {self.name} "
                        f"(it exited with code {code}); log tail:\n{log}"
                    )
                raise LocalServerError(
                    f"{self.name} exited with code {code} during startup "
                    f"({' '.join(self.argv)}); log tail:\n{self.log_tail()}"
                )
            try:
                client.list_streams(Limit=1)
            except (BotoCoreError, ClientError, OSError) as error:
                last_error = error
            else:
                owner = _listening_owner(self.port)
                if owner is None or owner == self._process.pid:
                    return
                # another process answered on our port (a port race)
                raise PortTakenError(
                    f"port {self.port} is served by pid {owner}, not by {self.name} "
                    f"(pid {self._process.pid}); log tail:\n{self.log_tail()}"
                )
            time.sleep(0.05)
        raise LocalServerError(
            f"{self.name} did not answer ListStreams on {self.endpoint_url} within {timeout:.0f}s "
            f"(last error: {last_error!r}); log tail:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Kill the server's process group and reap it. Safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            self._finalizer.detach()
            _kill_group(process, self.term_timeout)
        if not self._log.closed:
            self._log.close()

    def remove_log(self) -> None:
        try:
            self.log_path.unlink()
        except OSError:
            pass

    def __enter__(self) -> LocalKinesis:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()
        if exc_type is None:
            self.remove_log()

    def __repr__(self) -> str:
        return f"LocalKinesis(name={self.name!r}, endpoint_url={self.endpoint_url!r}, pid={self.pid})"

    # -- using it --------------------------------------------------------

    def client(self, **config: Any) -> Any:
        """A boto3 Kinesis client for this server (dummy credentials, region
        us-east-1, retries disabled unless ``max_attempts`` is given)."""
        return make_client(self.endpoint_url, **config)

    def create_stream(self, name: str, shards: int = 1, timeout: float = 30.0) -> str:
        """Create a provisioned stream and wait until it is ACTIVE; returns its ARN."""
        return create_stream(self.client(), name, shards, timeout=timeout)


def create_stream(client: Any, name: str, shards: int = 1, timeout: float = 30.0) -> str:
    """Create a stream with ``client`` and wait until it is ACTIVE; returns its ARN."""
    client.create_stream(StreamName=name, ShardCount=shards)
    return wait_active(client, name, timeout=timeout)


def wait_active(client: Any, name: str, timeout: float = 30.0) -> str:
    """Poll DescribeStreamSummary until the stream is ACTIVE; returns its ARN."""
    deadline = time.monotonic() + timeout
    status = "?"
    while time.monotonic() < deadline:
        summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        status = summary["StreamStatus"]
        if status == "ACTIVE":
            return str(summary["StreamARN"])
        time.sleep(0.02)
    raise LocalServerError(f"stream {name} still {status} after {timeout:.0f}s")


def start_kinesalite(
    shard_limit: int = 1000,
    *,
    port: Optional[int] = None,
    create_stream_ms: int = 0,
    delete_stream_ms: int = 0,
    update_stream_ms: int = 0,
    startup_timeout: float = 30.0,
    extra_args: Sequence[str] = (),
) -> LocalKinesis:
    """Start kinesalite (in memory) on a free loopback port."""
    script = node_modules_dir() / "kinesalite" / "cli.js"
    if not script.is_file():
        raise LocalServerError(f"{script} not found: run `npm ci` in {repo_root()}")
    node = _node_binary()

    def launch(chosen: int) -> LocalKinesis:
        argv = [
            node,
            str(script),
            "--port",
            str(chosen),
            "--shardLimit",
            str(shard_limit),
            "--createStreamMs",
            str(create_stream_ms),
            "--deleteStreamMs",
            str(delete_stream_ms),
            "--updateStreamMs",
            str(update_stream_ms),
            *extra_args,
        ]
        return LocalKinesis("kinesalite", argv, chosen, startup_timeout=startup_timeout)

    return _launch_on_free_port(launch, port)


def _launch_on_free_port(launch: Callable[[int], LocalKinesis], port: Optional[int]) -> LocalKinesis:
    """``launch(port)``; with no port given, on a free one, and again on
    another if a different process took it meanwhile."""
    if port:
        return launch(port)
    for _ in range(2):
        try:
            return launch(free_port())
        except PortTakenError:
            continue
    return launch(free_port())


def start_kinesis_mock(
    shard_limit: int = 1000,
    *,
    port: Optional[int] = None,
    tls_port: Optional[int] = None,
    durations_ms: int = 0,
    log_level: str = "ERROR",
    env: Optional[Mapping[str, str]] = None,
    startup_timeout: float = 60.0,
) -> LocalKinesis:
    """Start kinesis-mock (npm ``kinesis-local``) with plain HTTP on a free
    loopback port (its TLS port is put on another free port).

    All the mock's state-change delays (CREATE_STREAM_DURATION and the
    others) are set to ``durations_ms``; SHARD_LIMIT to ``shard_limit``.
    """
    main_js = node_modules_dir() / "kinesis-local" / "main.js"
    if not main_js.is_file():
        raise LocalServerError(f"{main_js} not found: run `npm ci` in {repo_root()}")
    duration = f"{durations_ms}ms"
    server_env = {
        "KINESIS_MOCK_CERT_PATH": str(main_js.parent / "server.json"),
        "SHARD_LIMIT": str(shard_limit),
        "ON_DEMAND_STREAM_COUNT_LIMIT": "100",
        "LOG_LEVEL": log_level,
        "ROOT_LOG_LEVEL": "ERROR",
        "SHOULD_PERSIST_DATA": "false",
        "LOAD_DATA_IF_EXISTS": "false",
        "AWS_REGION": DUMMY_REGION,
    }
    for variable in (
        "CREATE_STREAM_DURATION",
        "DELETE_STREAM_DURATION",
        "REGISTER_STREAM_CONSUMER_DURATION",
        "DEREGISTER_STREAM_CONSUMER_DURATION",
        "START_STREAM_ENCRYPTION_DURATION",
        "STOP_STREAM_ENCRYPTION_DURATION",
        "MERGE_SHARDS_DURATION",
        "SPLIT_SHARD_DURATION",
        "UPDATE_SHARD_COUNT_DURATION",
        "UPDATE_STREAM_MODE_DURATION",
    ):
        server_env[variable] = duration
    server_env.update(env or {})
    argv = [_node_binary(), str(main_js)]

    def launch(chosen: int) -> LocalKinesis:
        ports = {
            "KINESIS_MOCK_PLAIN_PORT": str(chosen),
            "KINESIS_MOCK_TLS_PORT": str(tls_port or free_port()),
        }
        # In memory only: SIGKILL at once (it takes about 5 s to honour SIGTERM).
        return LocalKinesis(
            "kinesis-mock",
            argv,
            chosen,
            env={**server_env, **ports},
            startup_timeout=startup_timeout,
            term_timeout=0.0,
        )

    return _launch_on_free_port(launch, port)
