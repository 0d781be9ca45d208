"""``python -m bench --smoke``: every measurement runs (tiny), the JSON has
every key with a numeric value or an explicit skip reason, and the chart is
a PNG. Runs the bench as a subprocess, with its output under ``tmp_path``:
no fixed port, nothing shared with a suite running beside it."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: the issue's keys, and the run's own
KEYS = {
    "overhead_ratio", "vs_bare_loop", "cpu_us_per_record", "latency_hiding_ratio", "saturation",
    "throttled_per_record", "adaptive_saturation", "request_efficiency", "peak_rss_mb", "peers",
    "aggregation", "bench_seconds",
}
#: the writers of ``peers`` that must always be measured
MEASURED_WRITERS = {"beam-kinesis-sink (WriteToKinesis, DirectRunner)", "naive boto3 loop"}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_skip(reason: Any) -> None:
    assert isinstance(reason, str) and reason.strip()
    assert not reason.startswith("failed:"), reason


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "r.json"
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(out)],
        cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        timeout=240,
    )
    output = done.stdout.decode("utf-8", "replace")
    assert done.returncode == 0, output[-6000:]
    assert "| overhead_ratio |" in output  # the Markdown table was printed
    return out


def test_every_key_has_a_number_or_a_skip_reason(smoke: Path) -> None:
    results = json.loads(smoke.read_text())
    assert set(results) == KEYS
    for key, result in results.items():
        assert {"value", "baseline", "raw"} <= set(result), key
        if "skipped" in result:
            _check_skip(result["skipped"])
            assert result["value"] is None
            continue
        assert _is_number(result["value"]), (key, result["value"])
        if "goal" in result:
            assert result["goal"]["op"] in (">=", "<=") and _is_number(result["goal"]["target"])
            assert isinstance(result["met"], bool), key


def test_only_the_expected_keys_are_skipped(smoke: Path) -> None:
    from beam_kinesis_sink import WriteToKinesis

    results = json.loads(smoke.read_text())
    expected = set() if "aggregation" in inspect.signature(WriteToKinesis).parameters else {"aggregation"}
    assert {key for key, result in results.items() if "skipped" in result} == expected
    if expected:
        assert results["aggregation"]["skipped"] == "aggregation lands with the beyond-the-peers issue"


def test_each_peer_is_measured_or_skipped_with_its_reason(smoke: Path) -> None:
    writers = json.loads(smoke.read_text())["peers"]["raw"]["writers"]
    assert MEASURED_WRITERS <= set(writers)
    assert {"async-kinesis 3.0.1", "aiokpl 0.2.0", "Beam Java KinesisIO"} <= set(writers)
    for name, writer in writers.items():
        if "skipped" in writer:
            assert name not in MEASURED_WRITERS
            _check_skip(writer["skipped"])
            continue
        for figure in ("records_per_s", "saturation", "throttled_per_record"):
            assert _is_number(writer[figure]), (name, figure)


def test_the_chart_is_a_png_beside_the_json(smoke: Path) -> None:
    png = smoke.with_suffix(".png")
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert png.stat().st_size > 10_000
