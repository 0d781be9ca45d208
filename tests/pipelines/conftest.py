"""Fixtures for the pipelines' tests (kinesalite and ``new_stream`` come from
tests/conftest.py): a runner for the command-line pipelines (as subprocesses, as a user runs them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pytest

from beam_kinesis_sink.testing.local_servers import (
    DUMMY_ACCESS_KEY,
    DUMMY_REGION,
    DUMMY_SECRET_KEY,
    LocalKinesis,
)
from beam_kinesis_sink.testing.readback import list_shards, read_shard

REPO = Path(__file__).resolve().parents[2]
def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_KEY,
            "AWS_REGION": DUMMY_REGION,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        }
    )
    return env


@dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (
            f"$ {' '.join(self.args)}\nexit {self.returncode}\n--- stdout\n{self.stdout}\n"
            f"--- stderr\n{self.stderr[-4000:]}"
        )


class Started:
    """A command-line pipeline running in the background."""

    def __init__(self, module: str, args: Sequence[str], cwd: Path) -> None:
        self.argv = [sys.executable, "-m", f"pipelines.{module}", *args]
        self._process = subprocess.Popen(
            self.argv, cwd=cwd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def wait(self, timeout: float = 240) -> Run:
        try:
            stdout, stderr = self._process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            stdout, stderr = self._process.communicate()
            command = " ".join(self.argv[2:])
            raise AssertionError(f"{command} took over {timeout}s\n{stdout}\n{stderr}") from None
        return Run(self.argv[2:], self._process.returncode, stdout, stderr)


def run_cli(module: str, *args: str, cwd: Path, timeout: float = 240) -> Run:
    return Started(module, args, cwd).wait(timeout)


def run_many(calls: Sequence[tuple[str, Sequence[str]]], cwd: Path, timeout: float = 240) -> list[Run]:
    """Run several command-line pipelines at once (they spend most time importing Beam)."""
    started = [Started(module, args, cwd) for module, args in calls]
    return [s.wait(timeout) for s in started]


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., Run]:
    def call(module: str, *args: str, timeout: float = 240) -> Run:
        return run_cli(module, *args, cwd=tmp_path, timeout=timeout)

    return call


def stream_records(server: LocalKinesis, stream: str) -> list[dict[str, Any]]:
    """Every record of the stream (all shards, read concurrently)."""
    from concurrent.futures import ThreadPoolExecutor

    client = server.client()
    shards = [s["ShardId"] for s in list_shards(client, stream)]
    with ThreadPoolExecutor(max_workers=len(shards) or 1) as pool:
        parts = pool.map(lambda shard: read_shard(server.client(), stream, shard), shards)
    return [r for part in parts for r in part]


def summary_value(text: str, label: str) -> int:
    """The number on the summary line that starts with ``label``."""
    match = re.search(rf"^\s*{re.escape(label)}\s+([\d,]+)", text, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{text}"
    return int(match.group(1).replace(",", ""))
