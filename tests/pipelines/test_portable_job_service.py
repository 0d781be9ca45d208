"""``python -m pipelines.migrate`` on Beam's PortableRunner, against Beam's own
Python job service (``local_job_service_main``, on a free port), which runs the
DoFns in its process and, like the Flink job server, reports a job's metrics
only once it has ended.

The launcher polls the metrics while the job runs (progress lines): with
``PipelineResult.metrics()``, which caches its first answer, the summary read
that first, empty answer (every count 0, exit code 0: seen on Flink, see
STALE_METRICS in tests/flink/test_flink_pipelines.py). The launcher now asks
the job service itself for every read (``launch.JobCounters``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from beam_kinesis_sink import ErrorCode
from beam_kinesis_sink.testing.local_servers import LocalKinesis
from tests.pipelines.conftest import cli_env, run_cli, stream_records, summary_value

pytestmark = pytest.mark.integration

GOOD = 1_200
RATE = 400  # records/s: the job runs ~3 s, long enough for several polls


@pytest.fixture
def job_endpoint(tmp_path: Path) -> Iterator[str]:
    """A Beam Python job service on a free port (it writes the port it got to a file)."""
    port_file = tmp_path / "job-service.port"
    log = (tmp_path / "job-service.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
         "--port", "0", "--port_file", str(port_file)],
        cwd=tmp_path, env=cli_env(), stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while not port_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                started = (tmp_path / "job-service.log").read_text()
                raise AssertionError(f"the job service did not start:\n{started}")
            time.sleep(0.1)
        yield f"localhost:{port_file.read_text().strip()}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.parametrize("environment", ["beam:env:embedded_python:v1", "LOOPBACK"])
def test_migrate_summary_and_progress_on_a_portable_job_service(
    environment: str, job_endpoint: str, kinesalite: LocalKinesis, new_stream, tmp_path: Path
) -> None:
    """Embedded: the DoFns run in the job service, and the launcher polls the job's
    metrics. LOOPBACK: they run in the launcher, whose tally prints the lines."""
    stream = new_stream(2)
    lines = [json.dumps({"id": i, "user": {"id": f"u{i % 13}"}}) for i in range(GOOD)]
    lines.insert(10, '{"id": "broken"')
    lines.insert(20, json.dumps({"id": -1}))
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")

    run = run_cli(
        "migrate", "--input", str(source), "--format", "jsonl", "--stream", stream,
        "--partition-key", "user.id", "--endpoint-url", kinesalite.endpoint_url, "--region", "us-east-1",
        "--dead-letter-dir", str(tmp_path / "dl"), "--max-records-per-second", str(RATE),
        "--progress-interval", "0.5",
        "--runner=PortableRunner", f"--job_endpoint={job_endpoint}",
        f"--environment_type={environment}",
        cwd=tmp_path, timeout=240,
    )
    # Progress lines while the job ran...
    progress = [line for line in run.stderr.splitlines() if line.startswith("[migrate]")]
    assert len(progress) >= 2, run
    # ...and the summary still has the job's final counts.
    assert summary_value(run.stdout, "records read") == GOOD + 2, run
    assert summary_value(run.stdout, "records written") == GOOD, run
    assert summary_value(run.stdout, "records dead-lettered") == 2, run
    assert summary_value(run.stdout, ErrorCode.MALFORMED_INPUT) == 1, run
    assert summary_value(run.stdout, ErrorCode.MISSING_PARTITION_KEY) == 1, run
    assert run.returncode == 3, run
    assert len(stream_records(kinesalite, stream)) == GOOD
    # Embedded, the workers' own progress lines (their process's tally) go to the job service's log.
    workers_lines = "[migrate pid=" in (tmp_path / "job-service.log").read_text()
    assert workers_lines == (environment != "LOOPBACK"), run
    written = [int(re.search(r"written ([\d,]+)", line).group(1).replace(",", "")) for line in progress]
    if environment == "LOOPBACK":
        assert written[-1] > 0, progress  # the launcher's tally counts as the DoFns go
    else:
        assert written[0] == 0, progress  # the job service tells the metrics at the end only
