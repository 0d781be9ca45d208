"""WriteToKinesis on the DirectRunner against real local Kinesis servers.

Every test reads every shard back with GetRecords and checks content, count,
placement, receipts and dead letters.
"""

from __future__ import annotations

import json
import logging

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream as EventStream
from apache_beam.transforms import window

from beam_kinesis_sink import ClientConfig, DeadLetter, ErrorCode, KinesisRecord, WriteReceipt, WriteToKinesis
from beam_kinesis_sink.errors import FatalStreamError
from beam_kinesis_sink.metrics import NAMESPACE
from tests.conftest import unique_stream
from tests.integration.helpers import as_json, check_placement, client_config, collect, collected, read_stream
from tests.oracle import hash_key_of

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
BIG_PAD = MiB - 26  # {"user":"big","pad":"..."} + key "big" is exactly 1 MiB



def good_elements(n: int):
    out = []
    for i in range(n):
        e = {"user": f"user-{i % 257}", "i": i}
        if i % 10 == 0:
            e["h"] = str((i * 7919 * 2**100) % 2**128)  # explicit hash key
        out.append(e)
    return out


BAD = [
    ({"i": -1}, ErrorCode.INVALID_PARTITION_KEY),
    ({"user": "", "i": -2}, ErrorCode.INVALID_PARTITION_KEY),
    ({"user": "k" * 257, "i": -3}, ErrorCode.INVALID_PARTITION_KEY),
    ({"user": 12345, "i": -4}, ErrorCode.INVALID_PARTITION_KEY),
    ({"user": "u", "h": "-1", "i": -5}, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
    ({"user": "u", "h": str(2**128), "i": -6}, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
    ({"user": "u", "h": "twelve", "i": -7}, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
    ({"user": "big", "pad": "x" * (BIG_PAD + 1)}, ErrorCode.RECORD_TOO_LARGE),
    ({"user": "u", "not_json": {1, 2}}, ErrorCode.SERIALIZATION_ERROR),
]
AT_LIMIT = {"user": "big", "pad": "x" * BIG_PAD}


def hash_of_readback(expected_by_data):
    def hash_of(record):
        ehk = expected_by_data[record["data"]].get("h")
        return int(ehk) if ehk is not None else hash_key_of(record["partition_key"])

    return hash_of


def test_batch_write_reads_back_exactly(server, tmp_path):
    stream = unique_stream("batch")
    server.create_stream(stream, shards=4)
    good = good_elements(3000) + [AT_LIMIT]
    elements = good + [e for e, _ in BAD]

    with beam.Pipeline() as p:
        result = (
            p
            | beam.Create(list(enumerate(elements)))
            | beam.Map(lambda ie: window.TimestampedValue(ie[1], 1_000 + ie[0]))
            | WriteToKinesis(
                stream,
                partition_key=lambda e: e["user"],
                explicit_hash_key=lambda e: e.get("h"),
                client_config=client_config(server),
            )
        )
        assert result.written.element_type is WriteReceipt
        assert result.dead_letters.element_type is DeadLetter
        collect(result.written, str(tmp_path / "written"), "CollectWritten")
        collect(result.dead_letters, str(tmp_path / "dead"), "CollectDead")
    metrics = p.result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))

    expected = {json.dumps(e, separators=(",", ":")).encode(): e for e in good}
    by_shard = read_stream(server, stream)
    stored = [r for records in by_shard.values() for r in records]
    # Count and content: every good element exactly once, nothing else.
    assert len(stored) == len(good)
    assert {r["data"] for r in stored} == set(expected)
    for r in stored:
        assert r["partition_key"] == expected[r["data"]]["user"]
    # Placement: on the shard whose hash range holds the MD5 / explicit hash key.
    assert len(by_shard) == 4 and all(by_shard.values())
    assert check_placement(server, stream, by_shard, hash_of_readback(expected)) == len(good)

    # Receipts: one per stored record, naming its shard and sequence number.
    receipts = collected(str(tmp_path / "written"))
    assert len(receipts) == len(good)
    stored_at = {(r["shard_id"], r["sequence_number"]): r for r in stored}
    for receipt, ts_micros, _ in receipts:
        assert isinstance(receipt, WriteReceipt)
        record = stored_at[(receipt.shard_id, receipt.sequence_number)]
        assert record["partition_key"] == receipt.partition_key
        assert receipt.attempts == 1 and receipt.stream == stream
        # The element's timestamp is kept, on the output and in the receipt.
        index = expected[record["data"]].get("i", 3000)
        assert ts_micros == (1_000 + index) * 1_000_000
        assert receipt.element_timestamp_micros == ts_micros

    # Dead letters: one per bad element, with its code, its data when it had any.
    letters = [d for d, _, _ in collected(str(tmp_path / "dead"))]
    assert sorted(d.error_code for d in letters) == sorted(code for _, code in BAD)
    for d in letters:
        assert isinstance(d, DeadLetter) and d.attempts == 0 and d.error_message and d.stream == stream
        if d.error_code == ErrorCode.SERIALIZATION_ERROR:
            assert d.data is None and "not_json" in d.element_preview
        else:
            assert d.data is not None
    too_large = next(d for d in letters if d.error_code == ErrorCode.RECORD_TOO_LARGE)
    assert str(MiB + 1) in too_large.error_message

    counters = {r.key.metric.name: r.committed for r in metrics["counters"]}
    assert counters["records_written"] == len(good)
    assert counters["dead_letters"] == len(BAD)
    assert counters["dead_letters_InvalidPartitionKey"] == 4
    assert counters["put_records_calls"] >= 4
    assert counters["bytes_written"] == sum(len(r["data"]) + len(r["partition_key"]) for r in stored)
    dists = {r.key.metric.name: r.committed for r in metrics["distributions"]}
    assert dists["batch_size_records"].max <= 500


@pytest.mark.parametrize("batching", ["bundle", "stateful"])
def test_streaming_write_with_test_stream(server, tmp_path, batching):
    stream = unique_stream("stream")
    server.create_stream(stream, shards=4)
    events = [{"user": f"u{i % 37}", "i": i} for i in range(600)]
    ts = (
        EventStream()
        .add_elements([window.TimestampedValue(e, 10 + e["i"] / 100) for e in events[:300]])
        .advance_watermark_to(20)
        .add_elements([window.TimestampedValue(e, 20 + e["i"] / 100) for e in events[300:]])
        .add_elements([window.TimestampedValue({"i": -1}, 25)])
        .advance_watermark_to_infinity()
    )
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True

    class KeepWindow(beam.DoFn):
        def process(self, element, w=beam.DoFn.WindowParam):
            yield (element, (w.start.micros, w.end.micros))

    with beam.Pipeline(options=options) as p:
        result = (
            p
            | ts
            | beam.WindowInto(window.FixedWindows(10))
            | WriteToKinesis(
                stream,
                partition_key=lambda e: e["user"],
                client_config=client_config(server),
                batching=batching,
                max_buffering_seconds=0.5,
            )
        )
        collect(result.written | "KW" >> beam.ParDo(KeepWindow()), str(tmp_path / "w"), "CW")
        collect(result.dead_letters | "KD" >> beam.ParDo(KeepWindow()), str(tmp_path / "d"), "CD")

    stored = [r for rs in read_stream(server, stream).values() for r in rs]
    assert len(stored) == 600
    assert sorted(as_json(r["data"])["i"] for r in stored) == list(range(600))
    written = collected(str(tmp_path / "w"))
    assert len(written) == 600
    for (receipt, (start, end)), ts_micros, _ in written:
        # Each receipt is in the fixed window of its element's timestamp, and
        # keeps that timestamp in element_timestamp_micros.
        assert start <= receipt.element_timestamp_micros < end and end - start == 10_000_000
        assert start <= ts_micros < end
        if batching == "bundle":
            assert ts_micros == receipt.element_timestamp_micros
        else:
            # At the batch's own time (where GroupIntoBatches' timer fired),
            # never behind it: at its element's time it would be late data.
            assert ts_micros >= receipt.element_timestamp_micros
    dead = collected(str(tmp_path / "d"))
    assert [(d.error_code, w) for (d, w), _, _ in dead] == [
        (ErrorCode.INVALID_PARTITION_KEY, (20_000_000, 30_000_000))
    ]


def test_oversized_record_is_isolated_by_each_server(server, tmp_path):
    """The sink is told the stream takes 2 MiB records, but the server takes 1 MiB.

    kinesalite rejects the whole request (ValidationException): the sink must
    split it until the big record is alone. kinesis-mock fails the record alone.
    Either way: the big record is dead-lettered, every other record written.
    """
    stream = unique_stream("oversize")
    server.create_stream(stream, shards=1)
    records = [KinesisRecord(f"r{i}".encode(), f"k{i}") for i in range(40)]
    big = KinesisRecord(b"B" * (MiB + 100), "big")
    elements = records[:20] + [big] + records[20:]
    with beam.Pipeline() as p:
        result = p | beam.Create(elements) | WriteToKinesis(
            stream,
            client_config=client_config(server),
            max_record_bytes=2 * MiB,
            max_request_bytes=5 * MiB,
        )
        collect(result.dead_letters, str(tmp_path / "d"), "CD")
    stored = [r for rs in read_stream(server, stream).values() for r in rs]
    assert sorted(r["data"] for r in stored) == sorted(r.data for r in records)
    dead = [d for d, _, _ in collected(str(tmp_path / "d"))]
    assert [d.partition_key for d in dead] == ["big"]
    expected_code = "ValidationException" if server.name == "kinesalite" else "InvalidArgumentException"
    assert dead[0].error_code == expected_code
    assert dead[0].attempts >= 1 and dead[0].data == big.data


def test_missing_stream_goes_to_dead_letters_or_fails_when_asked(kinesalite, tmp_path):
    elements = [{"user": f"u{i}"} for i in range(25)]
    with beam.Pipeline() as p:
        result = p | beam.Create(elements) | WriteToKinesis(
            "no-such-stream", partition_key="user", client_config=client_config(kinesalite)
        )
        collect(result.dead_letters, str(tmp_path / "d"), "CD")
        collect(result.written, str(tmp_path / "w"), "CW")
    dead = [d for d, _, _ in collected(str(tmp_path / "d"))]
    assert len(dead) == 25 and not collected(str(tmp_path / "w"))
    assert {d.error_code for d in dead} == {"ResourceNotFoundException"}
    assert all(d.attempts == 1 for d in dead)

    with pytest.raises(Exception) as info:
        with beam.Pipeline() as p:
            _ = p | beam.Create(elements) | WriteToKinesis(
                "no-such-stream",
                partition_key="user",
                client_config=client_config(kinesalite),
                on_fatal_error="fail",
            )
    assert "ResourceNotFoundException" in str(info.value)
    assert "no-such-stream" in str(info.value)
    assert "check the stream's name or ARN" in str(info.value)  # what to do, in the error too
    assert FatalStreamError.__name__ in repr(info.value) or "on_fatal_error" in str(info.value)


def test_stream_arn_is_accepted(kinesis_mock, tmp_path):
    stream = unique_stream("arn")
    kinesis_mock.create_stream(stream, shards=2)
    arn = kinesis_mock.client().describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"][
        "StreamARN"
    ]
    with beam.Pipeline() as p:
        result = p | beam.Create([f"v{i}" for i in range(50)]) | WriteToKinesis(
            arn, partition_key=lambda e: e, client_config=client_config(kinesis_mock)
        )
        collect(result.written, str(tmp_path / "w"), "CW")
    stored = [r for rs in read_stream(kinesis_mock, stream).values() for r in rs]
    assert sorted(r["data"] for r in stored) == sorted(f"v{i}".encode() for i in range(50))
    assert {w.stream for w, _, _ in collected(str(tmp_path / "w"))} == {arn}


def test_no_credential_in_logs_exceptions_or_dead_letters(kinesalite, tmp_path, caplog):
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCY-SECRET-XYZ"
    key_id = "AKIAZZZZZZZZZZZZZZZZ"
    config = ClientConfig(
        region_name="us-east-1",
        endpoint_url=kinesalite.endpoint_url,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )
    assert secret not in repr(config) and key_id not in repr(config)
    caplog.set_level(logging.DEBUG, logger="beam_kinesis_sink")
    with beam.Pipeline() as p:
        result = p | beam.Create([{"user": "a"}, {"user": ""}]) | WriteToKinesis(
            "missing-stream-creds", partition_key="user", client_config=config
        )
        collect(result.dead_letters, str(tmp_path / "d"), "CD")
    dead = [d for d, _, _ in collected(str(tmp_path / "d"))]
    assert {d.error_code for d in dead} == {"ResourceNotFoundException", "InvalidPartitionKey"}
    text = " ".join(repr(d) for d in dead) + caplog.text
    assert "missing-stream-creds" in text  # the messages are there...
    assert secret not in text and key_id not in text  # ...the credentials are not
