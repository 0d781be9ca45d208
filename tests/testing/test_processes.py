"""``dying_with_parent``: a child started through it is SIGTERMed when the
process that started it dies, without a ``preexec_fn`` (Python code between
fork and exec runs gRPC's at-fork hooks in the child)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from beam_kinesis_sink.testing.processes import dying_with_parent

# The parent waits until setpriv has exec'd the child (so its death signal
# is set: a parent gone before that leaves an orphan, a race of the test,
# not of a server's long-lived parent), and the child holds no pipe of the
# test's (an orphan would keep subprocess.run waiting, not fail the check).
PARENT = """
import os, subprocess, sys, time
from beam_kinesis_sink.testing.processes import dying_with_parent
child = subprocess.Popen(dying_with_parent([sys.executable, "-c", "import time; time.sleep(120)"]),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
python, deadline = os.path.realpath(sys.executable), time.monotonic() + 30
while os.path.realpath(f"/proc/{child.pid}/exe") != python and time.monotonic() < deadline:
    time.sleep(0.01)
print(child.pid, flush=True)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="no setpriv (util-linux) on this machine")
def test_the_child_dies_with_the_process_that_started_it():
    parent = subprocess.run([sys.executable, "-c", PARENT], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert parent.returncode == 0, parent.stderr
    pid = int(parent.stdout.split()[0])
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), f"child {pid} outlived its parent"


def test_without_setpriv_the_command_runs_as_it_is(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert dying_with_parent(["node", "x.js"]) == ["node", "x.js"]
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/setpriv")
    wrapped = ["/usr/bin/setpriv", "--pdeathsig", "TERM", "--", "node", "x.js"]
    assert dying_with_parent(["node", "x.js"]) == wrapped
