"""DirectPutRecords against real local Kinesis servers (kinesalite and
kinesis-mock): what it writes reads back equal, on the shard its receipt
names, and the servers' refusals raise what boto3 raises."""

from __future__ import annotations

import random
from typing import Any, Dict, List, Tuple

import pytest

from beam_kinesis_sink.classifier import judge_answer
from beam_kinesis_sink.direct_put_records import DirectPutRecords
from beam_kinesis_sink.limits import Limits, record_size
from beam_kinesis_sink.metrics import PUT_RECORDS_CALLS, CountingMetrics
from beam_kinesis_sink.rate_limit import RateLimitConfig
from beam_kinesis_sink.records import KinesisRecord, WriteReceipt
from beam_kinesis_sink.testing.readback import shard_for, shard_ranges
from beam_kinesis_sink.writer import KinesisWriter, WriterOptions
from tests.conftest import unique_stream
from tests.integration.helpers import client_config, read_stream

pytestmark = pytest.mark.integration

#: characters JSON must escape, astral ones, and other awkward ones
AWKWARD = ['"', "\\", "/", "\x01", "\b", "\x1f", "\x7f", "\u00e9", "\u2028", "\ufeff",
           "\U0001f600", "\U0010fffd"]


def entries_for(count: int, seed: int) -> List[Dict[str, Any]]:
    """Entries as the submitter builds them: binary data, Unicode keys, some
    explicit hash keys."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        key = f"k{i}-" + "".join(rng.choice(AWKWARD) for _ in range(rng.randint(0, 12)))
        entry: Dict[str, Any] = {"Data": rng.randbytes(rng.randint(1, 2000)), "PartitionKey": key}
        if i % 5 == 0:
            entry["ExplicitHashKey"] = str(rng.randrange(2**128))
        out.append(entry)
    return out


def write(codec: DirectPutRecords, stream_args: Dict[str, str],
          batches: List[List[Dict[str, Any]]]) -> List[Tuple[Dict[str, Any], Dict[str, Any]]]:
    """(entry, receipt) of every entry written; each answer must be all written."""
    written = []
    for entries in batches:
        answer = codec.put(stream_args, entries)
        assert answer["FailedRecordCount"] == 0, answer
        verdict = judge_answer(answer, len(entries), "any", split=True)
        assert len(verdict.written) == len(entries) and not verdict.retry and not verdict.dead
        written.extend(zip(entries, answer["Records"]))
    return written


def check_read_back(server: Any, stream: str, written: List[Tuple[Dict[str, Any], Dict[str, Any]]]) -> None:
    """Each record reads back equal, at the shard and sequence number of its
    receipt, on the shard whose hash key range holds it."""
    by_shard = read_stream(server, stream)
    found = {(r["shard_id"], r["sequence_number"]): r for records in by_shard.values() for r in records}
    assert len(found) == len(written)
    ranges = shard_ranges(server.client(), stream)
    for entry, receipt in written:
        record = found[(receipt["ShardId"], receipt["SequenceNumber"])]
        assert (record["data"], record["partition_key"]) == (entry["Data"], entry["PartitionKey"])
        assert record["shard_id"] == shard_for(ranges, entry["PartitionKey"], entry.get("ExplicitHashKey"))
    for records in by_shard.values():  # per shard, in the order written
        sequence = [int(r["sequence_number"]) for r in records]
        assert sequence == sorted(sequence)


def test_written_records_read_back_equal(server):
    stream = unique_stream("codec")
    server.create_stream(stream, shards=4)
    codec = DirectPutRecords(client_config(server).create_client())
    assert codec.fast, codec.reason
    batches = [entries_for(500, seed=1), entries_for(1, seed=2), entries_for(137, seed=3)]
    written = write(codec, {"StreamName": stream}, batches)
    check_read_back(server, stream, written)
    assert codec.fast_answers == codec.calls == len(batches)
    assert codec.templated_calls == len(batches) - 1  # the calls after the first, from its request


def test_written_by_stream_arn_on_kinesis_mock(kinesis_mock):
    """kinesalite 3.3.3 knows stream names only; kinesis-mock knows ARNs."""
    stream = unique_stream("codec-arn")
    arn = kinesis_mock.create_stream(stream, shards=2)
    codec = DirectPutRecords(client_config(kinesis_mock).create_client())
    written = write(codec, {"StreamARN": arn}, [entries_for(250, seed=4)])
    check_read_back(kinesis_mock, stream, written)


def test_the_same_batch_gets_the_same_verdict_through_boto3(server):
    stream = unique_stream("codec-same")
    server.create_stream(stream, shards=1)
    client = client_config(server).create_client()
    codec = DirectPutRecords(client)
    entries = entries_for(50, seed=5)
    ours = codec.put({"StreamName": stream}, entries)
    theirs = client.put_records(Records=entries, StreamName=stream)
    shard = theirs["Records"][0]["ShardId"]
    assert set(ours) == set(theirs)
    assert [sorted(r) for r in ours["Records"]] == [sorted(r) for r in theirs["Records"]]
    assert [r["ShardId"] for r in ours["Records"]] == [r["ShardId"] for r in theirs["Records"]]
    assert ({k: v for k, v in judge_answer(ours, 50, shard).__dict__.items() if k != "written"}
            == {k: v for k, v in judge_answer(theirs, 50, shard).__dict__.items() if k != "written"})


def outcome(call: Any) -> Tuple[str, Any]:
    try:
        return "answer", call()
    except Exception as exc:  # compared between the two paths
        return "raised", exc


def receipts_without_numbers(answer: Dict[str, Any]) -> List[Tuple[str, ...]]:
    """Each result entry but its sequence number (which differs between writes)."""
    return [tuple(sorted((k, v) for k, v in r.items() if k != "SequenceNumber")) for r in answer["Records"]]


@pytest.mark.parametrize("templated", [False, True], ids=["first call", "from the template"])
@pytest.mark.parametrize("case", ["no such stream", "501 records", "empty batch", "empty data"])
def test_the_servers_refusals_are_met_as_boto3_meets_them(server, case, templated):
    """Each server refuses (or takes: kinesis-mock takes 501 records) these
    alike through both paths, on a stream's first call and on one after it."""
    stream = unique_stream("codec-refused")
    if case != "no such stream":
        server.create_stream(stream, shards=1)
    entries = {"no such stream": entries_for(3, seed=6), "501 records": entries_for(501, seed=7),
               "empty batch": [], "empty data": [{"Data": b"", "PartitionKey": "k"}]}[case]
    client = client_config(server).create_client()
    codec = DirectPutRecords(client)
    if templated:
        outcome(lambda: codec.put({"StreamName": stream}, entries_for(1, seed=8)))
    theirs = outcome(lambda: client.put_records(Records=entries, StreamName=stream))
    ours = outcome(lambda: codec.put({"StreamName": stream}, entries))
    assert codec.templated_calls == int(templated)
    assert ours[0] == theirs[0]
    if theirs[0] == "answer":
        assert receipts_without_numbers(ours[1]) == receipts_without_numbers(theirs[1])
        assert ours[1]["FailedRecordCount"] == theirs[1]["FailedRecordCount"]
        return
    assert type(ours[1]) is type(theirs[1])
    mine, boto3s = ours[1].response, theirs[1].response
    assert mine["Error"] == boto3s["Error"]
    assert mine["ResponseMetadata"]["HTTPStatusCode"] == boto3s["ResponseMetadata"]["HTTPStatusCode"]


