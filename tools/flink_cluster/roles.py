"""The cluster's processes, one function per role: their command lines, and
starting each in its own process group with its output in ``<logs>/<name>.out``.

Every role listens on :data:`~tools.flink_cluster.config.HOST` (loopback)
as far as its configuration allows; README.md lists what does not.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from beam_kinesis_sink.testing.processes import dying_with_parent
from tools.flink_cluster.config import HOST, JAVA17_OPTS, REPO_ROOT, FlinkSetupError, mkdir
from tools.flink_cluster.install import Installation

JOBMANAGER_MAIN = "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint"
TASKMANAGER_MAIN = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"
JOBSERVER_MAIN = "org.apache.beam.runners.flink.FlinkJobServerDriver"
#: Beam's worker pool servicer on a loopback address (run by path, see the module)
WORKER_POOL_SCRIPT = Path(__file__).with_name("worker_pool.py")


@dataclass
class Spawned:
    """One started role: its process (the leader of its own group) and log."""

    name: str
    popen: subprocess.Popen[bytes]
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


def spawn(
    name: str,
    cmd: Sequence[str],
    *,
    log_dir: Path,
    cwd: Path,
    env: Optional[Dict[str, str]] = None,
    with_parent: bool = True,
) -> Spawned:
    """Start ``cmd`` in a new process group; ``with_parent``: SIGTERM it when we die."""
    log = log_dir / f"{name}.out"
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        popen = subprocess.Popen(
            dying_with_parent(cmd) if with_parent else list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    return Spawned(name, popen, log)


# ---------------------------------------------------------------- Flink
def resource_params(inst: Installation, conf_dir: Path, what: str) -> Tuple[List[str], List[str]]:
    """JVM options and ``-D`` options for a JobManager (``GET_JM_RESOURCE_PARAMS``)
    or TaskManager (``GET_TM_RESOURCE_PARAMS``), from Flink's BashJavaUtils as
    its bin/*.sh scripts get them."""
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
    return lines[0].split(), (lines[1].split() if len(lines) > 1 else [])


def flink_command(
    inst: Installation, conf_dir: Path, log_file: Path, main: str, jvm: List[str], args: List[str]
) -> List[str]:
    """A Flink entry point as bin/*.sh would run it (addresses come from ``conf_dir``)."""
    log4j = conf_dir / "log4j.properties"
    return [
        inst.java,
        *jvm,
        *JAVA17_OPTS,
        f"-Dlog.file={log_file}",
        f"-Dlog4j.configuration=file:{log4j}",
        f"-Dlog4j.configurationFile=file:{log4j}",
        "-classpath",
        os.pathsep.join(inst.flink_lib_jars),
        main,
        "--configDir",
        str(conf_dir),
        *args,
    ]


def jobmanager_command(inst: Installation, conf_dir: Path, log_dir: Path) -> List[str]:
    jvm, dynamic = resource_params(inst, conf_dir, "GET_JM_RESOURCE_PARAMS")
    return flink_command(
        inst,
        conf_dir,
        log_dir / "jobmanager.log",
        JOBMANAGER_MAIN,
        jvm,
        ["--executionMode", "cluster", *dynamic],
    )


def taskmanager_commands(
    inst: Installation, conf_dir: Path, log_dir: Path, count: int
) -> Dict[str, List[str]]:
    """``{"taskmanager-<i>": command}`` for ``count`` TaskManagers."""
    jvm, dynamic = resource_params(inst, conf_dir, "GET_TM_RESOURCE_PARAMS")
    return {
        f"taskmanager-{i}": flink_command(
            inst, conf_dir, log_dir / f"taskmanager-{i}.log", TASKMANAGER_MAIN, jvm, dynamic
        )
        for i in range(count)
    }


# ---------------------------------------------------------------- Beam job server
def jobserver_command(
    inst: Installation,
    *,
    conf_dir: Path,
    run_dir: Path,
    heap: str,
    flink_master: str,
    job_port: int,
    artifact_port: int,
    expansion_port: int,
) -> List[str]:
    """Beam's ``FlinkJobServerDriver``. ``--job-host`` only names the job and
    artifact endpoints: Beam binds those two on all interfaces whatever it says
    (its ``ServerFactory`` uses ``NettyServerBuilder.forPort``); the expansion
    service binds ``--job-host``."""
    return [
        inst.java,
        f"-Xmx{heap}",
        "-XX:+UseSerialGC",
        *JAVA17_OPTS,
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd HH:mm:ss,SSS",
        f"-Djava.io.tmpdir={mkdir(run_dir / 'jobserver-tmp')}",
        # Everything on this classpath is staged to Flink with every job.
        "-classpath",
        os.pathsep.join(inst.jobserver_classpath),
        JOBSERVER_MAIN,
        f"--flink-master={flink_master}",
        f"--flink-conf-dir={conf_dir}",
        f"--job-host={HOST}",
        f"--job-port={job_port}",
        f"--artifact-port={artifact_port}",
        f"--expansion-port={expansion_port}",
        f"--artifacts-dir={mkdir(run_dir / 'artifacts')}",
    ]


# ---------------------------------------------------------------- Python SDK worker pool
def worker_pool_command(python: str, port: int) -> List[str]:
    return [python, str(WORKER_POOL_SCRIPT), f"--host={HOST}", f"--service_port={port}"]


def worker_env(python: str, run_dir: Path, pythonpath: Sequence[str]) -> Dict[str, str]:
    """The worker pool's environment: ``python`` first on PATH (the pool starts
    each SDK worker as ``python -c ...``), ``pythonpath`` and the repository on
    PYTHONPATH; checked up front, since a worker that cannot start makes Beam
    jobs hang."""
    env = dict(os.environ)
    # A wrapper, not a symlink: a venv's python must be run by its own path.
    shim = mkdir(run_dir / "worker-bin")
    (shim / "python").write_text(f'#!/bin/sh\nexec "{python}" "$@"\n')
    (shim / "python").chmod(0o755)
    env["PATH"] = str(shim) + os.pathsep + env.get("PATH", "")
    paths = [str(p) for p in pythonpath] + [str(REPO_ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
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
    return env
