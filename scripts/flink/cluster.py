#!/usr/bin/env python3
"""A real standalone Apache Flink cluster on loopback, for Beam portable tests.

Stdlib only; importable and runnable::

    python scripts/flink/cluster.py install          # fetch + cache everything
    python scripts/flink/cluster.py start            # run in the foreground until Ctrl-C
    python scripts/flink/cluster.py start --detach   # start, write state, return
    python scripts/flink/cluster.py status
    python scripts/flink/cluster.py stop             # stop a detached cluster

    from cluster import FlinkCluster
    with FlinkCluster() as c:
        c.job_endpoint            # "127.0.0.1:<port>" for --job_endpoint
        c.worker_pool_endpoint    # "127.0.0.1:<port>" for --environment_config

What gets installed (all from package registries, cached under
``<repo>/.cache/flink/``; a second run downloads nothing):

* Flink itself: the PyPI sdist ``apache-flink-libraries==FLINK_VERSION`` ships
  ``flink-dist`` and the other ``lib/`` jars (``org.apache.flink:flink-dist`` is
  not served by Maven Central).  Only ``deps/lib`` and ``deps/bin`` are kept.
* Beam's Flink job server: the shaded ``beam-runners-flink-X-job-server`` jar is
  not served, so a small generated pom depends on
  ``org.apache.beam:beam-runners-flink-FLINK_MINOR:BEAM_JAVA_VERSION`` (which
  contains ``FlinkJobServerDriver``) and ``mvn dependency:build-classpath``
  resolves its classpath into a private local repository under the cache.

Processes (each in its own process group, logs in ``.cache/flink/logs/<run>/``):

* JobManager  ``StandaloneSessionClusterEntrypoint``
* N TaskManagers ``TaskManagerRunner`` (N=1, 2 slots by default)
* Beam job server ``FlinkJobServerDriver --flink-master=127.0.0.1:<rest port>``
* optionally a Beam Python SDK worker pool (``worker_pool_main``) for
  ``--environment_type=EXTERNAL``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

# --------------------------------------------------------------------------
# Versions.  Beam recommends a job server of the same version as the Python
# SDK.  Maven Central serves no beam-runners-flink-*-job-server at all, and
# org.apache.beam:beam-runners-flink-1.19 only in 2.62.0 and 2.70.0; 2.70.0
# needs beam-runners-java-job-service:2.70.0, which is not served (it stops
# at 2.65.0).  So 2.62.0 is the newest Beam whose Flink runner resolves whole.
# Python apache-beam 2.62.0 matches it exactly; 2.77.0 also passed every test
# here (batch, streaming, state, timers, side inputs, metrics).
# --------------------------------------------------------------------------
BEAM_JAVA_VERSION = os.environ.get("FLINK_BEAM_JAVA_VERSION", "2.62.0")
FLINK_MINOR = os.environ.get("FLINK_MINOR_VERSION", "1.19")
FLINK_VERSION = os.environ.get("FLINK_VERSION", "1.19.3")
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("FLINK_CACHE_DIR", REPO_ROOT / ".cache" / "flink"))
STATE_FILE = CACHE_DIR / "run" / "cluster.json"

HOST = "127.0.0.1"

# Java 17 needs these for Flink 1.19 (the same list Flink's own conf/config.yaml
# puts into env.java.opts.all, which only Flink's bash scripts read).
JAVA17_OPTS = [
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.parser=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.tree=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.util=ALL-UNNAMED",
    "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.text=ALL-UNNAMED",
    "--add-opens=java.base/java.time=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED",
]

LOG4J_PROPERTIES = """\
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = MainAppender
logger.pekko.name = org.apache.pekko
logger.pekko.level = WARN
logger.netty.name = org.jboss.netty.channel.DefaultChannelPipeline
logger.netty.level = ERROR
appender.main.name = MainAppender
appender.main.type = File
appender.main.append = true
appender.main.fileName = ${sys:log.file}
appender.main.layout.type = PatternLayout
appender.main.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
"""


class FlinkSetupError(RuntimeError):
    """Installing or starting the Flink test cluster failed."""


def _log(msg: str) -> None:
    print(f"[flink-cluster] {msg}", file=sys.stderr, flush=True)


def _java() -> str:
    java_home = os.environ.get("FLINK_JAVA_HOME")
    if java_home:
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise FlinkSetupError("no `java` on PATH (Flink 1.19 needs Java 11 or 17)")
    return found


# --------------------------------------------------------------------------
# Install
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Installation:
    flink_home: Path  # holds lib/ (flink-dist + friends) and bin/
    jobserver_classpath: list  # absolute jar paths
    java: str

    @property
    def flink_lib_jars(self) -> list:
        jars = sorted(str(p) for p in (self.flink_home / "lib").glob("*.jar"))
        # Flink's own scripts put flink-dist last.
        dist = [j for j in jars if "/flink-dist" in j]
        return [j for j in jars if j not in dist] + dist

    @property
    def bash_java_utils_jar(self) -> str:
        return str(self.flink_home / "bin" / "bash-java-utils.jar")


def _pip() -> list:
    import importlib.util

    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    for name in ("pip3", "pip"):
        found = shutil.which(name)
        if found:
            return [found]
    raise FlinkSetupError(f"no pip for {sys.executable} and none on PATH")


def _install_flink_dist(verbose: bool) -> Path:
    home = CACHE_DIR / "dist" / f"flink-{FLINK_VERSION}"
    marker = home / ".installed"
    if marker.exists():
        return home
    if verbose:
        _log(f"installing Flink {FLINK_VERSION} from PyPI apache-flink-libraries ...")
    tmp = Path(tempfile.mkdtemp(prefix="dl-", dir=_mkdir(CACHE_DIR / "tmp")))
    try:
        cmd = _pip() + ["download", "--no-deps", "-d", str(tmp), f"apache-flink-libraries=={FLINK_VERSION}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        archives = list(tmp.glob("apache*flink*libraries-*.tar.gz"))
        if proc.returncode != 0 and not archives:
            raise FlinkSetupError(
                f"pip download apache-flink-libraries=={FLINK_VERSION} failed:\n{proc.stdout}\n{proc.stderr}"
            )
        if not archives:
            raise FlinkSetupError(f"pip downloaded no sdist into {tmp}: {os.listdir(tmp)}")
        staging = tmp / "extract"
        staging.mkdir()
        with tarfile.open(archives[0]) as tar:
            for member in tar.getmembers():
                parts = member.name.split("/")
                # <top>/deps/{lib,bin}/<file>
                if len(parts) == 4 and parts[1] == "deps" and parts[2] in ("lib", "bin") and member.isfile():
                    target = staging / parts[2] / parts[3]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        if (
            not (staging / "lib" / f"flink-dist-{FLINK_VERSION}.jar").exists()
            or not (staging / "bin" / "bash-java-utils.jar").exists()
        ):
            raise FlinkSetupError(
                f"{archives[0].name} has no deps/lib/flink-dist or deps/bin/bash-java-utils.jar"
            )
        if home.exists():
            shutil.rmtree(home)
        home.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(home)
        marker.write_text(f"apache-flink-libraries=={FLINK_VERSION}\n")
        return home
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _jobserver_pom() -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/flink/cluster.py: the classpath of Beam's Flink job server. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.beam-kinesis-sink</groupId>
  <artifactId>flink-job-server-classpath</artifactId>
  <version>{BEAM_JAVA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.beam</groupId>
      <artifactId>beam-runners-flink-{FLINK_MINOR}</artifactId>
      <version>{BEAM_JAVA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-simple</artifactId>
      <version>1.7.30</version>
    </dependency>
  </dependencies>
</project>
"""