def test_a_writer_that_names_no_codec_sends_through_the_suites(kinesalite, pytestconfig):
    """``--request-codec=boto3`` (CI's pass through boto3's path) reaches the
    writers that name no codec, and their calls take that path: boto3's
    ``put_records`` builds every call's parameters; the sink's codec only
    its first one (the template of the calls after it; one call at a time
    here, so that none starts before the template is made)."""
    expected = pytestconfig.getoption("--request-codec") or "fast"
    stream = unique_stream("codec-suite")
    kinesalite.create_stream(stream, shards=2)
    client = client_config(kinesalite).create_client()
    built: List[str] = []
    client.meta.events.register("before-parameter-build.kinesis.PutRecords",
                                lambda **_: built.append("PutRecords"))
    metrics = CountingMetrics()
    writer = KinesisWriter(client, stream, WriterOptions(rate_limit=RateLimitConfig(enabled=False),
                                                         limits=Limits(max_records_per_request=100),
                                                         max_in_flight=1),
                           metrics=metrics)
    for i in range(1_000):
        record = KinesisRecord(f"v{i}".encode(), f"key-{i}")
        writer.add(record, record_size(record.data, record.partition_key))
    writer.flush(60)
    outcomes = writer.take_outcomes()
    writer.close()
    calls = metrics.counters[PUT_RECORDS_CALLS]
    assert calls >= 10 and len(outcomes) == 1_000
    assert all(isinstance(value, WriteReceipt) for value, _ in outcomes)
    assert len(built) == {"boto3": calls, "fast": 1}[expected]
    assert sum(len(v) for v in read_stream(kinesalite, stream).values()) == 1_000
