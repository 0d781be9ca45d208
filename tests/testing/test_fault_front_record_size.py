"""Streams with a raised maximum record size through the fault front (the
stand-in for the service's large records, ``fault_front.record_size``),
against a real kinesalite: DescribeStreamSummary tells the size of raised
streams only, their records and requests may be larger, the records over
1 MiB are kept by the front and read back from it, the rest still go to
kinesalite."""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest

from beam_kinesis_sink.testing.fault_front import (
    FaultConfig,
    FaultFront,
    LargeRecord,
    StreamSizes,
    start_fault_front_process,
)
from beam_kinesis_sink.testing.fault_front.cli import config_of, parse_args
from beam_kinesis_sink.testing.local_servers import LocalKinesis, wait_active
from beam_kinesis_sink.testing.readback import read_all_flat, shard_for, shard_ranges
from tests.conftest import unique_stream
from tests.testing.test_fault_front import _error

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
KIB = 1024
RAISED_KIB = 10240


def _record(size: int, key: str, fill: bytes = b"x", **extra: Any) -> dict[str, Any]:
    """A record of exactly ``size`` bytes, data + partition key."""
    return {"Data": fill * (size - len(key.encode())), "PartitionKey": key, **extra}


def _summary(client: Any, **stream: str) -> dict[str, Any]:
    return dict(client.describe_stream_summary(**stream)["StreamDescriptionSummary"])


def _arn(kinesalite: LocalKinesis, stream: str) -> str:
    return str(_summary(kinesalite.client(), StreamName=stream)["StreamARN"])


@pytest.fixture
def streams(kinesalite: LocalKinesis) -> tuple[str, str]:
    """(a stream to raise, a normal stream), 4 shards each."""
    raised, normal = unique_stream("raised"), unique_stream("normal")
    kinesalite.create_stream(raised, 4)
    kinesalite.create_stream(normal, 4)
    return raised, normal


@pytest.fixture
def raised_front(kinesalite: LocalKinesis, streams: tuple[str, str]) -> Any:
    """A front with the first stream raised to 10240 KiB (declared by ARN)
    and no throttling."""
    raised, _ = streams
    config = FaultConfig(seed=7, throttle=False, max_record_size_kib={_arn(kinesalite, raised): RAISED_KIB})
    with FaultFront(kinesalite.endpoint_url, config) as front:
        yield front


# -- DescribeStreamSummary, UpdateMaxRecordSize, CreateStream ----------------------------------


def test_summary_shows_the_size_of_raised_streams_only(
    raised_front: FaultFront, kinesalite: LocalKinesis, streams: tuple[str, str]
) -> None:
    raised, normal = streams
    assert raised_front.config.max_record_size_kib == {raised: RAISED_KIB}  # the ARN became the name
    client = raised_front.client()
    by_name = _summary(client, StreamName=raised)
    assert by_name["MaxRecordSizeInKiB"] == RAISED_KIB
    assert _summary(client, StreamARN=_arn(kinesalite, raised))["MaxRecordSizeInKiB"] == RAISED_KIB
    upstream = _summary(kinesalite.client(), StreamName=raised)
    assert "MaxRecordSizeInKiB" not in upstream
    assert {k: v for k, v in by_name.items() if k != "MaxRecordSizeInKiB"} == upstream
    # a stream not raised looks as the local server tells it: no such field
    assert _summary(client, StreamName=normal) == _summary(kinesalite.client(), StreamName=normal)
    assert "MaxRecordSizeInKiB" not in _summary(client, StreamName=normal)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_stream_summary(StreamName=unique_stream("absent"))


def test_update_max_record_size_through_the_front(
    front: FaultFront, raw_client: Any, kinesalite: LocalKinesis, streams: tuple[str, str]
) -> None:
    stream, other = streams
    front.configure(throttle=False)
    client = front.client()
    assert "MaxRecordSizeInKiB" not in _summary(client, StreamName=stream)
    answer = client.update_max_record_size(StreamARN=_arn(kinesalite, stream), MaxRecordSizeInKiB=2048)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert front.config.max_record_size_kib == StreamSizes({stream: 2048})
    assert _summary(client, StreamName=stream)["MaxRecordSizeInKiB"] == 2048
    assert "MaxRecordSizeInKiB" not in _summary(client, StreamName=other)
    # the new limit applies at once
    assert client.put_records(StreamName=stream, Records=[_record(2 * MIB, "k")])["FailedRecordCount"] == 0
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.put_records(StreamName=stream, Records=[_record(2 * MIB + 1, "k")])
    assert _error(raised)[:2] == ("ValidationException", 400)
    assert "limit of 2097152 bytes" in _error(raised)[2]
    # out of range, the service's ValidationException; the size stays
    for bad, bound in ((1023, "greater than or equal to 1024"), (10241, "less than or equal to 10240")):
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            raw_client.update_max_record_size(StreamARN=_arn(kinesalite, stream), MaxRecordSizeInKiB=bad)
        code, status, message = _error(raised)
        assert (code, status) == ("ValidationException", 400)
        assert f"Value '{bad}' at 'maxRecordSizeInKiB'" in message and bound in message
    arn = _arn(kinesalite, stream)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.update_max_record_size(StreamARN=arn.replace(stream, "absent-stream"), MaxRecordSizeInKiB=4096)
    assert front.config.max_record_size_kib == {stream: 2048}


