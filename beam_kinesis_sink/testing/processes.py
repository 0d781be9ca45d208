"""Child processes of the test tooling: the one home for starting a server in
its own process group, finding a free port, and stopping the group.

Used by the local Kinesis servers, the fault front and the local Flink
cluster. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from typing import Iterable, Union

#: every server the project starts listens here, never on all interfaces
LOOPBACK = "127.0.0.1"

Process = Union[int, "subprocess.Popen[bytes]"]


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def group_alive(pid: int) -> bool:
    """Whether any process of the group led by ``pid`` is still alive."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap our own child, if it is one
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _pid_of(process: Process) -> int:
    return process if isinstance(process, int) else process.pid


def stop_groups(processes: Iterable[Process], term_timeout: float = 0.0) -> None:
    """Stop the process groups led by ``processes`` (pids or ``Popen``s).

    SIGTERM first when ``term_timeout > 0``, then SIGKILL whatever is left
    after it; ``Popen`` children are reaped.
    """
    procs = list(processes)
    pids = [_pid_of(p) for p in procs]
    if term_timeout > 0:
        for pid in pids:
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + term_timeout
        while any(group_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
    for pid in pids:
        _signal_group(pid, signal.SIGKILL)
    for p in procs:
        if not isinstance(p, int):
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10.0)


def stop_group(process: Process, term_timeout: float = 0.0) -> None:
    """:func:`stop_groups` for one process."""
    stop_groups([process], term_timeout)


def die_with_parent() -> None:
    """``preexec_fn``: ask Linux to SIGTERM the child when its parent exits."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort, not on every platform
        pass
