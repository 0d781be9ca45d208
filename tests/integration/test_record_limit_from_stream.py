"""``max_record_bytes="auto"`` (the default) reads each stream's record limit
from DescribeStreamSummary: records between 1 and 10 MiB are written to a
stream whose limit was raised, and are ``RecordTooLarge`` on one that was not.

kinesis-mock implements UpdateMaxRecordSize and stores such records itself.
kinesalite does not; there the fault front stands in for a raised stream
(it answers MaxRecordSizeInKiB and keeps the large records)."""

from __future__ import annotations

import apache_beam as beam
import pytest

from beam_kinesis_sink import ClientConfig, ErrorCode, KinesisRecord, WriteToKinesis
from beam_kinesis_sink.testing.fault_front import FaultConfig, start_fault_front_process
from tests.conftest import unique_stream
from tests.integration.helpers import client_config, collect, collected, read_stream

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MiB = 1024 * 1024


def big_records(tag, sizes):
    return [KinesisRecord(bytes([65 + i]) * size, f"{tag}-{i}") for i, size in enumerate(sizes)]


def run(records_by_stream, config, tmp_path):
    """One pipeline, a stream per element; returns (receipts, dead letters)."""
    elements = [(stream, r) for stream, records in records_by_stream.items() for r in records]
    with beam.Pipeline() as p:
        result = (p | beam.Create(elements) | beam.Map(lambda sr: sr)
                  | WriteToKinesis(lambda sr: sr[0], partition_key=lambda sr: sr[1].partition_key,
                                   serializer=lambda sr: sr[1].data, client_config=config))
        collect(result.written, str(tmp_path / "w"), "CollectWritten")
        collect(result.dead_letters, str(tmp_path / "d"), "CollectDead")
    receipts = [w for w, _, _ in collected(str(tmp_path / "w"))]
    return receipts, [d for d, _, _ in collected(str(tmp_path / "d"))]


def test_kinesis_mock_stream_raised_with_update_max_record_size(kinesis_mock, tmp_path):
    raised, plain = unique_stream("raised"), unique_stream("plain")
    arn = kinesis_mock.create_stream(raised, shards=1)
    kinesis_mock.create_stream(plain, shards=1)
    kinesis_mock.client().update_max_record_size(StreamARN=arn, MaxRecordSizeInKiB=4096)
    sizes = [int(1.5 * MiB), 2 * MiB, 3 * MiB]
    receipts, dead = run({raised: big_records("r", sizes), plain: big_records("p", sizes[:2])},
                         client_config(kinesis_mock), tmp_path)
    assert sorted(r.partition_key for r in receipts) == ["r-0", "r-1", "r-2"]
    assert sorted((d.partition_key, d.error_code) for d in dead) == [
        ("p-0", ErrorCode.RECORD_TOO_LARGE), ("p-1", ErrorCode.RECORD_TOO_LARGE)]
    assert "the stream's limit is 1048576" in dead[0].error_message
    assert "UpdateMaxRecordSize" in dead[0].error_message
    stored = {r["partition_key"]: len(r["data"])
              for rs in read_stream(kinesis_mock, raised).values() for r in rs}
    assert stored == {f"r-{i}": size for i, size in enumerate(sizes)}


def test_fault_front_stands_in_for_a_raised_stream_on_kinesalite(kinesalite, tmp_path):
    raised, plain = unique_stream("raised"), unique_stream("plain")
    kinesalite.create_stream(raised, shards=2)
    kinesalite.create_stream(plain, shards=2)
    front = start_fault_front_process(
        kinesalite.endpoint_url,
        FaultConfig(throttle=False, record_timeline=False, max_record_size_kib={raised: 10240}),
    )
    try:
        sizes = [3 * MiB, 9 * MiB + 512 * 1024, 100]
        config = ClientConfig(region_name="us-east-1", endpoint_url=front.endpoint_url, read_timeout=120)
        receipts, dead = run({raised: big_records("r", sizes), plain: big_records("p", sizes)}, config,
                             tmp_path)
        kept = {r.partition_key: len(r.data) for r in front.large_records(raised)}
        stats = front.stats()
    finally:
        front.stop()
    assert sorted(r.partition_key for r in receipts) == ["p-2", "r-0", "r-1", "r-2"]
    assert sorted(d.partition_key for d in dead) == ["p-0", "p-1"]
    assert {d.error_code for d in dead} == {ErrorCode.RECORD_TOO_LARGE}
    assert kept == {"r-0": 3 * MiB, "r-1": 9 * MiB + 512 * 1024}  # the front stored them
    assert stats.requests_by_operation.get("DescribeStreamSummary", 0) >= 2  # read once per stream
    small = [r["partition_key"] for rs in read_stream(kinesalite, raised).values() for r in rs]
    assert small == ["r-2"]
