"""Every server the kit starts listens on 127.0.0.1 only: kinesalite,
kinesis-mock (both its ports) and the fault front, in-process and as its
own process. Read from the kernel's socket tables, by psutil and by
``processes.listening_sockets`` (/proc/net/tcp), which must agree."""

from __future__ import annotations

import os

import psutil
import pytest

from beam_kinesis_sink.testing.fault_front import FaultConfig, FaultFront, start_fault_front_process
from beam_kinesis_sink.testing.local_servers import LocalKinesis
from beam_kinesis_sink.testing.processes import LOOPBACK, listening_sockets

pytestmark = pytest.mark.integration


def _listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket of the process and its children."""
    process = psutil.Process(pid)
    found = set()
    for member in [process, *process.children(recursive=True)]:
        for conn in member.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                found.add((conn.laddr.ip, conn.laddr.port))
    return found


def _assert_loopback_only(listening: set[tuple[str, int]], port: int) -> None:
    assert port in {p for _, p in listening}, listening
    assert {address for address, _ in listening} == {LOOPBACK}, listening
    from_proc = {(host, p) for host, p, _ in listening_sockets() if p in {p for _, p in listening}}
    assert from_proc == listening


def test_kinesalite_listens_on_loopback_only(kinesalite: LocalKinesis) -> None:
    assert kinesalite.pid is not None
    _assert_loopback_only(_listening(kinesalite.pid), kinesalite.port)


def test_kinesis_mock_listens_on_loopback_only(kinesis_mock: LocalKinesis) -> None:
    assert kinesis_mock.pid is not None
    listening = _listening(kinesis_mock.pid)
    assert len(listening) == 2  # plain HTTP and TLS
    _assert_loopback_only(listening, kinesis_mock.port)


def test_fault_front_listens_on_loopback_only(kinesalite: LocalKinesis) -> None:
    with FaultFront(kinesalite.endpoint_url, FaultConfig()) as front:
        ours = {(address, port) for address, port in _listening(os.getpid()) if port == front.port}
        _assert_loopback_only(ours, front.port)


def test_fault_front_process_listens_on_loopback_only(kinesalite: LocalKinesis) -> None:
    with start_fault_front_process(kinesalite.endpoint_url) as remote:
        assert remote.process is not None
        port = int(remote.endpoint_url.rsplit(":", 1)[1])
        _assert_loopback_only(_listening(remote.process.pid), port)
