"""The launchers start real servers, create streams, and stop without leaving
processes behind."""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path

import pytest

from beam_kinesis_sink.testing import local_servers
from beam_kinesis_sink.testing.local_servers import (
    LocalKinesis,
    LocalServerError,
    PortTakenError,
    start_kinesalite,
    start_kinesis_mock,
)

pytestmark = pytest.mark.integration


def _gone(pid: int) -> bool:
    """No process left in the server's process group (zombies included:
    stop() reaps the leader)."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _exercise(server: LocalKinesis) -> None:
    assert server.endpoint_url.startswith("http://127.0.0.1:")
    assert server.startup_seconds is not None and server.startup_seconds > 0
    arn = server.create_stream("launcher", shards=3)
    assert arn.endswith(":stream/launcher")
    client = server.client()
    summary = client.describe_stream_summary(StreamName="launcher")["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "ACTIVE"
    assert summary["OpenShardCount"] == 3
    result = client.put_records(
        StreamName="launcher",
        Records=[{"Data": b"d%d" % i, "PartitionKey": f"k{i}"} for i in range(20)],
    )
    assert result["FailedRecordCount"] == 0


def test_kinesalite_starts_and_stops(kinesalite: LocalKinesis) -> None:
    with start_kinesalite(shard_limit=50) as server:
        assert server.name == "kinesalite"
        _exercise(server)
        pid = server.pid
        assert pid is not None
    assert not server.running()
    assert _gone(pid)
    server.stop()  # twice is fine


def test_kinesis_mock_starts(kinesis_mock: LocalKinesis) -> None:
    assert kinesis_mock.name == "kinesis-mock"
    _exercise(kinesis_mock)


def test_stop_with_sigkill_leaves_nothing() -> None:
    """kinesis-mock is stopped with SIGKILL at once (term_timeout=0)."""
    server = start_kinesalite()
    server.term_timeout = 0.0
    pid = server.pid
    assert pid is not None
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    assert _gone(pid)


def test_kinesalite_high_shard_limit() -> None:
    with start_kinesalite(shard_limit=200) as server:
        server.create_stream("wide", shards=64)
        shards = server.client().list_shards(StreamName="wide")["Shards"]
        assert len(shards) == 64


def test_missing_node_modules_says_npm_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(local_servers.NODE_MODULES_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(LocalServerError, match="npm ci"):
        start_kinesalite()
    with pytest.raises(LocalServerError, match="npm ci"):
        start_kinesis_mock()


def test_failed_start_reports_log_tail(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "node_modules" / "kinesalite"
    fake.mkdir(parents=True)
    # the launcher loads kinesalite's module (index.js), to listen on loopback
    (fake / "index.js").write_text("console.error('kaboom: cannot start'); process.exit(3)\n")
    monkeypatch.setenv(local_servers.NODE_MODULES_ENV, str(tmp_path / "node_modules"))
    started = time.monotonic()
    with pytest.raises(LocalServerError, match="exited with code 3") as raised:
        start_kinesalite(startup_timeout=20)
    assert "kaboom: cannot start" in str(raised.value)
    assert time.monotonic() - started < 20


def test_port_served_by_another_process_is_detected(kinesalite: LocalKinesis) -> None:
    """kinesalite does not exit when its port is taken, and the other server
    answers ListStreams: the launcher checks who owns the port."""
    with pytest.raises(PortTakenError, match=f"port {kinesalite.port} is served by pid {kinesalite.pid}"):
        start_kinesalite(port=kinesalite.port, startup_timeout=20)


def test_forgotten_server_is_killed_when_collected() -> None:
    server = start_kinesalite()
    pid = server.pid
    assert pid is not None
    del server
    gc.collect()
    assert _gone(pid)