def _install_jobserver(verbose: bool) -> list:
    pom = _jobserver_pom()
    digest = hashlib.sha256((pom + "merged-v1").encode()).hexdigest()[:16]
    home = CACHE_DIR / "jobserver" / f"beam-{BEAM_JAVA_VERSION}-flink-{FLINK_MINOR}"
    cp_file = home / "classpath.txt"
    merged = home / "beam-flink-job-server.jar"
    marker = home / ".installed"
    if marker.exists() and marker.read_text().strip() == digest and merged.exists():
        return [str(merged)]
    if verbose:
        _log(
            f"resolving Beam {BEAM_JAVA_VERSION} Flink {FLINK_MINOR} job server "
            f"classpath from Maven Central ..."
        )
    mvn = shutil.which("mvn")
    if not mvn:
        raise FlinkSetupError("no `mvn` on PATH (apt-get install maven)")
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(pom)
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(home / "pom.xml"),
        f"-Dmaven.repo.local={CACHE_DIR / 'm2'}",
        f"{MAVEN_DEPENDENCY_PLUGIN}:build-classpath",
        "-Dmdep.includeScope=runtime",
        f"-Dmdep.outputFile={cp_file}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not cp_file.exists():
        raise FlinkSetupError(
            "mvn could not resolve the Beam Flink job server classpath "
            f"(org.apache.beam:beam-runners-flink-{FLINK_MINOR}:{BEAM_JAVA_VERSION}):\n"
            f"$ {' '.join(cmd)}\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
        )
    jars = cp_file.read_text().strip().split(os.pathsep)
    if verbose:
        _log(f"merging {len(jars)} jars into {merged.name} ...")
    _merge_jars(jars, merged)
    marker.write_text(digest + "\n")
    return [str(merged)]


