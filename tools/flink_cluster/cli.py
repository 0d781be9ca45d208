"""``python -m tools.flink_cluster install|start [--detach]|status|stop`` (from the repository root)."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import time
from typing import Callable, Dict, List, Optional

from beam_kinesis_sink.testing.processes import stop_groups
from tools.flink_cluster.cluster import STOP_TIMEOUT, FlinkCluster
from tools.flink_cluster.config import BEAM_JAVA_VERSION, FLINK_VERSION, STATE_FILE, FlinkSetupError, log
from tools.flink_cluster.install import ensure_installed
from tools.flink_cluster.runs import any_alive, new_run_name, read_state, state_pids, write_state


def _cmd_install(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    inst = ensure_installed()
    log(
        f"installed in {time.monotonic() - t0:.1f}s: Flink {FLINK_VERSION} at "
        f"{inst.flink_home}, Beam {BEAM_JAVA_VERSION} job server classpath "
        f"({len(inst.jobserver_classpath)} jars)"
    )
    return 0


def _cmd_start(args: argparse.Namespace) -> int:
    state = read_state()
    if state is not None and any_alive(state_pids(state).values()):
        log(f"a cluster is already running (see {STATE_FILE}); stop it first")
        return 1
    cluster = FlinkCluster(
        worker_python=args.worker_python,
        taskmanagers=args.taskmanagers,
        slots_per_taskmanager=args.slots,
        worker_pool=not args.no_worker_pool,
        worker_pythonpath=args.worker_pythonpath or [],
    )
    if args.detach:
        cluster.die_with_parent = False
        cluster.run_name = new_run_name(detached=True)  # this run outlives the pid that starts it
    cluster.start(register_atexit=not args.detach)
    state = dict(cluster.endpoints(), pids=cluster.pids(), run_dir=str(cluster.run_dir))
    write_state(state)
    print(json.dumps(state, indent=2), flush=True)
    if not args.detach:
        _run_in_foreground(cluster)
    return 0


def _run_in_foreground(cluster: FlinkCluster) -> None:
    """Until SIGINT/SIGTERM or a process of the cluster exits; then stop it."""
    stopping: List[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.append(signum))
    try:
        while not stopping:
            for p in cluster.dead():
                log(f"{p.name} exited with code {p.popen.returncode}; stopping")
                stopping.append(0)
            time.sleep(1)
    finally:
        cluster.stop()
        STATE_FILE.unlink(missing_ok=True)


def _cmd_stop(args: argparse.Namespace) -> int:
    state = read_state()
    if state is None:
        log("no cluster state file; nothing to stop")
        return 0
    stop_groups(state_pids(state).values(), term_timeout=STOP_TIMEOUT)
    if state.get("run_dir"):
        shutil.rmtree(state["run_dir"], ignore_errors=True)
    STATE_FILE.unlink(missing_ok=True)
    log("stopped")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    state = read_state()
    if state is None:
        print("not running")
        return 1
    alive = any_alive(state_pids(state).values())
    print(json.dumps(dict(state, alive=alive), indent=2))
    return 0 if alive else 1


COMMANDS: Dict[str, Callable[[argparse.Namespace], int]] = {
    "install": _cmd_install,
    "start": _cmd_start,
    "stop": _cmd_stop,
    "status": _cmd_status,
}


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m tools.flink_cluster",
        description="A real standalone Apache Flink cluster on loopback, for Beam portable tests.",
    )
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
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.cmd](args)
    except FlinkSetupError as e:
        log(f"ERROR: {e}")
        return 2
