"""``python -m bench.revisions``: a revision's sink, in a checkout of its
own, side by side with the baselines of the current one; the checkouts go
away afterwards."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, check=True, capture_output=True, text=True).stdout


def test_a_revision_is_measured_in_its_own_checkout_and_the_checkout_is_removed():
    before = _git("worktree", "list")
    command = [sys.executable, "-m", "bench.revisions", "--records", "300", "--rounds", "1", "--latency",
               "HEAD"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    short = _git("rev-parse", "--short", "HEAD").strip()
    row, slow = [line for line in done.stdout.splitlines() if line.startswith(f"| {short} |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    rate, vs_bare, cpu_us, gc_us = (float(cells[2].replace(",", "")), float(cells[3]), float(cells[5]),
                                    float(cells[6]))
    assert rate > 0 and vs_bare > 0 and gc_us >= 0
    assert float(cells[7].replace(",", "")) == rate  # one round: its median is its only run
    # A sink costs CPU on top of the no-op's (the child's user and system time).
    assert cpu_us > 0
    assert re.search(r"no-op [\d,]+ records/s, bare boto3 sink [\d,]+ records/s \([\d.]+ µs per record; "
                     r"CPU [\d.]+ µs per record above the no-op's [\d.]+\)", done.stdout)
    # --latency: the same sink with 25 ms per call, and its bundles' drains
    cells = [cell.strip() for cell in slow.strip("|").split("|")]
    assert float(cells[1].replace(",", "")) == rate
    with_latency, hiding = float(cells[2].replace(",", "")), float(cells[3])
    # The ratio is of the unrounded rates; the table rounds each rate to a
    # whole record/s and the ratio to three places.
    assert with_latency > 0
    lowest, highest = (with_latency - 0.5) / (rate + 0.5), (with_latency + 0.5) / (rate - 0.5)
    assert lowest - 0.0005 <= hiding <= highest + 0.0005
    drain, queued = float(cells[4]), float(cells[5].replace(",", ""))
    assert drain >= 0.02  # the drain waited for at least one call of 25 ms: the wrapper saw it
    assert 0 <= queued <= 300
    assert _git("worktree", "list") == before  # its checkout is gone


def test_an_unknown_revision_is_refused_with_gits_word():
    done = subprocess.run([sys.executable, "-m", "bench.revisions", "--records", "300", "no-such-revision-x"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "'no-such-revision-x' is not a commit of this repository" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_run_whose_sink_is_not_the_revisions_own_is_refused(tmp_path):
    # tmp_path holds no beam_kinesis_sink: the child finds the installed one.
    from bench.revisions import _run

    (tmp_path / "bench").symlink_to(REPO_ROOT / "bench")
    with pytest.raises(SystemExit, match="ran the sink of"):
        _run(tmp_path, 300, ["sink"])
