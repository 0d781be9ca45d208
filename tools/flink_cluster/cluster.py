"""``FlinkCluster``: a JobManager, TaskManager(s), Beam's Flink job server and a
Python SDK worker pool on loopback, each its own process group.

    with FlinkCluster() as c:
        c.job_endpoint            # "127.0.0.1:<port>" for --job_endpoint
        c.worker_pool_endpoint    # "127.0.0.1:<port>" for --environment_config
        c.pipeline_options()      # PortableRunner options for this cluster

Logs of each run are in ``.cache/flink/logs/<run>/``; its configuration and
scratch space in ``.cache/flink/run/<run>/``, removed by ``stop()``.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from beam_kinesis_sink.testing.processes import free_port, port_open, stop_groups
from tools.flink_cluster import roles
from tools.flink_cluster.config import (
    HOST,
    KEEP_LOG_RUNS,
    LOGS_DIR,
    RUNS_DIR,
    STATE_FILE,
    ConfValue,
    FlinkSetupError,
    flink_conf,
    log,
    mkdir,
    write_conf_dir,
)
from tools.flink_cluster.install import Installation, ensure_installed
from tools.flink_cluster.rest import SlotsProbe
from tools.flink_cluster.runs import (
    any_alive,
    new_run_name,
    note_python_sdk_version,
    prune_logs,
    prune_stale_runs,
    read_state,
    state_pids,
)

#: how long stop() lets each process group end on SIGTERM before SIGKILL
STOP_TIMEOUT = 15.0


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
    worker_python: Optional[str] = None  # the SDK workers' interpreter (default: this one)
    worker_pythonpath: List[str] = field(default_factory=list)
    startup_timeout: float = 180.0
    run_name: Optional[str] = None
    #: entries of Flink's config.yaml over the defaults of ``config.flink_conf``
    conf_overrides: Dict[str, ConfValue] = field(default_factory=dict)
    # SIGTERM each process when the Python that started it dies, even by SIGKILL
    # (Linux only); off for `start --detach`.
    die_with_parent: bool = True

    # filled by start() (or attach())
    rest_port: int = field(default=0, init=False)
    rpc_port: int = field(default=0, init=False)
    job_port: int = field(default=0, init=False)
    artifact_port: int = field(default=0, init=False)
    expansion_port: int = field(default=0, init=False)
    worker_pool_port: int = field(default=0, init=False)
    run_dir: Optional[Path] = field(default=None, init=False)
    log_dir: Optional[Path] = field(default=None, init=False)
    _procs: List[roles.Spawned] = field(default_factory=list, init=False, repr=False)
    _conf_dir: Optional[Path] = field(default=None, init=False, repr=False)
    _taskmanagers_started: int = field(default=0, init=False, repr=False)
    _attached_pids: Dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _atexit: bool = field(default=False, init=False, repr=False)

    @classmethod
    def attach(cls, state_file: Union[Path, str] = STATE_FILE) -> FlinkCluster:
        """A handle on a cluster started elsewhere (``start --detach``); its
        stop() does nothing."""
        state = read_state(Path(state_file))
        if state is None or not any_alive(state_pids(state).values()):
            raise FlinkSetupError(f"the cluster in {state_file} is not running")
        c = cls(
            taskmanagers=1,
            slots_per_taskmanager=int(state["parallelism"]),
            worker_pool=bool(state.get("worker_pool_endpoint")),
        )

        def port(key: str) -> int:
            return int(str(state[key]).rsplit(":", 1)[1])

        c.rest_port, c.job_port = port("flink_master"), port("job_endpoint")
        c.artifact_port, c.expansion_port = port("artifact_endpoint"), port("expansion_endpoint")
        c.worker_pool_port = port("worker_pool_endpoint") if c.worker_pool else 0
        c.log_dir = Path(state["log_dir"])
        c._attached_pids = state_pids(state)
        return c

    # ---- endpoints -------------------------------------------------------
    @property
    def parallelism(self) -> int:
        return self.taskmanagers * self.slots_per_taskmanager

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
    def worker_pool_endpoint(self) -> Optional[str]:
        return f"{HOST}:{self.worker_pool_port}" if self.worker_pool_port else None

    def endpoints(self) -> Dict[str, Any]:
        return {
            "flink_master": self.flink_master,
            "rest_url": self.rest_url,
            "job_endpoint": self.job_endpoint,
            "artifact_endpoint": self.artifact_endpoint,
            "expansion_endpoint": self.expansion_endpoint,
            "worker_pool_endpoint": self.worker_pool_endpoint,
            "parallelism": self.parallelism,
            "log_dir": str(self.log_dir),
        }

    def pipeline_options(self, environment: str = "EXTERNAL", **extra: Any) -> List[str]:
        """Arguments for apache_beam PipelineOptions targeting this cluster."""
        opts = [
            "--runner=PortableRunner",
            f"--job_endpoint={self.job_endpoint}",
            f"--artifact_endpoint={self.artifact_endpoint}",
            f"--parallelism={self.parallelism}",
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

    def pids(self) -> Dict[str, int]:
        """``{role: pid}`` of each process group leader (``jobmanager``,
        ``taskmanager-<i>``, ``jobserver``, ``worker-pool``)."""
        return {p.name: p.popen.pid for p in self._procs} if self._procs else dict(self._attached_pids)

    def running(self) -> List[str]:
        """The roles whose processes are alive."""
        return [p.name for p in self._procs if p.alive()]

    def dead(self) -> List[roles.Spawned]:
        """The started processes that have exited."""
        return [p for p in self._procs if not p.alive()]

    # ---- lifecycle -------------------------------------------------------
    def __enter__(self) -> FlinkCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, register_atexit: bool = True) -> FlinkCluster:
        inst = ensure_installed()
        note_python_sdk_version()
        run = self.run_name or new_run_name()
        prune_logs(keep=KEEP_LOG_RUNS)
        prune_stale_runs()
        self.run_dir = mkdir(RUNS_DIR / run)
        self.log_dir = mkdir(LOGS_DIR / run)
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
        conf_dir = self._write_conf()
        self._start_flink(inst, conf_dir)
        # The job server and the worker pool don't need the cluster to be up yet.
        self._start_jobserver(inst, conf_dir)
        if self.worker_pool:
            self._start_worker_pool()
        self._wait_until_ready(t0)

    def _write_conf(self) -> Path:
        """Pick the JobManager's ports; write its config dir (shared by every role)."""
        assert self.run_dir is not None
        self.rest_port, self.rpc_port = free_port(HOST), free_port(HOST)
        conf_dir = mkdir(self.run_dir / "conf")
        conf = flink_conf(
            rpc_port=self.rpc_port,
            rest_port=self.rest_port,
            slots=self.slots_per_taskmanager,
            jobmanager_memory=self.jobmanager_memory,
            taskmanager_memory=self.taskmanager_memory,
            network_memory=self.network_memory,
            tmp=mkdir(self.run_dir / "tmp"),
        )
        write_conf_dir(conf_dir, {**conf, **self.conf_overrides})
        self._conf_dir = conf_dir
        return conf_dir

    def _start_flink(self, inst: Installation, conf_dir: Path) -> None:
        assert self.log_dir is not None
        self._spawn("jobmanager", roles.jobmanager_command(inst, conf_dir, self.log_dir))
        for name, cmd in roles.taskmanager_commands(inst, conf_dir, self.log_dir, self.taskmanagers).items():
            self._spawn(name, cmd)
        self._taskmanagers_started = self.taskmanagers

    def _start_jobserver(self, inst: Installation, conf_dir: Path) -> None:
        assert self.run_dir is not None
        self.job_port, self.artifact_port = free_port(HOST), free_port(HOST)
        self.expansion_port = free_port(HOST)
        cmd = roles.jobserver_command(
            inst,
            conf_dir=conf_dir,
            run_dir=self.run_dir,
            heap=self.jobserver_heap,
            flink_master=self.flink_master,
            job_port=self.job_port,
            artifact_port=self.artifact_port,
            expansion_port=self.expansion_port,
        )
        self._spawn("jobserver", cmd)

    def _start_worker_pool(self) -> None:
        self.worker_pool_port = free_port(HOST)
        self._spawn_worker_pool()

    def _spawn_worker_pool(self) -> None:
        assert self.run_dir is not None
        python = self.worker_python or sys.executable
        env = roles.worker_env(python, self.run_dir, self.worker_pythonpath)
        self._spawn("worker-pool", roles.worker_pool_command(python, self.worker_pool_port), env=env)

    def _wait_until_ready(self, t0: float) -> None:
        deadline = time.monotonic() + self.startup_timeout
        slots = SlotsProbe(self.rest_url, self.taskmanagers, self.parallelism)
        if not self._wait_for(slots, deadline, interval=0.5):
            raise FlinkSetupError(
                f"Flink cluster not ready within {self.startup_timeout}s "
                f"(last /overview: {slots.last}); logs in {self.log_dir}"
            )
        log(
            f"flink cluster up at {self.rest_url} "
            f"({self.taskmanagers} TM x {self.slots_per_taskmanager} slots) "
            f"after {time.monotonic() - t0:.1f}s"
        )
        self._wait_port("jobserver", self.job_port, deadline)
        self._wait_port("jobserver", self.artifact_port, deadline)
        if self.worker_pool:
            self._wait_port("worker-pool", self.worker_pool_port, deadline)
        log(
            f"ready after {time.monotonic() - t0:.1f}s: job endpoint {self.job_endpoint}, "
            f"worker pool {self.worker_pool_endpoint}, logs {self.log_dir}"
        )

    def _wait_port(self, name: str, port: int, deadline: float) -> None:
        if not self._wait_for(lambda: port_open(port, HOST), deadline, interval=0.3):
            raise FlinkSetupError(
                f"{name} not listening on {HOST}:{port} within {self.startup_timeout}s; "
                f"logs in {self.log_dir}"
            )

    def _wait_for(self, ready: Callable[[], bool], deadline: float, interval: float) -> bool:
        """Poll ``ready()`` until the deadline; raise as soon as a process died."""
        while time.monotonic() < deadline:
            self._check_alive()
            if ready():
                return True
            time.sleep(interval)
        return False

    def _spawn(self, name: str, cmd: Sequence[str], env: Optional[Dict[str, str]] = None) -> None:
        assert self.log_dir is not None and self.run_dir is not None
        self._procs.append(
            roles.spawn(
                name, cmd, log_dir=self.log_dir, cwd=self.run_dir, env=env, with_parent=self.die_with_parent
            )
        )

    def _check_alive(self) -> None:
        dead = self.dead()
        if dead:
            p = dead[0]
            raise FlinkSetupError(
                f"{p.name} exited with code {p.popen.returncode} during startup; "
                f"last lines of {p.log}:\n{p.tail()}"
            )

    # ---- faults ----------------------------------------------------------
    def kill(self, name: str) -> int:
        """SIGKILL the process group of role ``name`` (a TaskManager: the JVM;
        the worker pool: it and the SDK workers it started), reap it and forget
        it; its pid."""
        running = [p for p in self._procs if p.name == name and p.alive()]
        if not running:
            raise FlinkSetupError(f"no running {name!r} in this cluster: {sorted(self.pids())}")
        stop_groups([running[0].popen])
        # gone on purpose: not a process that died (see _check_alive)
        self._procs.remove(running[0])
        return running[0].popen.pid

    def start_taskmanager(self) -> str:
        """Start one more TaskManager (as after losing one); its role name."""
        assert self._conf_dir is not None and self.log_dir is not None, "start() first"
        index = self._taskmanagers_started
        self._taskmanagers_started += 1
        name = f"taskmanager-{index}"
        inst = ensure_installed(verbose=False)
        commands = roles.taskmanager_commands(inst, self._conf_dir, self.log_dir, index + 1)
        self._spawn(name, commands[name])
        return name

    def restart_worker_pool(self) -> None:
        """Start the worker pool again on its port (after it was killed)."""
        if any(p.name == "worker-pool" and p.alive() for p in self._procs):
            raise FlinkSetupError("the worker pool is still running")
        assert self.worker_pool_port, "start() with worker_pool=True first"
        self._spawn_worker_pool()
        self._wait_port("worker-pool", self.worker_pool_port, time.monotonic() + self.startup_timeout)

    def stop(self) -> None:
        """Stop every process this object started (their whole process groups)."""
        procs, self._procs = self._procs, []
        stop_groups([p.popen for p in procs], term_timeout=STOP_TIMEOUT)
        if self.run_dir and self.run_dir.exists():
            shutil.rmtree(self.run_dir, ignore_errors=True)