_SIGNATURE_SUFFIXES = (".SF", ".RSA", ".DSA", ".EC")


def _merge_jars(jars: list, target: Path) -> None:
    """Merge a classpath into one jar, first entry wins (as with -classpath).

    Why: Beam's job server stages every jar of its own classpath to Flink with
    each job, and Flink's JobManager uploads them one by one to its BlobServer
    at ~90 ms per file, so 160 jars cost ~15 s per job; one jar costs ~1 s.
    META-INF/services files are concatenated (ServiceLoader semantics are the
    same as with separate jars); signatures, manifests and module-info dropped.
    """
    import zipfile

    tmp = target.with_suffix(".tmp")
    seen: set = set()
    services: dict = {}
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as out:
        out.writestr(
            "META-INF/MANIFEST.MF",
            "Manifest-Version: 1.0\r\n"
            "Main-Class: org.apache.beam.runners.flink.FlinkJobServerDriver\r\n"
            "Created-By: scripts/flink/cluster.py\r\n\r\n",
        )
        seen.add("META-INF/MANIFEST.MF")
        for jar in jars:
            with zipfile.ZipFile(jar) as zin:
                for info in zin.infolist():
                    name = info.filename
                    if info.is_dir() or name in seen:
                        continue
                    upper = name.upper()
                    if upper.startswith("META-INF/") and (
                        upper.endswith(_SIGNATURE_SUFFIXES)
                        or upper == "META-INF/MANIFEST.MF"
                        or upper.endswith("INDEX.LIST")
                    ):
                        continue
                    if name.endswith("module-info.class"):
                        continue
                    if name.startswith("META-INF/services/"):
                        lines = services.setdefault(name, [])
                        for line in zin.read(info).decode("utf-8", "replace").splitlines():
                            line = line.split("#", 1)[0].strip()
                            if line and line not in lines:
                                lines.append(line)
                        continue
                    seen.add(name)
                    out.writestr(info, zin.read(info), compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
        for name, lines in services.items():
            out.writestr(name, "\n".join(lines) + "\n")
    tmp.replace(target)


_INSTALLATION: Installation | None = None


def ensure_installed(verbose: bool = True) -> Installation:
    """Install (or reuse the cached) Flink distribution and job server classpath."""
    global _INSTALLATION
    if _INSTALLATION is None:
        import fcntl
        from concurrent.futures import ThreadPoolExecutor

        java = _java()
        _mkdir(CACHE_DIR)
        # One installer at a time (parallel test sessions share the cache).
        with open(CACHE_DIR / "install.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            # The two downloads are independent: do them side by side.
            with ThreadPoolExecutor(max_workers=2) as pool:
                dist = pool.submit(_install_flink_dist, verbose)
                jobserver = pool.submit(_install_jobserver, verbose)
                home, jars = dist.result(), jobserver.result()
        _INSTALLATION = Installation(flink_home=home, jobserver_classpath=jars, java=java)
    return _INSTALLATION


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------
KEEP_LOG_RUNS = 10


def _prune_logs(keep: int) -> None:
    logs = CACHE_DIR / "logs"
    if not logs.is_dir():
        return
    runs = sorted((p for p in logs.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in runs[:-keep] if keep else runs:
        shutil.rmtree(old, ignore_errors=True)


def _prune_stale_runs() -> None:
    """Remove run dirs (named <time>-<pid>) whose owner died without cleaning up."""
    runs = CACHE_DIR / "run"
    if not runs.is_dir():
        return
    for run in runs.iterdir():
        try:
            pid = int(run.name.rsplit("-", 1)[1])
        except (IndexError, ValueError):
            continue
        if not run.is_dir() or pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(run, ignore_errors=True)
        except PermissionError:
            pass


def _note_python_sdk_version() -> None:
    try:
        from importlib.metadata import version

        py = version("apache-beam")
    except Exception:  # noqa: BLE001 - only informative
        return
    if py != BEAM_JAVA_VERSION:
        _log(
            f"note: Python apache-beam {py} talks to the Beam {BEAM_JAVA_VERSION} job server "
            f"(the newest Beam Flink runner Maven Central serves whole)"
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _port_open(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, n: int = 40) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
            # the first line is the (very long) command line
            return "\n".join(lines[1:][-n:])
        except OSError:
            return ""


def _die_with_parent() -> None:
    """preexec_fn: ask Linux to SIGTERM the child when its parent exits."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort, not on every platform
        pass


def _kill_groups(pids: list, timeout: float = 15.0) -> None:
    """SIGTERM the process groups led by pids, SIGKILL what is left after timeout."""
    alive = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
            alive.append(pid)
    deadline = time.monotonic() + timeout
    while alive and time.monotonic() < deadline:
        for pid in list(alive):
            # reap our own child if it is one, then see if its group is gone
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                alive.remove(pid)
        time.sleep(0.1)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


@dataclass
class FlinkCluster:
    """JobManager + TaskManager(s) + Beam job server (+ Python worker pool)."""

    taskmanagers: int = 1
    slots_per_taskmanager: int = 2
    jobmanager_memory: str = "768m"
    taskmanager_memory: str = "1536m"
    network_memory: str = "256m"
    jobserver_heap: str = "768m"
    worker_pool: bool = True
    worker_python: str | None = None  # the SDK workers' interpreter (default: this one)
    worker_pythonpath: list = field(default_factory=list)
    startup_timeout: float = 180.0
    run_name: str | None = None
    # SIGTERM each process when the Python that started it dies, even by SIGKILL
    # (Linux only); off for `cluster.py start --detach`.
    die_with_parent: bool = True

    # filled by start() (or attach())
    rest_port: int = field(default=0, init=False)
    rpc_port: int = field(default=0, init=False)
    job_port: int = field(default=0, init=False)
    artifact_port: int = field(default=0, init=False)
    expansion_port: int = field(default=0, init=False)
    worker_pool_port: int = field(default=0, init=False)
    run_dir: Path | None = field(default=None, init=False)
    log_dir: Path | None = field(default=None, init=False)
    _procs: list = field(default_factory=list, init=False, repr=False)
    _atexit: bool = field(default=False, init=False, repr=False)

    @classmethod
    def attach(cls, state_file: Path | str = STATE_FILE) -> FlinkCluster:
        """A handle on a cluster started elsewhere (``cluster.py start``);
        its stop() does nothing."""
        state = json.loads(Path(state_file).read_text())
        if not _state_alive(state):
            raise FlinkSetupError(f"the cluster in {state_file} is not running")
        c = cls(
            taskmanagers=1,
            slots_per_taskmanager=int(state["parallelism"]),
            worker_pool=bool(state.get("worker_pool_endpoint")),
        )
        port = lambda key: int(str(state[key]).rsplit(":", 1)[1])  # noqa: E731
        c.rest_port, c.job_port = port("flink_master"), port("job_endpoint")
        c.artifact_port, c.expansion_port = port("artifact_endpoint"), port("expansion_endpoint")
        c.worker_pool_port = port("worker_pool_endpoint") if c.worker_pool else 0
        c.log_dir = Path(state["log_dir"])
        return c

    # ---- endpoints -------------------------------------------------------
    @property
    def flink_master(self) -> str:
        return f"{HOST}:{self.rest_port}"

    @property
    def rest_url(self) -> str:
        return f"http://{HOST}:{self.rest_port}"

    @property
    def job_endpoint(self) -> str:
        return f"{HOST}:{self.job_port}"

    @property
    def artifact_endpoint(self) -> str:
        return f"{HOST}:{self.artifact_port}"

    @property
    def expansion_endpoint(self) -> str:
        return f"{HOST}:{self.expansion_port}"

    @property
    def worker_pool_endpoint(self) -> str | None:
        return f"{HOST}:{self.worker_pool_port}" if self.worker_pool_port else None

    def endpoints(self) -> dict:
        return {
            "flink_master": self.flink_master,
            "rest_url": self.rest_url,
            "job_endpoint": self.job_endpoint,
            "artifact_endpoint": self.artifact_endpoint,
            "expansion_endpoint": self.expansion_endpoint,
            "worker_pool_endpoint": self.worker_pool_endpoint,
            "parallelism": self.taskmanagers * self.slots_per_taskmanager,
            "log_dir": str(self.log_dir),
        }

    def pipeline_options(self, environment: str = "EXTERNAL", **extra) -> list:
        """Arguments for apache_beam PipelineOptions targeting this cluster."""
        opts = [
            "--runner=PortableRunner",
            f"--job_endpoint={self.job_endpoint}",
            f"--artifact_endpoint={self.artifact_endpoint}",
            f"--parallelism={self.taskmanagers * self.slots_per_taskmanager}",
        ]
        if environment == "EXTERNAL":
            if not self.worker_pool_endpoint:
                raise FlinkSetupError("cluster started without a worker pool")
            opts += ["--environment_type=EXTERNAL", f"--environment_config={self.worker_pool_endpoint}"]
        else:
            opts.append(f"--environment_type={environment}")
        for key, value in extra.items():
            if value is True:
                opts.append(f"--{key}")
            elif value is not False and value is not None:
                opts.append(f"--{key}={value}")
        return opts

    # ---- lifecycle -------------------------------------------------------
    def __enter__(self) -> FlinkCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, register_atexit: bool = True) -> FlinkCluster:
        inst = ensure_installed()
        _note_python_sdk_version()
        run = self.run_name or time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        _prune_logs(keep=KEEP_LOG_RUNS)
        _prune_stale_runs()
        self.run_dir = _mkdir(CACHE_DIR / "run" / run)
        self.log_dir = _mkdir(CACHE_DIR / "logs" / run)
        if register_atexit and not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        try:
            self._start(inst)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, inst: Installation) -> None:
        t0 = time.monotonic()
        self.rest_port, self.rpc_port = free_port(), free_port()
        conf_dir = _mkdir(self.run_dir / "conf")
        self._write_conf(conf_dir)
        jm_jvm, jm_dyn = self._resource_params(inst, conf_dir, "GET_JM_RESOURCE_PARAMS")
        tm_jvm, tm_dyn = self._resource_params(inst, conf_dir, "GET_TM_RESOURCE_PARAMS")
        flink_cp = os.pathsep.join(inst.flink_lib_jars)

        def flink_cmd(name: str, main: str, jvm: list, args: list) -> list:
            return (
                [inst.java]
                + jvm
                + JAVA17_OPTS
                + [
                    f"-Dlog.file={self.log_dir / (name + '.log')}",
                    f"-Dlog4j.configuration=file:{conf_dir / 'log4j.properties'}",
                    f"-Dlog4j.configurationFile=file:{conf_dir / 'log4j.properties'}",
                    "-classpath",
                    flink_cp,
                    main,
                    "--configDir",
                    str(conf_dir),
                ]
                + args
            )

        self._spawn(
            "jobmanager",
            flink_cmd(
                "jobmanager",
                "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint",
                jm_jvm,
                ["--executionMode", "cluster"] + jm_dyn,
            ),
        )
        for i in range(self.taskmanagers):
            self._spawn(
                f"taskmanager-{i}",
                flink_cmd(
                    f"taskmanager-{i}",
                    "org.apache.flink.runtime.taskexecutor.TaskManagerRunner",
                    tm_jvm,
                    tm_dyn,
                ),
            )

        # The job server and the worker pool don't need the cluster to be up yet.
        self.job_port, self.artifact_port = free_port(), free_port()
        self.expansion_port = free_port()
        self._spawn(
            "jobserver",
            [inst.java, f"-Xmx{self.jobserver_heap}", "-XX:+UseSerialGC"]
            + JAVA17_OPTS
            + [
                "-Dorg.slf4j.simpleLogger.showDateTime=true",
                "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd HH:mm:ss,SSS",
                f"-Djava.io.tmpdir={_mkdir(self.run_dir / 'jobserver-tmp')}",
                # Everything on this classpath is staged to Flink with every job.
                "-classpath",
                os.pathsep.join(inst.jobserver_classpath),
                "org.apache.beam.runners.flink.FlinkJobServerDriver",
                f"--flink-master={self.flink_master}",
                f"--flink-conf-dir={conf_dir}",
                f"--job-host={HOST}",
                f"--job-port={self.job_port}",
                f"--artifact-port={self.artifact_port}",
                f"--expansion-port={self.expansion_port}",
                f"--artifacts-dir={_mkdir(self.run_dir / 'artifacts')}",
            ],
        )
        if self.worker_pool:
            self.worker_pool_port = free_port()
            python = self.worker_python or sys.executable
            env = dict(os.environ)
            # worker_pool_main starts each SDK worker as `python -c ...` from PATH.
            # (A wrapper, not a symlink: a venv's python must be run by its own path.)
            shim = _mkdir(self.run_dir / "worker-bin")
            (shim / "python").write_text(f'#!/bin/sh\nexec "{python}" "$@"\n')
            (shim / "python").chmod(0o755)
            env["PATH"] = str(shim) + os.pathsep + env.get("PATH", "")
            paths = [str(p) for p in self.worker_pythonpath] + [str(REPO_ROOT)]
            if env.get("PYTHONPATH"):
                paths.append(env["PYTHONPATH"])
            env["PYTHONPATH"] = os.pathsep.join(paths)
            # A worker that cannot start makes Beam jobs hang, so check up front.
            probe = subprocess.run(
                ["python", "-c", "import apache_beam.runners.worker.sdk_worker"],
                env=env,
                capture_output=True,
                text=True,
            )
            if probe.returncode != 0:
                raise FlinkSetupError(
                    f"the SDK worker python ({python}) cannot import apache_beam:\n{probe.stderr[-2000:]}"
                )
            self._spawn(
                "worker-pool",
                [
                    python,
                    "-m",
                    "apache_beam.runners.worker.worker_pool_main",
                    f"--service_port={self.worker_pool_port}",
                ],
                env=env,
            )

        deadline = time.monotonic() + self.startup_timeout
        self._wait_cluster(deadline)
        _log(
            f"flink cluster up at {self.rest_url} "
            f"({self.taskmanagers} TM x {self.slots_per_taskmanager} slots) "
            f"after {time.monotonic() - t0:.1f}s"
        )
        self._wait_port("jobserver", self.job_port, deadline)
        self._wait_port("jobserver", self.artifact_port, deadline)
        if self.worker_pool:
            self._wait_port("worker-pool", self.worker_pool_port, deadline)
        _log(
            f"ready after {time.monotonic() - t0:.1f}s: job endpoint {self.job_endpoint}, "
            f"worker pool {self.worker_pool_endpoint}, logs {self.log_dir}"
        )

    def _write_conf(self, conf_dir: Path) -> None:
        tmp = _mkdir(self.run_dir / "tmp")
        conf = {
            "jobmanager.rpc.address": HOST,
            "jobmanager.rpc.port": self.rpc_port,
            "jobmanager.bind-host": HOST,
            "jobmanager.memory.process.size": self.jobmanager_memory,
            "jobmanager.execution.failover-strategy": "region",
            "taskmanager.host": HOST,
            "taskmanager.bind-host": HOST,
            "taskmanager.rpc.port": 0,
            "taskmanager.data.port": 0,
            "taskmanager.numberOfTaskSlots": self.slots_per_taskmanager,
            "taskmanager.memory.process.size": self.taskmanager_memory,
            # Batch (DataSet) jobs deploy all stages at once; Beam pipelines with a
            # few shuffles need more than the default ~3.5k network buffers.
            "taskmanager.memory.network.min": self.network_memory,
            "taskmanager.memory.network.max": self.network_memory,
            "taskmanager.memory.managed.fraction": 0.2,
            "rest.address": HOST,
            "rest.bind-address": HOST,
            "rest.port": self.rest_port,
            "blob.server.port": 0,
            "parallelism.default": 1,
            # Fail fast in tests instead of restarting forever.
            "restart-strategy.type": "none",
            # Beam's SDK harness threads outlive tasks; Flink would complain.
            "classloader.check-leaked-classloader": "false",
            "io.tmp.dirs": str(tmp),
            "web.tmpdir": str(_mkdir(tmp / "web")),
            "blob.storage.directory": str(_mkdir(tmp / "blob")),
            "metrics.internal.query-service.port": 0,
        }
        (conf_dir / "config.yaml").write_text(
            "".join(f"{k}: {json.dumps(v) if isinstance(v, str) else v}\n" for k, v in conf.items())
        )
        (conf_dir / "log4j.properties").write_text(LOG4J_PROPERTIES)
        (conf_dir / "log4j-console.properties").write_text(LOG4J_PROPERTIES)

    def _resource_params(self, inst: Installation, conf_dir: Path, what: str):
        """Ask Flink's BashJavaUtils (as bin/*.sh do) for heap sizes and -D options."""
        cmd = [
            inst.java,
            "-Xmx64m",
            "-XX:TieredStopAtLevel=1",
            "-classpath",
            os.pathsep.join([inst.bash_java_utils_jar] + inst.flink_lib_jars),
            "org.apache.flink.runtime.util.bash.BashJavaUtils",
            what,
            "--configDir",
            str(conf_dir),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        prefix = "BASH_JAVA_UTILS_EXEC_RESULT:"
        lines = [line[len(prefix) :] for line in proc.stdout.splitlines() if line.startswith(prefix)]
        if proc.returncode != 0 or not lines:
            raise FlinkSetupError(f"BashJavaUtils {what} failed:\n{proc.stdout}\n{proc.stderr}")
        jvm = lines[0].split()
        dyn = lines[1].split() if len(lines) > 1 else []
        return jvm, dyn

    def _spawn(self, name: str, cmd: list, env: dict | None = None) -> _Proc:
        log = self.log_dir / f"{name}.out"
        with open(log, "ab") as out:
            out.write(f"$ {' '.join(cmd)}\n".encode())
            out.flush()
            popen = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.run_dir,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        proc = _Proc(name, popen, log)
        self._procs.append(proc)
        return proc

    def _check_alive(self) -> None:
        for p in self._procs:
            if not p.alive():
                raise FlinkSetupError(
                    f"{p.name} exited with code {p.popen.returncode} during startup; "
                    f"last lines of {p.log}:\n{p.tail()}"
                )

    def overview(self) -> dict:
        with urllib.request.urlopen(f"{self.rest_url}/overview", timeout=5) as resp:
            return json.load(resp)

    def _wait_cluster(self, deadline: float) -> None:
        want_slots = self.taskmanagers * self.slots_per_taskmanager
        last = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                last = self.overview()
                if (
                    last.get("taskmanagers", 0) >= self.taskmanagers
                    and last.get("slots-total", 0) >= want_slots
                ):
                    return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.5)
        raise FlinkSetupError(
            f"Flink cluster not ready within {self.startup_timeout}s "
            f"(last /overview: {last}); logs in {self.log_dir}"
        )

    def _wait_port(self, name: str, port: int, deadline: float) -> None:
        while time.monotonic() < deadline:
            self._check_alive()
            if _port_open(port):
                return
            time.sleep(0.3)
        raise FlinkSetupError(
            f"{name} not listening on {HOST}:{port} within {self.startup_timeout}s; logs in {self.log_dir}"
        )

    def stop(self) -> None:
        """Stop every process this object started (their whole process groups)."""
        procs, self._procs = self._procs, []
        _kill_groups([p.popen.pid for p in procs])
        for p in procs:
            with contextlib.suppress(Exception):
                p.popen.wait(timeout=5)
        if self.run_dir and self.run_dir.exists():
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def pids(self) -> dict:
        return {p.name: p.popen.pid for p in self._procs}


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------
def _cmd_install(args) -> int:
    t0 = time.monotonic()
    inst = ensure_installed()
    _log(
        f"installed in {time.monotonic() - t0:.1f}s: Flink {FLINK_VERSION} at "
        f"{inst.flink_home}, Beam {BEAM_JAVA_VERSION} job server classpath "
        f"({len(inst.jobserver_classpath)} jars)"
    )
    return 0


def _cluster_from_args(args) -> FlinkCluster:
    return FlinkCluster(
        worker_python=args.worker_python,
        taskmanagers=args.taskmanagers,
        slots_per_taskmanager=args.slots,
        worker_pool=not args.no_worker_pool,
        worker_pythonpath=args.worker_pythonpath or [],
    )


def _cmd_start(args) -> int:
    if STATE_FILE.exists() and _state_alive(json.loads(STATE_FILE.read_text())):
        _log(f"a cluster is already running (see {STATE_FILE}); stop it first")
        return 1
    cluster = _cluster_from_args(args)
    if args.detach:
        cluster.die_with_parent = False
        # not "<time>-<pid>": this run outlives the pid that starts it
        cluster.run_name = time.strftime("%Y%m%d-%H%M%S") + "-detached"
    cluster.start(register_atexit=not args.detach)
    state = dict(cluster.endpoints(), pids=cluster.pids(), run_dir=str(cluster.run_dir))
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(json.dumps(state, indent=2))
    print(json.dumps(state, indent=2), flush=True)
    if args.detach:
        return 0
    stop = {"flag": False}

    def _on_signal(signum, frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        while not stop["flag"]:
            for p in cluster._procs:
                if not p.alive():
                    _log(f"{p.name} exited with code {p.popen.returncode}; stopping")
                    stop["flag"] = True
            time.sleep(1)
    finally:
        cluster.stop()
        STATE_FILE.unlink(missing_ok=True)
    return 0


def _state_alive(state: dict) -> bool:
    for pid in state.get("pids", {}).values():
        try:
            os.killpg(pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            pass
    return False


def _cmd_stop(args) -> int:
    if not STATE_FILE.exists():
        _log("no cluster state file; nothing to stop")
        return 0
    state = json.loads(STATE_FILE.read_text())
    _kill_groups(list(state.get("pids", {}).values()))
    if state.get("run_dir"):
        shutil.rmtree(state["run_dir"], ignore_errors=True)
    STATE_FILE.unlink(missing_ok=True)
    _log("stopped")
    return 0


def _cmd_status(args) -> int:
    if not STATE_FILE.exists():
        print("not running")
        return 1
    state = json.loads(STATE_FILE.read_text())
    alive = _state_alive(state)
    print(json.dumps(dict(state, alive=alive), indent=2))
    return 0 if alive else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("install", help="install Flink + Beam job server into the cache")
    st = sub.add_parser("start", help="start the cluster (foreground unless --detach)")
    st.add_argument("--detach", action="store_true")
    st.add_argument("--taskmanagers", type=int, default=1)
    st.add_argument("--slots", type=int, default=2, help="task slots per TaskManager")
    st.add_argument("--no-worker-pool", action="store_true")
    st.add_argument("--worker-python", help="interpreter for the SDK worker pool (default: this one)")
    st.add_argument(
        "--worker-pythonpath", action="append", help="extra sys.path entry for the SDK workers (repeatable)"
    )
    sub.add_parser("stop", help="stop a cluster started with --detach")
    sub.add_parser("status", help="print the running cluster's endpoints")
    args = ap.parse_args(argv)
    try:
        return {"install": _cmd_install, "start": _cmd_start, "stop": _cmd_stop, "status": _cmd_status}[
            args.cmd
        ](args)
    except FlinkSetupError as e:
        _log(f"ERROR: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
