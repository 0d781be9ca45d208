"""Run directories, their logs and the state file of a detached cluster."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

from beam_kinesis_sink.testing.processes import group_alive
from tools.flink_cluster.config import BEAM_JAVA_VERSION, LOGS_DIR, RUNS_DIR, STATE_FILE, log


def new_run_name(detached: bool = False) -> str:
    """``<time>-<pid>``, or ``<time>-detached`` for a run that outlives its starter."""
    return time.strftime("%Y%m%d-%H%M%S") + ("-detached" if detached else f"-{os.getpid()}")


def prune_logs(keep: int) -> None:
    """Keep the log dirs of the last ``keep`` runs."""
    if not LOGS_DIR.is_dir():
        return
    runs = sorted((p for p in LOGS_DIR.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in runs[:-keep] if keep else runs:
        shutil.rmtree(old, ignore_errors=True)


def prune_stale_runs() -> None:
    """Remove run dirs (named <time>-<pid>) whose owner died without cleaning up."""
    if not RUNS_DIR.is_dir():
        return
    for run in RUNS_DIR.iterdir():
        pid = _owner(run)
        if pid is None or not run.is_dir() or pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(run, ignore_errors=True)
        except PermissionError:
            pass


def _owner(run: Path) -> Optional[int]:
    try:
        return int(run.name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return None


def note_python_sdk_version() -> None:
    """Say so when the Python SDK and the job server are not the same Beam."""
    try:
        from importlib.metadata import version

        py = version("apache-beam")
    except Exception:  # noqa: BLE001 - only informative
        return
    if py != BEAM_JAVA_VERSION:
        log(
            f"note: Python apache-beam {py} talks to the Beam {BEAM_JAVA_VERSION} job server "
            f"(the newest Beam Flink runner Maven Central serves whole)"
        )


# ---------------------------------------------------------------- state file
def write_state(state: Dict[str, Any], path: Path = STATE_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2))


def read_state(path: Path = STATE_FILE) -> Optional[Dict[str, Any]]:
    """The state a ``start`` wrote, or None when there is none."""
    if not path.exists():
        return None
    return json.loads(path.read_text())


def state_pids(state: Dict[str, Any]) -> Dict[str, int]:
    return {name: int(pid) for name, pid in state.get("pids", {}).items()}


def any_alive(pids: Iterable[int]) -> bool:
    """Whether any of the process groups led by ``pids`` is still alive."""
    return any(group_alive(pid) for pid in pids)
