"""Every socket the Flink test cluster listens on is bound to loopback.

Read from the listening sockets (psutil) of every process in the cluster's
process groups, the SDK workers the pool starts included: once at rest and
once while a job holds its SDK workers busy.

Two kinds of socket cannot be put on loopback by configuration: Beam 2.62's
``ServerFactory`` builds its gRPC servers with
``NettyServerBuilder.forPort(port)``, the wildcard address, whatever host it
is told. Those are the job server's job and artifact ports (``--job-host``
only names them) and the Fn API servers (control, data, state, logging,
provisioning, artifacts) a TaskManager opens for a job's SDK workers. The
tests of those two are strict xfails: they fail the day Beam binds them to
loopback, to have the mark removed.

The job's DoFns run in the SDK workers, which import this module: it must not
import ``tests.conftest``.
"""

from __future__ import annotations

import ipaddress
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Set

import apache_beam as beam
import psutil
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState

from beam_kinesis_sink.testing.processes import LOOPBACK
from tools.flink_cluster import rest

pytestmark = pytest.mark.timeout(300)

GATE_TIMEOUT = 120.0  # the longest a DoFn waits to be released
FLINK_TERMINAL = {"FINISHED", "FAILED", "CANCELED"}
BEAM_WILDCARD = (
    "Beam 2.62 ServerFactory binds NettyServerBuilder.forPort(port): all interfaces, whatever the host"
)


@dataclass(frozen=True)
class Listener:
    role: str  # the cluster process group: jobmanager, taskmanager-0, jobserver, worker-pool
    pid: int
    host: str  # IPv4-mapped IPv6 addresses (Java's dual-stack sockets) as IPv4
    port: int

    def __str__(self) -> str:
        return f"{self.role} (pid {self.pid}) on {self.host}:{self.port}"


@dataclass
class Snapshot:
    listeners: List[Listener] = field(default_factory=list)
    members: Dict[str, Set[int]] = field(default_factory=dict)  # role -> pids in its group

    def ports(self, role: str) -> Set[int]:
        return {lst.port for lst in self.listeners if lst.role == role}


def _host(ip: str) -> str:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def snapshot(cluster: Any) -> Snapshot:
    """Who of the cluster's process groups listens where, now."""
    roles = {pid: name for name, pid in cluster.pids().items()}
    assert roles, "the cluster reports no process groups"
    seen = Snapshot()
    for proc in psutil.process_iter():
        try:
            role = roles.get(os.getpgid(proc.pid))
            if role is None:
                continue
            connections = (getattr(proc, "net_connections", None) or proc.connections)(kind="inet")
        except (psutil.Error, ProcessLookupError):
            continue  # gone meanwhile
        seen.members.setdefault(role, set()).add(proc.pid)
        seen.listeners += [
            Listener(role, proc.pid, _host(c.laddr.ip), c.laddr.port)
            for c in connections
            if c.status == psutil.CONN_LISTEN
        ]
    return seen


def wait_for(what: str, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)
        time.sleep(0.2)


def no_job_running(cluster: Any) -> bool:
    return all(job["state"] in FLINK_TERMINAL for job in rest.get(cluster.rest_url, "/jobs/overview")["jobs"])


class GateFn(beam.DoFn):
    """Holds each element until ``<directory>/release`` exists, having said
    so with ``<directory>/entered-*``."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def process(self, element: int) -> Iterator[int]:
        Path(self.directory, f"entered-{os.getpid()}-{element}").touch()
        deadline = time.monotonic() + GATE_TIMEOUT
        while not Path(self.directory, "release").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        yield element


@pytest.fixture(scope="module")
def snapshots(flink_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Snapshot]:
    """``idle``: with no job on the cluster; ``busy``: while a job's SDK
    workers are inside a DoFn."""
    wait_for("the cluster's jobs to end", lambda: no_job_running(flink_cluster), timeout=60)
    idle = snapshot(flink_cluster)
    gate = tmp_path_factory.mktemp("gate")
    job_name = f"loopback-{uuid.uuid4().hex[:8]}"
    options = PipelineOptions(flink_cluster.pipeline_options("EXTERNAL", job_name=job_name))
    pipeline = beam.Pipeline(options=options)
    _ = pipeline | beam.Create([1, 2]) | beam.ParDo(GateFn(str(gate)))
    result = pipeline.run()
    try:
        wait_for("an SDK worker to enter the DoFn", lambda: any(gate.glob("entered-*")), timeout=GATE_TIMEOUT)
        busy = snapshot(flink_cluster)
    finally:
        (gate / "release").touch()
    assert result.wait_until_finish() == PipelineState.DONE
    return {"idle": idle, "busy": busy}


def job_server_grpc(cluster: Any, listener: Listener) -> bool:
    """One of the job server's two wildcard gRPC ports (see the module)."""
    return listener.role == "jobserver" and listener.port in (cluster.job_port, cluster.artifact_port)


def job_time_fn_servers(snapshots: Dict[str, Snapshot]) -> List[Listener]:
    """What TaskManagers listen on during the job only: the job's Fn API servers."""
    idle, busy = snapshots["idle"], snapshots["busy"]
    return [
        lst
        for lst in busy.listeners
        if lst.role.startswith("taskmanager-") and lst.port not in idle.ports(lst.role)
    ]


def off_loopback(listeners: List[Listener]) -> List[str]:
    return [str(lst) for lst in listeners if lst.host != LOOPBACK]


def test_at_rest_every_listener_is_on_loopback(flink_cluster: Any, snapshots: Dict[str, Snapshot]) -> None:
    idle = snapshots["idle"]
    assert set(idle.members) == set(flink_cluster.pids()), "every process group of the cluster is seen"
    known = {
        "jobmanager": {flink_cluster.rest_port, flink_cluster.rpc_port} - {0},  # rpc_port: 0 when attached
        "jobserver": {flink_cluster.job_port, flink_cluster.artifact_port, flink_cluster.expansion_port},
        "worker-pool": {flink_cluster.worker_pool_port},
    }
    for role, ports in known.items():
        assert ports <= idle.ports(role), f"{role} listens on {sorted(idle.ports(role))}, not all of {ports}"
    assert all(idle.ports(role) for role in idle.members), f"a role listens on nothing: {idle.listeners}"
    checked = [lst for lst in idle.listeners if not job_server_grpc(flink_cluster, lst)]
    assert off_loopback(checked) == []


def test_while_a_job_runs_every_listener_is_on_loopback(
    flink_cluster: Any, snapshots: Dict[str, Snapshot]
) -> None:
    busy = snapshots["busy"]
    assert len(busy.members["worker-pool"]) >= 2, "the pool started an SDK worker process in its group"
    fn_servers = set(job_time_fn_servers(snapshots))
    assert fn_servers, "the job's SDK workers talk to Fn API servers the TaskManager opened for it"
    checked = [
        lst for lst in busy.listeners if not job_server_grpc(flink_cluster, lst) and lst not in fn_servers
    ]
    assert off_loopback(checked) == []


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=BEAM_WILDCARD)
def test_job_server_job_and_artifact_ports_are_on_loopback(
    flink_cluster: Any, snapshots: Dict[str, Snapshot]
) -> None:
    grpc_ports = [lst for lst in snapshots["idle"].listeners if job_server_grpc(flink_cluster, lst)]
    assert off_loopback(grpc_ports) == []


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=BEAM_WILDCARD)
def test_taskmanager_fn_api_servers_are_on_loopback(snapshots: Dict[str, Snapshot]) -> None:
    assert off_loopback(job_time_fn_servers(snapshots)) == []
