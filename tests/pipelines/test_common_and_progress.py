"""Argument handling, file matching and progress reporting (no Kinesis needed)."""

from __future__ import annotations

import argparse
import io
import re
import time
from pathlib import Path
from typing import Any

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState

from pipelines import common, progress


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


def test_default_dead_letter_dir() -> None:
    path = common.default_dead_letter_dir("arn:aws:kinesis:us-east-1:123:stream/orders")
    assert re.fullmatch(r"\./dead-letters/orders-\d{8}T\d{6}Z/", path)
    assert "/orders-replay-" in common.default_dead_letter_dir("orders", "replay")


def test_reporter_thread_prints_every_interval() -> None:
    tally = progress.Tally()
    out = io.StringIO()
    tally.start(progress.ProgressConfig(interval=0.2, label="t"), out)
    assert tally.reporting
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
    tally.start(progress.ProgressConfig(interval=0), out)  # 0: no reporter
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

    progress.TALLY.stop()
    state = progress.wait_with_progress(_FakeResult(), progress.ProgressConfig(interval=0.0001, label="job"),
                                        out, sleep)
    assert state == PipelineState.DONE
    lines = out.getvalue().splitlines()
    assert lines and all(line.startswith("[job]") for line in lines)
    assert "written 100" in lines[0] or "written 200" in lines[0]
    assert progress.query_counters(_FakeResult())[progress.READ] == 5
