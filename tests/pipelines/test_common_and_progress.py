"""Argument handling, file matching and progress reporting (no Kinesis needed)."""

from __future__ import annotations

import argparse
import io
import re
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState

from pipelines import common, launch, output, progress
from tests.pipelines.conftest import Run


def test_region_flag_and_dataflow_region() -> None:
    argv = ["--region", "eu-west-1"]
    parser = argparse.ArgumentParser(allow_abbrev=False)
    common.add_aws_arguments(parser, argv)
    args, rest = parser.parse_known_args(argv)
    assert args.aws_region == "eu-west-1" and rest == []

    argv = ["--aws-region", "eu-west-1", "--region", "europe-west4"]  # --region left to Beam (Dataflow)
    parser = argparse.ArgumentParser(allow_abbrev=False)
    common.add_aws_arguments(parser, argv)
    args, rest = parser.parse_known_args(argv)
    assert args.aws_region == "eu-west-1" and rest == ["--region", "europe-west4"]
    assert common.unknown_beam_arguments(rest) == []


def test_unknown_beam_arguments() -> None:
    assert common.unknown_beam_arguments(["--runner", "DirectRunner", "--direct_num_workers=2"]) == []
    assert common.unknown_beam_arguments(["--runner=FlinkRunner", "--parallelism", "4", "--bogus", "1"]) == [
        "--bogus"
    ]


def test_worker_count() -> None:
    assert common.worker_count(PipelineOptions([])) == 1
    assert common.worker_count(PipelineOptions(["--direct_num_workers", "3"])) == 3
    assert common.worker_count(PipelineOptions(["--parallelism", "4", "--num_workers", "2"])) == 4
    assert common.worker_count(PipelineOptions(["--max_num_workers", "10", "--num_workers", "2"])) == 10


def test_resolve_region(monkeypatch: pytest.MonkeyPatch) -> None:
    assert common.resolve_region("ap-south-1") == "ap-south-1"
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(common.UsageError):
        common.resolve_region(None)
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    assert common.resolve_region(None) == "us-west-2"


def test_expand_inputs(tmp_path: Path) -> None:
    (tmp_path / "a.avro").write_text("")
    (tmp_path / "b.avro").write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.avro").write_text("")
    (tmp_path / ".temp-beam-123").mkdir()
    (tmp_path / ".temp-beam-123" / "x.avro").write_text("")
    assert common.expand_inputs([str(tmp_path)], dir_glob="*.avro") == [
        str(tmp_path / "a.avro"), str(tmp_path / "b.avro")
    ]
    assert common.expand_inputs([str(tmp_path / "**.avro")]) == [
        str(tmp_path / "a.avro"), str(tmp_path / "b.avro"), str(tmp_path / "sub" / "c.avro")
    ]
    # each file once, in the order of the patterns
    assert common.expand_inputs([str(tmp_path / "b.avro"), str(tmp_path / "*.avro")]) == [
        str(tmp_path / "b.avro"), str(tmp_path / "a.avro")
    ]
    with pytest.raises(common.UsageError, match="no file matches"):
        common.expand_inputs([str(tmp_path / "z*.avro")])


def test_the_listing_names_this_runs_files_and_says_when_they_are_empty(tmp_path: Path) -> None:
    from beam_kinesis_sink.dead_letter_io import FILE_SUFFIX, file_prefix

    directory = f"{tmp_path}/"
    earlier = Path(file_prefix(directory) + f"-00000-of-00001{FILE_SUFFIX}")
    earlier.write_bytes(b"an earlier run's letters")
    prefix = file_prefix(directory)
    assert prefix != file_prefix(directory)  # no two runs share a name
    assert re.fullmatch(re.escape(f"{tmp_path}/dead-letters-") + r"\d{8}T\d{6}Z-[0-9a-f]{6}", prefix)
    path = Path(f"{prefix}-00000-of-00001{FILE_SUFFIX}")
    path.write_bytes(b"")
    lines, dead = common.dead_letter_listing(prefix, {"dead": 0}, 0)
    assert dead == 0 and lines[-2:] == [f"  dead-letter files ({tmp_path}/):",
                                        f"    {path}  (empty: no dead letters this run)"]
    lines, dead = common.dead_letter_listing(prefix, {"dead": 4}, 4)
    assert dead == 4 and lines[-1] == f"    {path}"
    lines, _ = common.dead_letter_listing(file_prefix(f"{tmp_path}/none/"), {"dead": 0}, 0)
    assert lines[-1] == "    (none)"


def test_default_dead_letter_dir() -> None:
    path = common.default_dead_letter_dir("arn:aws:kinesis:us-east-1:123:stream/orders")
    assert re.fullmatch(r"\./dead-letters/orders-\d{8}T\d{6}Z/", path)
    assert "/orders-replay-" in common.default_dead_letter_dir("orders", "replay")


def test_reporter_thread_prints_every_interval() -> None:
    out = io.StringIO()
    tally = progress.Tally("t", 0.2, out)
    tally.start()
    assert tally.reporting
    time.sleep(0.3)
    assert out.getvalue() == ""  # no DoFn counts here yet: no lines
    tally.attach()
    for _ in range(5):
        tally.add(progress.READ, 10)
        tally.add(progress.WRITTEN, 8)
        tally.add(progress.DEAD, 1)
        time.sleep(0.1)
    time.sleep(0.15)
    tally.stop()
    assert not tally.reporting
    lines = out.getvalue().splitlines()
    assert len(lines) >= 2
    pattern = r"\[t\] +[\d.]+s  read 50  written 40  \([\d,]+ records/s\)  dead letters 5"
    assert re.fullmatch(pattern, lines[-1])
    silent = progress.Tally("t", 0, out)
    silent.start()  # 0: no reporter
    assert not silent.reporting


