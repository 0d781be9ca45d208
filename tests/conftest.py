"""Session fixtures shared by every test tier: real local Kinesis servers.

A server that cannot start makes its tests ERROR with the reason (for
example "run `npm ci`"); nothing is skipped.
"""

from __future__ import annotations

import itertools
import os
import re
from typing import Iterator

import pytest

from beam_kinesis_sink.testing.local_servers import LocalKinesis, start_kinesalite, start_kinesis_mock

# The sink reads credentials through boto3's default chain; local servers accept anything.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

_names = itertools.count()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--request-codec", choices=["fast", "boto3"], default=None,
        help="the PutRecords codec of every writer that does not name one (default: the sink's, 'fast'); "
             "run the suite with --request-codec=boto3 to check the plain boto3 path",
    )


def pytest_configure(config: pytest.Config) -> None:
    codec = config.getoption("--request-codec", default=None)
    if codec:
        from beam_kinesis_sink import submitter

        submitter.DEFAULT_CODEC = codec


def unique_stream(prefix: str = "s") -> str:
    return f"{prefix}-{os.getpid()}-{next(_names)}"


@pytest.fixture(scope="session")
def kinesalite() -> Iterator[LocalKinesis]:
    server = start_kinesalite(shard_limit=10_000)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kinesis_mock() -> Iterator[LocalKinesis]:
    server = start_kinesis_mock(shard_limit=10_000)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def new_stream(kinesalite: LocalKinesis, request: pytest.FixtureRequest):
    """Create a fresh stream on the session's kinesalite; returns its name."""

    def create(shards: int = 1) -> str:
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", f"t{next(_names)}-{request.node.name}")[:100]
        kinesalite.create_stream(name, shards)
        return name

    return create


@pytest.fixture(params=["kinesalite", "kinesis-mock"])
def server(request: pytest.FixtureRequest) -> LocalKinesis:
    """Each test that takes ``server`` runs once against each real server."""
    name = "kinesalite" if request.param == "kinesalite" else "kinesis_mock"
    return request.getfixturevalue(name)


# ---------------------------------------------------------------- reports
_REPORT: list[str] = []


@pytest.fixture(scope="session")
def report():
    """Lines a test wants shown in the terminal summary (e.g. duplicate counts)."""
    return _REPORT.append


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001 - pytest hook
    if _REPORT:
        terminalreporter.section("beam-kinesis-sink reports")
        for line in _REPORT:
            terminalreporter.write_line(line)