def test_create_stream_with_a_record_size_raises_it(front: FaultFront) -> None:
    client = front.client()
    stream = unique_stream("created")
    client.create_stream(StreamName=stream, ShardCount=1, MaxRecordSizeInKiB=4096)
    wait_active(client, stream)
    assert front.config.max_record_size_kib == {stream: 4096}
    assert _summary(client, StreamName=stream)["MaxRecordSizeInKiB"] == 4096
    plain = unique_stream("plain")
    client.create_stream(StreamName=plain, ShardCount=1)
    wait_active(client, plain)
    assert plain not in front.config.max_record_size_kib


# -- records and requests ------------------------------------------------------------------


def test_large_records_are_accepted_and_kept_by_the_front(
    raised_front: FaultFront, kinesalite: LocalKinesis, streams: tuple[str, str]
) -> None:
    stream, _ = streams
    client = raised_front.client()
    ranges = shard_ranges(kinesalite.client(), stream)
    three = _record(3 * MIB, "three", b"3")
    almost_ten = _record(9 * MIB + 512 * KIB, "nine-and-a-half", b"9")
    entries = [client.put_records(StreamName=stream, Records=[r])["Records"][0] for r in (three, almost_ten)]
    one = client.put_record(StreamName=stream, Data=b"1" * (2 * MIB), PartitionKey="single")
    for entry, key in zip([*entries, one], ("three", "nine-and-a-half", "single")):
        assert entry["ShardId"] == shard_for(ranges, key)
        assert len(entry["SequenceNumber"]) == 56 and entry["SequenceNumber"].isdigit()
    kept = raised_front.large_records(stream)
    assert kept == [
        LargeRecord(entries[0]["ShardId"], entries[0]["SequenceNumber"], "three", three["Data"]),
        LargeRecord(
            entries[1]["ShardId"], entries[1]["SequenceNumber"], "nine-and-a-half", almost_ten["Data"]
        ),
        LargeRecord(one["ShardId"], one["SequenceNumber"], "single", b"1" * (2 * MIB)),
    ]
    assert [int(r.sequence_number) for r in kept] == sorted(int(r.sequence_number) for r in kept)
    assert raised_front.large_records(_arn(kinesalite, stream)) == kept  # by ARN too
    assert read_all_flat(kinesalite.client(), stream) == []  # kinesalite never saw them
    stats = raised_front.stats()
    assert stats.records_kept_large == stats.records_accepted == 3 and stats.records_forwarded == 0
    assert stats.bytes_accepted == 3 * MIB + 9 * MIB + 512 * KIB + 2 * MIB + len("single")


def test_an_explicit_hash_key_places_a_kept_record(
    raised_front: FaultFront, kinesalite: LocalKinesis, streams: tuple[str, str]
) -> None:
    stream, _ = streams
    last = shard_ranges(kinesalite.client(), stream)[-1]
    record = _record(2 * MIB, "k", ExplicitHashKey=str(last.start))
    entry = raised_front.client().put_records(StreamName=stream, Records=[record])["Records"][0]
    assert entry["ShardId"] == last.shard_id == raised_front.large_records(stream)[0].shard_id


