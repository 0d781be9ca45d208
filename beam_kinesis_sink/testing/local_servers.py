"""Start real local Kinesis servers (kinesalite, kinesis-mock) as subprocesses.

Both come from npm and need Node.js 20+. Each server listens on a free port
of 127.0.0.1 only (never on all interfaces), in memory, and is stopped by
killing its whole process group.

    with start_kinesalite() as kinesis:
        kinesis.create_stream("s", shards=4)
        client = kinesis.client()

The npm packages are found in ``$BEAM_KINESIS_SINK_NODE_MODULES``, the
checkout's ``node_modules``, or the user cache, where the first use installs
them: see :mod:`beam_kinesis_sink.testing.npm_packages`.

Measured startup on the 2-core dev machine (process start to the first
successful ListStreams): kinesalite 0.2-0.4 s, kinesis-mock 0.7-1.2 s
(more when the machine is busy); ``LocalKinesis.startup_seconds`` has the
value of each run. Creating a stream takes about 0.1 s (kinesalite) and
0.2 s (kinesis-mock) with the state-change delays set to 0.

kinesalite 3.3.3 knows stream names only (not ``StreamARN``); kinesis-mock
knows both. Both use account ``000000000000`` and region us-east-1.

Loopback: kinesalite's command line has no host option, so it is started
through its module API (``require('kinesalite')(options).listen(port,
host)``). kinesis-mock 0.6.2 binds ``0.0.0.0`` with no option to change it;
it is started after a few lines of JavaScript that make Node's
``net.Server.listen`` use the loopback host (:data:`_LISTEN_ON_HOST_JS`).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Mapping, Optional, Sequence

from beam_kinesis_sink.testing.npm_packages import (
    NODE_MODULES_ENV,
    NPM_PACKAGES,
    LocalServerError,
    entry_point,
    node_binary,
    node_modules_dir,
)
from beam_kinesis_sink.testing.processes import LOOPBACK, free_port, listening_owner, stop_group

# with names of npm_packages and processes that have always been importable from here
__all__ = [
    "NODE_MODULES_ENV",
    "NPM_PACKAGES",
    "LocalKinesis",
    "LocalServerError",
    "PortTakenError",
    "create_stream",
    "free_port",
    "make_client",
    "node_modules_dir",
    "start_kinesalite",
    "start_kinesis_mock",
    "wait_active",
]

DUMMY_REGION = "us-east-1"
DUMMY_ACCESS_KEY = "testing"
DUMMY_SECRET_KEY = "testing"

#: ``node -e`` script: kinesalite (module at argv[1]) on port argv[2] of host
#: argv[3], with the options (JSON) in argv[4]
_KINESALITE_JS = """
const [module, port, host, options] = process.argv.slice(1);
const server = require(module)(JSON.parse(options));
server.listen(Number(port), host, () => {
  const address = server.address();
  console.log("Listening at http://%s:%s", address.address, address.port);
});
"""
#: ``node -e`` script: run the module at argv[1] with every server it
#: starts listening on the host that replaces ``__HOST__``
_LISTEN_ON_HOST_JS = """
const net = require("net");
const host = __HOST__;
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (first !== null && typeof first === "object" && "port" in first) {
    args[0] = Object.assign({}, first, { host });
  } else if (typeof first === "number" || (typeof first === "string" && /^\\d+$/.test(first))) {
    if (typeof args[1] === "string") args[1] = host; else args.splice(1, 0, host);
  }
  return listen.apply(this, args);
};
require(process.argv[1]);
"""


class PortTakenError(LocalServerError):
    """Another process serves the port the server was given."""


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
        host: str = LOOPBACK,
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
            cwd=tempfile.gettempdir(),
            start_new_session=True,
        )
        # Kill the server if this object is garbage-collected or the
        # interpreter exits without stop() (a test that failed half-way).
        self._finalizer = weakref.finalize(self, stop_group, self._process)
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
                owner = listening_owner(self.port)
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
                owner = listening_owner(self.port)
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
            stop_group(process, self.term_timeout)
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
    options: Optional[Mapping[str, Any]] = None,
) -> LocalKinesis:
    """Start kinesalite (in memory) on a free port of 127.0.0.1.

    ``options`` go to kinesalite's module API beside the ones named here
    (e.g. ``{"path": directory}`` for a LevelDB store instead of memory).
    """
    module = entry_point("kinesalite").parent
    node = node_binary()
    settings = {
        "shardLimit": shard_limit,
        "createStreamMs": create_stream_ms,
        "deleteStreamMs": delete_stream_ms,
        "updateStreamMs": update_stream_ms,
        **(options or {}),
    }

    def launch(chosen: int) -> LocalKinesis:
        argv = [node, "-e", _KINESALITE_JS, str(module), str(chosen), LOOPBACK, json.dumps(settings)]
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


#: kinesis-mock's state-change delays, all set to ``durations_ms``
_KINESIS_MOCK_DURATIONS = (
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
)


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
    port of 127.0.0.1 (its TLS port is put on another free one, also on
    127.0.0.1).

    All the mock's state-change delays (CREATE_STREAM_DURATION and the
    others) are set to ``durations_ms``; SHARD_LIMIT to ``shard_limit``.
    """
    main_js = entry_point("kinesis-local")
    server_env = {
        "KINESIS_MOCK_CERT_PATH": str(main_js.parent / "server.json"),
        "SHARD_LIMIT": str(shard_limit),
        "ON_DEMAND_STREAM_COUNT_LIMIT": "100",
        "LOG_LEVEL": log_level,
        "ROOT_LOG_LEVEL": "ERROR",
        "SHOULD_PERSIST_DATA": "false",
        "LOAD_DATA_IF_EXISTS": "false",
        "AWS_REGION": DUMMY_REGION,
        **{variable: f"{durations_ms}ms" for variable in _KINESIS_MOCK_DURATIONS},
        **(env or {}),
    }
    script = _LISTEN_ON_HOST_JS.replace("__HOST__", json.dumps(LOOPBACK))
    argv = [node_binary(), "-e", script, str(main_js)]

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
