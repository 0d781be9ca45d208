"""Zero loss under throttling and faults, against a real server behind the fault front.

The front (beam_kinesis_sink.testing.fault_front) forwards to kinesalite and
enforces per-shard throttling, and injects per-record InternalFailure,
HTTP 500/503, dropped connections and latency. Every test checks that its
faults really fired.
"""

from __future__ import annotations

import collections
import threading
import time

import apache_beam as beam
import pytest

from beam_kinesis_sink import ClientConfig, KinesisRecord, WriteToKinesis
from beam_kinesis_sink.testing.fault_front import FaultConfig, start_fault_front_process
from tests.conftest import unique_stream
from tests.integration.helpers import collect, collected, read_stream

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N = 20_000
SHARDS = 4
# Well below the sink's nominal 1,000/s: a stream whose real limit differs
# (busy with live producers). The front's bucket holds 0.5 s (200 records),
# less than the sink's first full request to a shard, so throttling fires in
# every combination however slow the machine is.
FRONT_RATE = 400.0
FRONT_BURST_SECONDS = 0.5


@pytest.fixture(scope="module")
def front(kinesalite):
    front = start_fault_front_process(
        kinesalite.endpoint_url,
        FaultConfig(throttle=True, shard_records_per_second=FRONT_RATE, burst_seconds=FRONT_BURST_SECONDS,
                    record_timeline=False),
    )
    try:
        yield front
    finally:
        front.stop()


def elements(n: int, tag: str):
    return [KinesisRecord(f'{{"tag":"{tag}","n":{i}}}'.encode(), f"key-{i % 4999}") for i in range(n)]


@pytest.mark.parametrize("request_failure", [0.0, 0.05, 0.2])
@pytest.mark.parametrize("record_failure", [0.0, 0.1, 0.3])
def test_fault_matrix_loses_nothing(kinesalite, front, tmp_path, report, record_failure, request_failure):
    stream = unique_stream("matrix")
    kinesalite.create_stream(stream, shards=SHARDS)
    front.reset()
    front.configure(
        seed=int(record_failure * 100 + request_failure * 1000),
        record_internal_failure_rate=record_failure,
        http_500_rate=request_failure / 3,
        http_503_rate=request_failure / 3,
        drop_connection_rate=request_failure / 3,
        fail_after_forward_fraction=0.5,
        latency_min_s=0.0,
        latency_max_s=0.005,
    )
    tag = f"m{record_failure}-{request_failure}"
    inputs = elements(N, tag)
    started = time.monotonic()
    with beam.Pipeline() as p:
        result = p | beam.Create(inputs, reshuffle=False) | WriteToKinesis(
            stream,
            client_config=ClientConfig(region_name="us-east-1", endpoint_url=front.endpoint_url,
                                       connect_timeout=2, read_timeout=10),
            # Smaller requests: more of them (~300), so that a 5% per-request
            # fault rate fires with near certainty (0.95**300 < 1e-6).
            max_records_per_request=100,
        )
        collect(result.dead_letters, str(tmp_path / "dead"), "CollectDead")
        collect(result.written, str(tmp_path / "written"), "CollectWritten")
    seconds = time.monotonic() - started
    stats = front.stats()
    front.configure(record_internal_failure_rate=0, http_500_rate=0, http_503_rate=0,
                    drop_connection_rate=0, latency_max_s=0)

    stored = [r["data"] for rs in read_stream(kinesalite, stream).values() for r in rs]
    unique = set(stored)
    dead = [d for d, _, _ in collected(str(tmp_path / "dead"))]
    receipts = [w for w, _, _ in collected(str(tmp_path / "written"))]
    wanted = {r.data for r in inputs}

    # Every input is in the stream or in dead_letters; nothing else is in the stream.
    dead_data = {d.data for d in dead}
    assert unique | dead_data >= wanted, f"lost {len(wanted - unique - dead_data)} records"
    assert unique <= wanted
    # A record is reported once: a receipt or a dead letter, never both, never neither.
    assert len(receipts) + len(dead) == N
    # A dead letter whose data is in the stream anyway was written by a call
    # that failed after forwarding: possible only when such failures fired.
    dead_but_written = len(dead_data & unique)
    if dead_but_written:
        assert stats.failures_after_forward > 0
    duplicates = len(stored) - len(unique)
    codes = collections.Counter(d.error_code for d in dead)

    # The faults fired.
    assert stats.records_throttled > 0
    if record_failure:
        assert stats.records_internal_failure > 0
    if request_failure:
        assert stats.http_500_injected + stats.http_503_injected + stats.connections_dropped > 0
        if request_failure >= 0.2:
            assert stats.http_500_injected > 0 and stats.http_503_injected > 0
            assert stats.connections_dropped > 0
    else:
        assert stats.http_500_injected == stats.http_503_injected == stats.connections_dropped == 0
    # Duplicates only come from failures after the write was forwarded.
    if stats.failures_after_forward == 0:
        assert duplicates == 0
    assert duplicates <= stats.records_written_but_failed

    report(
        f"fault matrix record_failure={record_failure:<4} request_failure={request_failure:<5}: "
        f"{N} in, {len(unique)} stored, {len(dead)} dead letters ({dead_but_written} also stored), "
        f"{duplicates} duplicates; "
        f"front: {stats.records_throttled} throttled, {stats.records_internal_failure} internal failures, "
        f"{stats.http_500_injected} HTTP 500, {stats.http_503_injected} HTTP 503, "
        f"{stats.connections_dropped} dropped connections; dead letters by code: {dict(codes)}; "
        f"{seconds:.1f}s"
    )


