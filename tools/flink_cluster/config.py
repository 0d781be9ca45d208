"""Versions, paths, ports and the Flink configuration of the local cluster."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Dict, Union

from beam_kinesis_sink.testing.processes import LOOPBACK
from beam_kinesis_sink.testing.user_cache import user_cache_dir

# Versions.  Beam recommends a job server of the same version as the Python
# SDK.  Maven Central serves no beam-runners-flink-*-job-server at all, and
# org.apache.beam:beam-runners-flink-1.19 only in 2.62.0 and 2.70.0; 2.70.0
# needs beam-runners-java-job-service:2.70.0, which is not served (it stops
# at 2.65.0).  So 2.62.0 is the newest Beam whose Flink runner resolves whole.
# The tests submit, and the worker pool runs, Python apache-beam 2.62.0 to match
# it (`make test-flink`, .venv-beam-2.62; tests/flink/conftest.py checks it).
BEAM_JAVA_VERSION = os.environ.get("FLINK_BEAM_JAVA_VERSION", "2.62.0")
FLINK_MINOR = os.environ.get("FLINK_MINOR_VERSION", "1.19")
FLINK_VERSION = os.environ.get("FLINK_VERSION", "1.19.3")
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

REPO_ROOT = Path(__file__).resolve().parents[2]
#: the downloads (Flink, the job server and its Maven repository), kept in the
#: user cache: once per machine, not once per clone
CACHE_DIR = Path(os.environ.get("FLINK_CACHE_DIR") or user_cache_dir("flink"))
#: this checkout's runs: their configuration, scratch space and logs
STATE_DIR = REPO_ROOT / ".cache" / "flink"
RUNS_DIR = STATE_DIR / "run"  # one private dir per run, removed by stop()
LOGS_DIR = STATE_DIR / "logs"  # one dir per run, the last KEEP_LOG_RUNS kept
STATE_FILE = RUNS_DIR / "cluster.json"  # written by `start`, read by `status`/`stop`/attach
KEEP_LOG_RUNS = 10

#: every process of the cluster listens here (see README.md for the exceptions)
HOST = LOOPBACK

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

ConfValue = Union[str, int, float]


class FlinkSetupError(RuntimeError):
    """Installing or starting the Flink test cluster failed."""


def log(msg: str) -> None:
    print(f"[flink-cluster] {msg}", file=sys.stderr, flush=True)


def mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def java() -> str:
    """The ``java`` to run every JVM with (``$FLINK_JAVA_HOME/bin/java``, else PATH)."""
    java_home = os.environ.get("FLINK_JAVA_HOME")
    if java_home:
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise FlinkSetupError("no `java` on PATH (Flink 1.19 needs Java 11 or 17)")
    return found


def flink_conf(
    *,
    rpc_port: int,
    rest_port: int,
    slots: int,
    jobmanager_memory: str,
    taskmanager_memory: str,
    network_memory: str,
    tmp: Path,
) -> Dict[str, ConfValue]:
    """Flink's ``config.yaml``: every address and bind address on loopback."""
    return {
        "jobmanager.rpc.address": HOST,
        "jobmanager.rpc.port": rpc_port,
        "jobmanager.bind-host": HOST,  # RPC, blob server, metrics query service
        "jobmanager.memory.process.size": jobmanager_memory,
        "jobmanager.execution.failover-strategy": "region",
        "taskmanager.host": HOST,
        "taskmanager.bind-host": HOST,  # RPC, data (shuffle), metrics query service
        "taskmanager.rpc.port": 0,
        "taskmanager.data.port": 0,
        "taskmanager.numberOfTaskSlots": slots,
        "taskmanager.memory.process.size": taskmanager_memory,
        # Batch (DataSet) jobs deploy all stages at once; Beam pipelines with a
        # few shuffles need more than the default ~3.5k network buffers.
        "taskmanager.memory.network.min": network_memory,
        "taskmanager.memory.network.max": network_memory,
        "taskmanager.memory.managed.fraction": 0.2,
        "rest.address": HOST,
        "rest.bind-address": HOST,
        "rest.port": rest_port,
        "blob.server.port": 0,
        "parallelism.default": 1,
        # Fail fast in tests instead of restarting forever.
        "restart-strategy.type": "none",
        # Beam's SDK harness threads outlive tasks; Flink would complain.
        "classloader.check-leaked-classloader": "false",
        "io.tmp.dirs": str(tmp),
        "web.tmpdir": str(mkdir(tmp / "web")),
        "blob.storage.directory": str(mkdir(tmp / "blob")),
        "metrics.internal.query-service.port": 0,
    }


def write_conf_dir(conf_dir: Path, conf: Dict[str, ConfValue]) -> None:
    """``config.yaml`` and the log4j files Flink's processes read from ``conf_dir``."""
    (conf_dir / "config.yaml").write_text(
        "".join(f"{k}: {json.dumps(v) if isinstance(v, str) else v}\n" for k, v in conf.items())
    )
    (conf_dir / "log4j.properties").write_text(LOG4J_PROPERTIES)
    (conf_dir / "log4j-console.properties").write_text(LOG4J_PROPERTIES)