def test_the_same_record_on_a_normal_stream_is_refused_as_the_service_does(
    raised_front: FaultFront, kinesalite: LocalKinesis, streams: tuple[str, str]
) -> None:
    raised, normal = streams
    client = raised_front.client(parameter_validation=False)
    for record in (_record(3 * MIB, "three"), _record(9 * MIB + 512 * KIB, "nine")):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            client.put_records(StreamName=normal, Records=[_record(10, "small"), record])
        code, status, message = _error(refused)
        assert (code, status) == ("ValidationException", 400)
        assert "records.2.member.data" in message and "less than or equal to 1048576" in message
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            client.put_record(StreamName=normal, Data=record["Data"], PartitionKey=record["PartitionKey"])
        assert _error(refused)[:2] == ("ValidationException", 400)
    # over the raised limit: refused the same way, with the stream's limit
    for over in (_record(10 * MIB + 1, "kk"), {"Data": b"x" * (10 * MIB + 1), "PartitionKey": "k"}):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            client.put_records(StreamName=raised, Records=[over])
        assert _error(refused)[:2] == ("ValidationException", 400)
        assert "10485760" in _error(refused)[2]
    assert read_all_flat(kinesalite.client(), normal) == []
    assert raised_front.large_records(raised) == raised_front.large_records(normal) == []
    assert raised_front.stats().rejections_by_reason == {"record_too_large": 6}


def test_requests_up_to_10_mib_on_a_raised_stream(
    raised_front: FaultFront, kinesalite: LocalKinesis, streams: tuple[str, str]
) -> None:
    stream, normal = streams
    client = raised_front.client(parameter_validation=False)
    # 9 MiB: 6 records of 1 MiB that go to kinesalite (in two requests of at
    # most 5 MiB), with two large ones kept by the front in between
    small = [_record(MIB, f"small-{i}", bytes([65 + i])) for i in range(6)]
    large = [_record(2 * MIB, "large-0", b"a"), _record(MIB + 100, "large-1", b"b")]
    records = [small[0], small[1], large[0], small[2], small[3], small[4], large[1], small[5]]
    assert sum(len(r["Data"]) + len(r["PartitionKey"]) for r in records) == 9 * MIB + 100
    result = client.put_records(StreamName=stream, Records=records)
    assert result["FailedRecordCount"] == 0
    ranges = shard_ranges(kinesalite.client(), stream)
    assert [e["ShardId"] for e in result["Records"]] == [
        shard_for(ranges, r["PartitionKey"]) for r in records
    ]
    upstream = {r["sequence_number"]: r for r in read_all_flat(kinesalite.client(), stream)}
    kept = {r.sequence_number: r for r in raised_front.large_records(stream)}
    for record, entry in zip(records, result["Records"]):
        read = upstream.get(entry["SequenceNumber"])
        if read is not None:
            assert (read["data"], read["partition_key"]) == (record["Data"], record["PartitionKey"])
        else:
            got = kept[entry["SequenceNumber"]]
            assert (got.data, got.partition_key) == (record["Data"], record["PartitionKey"])
    assert len(upstream) == 6 and len(kept) == 2
    stats = raised_front.stats()
    assert (stats.records_forwarded, stats.records_kept_large, stats.records_accepted) == (6, 2, 8)
    assert stats.requests_by_operation["PutRecords"] == 1  # what the client sent

    # exactly 10 MiB passes, one byte more is refused, nothing written
    exactly = [_record(5 * MIB, "five-a"), _record(5 * MIB, "five-b")]
    assert client.put_records(StreamName=stream, Records=exactly)["FailedRecordCount"] == 0
    over = [*exactly, _record(1, "z")]
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        client.put_records(StreamName=stream, Records=over)
    assert _error(refused)[:2] == ("InvalidArgumentException", 400)
    assert "10 MB" in _error(refused)[2]
    # a normal stream keeps the 5 MiB request limit
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        client.put_records(StreamName=normal, Records=small)
    assert _error(refused)[:2] == ("InvalidArgumentException", 400)
    assert "5 MB" in _error(refused)[2]
    assert len(raised_front.large_records(stream)) == 4
    assert raised_front.stats().rejections_by_reason == {"request_too_large": 2}


def test_small_records_on_a_raised_stream_go_to_kinesalite(
    raised_front: FaultFront, kinesalite: LocalKinesis, streams: tuple[str, str]
) -> None:
    stream, _ = streams
    client = raised_front.client()
    sent = [_record(100 + i, f"key-{i}", b"s") for i in range(50)] + [_record(MIB, "exactly-1-mib")]
    result = client.put_records(StreamName=stream, Records=sent)
    assert result["FailedRecordCount"] == 0
    read = read_all_flat(kinesalite.client(), stream)
    assert sorted((r["partition_key"], r["data"]) for r in read) == sorted(
        (r["PartitionKey"], r["Data"]) for r in sent
    )
    assert raised_front.large_records(stream) == []
    stats = raised_front.stats()
    assert stats.records_forwarded == stats.records_accepted == 51 and stats.records_kept_large == 0