def test_bundle_failing_half_way_is_retried_by_the_runner_without_loss(kinesalite, front, tmp_path, report):
    """AccessDenied (with on_fatal_error='fail') is turned on once part of the
    bundle was sent: the bundle fails, the runner retries it, nothing is lost."""
    stream = unique_stream("retry")
    kinesalite.create_stream(stream, shards=4)
    front.reset()
    inputs = elements(6000, "rerun")
    stop = threading.Event()

    def inject() -> None:
        # Deny access once some requests got through, allow it again after one denial.
        while not stop.is_set():
            s = front.stats()
            if s.access_denied == 0 and s.records_accepted >= 1000:
                front.configure(deny_access=True)
            if s.access_denied > 0:
                front.configure(deny_access=False)
                return
            time.sleep(0.005)

    injector = threading.Thread(target=inject, daemon=True)
    injector.start()
    try:
        with beam.Pipeline(runner="BundleBasedDirectRunner") as p:
            result = p | beam.Create(inputs, reshuffle=False) | WriteToKinesis(
                stream,
                client_config=ClientConfig(region_name="us-east-1", endpoint_url=front.endpoint_url),
                on_fatal_error="fail",
            )
            collect(result.written, str(tmp_path / "w"), "CW")
            collect(result.dead_letters, str(tmp_path / "d"), "CD")
    finally:
        stop.set()
        injector.join()
        front.configure(deny_access=False)
    stats = front.stats()
    assert stats.access_denied > 0, "the injected failure never fired"
    stored = [r["data"] for rs in read_stream(kinesalite, stream).values() for r in rs]
    assert set(stored) == {r.data for r in inputs}
    # The failed attempt's receipts were discarded with it; the retry reports each record once.
    receipts = collected(str(tmp_path / "w"))
    assert len(receipts) == len(inputs) and not collected(str(tmp_path / "d"))
    duplicates = len(stored) - len(set(stored))
    assert duplicates > 0  # records of the failed attempt were written, then written again
    report(f"runner retry: {len(inputs)} in, {stats.access_denied} denied calls, "
           f"{duplicates} duplicates from the retried bundle (at-least-once)")
