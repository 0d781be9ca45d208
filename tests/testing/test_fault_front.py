"""The fault front forwards faithfully, enforces the service limits, throttles
per shard and injects each fault at about its configured rate, counting it."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from typing import Any, Callable

import botocore.exceptions
import pytest

from beam_kinesis_sink.testing.fault_front import (
    FaultConfig,
    FaultFront,
    FrontStats,
    start_fault_front_process,
)
from beam_kinesis_sink.testing.local_servers import (
    LocalKinesis,
    make_client,
)
from beam_kinesis_sink.testing.readback import read_all, read_all_flat, shard_for, shard_ranges

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
NewStream = Callable[[int], str]


def _records(n: int, prefix: str = "r", size: int = 16, key: Any = None) -> list[dict[str, Any]]:
    return [
        {
            "Data": f"{prefix}-{i}-".encode().ljust(size, b"."),
            "PartitionKey": key if key is not None else f"{prefix}-key-{i}",
        }
        for i in range(n)
    ]


def _error(excinfo: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, int, str]:
    error = excinfo.value.response
    return (
        error["Error"]["Code"],
        error["ResponseMetadata"]["HTTPStatusCode"],
        error["Error"].get("Message", ""),
    )


# -- forwarding -----------------------------------------------------------------


def test_forwards_everything_unchanged(
    front: FaultFront, kinesalite: LocalKinesis, new_stream: NewStream
) -> None:
    stream = new_stream(3)
    client = front.client()
    sent = _records(300)
    result = client.put_records(StreamName=stream, Records=sent)
    assert result["FailedRecordCount"] == 0
    ranges = shard_ranges(kinesalite.client(), stream)
    for record, entry in zip(sent, result["Records"]):
        assert entry["ShardId"] == shard_for(ranges, record["PartitionKey"])
    # other operations go through the front too
    assert (
        client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["OpenShardCount"] == 3
    )
    one = client.put_record(StreamName=stream, Data=b"single", PartitionKey="single")
    assert one["ShardId"] == shard_for(ranges, "single")
    read = read_all_flat(client, stream)  # GetShardIterator/GetRecords through the front
    assert sorted(r["data"] for r in read) == sorted([r["Data"] for r in sent] + [b"single"])

    stats = front.stats()
    assert stats.put_records_calls == 1 and stats.put_record_calls == 1
    assert stats.records_received == stats.records_forwarded == stats.records_accepted == 301
    assert sum(stats.records_accepted_by_shard.values()) == 301
    assert stats.requests_by_operation["GetRecords"] >= 3
    assert stats.bytes_accepted == sum(len(r["Data"]) + len(r["PartitionKey"]) for r in sent) + 12


def test_upstream_errors_pass_through(front: FaultFront) -> None:
    client = front.client()
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.put_records(StreamName="no-such-stream", Records=_records(2))
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_stream_summary(StreamName="no-such-stream")
    assert front.stats().upstream_error_responses >= 1


def test_stream_arn_is_rewritten_for_kinesalite(
    front: FaultFront, kinesalite: LocalKinesis, new_stream: NewStream
) -> None:
    stream = new_stream(2)
    arn = kinesalite.client().describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"][
        "StreamARN"
    ]
    client = front.client()
    assert client.put_records(StreamARN=arn, Records=_records(10))["FailedRecordCount"] == 0
    assert len(client.list_shards(StreamARN=arn)["Shards"]) == 2
    assert len(read_all_flat(kinesalite.client(), stream)) == 10


# -- limits -------------------------------------------------------------------------


def test_more_than_500_records_rejected(raw_client: Any, front: FaultFront, new_stream: NewStream) -> None:
    stream = new_stream(1)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        raw_client.put_records(StreamName=stream, Records=_records(501))
    code, status, message = _error(raised)
    assert (code, status) == ("ValidationException", 400)
    assert "less than or equal to 500" in message
    assert raw_client.put_records(StreamName=stream, Records=_records(500, key="k"))["FailedRecordCount"] >= 0
    assert front.stats().rejections_by_reason == {"too_many_records": 1}


def test_request_over_5_mib_rejected(
    raw_client: Any, front: FaultFront, kinesalite: LocalKinesis, new_stream: NewStream
) -> None:
    stream = new_stream(8)
    front.configure(throttle=False)
    exactly = [{"Data": b"a" * (MIB - 2), "PartitionKey": f"k{i}"} for i in range(5)]  # 5 MiB in all
    assert sum(len(r["Data"]) + len(r["PartitionKey"]) for r in exactly) == 5 * MIB
    assert raw_client.put_records(StreamName=stream, Records=exactly)["FailedRecordCount"] == 0
    over = [*exactly, {"Data": b"", "PartitionKey": "z"}]  # 5 MiB + 1
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        raw_client.put_records(StreamName=stream, Records=over)
    assert _error(raised)[:2] == ("InvalidArgumentException", 400)
    assert "5 MB" in _error(raised)[2]
    assert len(read_all_flat(kinesalite.client(), stream)) == 5  # nothing of the rejected one
    assert front.stats().rejections_by_reason == {"request_too_large": 1}


def test_record_over_1_mib_rejects_whole_request(
    raw_client: Any, front: FaultFront, kinesalite: LocalKinesis, new_stream: NewStream
) -> None:
    stream = new_stream(2)
    front.configure(throttle=False)
    fits = {"Data": b"b" * (MIB - 1), "PartitionKey": "k"}  # exactly 1 MiB with its key
    assert raw_client.put_records(StreamName=stream, Records=[fits])["FailedRecordCount"] == 0
    key_tips_it = {"Data": b"b" * (MIB - 1), "PartitionKey": "kk"}  # 1 MiB + 1
    data_alone = {"Data": b"b" * (MIB + 1), "PartitionKey": "k"}
    for bad in (key_tips_it, data_alone):
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            raw_client.put_records(StreamName=stream, Records=[*_records(3), bad])
        assert _error(raised)[:2] == ("ValidationException", 400)
        assert "records.4.member" in _error(raised)[2]
    assert len(read_all_flat(kinesalite.client(), stream)) == 1
    assert front.stats().rejections_by_reason == {"record_too_large": 2}


def test_partition_key_length(raw_client: Any, front: FaultFront, new_stream: NewStream) -> None:
    stream = new_stream(1)
    assert (
        raw_client.put_records(StreamName=stream, Records=_records(1, key="k" * 256))["FailedRecordCount"]
        == 0
    )
    for key in ("k" * 257, ""):
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            raw_client.put_records(StreamName=stream, Records=_records(2, key=key))
        code, status, message = _error(raised)
        assert (code, status) == ("ValidationException", 400)
        assert "records.1.member.partitionKey" in message
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        raw_client.put_record(StreamName=stream, Data=b"x", PartitionKey="k" * 257)
    assert _error(raised)[:2] == ("ValidationException", 400)
    assert front.stats().rejections_by_reason == {"partition_key_length": 3}


def test_bad_explicit_hash_key(raw_client: Any, front: FaultFront, new_stream: NewStream) -> None:
    stream = new_stream(1)
    too_big = [{"Data": b"x", "PartitionKey": "k", "ExplicitHashKey": str(2**128)}]
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        raw_client.put_records(StreamName=stream, Records=too_big)
    assert _error(raised)[0] == "InvalidArgumentException"
    not_decimal = [{"Data": b"x", "PartitionKey": "k", "ExplicitHashKey": "0x10"}]
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        raw_client.put_records(StreamName=stream, Records=not_decimal)
    assert _error(raised)[0] == "ValidationException"


def test_limits_are_configurable(raw_client: Any, front: FaultFront, new_stream: NewStream) -> None:
    stream = new_stream(1)
    front.configure(max_records_per_request=10, max_record_bytes=100)
    with pytest.raises(botocore.exceptions.ClientError):
        raw_client.put_records(StreamName=stream, Records=_records(11))
    with pytest.raises(botocore.exceptions.ClientError):
        raw_client.put_records(StreamName=stream, Records=_records(1, size=100))
    front.configure(enforce_limits=False)
    raw_client.put_records(StreamName=stream, Records=_records(11, size=100))


# -- throttling -----------------------------------------------------------------------


def test_throttles_one_hot_shard(
    raw_client: Any, front: FaultFront, kinesalite: LocalKinesis, new_stream: NewStream
) -> None:
    stream = new_stream(2)
    ranges = shard_ranges(kinesalite.client(), stream)
    hot = shard_for(ranges, "hot")
    started = time.monotonic()
    results = [
        raw_client.put_records(StreamName=stream, Records=_records(500, prefix=f"b{b}", key="hot"))
        for b in range(6)
    ]
    elapsed = time.monotonic() - started
    accepted = sum(1 for r in results for e in r["Records"] if "SequenceNumber" in e)
    throttled = [e for r in results for e in r["Records"] if "ErrorCode" in e]
    assert 1000 <= accepted <= 1000 + 1000 * elapsed + 5, (accepted, elapsed)
    assert len(throttled) == 3000 - accepted
    assert sum(r["FailedRecordCount"] for r in results) == len(throttled)
    assert {e["ErrorCode"] for e in throttled} == {"ProvisionedThroughputExceededException"}
    assert throttled[0]["ErrorMessage"] == (
        f"Rate exceeded for shard {hot} in stream {stream} under account 000000000000."
    )
    # entries stay in place: the first 1,000 of the first two batches all went through
    assert all("SequenceNumber" in e for e in results[0]["Records"] + results[1]["Records"])

    stats = front.stats()
    assert stats.records_throttled == len(throttled)
    assert stats.records_throttled_by_shard == {hot: len(throttled)}
    assert stats.records_forwarded == stats.records_accepted == accepted
    assert stats.records_accepted_by_shard == {hot: accepted}
    # throttled records were not written
    written = read_all(kinesalite.client(), stream)[hot]
    assert len(written) == accepted
    # the bucket refills at 1,000 records/s
    front.reset_buckets()
    assert (
        raw_client.put_records(StreamName=stream, Records=_records(500, key="hot"))["FailedRecordCount"] == 0
    )


def test_throttles_bytes_per_shard(raw_client: Any, front: FaultFront, new_stream: NewStream) -> None:
    stream = new_stream(1)
    records = _records(30, size=100 * 1024, key="k")  # ~3 MiB to one shard
    started = time.monotonic()
    result = raw_client.put_records(StreamName=stream, Records=records)
    refill = 10 * (time.monotonic() - started)  # ~10 such records per second
    accepted = 30 - result["FailedRecordCount"]
    assert 10 <= accepted <= 12 + refill  # 1 MiB bucket, ~100 KiB each (plus the refill)
    assert front.stats().records_throttled == 30 - accepted


def test_throttle_rates_are_configurable_and_shards_are_independent(
    raw_client: Any, front: FaultFront, kinesalite: LocalKinesis, new_stream: NewStream
) -> None:
    stream = new_stream(4)
    front.configure(shard_records_per_second=100)
    ranges = shard_ranges(kinesalite.client(), stream)
    records = [
        {"Data": b"x", "PartitionKey": "k", "ExplicitHashKey": str(r.start + i)}
        for r in ranges
        for i in range(120)
    ]
    started = time.monotonic()
    result = raw_client.put_records(StreamName=stream, Records=records)
    refill = 100 * (time.monotonic() - started)  # a loaded machine refills more while it works
    stats = front.stats()
    assert set(stats.records_accepted_by_shard) == {r.shard_id for r in ranges}
    for r in ranges:
        assert 100 <= stats.records_accepted_by_shard[r.shard_id] <= 102 + refill
        assert (
            stats.records_throttled_by_shard[r.shard_id] == 120 - stats.records_accepted_by_shard[r.shard_id]
        )
    assert result["FailedRecordCount"] == stats.records_throttled


# -- injected faults -----------------------------------------------------------------


def test_record_internal_failure_rate(
    raw_client: Any, front: FaultFront, kinesalite: LocalKinesis, new_stream: NewStream
) -> None:
    stream = new_stream(2)
    front.configure(record_internal_failure_rate=0.3, throttle=False)
    failed: list[dict[str, Any]] = []
    for b in range(4):
        result = raw_client.put_records(StreamName=stream, Records=_records(500, prefix=f"b{b}"))
        entries = result["Records"]
        failed.extend(e for e in entries if "ErrorCode" in e)
        assert result["FailedRecordCount"] == sum(1 for e in entries if "ErrorCode" in e)
    assert 2000 * 0.3 - 90 <= len(failed) <= 2000 * 0.3 + 90  # about 4 standard deviations
    assert failed[0] == {"ErrorCode": "InternalFailure", "ErrorMessage": "Internal service failure."}
    stats = front.stats()
    assert stats.records_internal_failure == len(failed)
    assert stats.records_forwarded == stats.records_accepted == 2000 - len(failed)
    assert len(read_all_flat(kinesalite.client(), stream)) == 2000 - len(failed)


def test_same_seed_same_faults(kinesalite: LocalKinesis, new_stream: NewStream) -> None:
    stream = new_stream(1)
    outcomes = []
    for _ in range(2):
        with FaultFront(
            kinesalite.endpoint_url, FaultConfig(seed=7, record_internal_failure_rate=0.5, throttle=False)
        ) as f:
            result = f.client().put_records(StreamName=stream, Records=_records(50))
            outcomes.append(["ErrorCode" in e for e in result["Records"]])
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize(
    ("field", "status", "code", "counter"),
    [
        ("http_500_rate", 500, "InternalFailure", "http_500_injected"),
        ("http_503_rate", 503, "ServiceUnavailable", "http_503_injected"),
    ],
)
def test_whole_request_5xx_before_forwarding(
    front: FaultFront,
    kinesalite: LocalKinesis,
    new_stream: NewStream,
    field: str,
    status: int,
    code: str,
    counter: str,
) -> None:
    stream = new_stream(1)
    client = front.client()  # retries disabled
    front.configure(**{field: 1.0})
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.put_records(StreamName=stream, Records=_records(5))
    assert _error(raised)[:2] == (code, status)
    stats = front.stats()
    assert getattr(stats, counter) == 1 and stats.failures_after_forward == 0
    assert stats.records_forwarded == 0
    assert read_all_flat(kinesalite.client(), stream) == []
    # other operations are not affected
    client.describe_stream_summary(StreamName=stream)


def test_500_after_forwarding_writes_the_records(
    front: FaultFront, kinesalite: LocalKinesis, new_stream: NewStream
) -> None:
    stream = new_stream(1)
    client = front.client()
    front.configure(http_500_rate=1.0, fail_after_forward_fraction=1.0)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.put_records(StreamName=stream, Records=_records(5))
    assert _error(raised)[:2] == ("InternalFailure", 500)
    stats = front.stats()
    assert stats.http_500_injected == stats.failures_after_forward == 1
    assert stats.records_written_but_failed == 5
    assert len(read_all_flat(kinesalite.client(), stream)) == 5  # a retry would duplicate them


def test_dropped_connection(front: FaultFront, kinesalite: LocalKinesis, new_stream: NewStream) -> None:
    stream = new_stream(1)
    client = front.client()
    front.configure(drop_connection_rate=1.0)
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        client.put_records(StreamName=stream, Records=_records(5))
    assert read_all_flat(kinesalite.client(), stream) == []
    front.configure(fail_after_forward_fraction=1.0)
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        client.put_records(StreamName=stream, Records=_records(5))
    assert len(read_all_flat(kinesalite.client(), stream)) == 5
    stats = front.stats()
    assert stats.connections_dropped == 2 and stats.failures_after_forward == 1
    # the client reconnects fine afterwards
    front.configure(drop_connection_rate=0.0)
    assert client.put_records(StreamName=stream, Records=_records(1))["FailedRecordCount"] == 0


def test_whole_request_fault_rates(front: FaultFront, new_stream: NewStream) -> None:
    stream = new_stream(4)
    client = front.client()
    front.configure(http_500_rate=0.1, http_503_rate=0.1, drop_connection_rate=0.1, throttle=False)
    seen = {"InternalFailure": 0, "ServiceUnavailable": 0, "dropped": 0, "ok": 0}
    for _ in range(300):
        try:
            client.put_records(StreamName=stream, Records=_records(2))
            seen["ok"] += 1
        except botocore.exceptions.ClientError as error:
            seen[error.response["Error"]["Code"]] += 1
        except botocore.exceptions.ConnectionClosedError:
            seen["dropped"] += 1
    stats = front.stats()
    assert stats.http_500_injected == seen["InternalFailure"]
    assert stats.http_503_injected == seen["ServiceUnavailable"]
    assert stats.connections_dropped == seen["dropped"]
    for kind in ("InternalFailure", "ServiceUnavailable", "dropped"):
        assert 30 - 20 <= seen[kind] <= 30 + 20, seen  # 300 * 0.1, about 4 standard deviations
    assert seen["ok"] == 300 - sum(v for k, v in seen.items() if k != "ok")


def test_custom_error(front: FaultFront, new_stream: NewStream) -> None:
    stream = new_stream(1)
    front.configure(error_rate=1.0, error_code="KMSThrottlingException", error_status=400)
    client = front.client()
    with pytest.raises(client.exceptions.KMSThrottlingException):
        client.put_records(StreamName=stream, Records=_records(1))
    assert front.stats().errors_injected == 1


def test_latency(front: FaultFront, new_stream: NewStream) -> None:
    stream = new_stream(1)
    client = front.client()
    front.configure(latency_min_s=0.2, latency_max_s=0.2)
    started = time.monotonic()
    client.put_records(StreamName=stream, Records=_records(1))
    assert time.monotonic() - started >= 0.2
    front.configure(latency_min_s=0.0, latency_max_s=0.1)
    for _ in range(5):
        client.put_records(StreamName=stream, Records=_records(1))
    stats = front.stats()
    assert stats.latency_injected_requests == 6
    assert 0.2 <= stats.latency_injected_seconds <= 0.2 + 0.5 + 0.01


def test_access_denied_and_missing_streams(front: FaultFront, new_stream: NewStream) -> None:
    allowed, denied = new_stream(1), new_stream(1)
    client = front.client()
    front.configure(deny_streams={denied})
    with pytest.raises(client.exceptions.AccessDeniedException) as raised:
        client.put_records(StreamName=denied, Records=_records(1))
    assert f"stream/{denied}" in _error(raised)[2]
    assert client.put_records(StreamName=allowed, Records=_records(1))["FailedRecordCount"] == 0
    client.describe_stream_summary(StreamName=denied)  # only writes are denied

    front.configure(deny_streams=frozenset(), deny_access=True)
    with pytest.raises(client.exceptions.AccessDeniedException):
        client.put_records(StreamName=allowed, Records=_records(1))

    front.configure(deny_access=False, missing_streams={allowed})
    with pytest.raises(client.exceptions.ResourceNotFoundException) as raised:
        client.put_records(StreamName=allowed, Records=_records(1))
    assert _error(raised)[2] == f"Stream {allowed} under account 000000000000 not found."
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_stream_summary(StreamName=allowed)
    stats = front.stats()
    assert stats.access_denied == 2 and stats.resource_not_found == 2


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        FaultConfig(http_500_rate=1.5)
    with pytest.raises(ValueError):
        FaultConfig(http_500_rate=0.6, http_503_rate=0.6)
    with pytest.raises(TypeError):
        FaultConfig().replace(no_such_field=1)
    config = FaultConfig(deny_streams={"a"})  # type: ignore[arg-type]
    assert config.deny_streams == frozenset({"a"})
    assert FaultConfig.from_dict(config.to_dict()) == config


def test_timeline_and_rates(raw_client: Any, front: FaultFront, new_stream: NewStream) -> None:
    stream = new_stream(1)
    started = time.monotonic()
    for _ in range(3):
        raw_client.put_records(StreamName=stream, Records=_records(400, key="k"))
    refill = 1000 * (time.monotonic() - started)
    timeline = front.timeline()
    (shard,) = timeline
    assert sum(n for _, n in timeline[shard]) == front.stats().records_accepted
    assert 1000 <= front.peak_rates(1.0)[shard] <= 1005 + refill
    assert front.achieved_rates()[shard] > 0


def test_concurrent_clients_all_faults_books_balance(kinesalite: LocalKinesis, new_stream: NewStream) -> None:
    """Many client threads, every fault on: what was written is exactly what
    the front counted as accepted, which is what the clients were told plus
    what was written behind a failed response."""
    stream = new_stream(4)
    config = FaultConfig(
        seed=9,
        record_internal_failure_rate=0.1,
        http_500_rate=0.05,
        http_503_rate=0.05,
        drop_connection_rate=0.05,
        fail_after_forward_fraction=0.5,
        # 1,000 records per shard at 30/s: throttled unless it took over 30 s
        # (at 300/s a loaded machine once sent them slowly enough to pass)
        shard_records_per_second=30,
    )
    told_ok = 0
    lock = threading.Lock()

    def worker(t: int, front: FaultFront) -> None:
        nonlocal told_ok
        client = front.client(parameter_validation=False, max_pool_connections=2)
        for i in range(20):
            try:
                result = client.put_records(StreamName=stream, Records=_records(50, prefix=f"{t}-{i}"))
            except (botocore.exceptions.ClientError, botocore.exceptions.ConnectionClosedError):
                continue
            with lock:
                told_ok += 50 - result["FailedRecordCount"]

    with FaultFront(kinesalite.endpoint_url, config) as front:
        threads = [threading.Thread(target=worker, args=(t, front)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = front.stats()
    assert stats.records_received == 4 * 20 * 50
    assert stats.records_throttled > 0 and stats.records_internal_failure > 0
    assert stats.http_500_injected + stats.http_503_injected + stats.connections_dropped > 0
    written = len(read_all_flat(kinesalite.client(), stream))
    assert written == stats.records_accepted == told_ok + stats.records_written_but_failed
    assert max(front.peak_rates(1.0).values()) <= 60  # 30 burst + 30/s


# -- as its own process ------------------------------------------------------------------


def test_front_as_a_process(kinesalite: LocalKinesis, new_stream: NewStream) -> None:
    stream = new_stream(1)
    with start_fault_front_process(kinesalite.endpoint_url, FaultConfig(seed=3)) as remote:
        client = make_client(remote.endpoint_url, parameter_validation=False)
        assert client.put_records(StreamName=stream, Records=_records(10))["FailedRecordCount"] == 0
        config = remote.configure(record_internal_failure_rate=1.0, deny_streams={"other"})
        assert config.record_internal_failure_rate == 1.0 and config.deny_streams == frozenset({"other"})
        assert client.put_records(StreamName=stream, Records=_records(10))["FailedRecordCount"] == 10
        stats = remote.stats()
        assert isinstance(stats, FrontStats)
        assert stats.records_internal_failure == 10 and stats.records_accepted == 10
        assert sum(n for events in remote.timeline().values() for _, n in events) == 10
        remote.reset()
        assert remote.stats().requests == 0
        process = remote.process
        assert process is not None
    assert process.poll() is not None


# -- throughput --------------------------------------------------------------------------


def test_throughput_sanity(raw_client: Any, front: FaultFront, new_stream: NewStream) -> None:
    """Not a benchmark: only that the front is not grossly slow."""
    stream = new_stream(8)
    records = _records(500, size=200)
    started = time.monotonic()
    for _ in range(8):
        assert raw_client.put_records(StreamName=stream, Records=records)["FailedRecordCount"] == 0
        front.reset_buckets()
    rate = 4000 / (time.monotonic() - started)
    assert rate > 1000, rate


# -- other upstreams and protocols -----------------------------------------------------------


def test_front_over_kinesis_mock(kinesis_mock: LocalKinesis) -> None:
    server = kinesis_mock
    with FaultFront(server.endpoint_url, FaultConfig(seed=5)) as front:
        arn = server.create_stream("mocked", 2)
        client = front.client(parameter_validation=False)
        # kinesis-mock itself lets 501 records through; the front does not
        with pytest.raises(client.exceptions.ValidationException):
            client.put_records(StreamName="mocked", Records=_records(501))
        front.configure(shard_records_per_second=10, record_internal_failure_rate=0.2)
        result = client.put_records(StreamARN=arn, Records=_records(60, key="hot"))
        entries = result["Records"]
        accepted = [e for e in entries if not e.get("ErrorCode")]
        codes = Counter(e["ErrorCode"] for e in entries if e.get("ErrorCode"))
        assert 10 <= len(accepted) <= 12
        assert codes["InternalFailure"] > 0 and codes["ProvisionedThroughputExceededException"] > 0
        assert result["FailedRecordCount"] == 60 - len(accepted)
        stats = front.stats()
        assert stats.records_accepted == len(accepted)
        assert stats.records_internal_failure == codes["InternalFailure"]
        assert stats.records_throttled == codes["ProvisionedThroughputExceededException"]
        assert len(read_all_flat(server.client(), "mocked")) == len(accepted)


def test_non_json_bodies_are_forwarded_untouched(front: FaultFront) -> None:
    """botocore sends JSON 1.1 to Kinesis; a CBOR body (the Java SDK's) is
    passed through without limits or per-record faults, and counted."""
    host, port = front.endpoint_url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request(
        "POST",
        "/",
        b"\xbf\xff",  # an empty CBOR map
        {"Content-Type": "application/x-amz-cbor-1.1", "X-Amz-Target": "Kinesis_20131202.PutRecords"},
    )
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status >= 400  # kinesalite's own answer
    stats = front.stats()
    assert stats.unparsed_requests == 1 and stats.put_records_calls == 0


def test_throttling_follows_a_reshard(
    raw_client: Any, front: FaultFront, kinesalite: LocalKinesis, new_stream: NewStream
) -> None:
    from beam_kinesis_sink.testing.local_servers import wait_active

    stream = new_stream(1)
    front.configure(shard_records_per_second=100)
    raw_client.put_records(StreamName=stream, Records=_records(1))  # the front reads 1 shard
    upstream = kinesalite.client()
    upstream.split_shard(
        StreamName=stream, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**127)
    )
    wait_active(upstream, stream)
    children = shard_ranges(upstream, stream, open_only=True)
    assert len(children) == 2
    # the first put after the split shows the front its map is stale
    raw_client.put_records(
        StreamName=stream, Records=[{"Data": b"x", "PartitionKey": "k", "ExplicitHashKey": "0"}]
    )
    records = [
        {"Data": b"x", "PartitionKey": "k", "ExplicitHashKey": str(child.start + i)}
        for child in children
        for i in range(150)
    ]
    started = time.monotonic()
    result = raw_client.put_records(StreamName=stream, Records=records)
    refill = 100 * (time.monotonic() - started)
    per_child = [
        sum(1 for e in result["Records"][k * 150 : (k + 1) * 150] if "SequenceNumber" in e) for k in (0, 1)
    ]
    # each child has its own bucket of 100 (the first child already spent one)
    assert 98 <= per_child[0] <= 102 + refill and 99 <= per_child[1] <= 102 + refill, per_child
