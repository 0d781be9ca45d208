"""The command-line pipelines (``python -m pipelines.migrate`` and
``python -m pipelines.replay_dead_letters``) on the real Flink cluster, run as
a user runs them: a subprocess with ``--runner PortableRunner`` and the
cluster's options (EXTERNAL worker pool, ``--parallelism=2``), against
kinesalite.

* migrate: JSON Lines files with broken lines and records without the
  (nested) partition key; exit code, summary, every good record in the stream
  once, the dead-letter files written by the workers, and
  ``inspect_dead_letters --json`` on them;
* replay: a migration to a stream that does not exist yet (``--no-preflight``)
  leaves ``ResourceNotFoundException`` dead letters; replayed to the still
  missing stream they come back with their attempts added (the replay's
  CoGroupByKey carries DeadLetters through a Flink shuffle); once the stream
  exists the second generation replays with exit code 0.

The workers get their AWS credentials from the environment of the process that
started the cluster (``tests/conftest.py`` sets dummy ones before the fixture
starts it); with ``FLINK_CLUSTER_ATTACH`` the cluster must have been started
with ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` set, or every record is
dead-lettered as ``NoCredentialsError``.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

from beam_kinesis_sink import DeadLetter, ErrorCode
from beam_kinesis_sink.dead_letter_io import read_file
from beam_kinesis_sink.testing.local_servers import LocalKinesis
from beam_kinesis_sink.testing.readback import shard_ranges
from tests.oracle import hash_key_of
from tests.pipelines.conftest import Run, run_cli, stream_records, summary_value

# Each CLI run waits at most CLI_TIMEOUT; a job whose workers cannot start hangs.
pytestmark = pytest.mark.timeout(300)
CLI_TIMEOUT = 180

GOOD_PER_FILE = 1_500
REPLAY_GOOD = 400

# STALE_METRICS: on the PortableRunner, ``PipelineResult.metrics()`` fetches the
# job's metrics once and caches them (apache_beam/runners/portability/
# portable_runner.py, ``if not self._metrics``). The launcher's progress loop
# (``pipelines.launch.wait_with_progress``) queries them while the job runs,
# so the summary at the end reads that first, empty answer: every count 0, and
# exit code 0 although records were dead-lettered. test_migrate_jsonl_on_flink
# runs as a user does (progress lines on) and checks the summary; the replay
# test turns the progress lines off (``--progress-interval 0``) so that it
# checks the replay itself whatever the state of that bug.
NO_PROGRESS_POLLING = ["--progress-interval", "0"]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def flink_args(cluster: Any, job_name: str) -> List[str]:
    options = cluster.pipeline_options("EXTERNAL", job_name=job_name)
    assert "--runner=PortableRunner" in options and "--parallelism=2" in options, options
    return options


def finished_on_flink(cluster: Any, job_name: str) -> Dict[str, Any]:
    """The Flink REST view of the job submitted as ``job_name``: it ran on the
    cluster, finished, with parallelism 2."""
    with urllib.request.urlopen(f"{cluster.rest_url}/jobs/overview", timeout=10) as resp:
        jobs = [j for j in json.load(resp)["jobs"] if j["name"] == job_name]
    assert len(jobs) == 1, f"{len(jobs)} Flink jobs named {job_name!r}"
    with urllib.request.urlopen(f"{cluster.rest_url}/jobs/{jobs[0]['jid']}", timeout=10) as resp:
        job = json.load(resp)
    assert job["state"] == "FINISHED", job["state"]
    assert max(v["parallelism"] for v in job["vertices"]) == 2, [
        (v["name"], v["parallelism"]) for v in job["vertices"]
    ]
    return job


def dead_letters_in(directory: Path) -> List[DeadLetter]:
    return [dl for f in sorted(directory.glob("dead-letters-*.avro")) for dl in read_file(str(f))]


def timed(call: Callable[[], Run]) -> tuple[Run, float]:
    t0 = time.monotonic()
    run = call()
    return run, time.monotonic() - t0


def no_credentials_hint(run: Run) -> str:
    if "NoCredentialsError" in run.stdout:
        return " (the SDK workers have no AWS credentials: see the module docstring)"
    return ""


# ---------------------------------------------------------------- migrate
def test_migrate_jsonl_on_flink(
    flink_cluster: Any, kinesalite: LocalKinesis, tmp_path: Path, report: Callable[[str], None]
) -> None:
    stream = _name("flink-migrate")
    kinesalite.create_stream(stream, shards=4)
    inputs = tmp_path / "in"
    inputs.mkdir()
    good: List[Dict[str, Any]] = []
    expected_dead: Dict[str, str] = {}  # "file:line" -> error code
    for part, (broken, keyless) in enumerate([(3, 0), (0, 2)]):
        path = inputs / f"events-{part}.jsonl"
        lines: List[bytes] = []
        for i in range(GOOD_PER_FILE):
            n = part * GOOD_PER_FILE + i
            record = {"event_id": n, "user": {"id": f"u{n % 211}", "tier": ["a", "b"][n % 2]}, "ms": n * 7}
            good.append(record)
            lines.append(json.dumps(record).encode())
            if i % 500 == 17 and broken:
                broken -= 1
                lines.append(b'{"event_id": %d, "user": {"id": "broken"' % n)
                expected_dead[f"{path}:{len(lines)}"] = ErrorCode.MALFORMED_INPUT
            if i % 700 == 5 and keyless:
                keyless -= 1
                # one without "user" at all, one with "user" but no "id"
                value = {"event_id": -n} if keyless else {"event_id": -n, "user": {"name": "x"}}
                lines.append(json.dumps(value).encode())
                expected_dead[f"{path}:{len(lines)}"] = ErrorCode.MISSING_PARTITION_KEY
        path.write_bytes(b"\n".join(lines) + b"\n")
    assert len(good) == 3_000 and len(expected_dead) == 5
    dead_dir = tmp_path / "dl"
    job_name = _name("migrate")

    run, elapsed = timed(lambda: run_cli(
        "migrate", "--input", str(inputs / "*.jsonl"), "--format", "jsonl", "--stream", stream,
        "--partition-key", "user.id", "--endpoint-url", kinesalite.endpoint_url, "--region", "us-east-1",
        "--dead-letter-dir", str(dead_dir), "--no-rate-limit",
        *flink_args(flink_cluster, job_name),
        cwd=tmp_path, timeout=CLI_TIMEOUT,
    ))
    finished_on_flink(flink_cluster, job_name)

    # Every good record in the stream once, keyed by user.id, on its shard.
    records = stream_records(kinesalite, stream)
    assert len(records) == len(good)
    assert sorted((json.loads(r["data"]) for r in records), key=lambda r: r["event_id"]) == good
    ranges = {r.shard_id: r for r in shard_ranges(kinesalite.client(), stream)}
    for record in records:
        key = json.loads(record["data"])["user"]["id"]
        assert record["partition_key"] == key
        assert ranges[record["shard_id"]].holds(hash_key_of(key))

    # The workers wrote the dead letters where the launcher said, and the summary names the files.
    files = sorted(dead_dir.glob("dead-letters-*.avro"))
    assert files and all(str(f) in run.stdout for f in files), run
    letters = dead_letters_in(dead_dir)
    assert {dl.element_preview: dl.error_code for dl in letters} == expected_dead
    for dl in letters:
        assert dl.stream == stream and dl.attempts == 0 and dl.data and dl.partition_key is None
        assert dl.error_message.startswith(f"{dl.element_preview}:")

    inspect = run_cli("inspect_dead_letters", str(dead_dir), "--json", cwd=tmp_path, timeout=CLI_TIMEOUT)
    assert inspect.returncode == 0, inspect
    summary = json.loads(inspect.stdout)
    assert summary["total"] == 5
    assert summary["by_error_code"] == {ErrorCode.MALFORMED_INPUT: 3, ErrorCode.MISSING_PARTITION_KEY: 2}
    assert summary["by_stream"] == {stream: 5}
    assert summary["file_errors"] == []
    assert sorted(summary["files_read"]) == [str(f) for f in files]

    # Last, what the user sees: the summary (from the Flink job's metrics, through
    # the job service) and the exit code. Run as a user runs it, with progress
    # lines on: the launcher polls the metrics while the job runs.
    assert summary_value(run.stdout, "records read") == 3_005, (
        f"{run}{no_credentials_hint(run)}\n(stream, dead-letter files and inspect were right: "
        "only the launcher's summary is wrong; see STALE_METRICS in this module)"
    )
    assert summary_value(run.stdout, "records written") == 3_000, run
    assert summary_value(run.stdout, "records dead-lettered") == 5, run
    assert summary_value(run.stdout, ErrorCode.MALFORMED_INPUT) == 3, run
    assert summary_value(run.stdout, ErrorCode.MISSING_PARTITION_KEY) == 2, run
    assert re.search(r"migrate: finished in [\d.,]+ s", run.stdout), run
    assert "inspect_dead_letters" in run.stderr, run
    assert run.returncode == 3, run
    report(
        f"flink pipelines: migrate 3,005 lines -> 3,000 written + 5 dead letters, CLI {elapsed:.1f}s"
    )


# ---------------------------------------------------------------- replay
def test_replay_dead_letters_on_flink(
    flink_cluster: Any, kinesalite: LocalKinesis, tmp_path: Path, report: Callable[[str], None]
) -> None:
    stream = _name("flink-replay")  # created only before the last step
    endpoint = [
        "--endpoint-url", kinesalite.endpoint_url, "--region", "us-east-1", "--no-rate-limit",
        *NO_PROGRESS_POLLING,
    ]
    source = tmp_path / "orders.jsonl"
    good = [{"order": i, "user": {"id": f"c{i % 37}"}} for i in range(REPLAY_GOOD)]
    lines = [json.dumps(r) for r in good]
    lines.insert(100, json.dumps({"order": -1}))  # MissingPartitionKey: never replayable
    source.write_text("\n".join(lines) + "\n")
    timings: List[str] = []

    # 1. Migrate to the missing stream: every record is a ResourceNotFoundException dead letter.
    first = tmp_path / "dl-1"
    job = _name("migrate-missing")
    run, elapsed = timed(lambda: run_cli(
        "migrate", "--input", str(source), "--format", "jsonl", "--stream", stream,
        "--partition-key", "user.id", *endpoint, "--dead-letter-dir", str(first), "--no-preflight",
        *flink_args(flink_cluster, job), cwd=tmp_path, timeout=CLI_TIMEOUT,
    ))
    timings.append(f"migrate {elapsed:.1f}s")
    assert run.returncode == 3, run
    finished_on_flink(flink_cluster, job)
    assert summary_value(run.stdout, "records read") == REPLAY_GOOD + 1, run
    assert summary_value(run.stdout, "records written") == 0, run
    assert summary_value(run.stdout, ErrorCode.RESOURCE_NOT_FOUND) == REPLAY_GOOD, (
        str(run) + no_credentials_hint(run)
    )
    assert summary_value(run.stdout, ErrorCode.MISSING_PARTITION_KEY) == 1, run
    gen1 = dead_letters_in(first)
    not_found = [dl for dl in gen1 if dl.error_code == ErrorCode.RESOURCE_NOT_FOUND]
    assert len(gen1) == REPLAY_GOOD + 1 and len(not_found) == REPLAY_GOOD
    assert sorted(json.loads(dl.data or b"")["order"] for dl in not_found) == list(range(REPLAY_GOOD))
    assert all(dl.attempts >= 1 and dl.partition_key for dl in not_found)
    attempts_1 = {dl.attempts for dl in not_found}

    # 2. Replay them to the still missing stream: they come back, attempts added, through
    #    the replay's CoGroupByKey on Flink; --error-code leaves the keyless one out.
    second = tmp_path / "dl-2"
    job = _name("replay-missing")
    run, elapsed = timed(lambda: run_cli(
        "replay_dead_letters", str(first), "--stream", stream, "--error-code", ErrorCode.RESOURCE_NOT_FOUND,
        *endpoint, "--dead-letter-dir", str(second), *flink_args(flink_cluster, job),
        cwd=tmp_path, timeout=CLI_TIMEOUT,
    ))
    timings.append(f"replay to missing {elapsed:.1f}s")
    assert run.returncode == 3, run
    finished_on_flink(flink_cluster, job)
    assert "does not exist" in run.stderr, run
    assert summary_value(run.stdout, "dead letters selected") == REPLAY_GOOD, run
    assert "(1 left out by --error-code)" in run.stdout, run
    assert summary_value(run.stdout, "replayed") == REPLAY_GOOD, run
    assert summary_value(run.stdout, "written") == 0, run
    assert summary_value(run.stdout, "dead-lettered again") == REPLAY_GOOD, run
    assert summary_value(run.stdout, "not replayable") == 0, run
    gen2 = dead_letters_in(second)
    assert len(gen2) == REPLAY_GOOD
    assert {(dl.partition_key, dl.data) for dl in gen2} == {(dl.partition_key, dl.data) for dl in not_found}
    origin = f"replay of a {ErrorCode.RESOURCE_NOT_FOUND} dead letter of stream {stream}"
    for dl in gen2:
        assert dl.error_code == ErrorCode.RESOURCE_NOT_FOUND and dl.stream == stream
        assert dl.element_preview and dl.element_preview.startswith(origin), dl.element_preview
    added = {dl.attempts for dl in gen2}
    assert min(added) > max(attempts_1), (attempts_1, added)  # previous attempts + this run's

    # 3. The stream exists now: the second generation replays completely.
    kinesalite.create_stream(stream, shards=2)
    third = tmp_path / "dl-3"
    job = _name("replay")
    run, elapsed = timed(lambda: run_cli(
        "replay_dead_letters", str(second), "--stream", stream, *endpoint, "--dead-letter-dir", str(third),
        *flink_args(flink_cluster, job), cwd=tmp_path, timeout=CLI_TIMEOUT,
    ))
    timings.append(f"replay {elapsed:.1f}s")
    assert run.returncode == 0, run
    finished_on_flink(flink_cluster, job)
    assert summary_value(run.stdout, "dead letters selected") == REPLAY_GOOD, run
    assert summary_value(run.stdout, "written") == REPLAY_GOOD, run
    assert summary_value(run.stdout, "dead-lettered again") == 0, run
    assert dead_letters_in(third) == []

    records = stream_records(kinesalite, stream)
    assert len(records) == REPLAY_GOOD
    assert sorted(json.loads(r["data"])["order"] for r in records) == list(range(REPLAY_GOOD))
    ranges = {r.shard_id: r for r in shard_ranges(kinesalite.client(), stream)}
    for record in records:
        key = json.loads(record["data"])["user"]["id"]
        assert record["partition_key"] == key
        assert ranges[record["shard_id"]].holds(hash_key_of(key))
    report(f"flink pipelines: migrate to a missing stream, replay twice ({', '.join(timings)})")
