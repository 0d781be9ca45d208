"""Fixtures for the tests of the test tooling: one kinesalite per session, a
fresh fault front (and stream) per test."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from beam_kinesis_sink.testing.fault_front import FaultConfig, FaultFront
from beam_kinesis_sink.testing.local_servers import (
    LocalKinesis,
)


@pytest.fixture
def front(kinesalite: LocalKinesis) -> Iterator[FaultFront]:
    with FaultFront(kinesalite.endpoint_url, FaultConfig(seed=42)) as running:
        yield running


@pytest.fixture
def raw_client(front: FaultFront) -> Any:
    """A client of the front that skips botocore's own parameter checks (as
    the sink does), so that the front's limits are what rejects."""
    return front.client(parameter_validation=False)
