"""Fixtures for the tests of the test tooling: one kinesalite per session, a
fresh fault front (and stream) per test."""

from __future__ import annotations

import itertools
import re
from typing import Any, Callable, Iterator

import pytest

from beam_kinesis_sink.testing.fault_front import FaultConfig, FaultFront
from beam_kinesis_sink.testing.local_servers import (
    LocalKinesis,
    LocalServerError,
    start_kinesalite,
    start_kinesis_mock,
)

_names = itertools.count()


@pytest.fixture(scope="session")
def kinesalite() -> Iterator[LocalKinesis]:
    try:
        server = start_kinesalite()
    except LocalServerError as error:
        pytest.skip(str(error))
    with server:
        yield server


@pytest.fixture(scope="session")
def kinesis_mock() -> Iterator[LocalKinesis]:
    try:
        server = start_kinesis_mock()
    except LocalServerError as error:
        pytest.skip(str(error))
    with server:
        yield server


@pytest.fixture
def new_stream(kinesalite: LocalKinesis, request: pytest.FixtureRequest) -> Callable[[int], str]:
    """Create a fresh stream on kinesalite; returns its name."""

    def create(shards: int = 1) -> str:
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", f"t{next(_names)}-{request.node.name}")[:100]
        kinesalite.create_stream(name, shards)
        return name

    return create


@pytest.fixture
def front(kinesalite: LocalKinesis) -> Iterator[FaultFront]:
    with FaultFront(kinesalite.endpoint_url, FaultConfig(seed=42)) as running:
        yield running


@pytest.fixture
def raw_client(front: FaultFront) -> Any:
    """A client of the front that skips botocore's own parameter checks (as
    the sink does), so that the front's limits are what rejects."""
    return front.client(parameter_validation=False)
