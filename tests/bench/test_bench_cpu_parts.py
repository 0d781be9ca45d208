"""``python -m bench.cpu_parts``: the sink's CPU, part by part."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.cpu_parts import ENGINE_ROW, ONE_CALL, ONE_RECORD_ROW

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_every_part_is_measured_and_the_pool_threads_count_in_the_process():
    done = subprocess.run([sys.executable, "-m", "bench.cpu_parts", "--records", "2000", "--calls", "3"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {}
    for line in done.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 2 and cells[1][:1].isdigit():
            rows[cells[0]] = float(cells[1])
    for name in ("noop", "sink", "bare", ONE_CALL):
        assert rows[f"pipeline ending in {name}: the bundle's thread"] > 0
    # the second table: the context switches per call of each pipeline that made calls
    for name in ("sink", "bare", ONE_CALL):
        assert rows[name] > 0, name
    assert "noop" not in rows  # it makes no call
    # the sink's calls run on its pool threads: the process did more than the bundle's thread
    assert (rows["pipeline ending in sink: the whole process"]
            > rows["pipeline ending in sink: the bundle's thread"])
    sink, noop = (rows[f"pipeline ending in {name}: the whole process"] for name in ("sink", "noop"))
    assert rows["sink, above the no-op's: the whole process"] == pytest.approx(sink - noop, abs=0.011)
    for part in ("one 500-record call, boto3 put_records",
                 "one 500-record call, the sink's codec (DirectPutRecords)",
                 "encode the body (encode_kinesis_records)", "judge it (judge_answer)",
                 "build the receipts (Outcomes.written_by_index)"):
        assert rows[part] > 0, part
    # the DoFn alone: no Beam around it and no network under it, so less than in the pipeline
    assert 0 < rows[ENGINE_ROW] < rows["pipeline ending in sink: the bundle's thread"]
    # a call's own cost is more than the per-record share of a 500-record call
    assert rows[ONE_RECORD_ROW] > rows["one 500-record call, the sink's codec (DirectPutRecords)"]