def test_dofns_in_the_launchers_process_count_into_its_tally() -> None:
    """Through Beam's Shared handle in the config, not a process-wide global: a DoFn
    set up in this process finds the launcher's tally; one of another run does not."""
    config = progress.ProgressConfig(interval=0, label="run")
    tally = progress.launcher_tally(config)
    fn = progress.CountFn("written", config)
    fn.setup()
    assert tally.attached
    list(fn.process("receipt"))
    fn.teardown()
    assert tally.snapshot()[progress.WRITTEN] == 1

    other = progress.CountFn("written", progress.ProgressConfig(interval=0, label="other"))
    other.setup()
    list(other.process("receipt"))
    assert tally.snapshot()[progress.WRITTEN] == 1
    assert other._tally is not None and other._tally is not tally
    assert other._tally.label.startswith("other pid=")  # a worker's own tally
    other.teardown()


def test_a_workers_tally_prints_while_its_dofns_are_set_up() -> None:
    config = progress.ProgressConfig(interval=0.05, label="w")
    fn = progress.CountFn("dead", config)
    fn.setup()  # no launcher tally for this run in this process: the worker's own
    tally = fn._tally
    assert tally is not None and tally.reporting
    fn.teardown()
    assert not tally.reporting


class _FakeCounter:
    def __init__(self, name: str, value: int) -> None:
        self.key = type("K", (), {"metric": type("M", (), {"name": name})()})()
        self.committed = None  # a running job: only attempted values
        self.attempted = value


class _FakeResult:
    """A job that runs for three polls, with growing metrics."""

    def __init__(self) -> None:
        self.polls = 0

    @property
    def state(self) -> str:
        self.polls += 1
        return PipelineState.RUNNING if self.polls < 4 else PipelineState.DONE

    def metrics(self) -> Any:
        written = self.polls * 100
        counters = [_FakeCounter(progress.READ, written + 5), _FakeCounter(progress.WRITTEN, written)]
        return type("R", (), {"query": lambda _self, _filter: {"counters": counters}})()

    def wait_until_finish(self) -> str:
        return PipelineState.DONE


def test_wait_with_progress_polls_metrics_of_a_running_job() -> None:
    out = io.StringIO()
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds
        time.sleep(0.001)

    config = progress.ProgressConfig(interval=0.0001, label="job")
    tally = progress.Tally("job", 0)  # no DoFn of this process counts into it
    result = _FakeResult()
    state = launch.wait_with_progress(result, config, tally, launch.JobCounters(result), out, sleep)
    assert state == PipelineState.DONE
    lines = out.getvalue().splitlines()
    assert lines and all(line.startswith("[job]") for line in lines)
    assert "written 100" in lines[0] or "written 200" in lines[0]
    assert launch.JobCounters(_FakeResult()).read()[progress.READ] == 5


def test_wait_with_progress_leaves_the_lines_to_a_tally_that_dofns_feed() -> None:
    out = io.StringIO()
    config = progress.ProgressConfig(interval=0.0001, label="job")
    tally = progress.Tally("job", 0)
    tally.attach()
    result = _FakeResult()
    launch.wait_with_progress(result, config, tally, launch.JobCounters(result), out, lambda _: None)
    assert out.getvalue() == ""


class _FakeJobService:
    """Answers GetJobMetrics with what the job counted so far."""

    def __init__(self) -> None:
        self.asked = 0
        self.endpoint = "localhost:0"

    def metrics(self, job_id: str) -> Any:
        assert job_id == "job-1"
        self.asked += 1
        counters = [_FakeCounter(progress.WRITTEN, self.asked * 10)]
        return type("R", (), {"query": lambda _self, _filter: {"counters": counters}})()


def test_portable_jobs_are_read_from_their_job_service_or_once_at_the_end() -> None:
    from apache_beam.runners.portability.portable_runner import PipelineResult

    # A PortableRunner result (it caches its first metrics answer): without a job
    # service to ask, its metrics are not polled while it runs.
    portable = PipelineResult(None, "job-1", iter(()), iter(()))
    assert not launch.JobCounters(portable).live
    assert not launch.JobCounters(portable, _FakeJobService(), None).live  # our job not found
    # With the job service, every read asks it again.
    service = _FakeJobService()
    counters = launch.JobCounters(portable, service, "job-1")
    assert counters.live
    assert [counters.read()[progress.WRITTEN] for _ in range(3)] == [10, 20, 30]
    # Other runners' results are read as they are (Dataflow's caches only once the job ended).
    assert launch.JobCounters(_FakeResult()).live


def test_eprint_keeps_its_lines_and_escapes_what_a_terminal_acts_on(capsys: pytest.CaptureFixture) -> None:
    # e.g. a file name, or a schema name read from a file's header, in an error line
    output.eprint("replay: 1 file(s) cannot be read:\n  dl/\x1b[2Jx.avro: its schema is a\rb\u202e", "é")
    assert capsys.readouterr().err == (
        "replay: 1 file(s) cannot be read:\n  dl/\\x1b[2Jx.avro: its schema is a\\rb\\u202e é\n"
    )


@pytest.mark.parametrize("module", ["migrate", "inspect_dead_letters", "replay_dead_letters"])
def test_the_commands_do_not_print_beams_apitools_warning(cli: Callable[..., Run], module: str) -> None:
    """Beam's io package, imported without its GCP extras, warns that
    "apitools not found": nothing these commands use, and the first line an
    on-call engineer would read. ``--version`` imports the whole command."""
    run = cli(module, "--version")
    assert run.returncode == 0 and run.stdout.strip(), run
    assert "apitools" not in run.stderr, run