def test_large_records_drain_their_shard(
    front: FaultFront, kinesalite: LocalKinesis, streams: tuple[str, str]
) -> None:
    stream, _ = streams
    # a refill so slow that the test does not depend on how fast it runs
    front.configure(shard_bytes_per_second=1.0)
    front.set_max_record_size(stream, RAISED_KIB)
    client = front.client()
    big = _record(9 * MIB + 512 * KIB, "hot")
    assert client.put_records(StreamName=stream, Records=[big])["FailedRecordCount"] == 0  # a full bucket
    again = client.put_records(StreamName=stream, Records=[big])["Records"][0]
    assert again["ErrorCode"] == "ProvisionedThroughputExceededException"
    assert len(front.large_records(stream)) == 1  # the throttled one was not kept


def test_a_fault_after_forwarding_keeps_the_large_records(
    raised_front: FaultFront, streams: tuple[str, str]
) -> None:
    stream, _ = streams
    raised_front.configure(http_500_rate=1.0, fail_after_forward_fraction=1.0)
    client = raised_front.client()
    with pytest.raises(botocore.exceptions.ClientError) as failed:
        client.put_records(StreamName=stream, Records=[_record(2 * MIB, "a"), _record(10, "b")])
    assert _error(failed)[1] == 500
    assert [r.partition_key for r in raised_front.large_records(stream)] == ["a"]
    assert raised_front.stats().records_written_but_failed == 2


# -- the front in its own process, over kinesis-mock, on the command line ------------------------


def test_front_as_a_process_reads_back_large_records(kinesalite: LocalKinesis) -> None:
    stream = unique_stream("remote")
    kinesalite.create_stream(stream, 2)
    config = FaultConfig(throttle=False, max_record_size_kib={stream: 4096})
    with start_fault_front_process(kinesalite.endpoint_url, config) as remote:
        client = remote.client()
        entry = client.put_records(StreamName=stream, Records=[_record(3 * MIB, "far", b"r")])["Records"][0]
        assert remote.large_records(stream) == [
            LargeRecord(entry["ShardId"], entry["SequenceNumber"], "far", b"r" * (3 * MIB - 3))
        ]
        assert remote.set_max_record_size(stream, 8192).max_record_size_kib == {stream: 8192}
        assert _summary(client, StreamName=stream)["MaxRecordSizeInKiB"] == 8192
        client.update_max_record_size(StreamARN=_arn(kinesalite, stream), MaxRecordSizeInKiB=2048)
        assert remote.config.max_record_size_kib == {stream: 2048}
        remote.clear_large_records()
        assert remote.large_records(stream) == []


def test_over_kinesis_mock_the_upstream_can_store_them(kinesis_mock: LocalKinesis) -> None:
    stream = unique_stream("mock")
    kinesis_mock.create_stream(stream, 1)
    config = FaultConfig(throttle=False, store_large_records=False)
    with FaultFront(kinesis_mock.endpoint_url, config) as front:
        client = front.client()
        arn = _arn(kinesis_mock, stream)
        client.update_max_record_size(StreamARN=arn, MaxRecordSizeInKiB=RAISED_KIB)  # both raised
        assert _summary(kinesis_mock.client(), StreamName=stream)["MaxRecordSizeInKiB"] == RAISED_KIB
        record = _record(MIB + 256 * KIB, "mock", b"m")  # kinesis-mock is slow with large records
        assert client.put_records(StreamName=stream, Records=[record])["FailedRecordCount"] == 0
        assert front.large_records(stream) == []
        read = read_all_flat(kinesis_mock.client(), stream)
        assert [(r["partition_key"], r["data"]) for r in read] == [("mock", record["Data"])]


def test_command_line_and_config_values() -> None:
    args = parse_args(["--upstream", "http://127.0.0.1:1", "--max-record-size-kib", "a=10240, b=2048"])
    config = config_of(args)
    assert config.max_record_size_kib == {"a": 10240, "b": 2048}
    assert hash(config) == hash(FaultConfig(max_record_size_kib={"b": 2048, "a": 10240}))
    assert FaultConfig.from_dict(config.to_dict()) == config
    assert (config.record_limit("a"), config.request_limit("a")) == (10240 * KIB, 10 * MIB)
    assert (config.record_limit("c"), config.request_limit("c")) == (MIB, 5 * MIB)
    for bad in ({"a": 1023}, {"a": 10241}, {"a": "big"}):
        with pytest.raises(ValueError):
            FaultConfig(max_record_size_kib=bad)
    with pytest.raises(SystemExit):
        parse_args(["--upstream", "http://127.0.0.1:1", "--max-record-size-kib", "a"])
