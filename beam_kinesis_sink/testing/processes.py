"""Child processes of the test tooling: the one home for starting a server in
its own process group, finding a free port, and stopping the group.

Used by the local Kinesis servers, the fault front and the local Flink
cluster. Standard library only. Also who listens where
(:func:`listening_sockets`, :func:`listening_owner`), from Linux's /proc.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Union

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


def dying_with_parent(argv: Sequence[str]) -> List[str]:
    """``argv``, run so that Linux SIGTERMs it when its parent exits: through
    util-linux's ``setpriv --pdeathsig TERM``, which sets that and execs
    ``argv`` (the same process). Not a ``preexec_fn``: Python code between
    fork and exec runs the parent's at-fork hooks in the child, and gRPC's
    (Beam imports it) then crashed a child here ("epoll_wait error: Bad file
    descriptor", SIGABRT). Without ``setpriv``, ``argv`` as it is: the child
    then outlives a parent that is killed."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else list(argv)


def _proc_address(text: str) -> tuple[str, int]:
    """``host, port`` from a ``/proc/net/tcp{,6}`` address (``0100007F:1F90``:
    the host in hex, in the kernel's byte order by 32-bit word)."""
    host_hex, port_hex = text.split(":")
    raw = bytes.fromhex(host_hex)
    packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, packed), int(port_hex, 16)


def listening_sockets(port: Optional[int] = None) -> list[tuple[str, int, str]]:
    """``(host, port, inode)`` of the TCP sockets in LISTEN state (all of
    them, or those on ``port``), from ``/proc/net/tcp`` and ``tcp6``; an
    empty list where there is no /proc."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) <= 9 or fields[3] != "0A":  # 0A: LISTEN
                continue
            host, listening_port = _proc_address(fields[1])
            if port is None or listening_port == port:
                found.append((host, listening_port, fields[9]))
    return found


def listening_owner(port: int) -> Optional[int]:
    """The pid of the process listening on TCP ``port``, from /proc; None
    where that cannot be told (no /proc, or not permitted)."""
    inodes = {f"socket:[{inode}]" for _, _, inode in listening_sockets(port)}
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
