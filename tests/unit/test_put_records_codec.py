"""DirectPutRecords against boto3's own put_records: the same request bytes
(captured by a canned ``before-send`` answer, no server), and the same
answer or exception for every kind of HTTP answer (a stdlib stand-in on a
free loopback port)."""

from __future__ import annotations

import concurrent.futures as cf
import datetime
import json
import logging
from typing import Any, Callable

import pytest
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from beam_kinesis_sink.classifier import judge_answer, judge_failure
from beam_kinesis_sink.client import ClientConfig, _session_with_credentials, redactor_for
from beam_kinesis_sink.direct_put_records import DirectPutRecords
from beam_kinesis_sink.put_records_codec import entries_of, request_body
from beam_kinesis_sink.records import KinesisRecord
from beam_kinesis_sink.shard_buffers import Item
from tests.unit.codec_stand_in import JSON_TYPE, Answer, CannedSend, StandIn, all_written, receipts
from tests.unit.fakes import FakeKinesis

ACCESS_KEY = "AKIACODECTEST0000001"
SECRET_KEY = "codec-secret-key/0123456789+abcdefghijklmnop"
NAME = {"StreamName": "codec-stream"}
ARN = {"StreamARN": "arn:aws:kinesis:us-east-1:123456789012:stream/codec-stream"}
#: headers that differ between any two calls (time, a fresh uuid)
PER_CALL_HEADERS = {"x-amz-date", "authorization", "amz-sdk-invocation-id"}


def sink_client(endpoint_url: Any = None, **options: Any) -> Any:
    """A client as the sink builds it (no parameter validation, one attempt)."""
    return ClientConfig(region_name="us-east-1", endpoint_url=endpoint_url, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY, **options).create_client()


def entry(data: bytes, key: str, explicit: Any = None) -> dict:
    """An entry as the submitter builds it."""
    out = {"Data": data, "PartitionKey": key}
    if explicit is not None:
        out["ExplicitHashKey"] = explicit
    return out


def stable(request: Any) -> dict:
    return {k.lower(): v for k, v in request.headers.items() if k.lower() not in PER_CALL_HEADERS}


# ---------------------------------------------------------------- request bytes
KEY_CHARS = st.one_of(
    st.characters(),
    st.sampled_from(['"', "\\", "/", "\x00", "\b", "\x1f", "\x7f", "\x80", "\u2028", "\u2029", "\ufeff",
                     "\ud800", "\udfff", "\U0001f600", "\U00010000", "\U0010ffff"]),
)
ENTRIES = st.lists(
    st.builds(entry, st.binary(max_size=2000), st.text(KEY_CHARS, min_size=1, max_size=256),
              st.none() | st.integers(0, 2**128 - 1).map(str)),
    min_size=1, max_size=500,
)
BIG = [entry(bytes([i % 256]) * 2000, "\U0001f600" * 128, str(2**128 - 1 - i)) for i in range(500)]


@pytest.fixture(scope="module")
def canned():
    client = sink_client()
    send = CannedSend().install(client)
    return client, DirectPutRecords(client), send


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.large_base_example, HealthCheck.function_scoped_fixture])
@given(entries=ENTRIES, stream_args=st.sampled_from([NAME, ARN]))
@example(entries=BIG, stream_args=NAME)
@example(entries=[entry(b"", "k")], stream_args=ARN)
def test_the_request_is_botocores_byte_for_byte(canned, entries, stream_args):
    client, codec, send = canned
    assert codec.fast, codec.reason
    expected = client.put_records(Records=entries, **stream_args)
    got = codec.put(stream_args, entries)
    theirs, ours = send.requests[-2], send.requests[-1]
    assert ours.body == theirs.body
    assert json.loads(ours.body) == json.loads(theirs.body)
    assert request_body(stream_args, entries) == theirs.body
    assert (ours.method, ours.url, stable(ours)) == (theirs.method, theirs.url, stable(theirs))
    assert got == expected and list(got) == list(expected)
    # The submitter's way: the records (or the writer's items), no entry dicts.
    records = [KinesisRecord(e["Data"], e["PartitionKey"], e.get("ExplicitHashKey")) for e in entries]
    for those in (records, [Item(r, len(r.data), 0) for r in records]):
        templated = codec.templated_calls
        assert codec.put_kinesis_records(stream_args, those) == expected
        assert codec.templated_calls == templated + 1  # sent from botocore's request of a first call
        sent = send.requests[-1]
        assert sent.body == theirs.body
        assert (sent.method, sent.url, stable(sent)) == (theirs.method, theirs.url, stable(theirs))
        assert entries_of(those) == entries


def test_the_stream_arn_picks_botocores_account_endpoint(canned):
    client, codec, send = canned
    codec.put(ARN, [entry(b"x", "k")])
    assert send.requests[-1].url == "https://123456789012.data-kinesis.us-east-1.amazonaws.com/"


@pytest.mark.parametrize("entries", [
    [{"PartitionKey": "k", "Data": b"x"}],                       # another member order
    [{"Data": b"x", "ExplicitHashKey": "1", "PartitionKey": "k"}],
    [{"Data": "text, not bytes \u00e9", "PartitionKey": "k"}],    # str data: botocore encodes UTF-8
    [{"Data": bytearray(b"ab"), "PartitionKey": "k"}, entry(memoryview(b"cd"), "k")],
    [{"Data": b"x", "PartitionKey": "k", "ExplicitHashKey": None}],  # botocore writes null
    [entry(b"x", 12345), entry(b"y", "k", 99)],                  # not strings: written as botocore does
    [],
])
def test_entries_off_the_common_shape_are_written_as_botocore_writes_them(canned, entries):
    client, codec, send = canned
    outcome(lambda: client.put_records(Records=entries, **NAME))
    outcome(lambda: codec.put(NAME, entries))
    theirs, ours = send.requests[-2], send.requests[-1]
    assert ours.body == theirs.body


@pytest.mark.parametrize("records", [
    [KinesisRecord("text, not bytes \u00e9", "k")],
    [KinesisRecord(bytearray(b"ab"), "k"), KinesisRecord(memoryview(b"cd"), "k", "7")],
    [KinesisRecord(b"x", 12345), KinesisRecord(b"y", "k", 99)],
])
def test_records_off_the_common_shape_are_written_as_their_entries_are(canned, records):
    client, codec, send = canned
    outcome(lambda: client.put_records(Records=entries_of(records), **NAME))
    outcome(lambda: codec.put_kinesis_records(NAME, records))
    theirs, ours = send.requests[-2], send.requests[-1]
    assert ours.body == theirs.body and ours is not theirs


@pytest.mark.parametrize("entries", [
    [{"Data": b"x", "PartitionKey": "k", "Partitionkey": "typo"}],
    [{"Data": None, "PartitionKey": "k"}],
    [{"Data": 7, "PartitionKey": "k"}],
    [["Data", b"x"]],
    [{"Data": b"x", "PartitionKey": b"bytes"}],
])
def test_entries_botocore_refuses_are_refused_alike(canned, entries):
    client, codec, _ = canned
    theirs = outcome(lambda: client.put_records(Records=entries, **NAME))
    ours = outcome(lambda: codec.put(NAME, entries))
    assert theirs[0] == "raised" and comparable(ours) == comparable(theirs)


# ---------------------------------------------------------------- answers
def outcome(call: Callable[[], Any]) -> tuple:
    """("answer", the answer) or ("raised", the exception)."""
    try:
        return ("answer", call())
    except Exception as exc:  # compared between the two paths
        return ("raised", exc)


def comparable(result: tuple) -> tuple:
    kind, value = result
    if kind == "answer":
        return (kind, value, list(value) if isinstance(value, dict) else None)  # same keys, same order
    return (kind, type(value), str(value), getattr(value, "response", None))


def verdict(result: tuple, count: int) -> Any:
    """What the sink's classifier makes of it."""
    kind, value = result
    if kind == "answer":
        return judge_answer(value, count, "shardId-000000000001")
    return judge_failure(value, count)


def _html(status: int) -> Answer:
    return Answer(status, b"<html><body><b>Http/1.1 Service Unavailable</b></body></html>", "text/html")


def _error(status: int, kind: str, message: str = "refused") -> Answer:
    return Answer(status, {"__type": kind, "message": message})


ODD = [{"SequenceNumber": "1", "ShardId": "s", "ErrorCode": None, "Extra": 2}, None, {"ErrorCode": "X"}]
MIXED = [{"SequenceNumber": "1", "ShardId": "shardId-000000000001"},
         {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded for shard"},
         {"ErrorCode": "InternalFailure", "ErrorMessage": "Internal service failure."}]

#: name -> (what the stand-in answers to a request body, whether the codec reads the answer itself)
SCENARIOS = {
    "200 all written": (lambda b: Answer(200, all_written(b)), True),
    "200 all written, KMS": (lambda b: Answer(200, {"FailedRecordCount": 0, "EncryptionType": "KMS",
                                                    "Records": receipts(3)}), True),
    "200 partial failures": (lambda b: Answer(200, {"FailedRecordCount": 2, "Records": MIXED}), True),
    "200 receipts in another key order": (lambda b: Answer(200, {"Records": [
        {"ShardId": "shardId-000000000001", "SequenceNumber": str(i)} for i in range(3)]}), True),
    "200 null and unknown fields": (
        lambda b: Answer(200, {"FailedRecordCount": None, "Extra": [1], "Records": ODD}), True),
    "200 too few entries": (lambda b: Answer(200, {"FailedRecordCount": 0, "Records": receipts(1)}), True),
    "200 an entry that is not an object": (lambda b: Answer(200, {"Records": ["x", {}, {}]}), False),
    "200 Records not a list": (lambda b: Answer(200, {"Records": {"SequenceNumber": "1"}}), False),
    "200 no Records": (lambda b: Answer(200, {"FailedRecordCount": 0}), False),
    "200 a JSON list": (lambda b: Answer(200, [1, 2, 3]), False),
    "200 empty body": (lambda b: Answer(200, b""), False),
    "200 HTML": (lambda b: _html(200), False),
    "200 truncated JSON": (lambda b: Answer(200, b'{"FailedRecordCount": 0, "Records": [{"Seq'), False),
    "200 not UTF-8": (lambda b: Answer(200, b'{"Records": ["\xff"]}'), False),
    "400 ProvisionedThroughputExceededException": (
        lambda b: _error(400, "ProvisionedThroughputExceededException", "Rate exceeded for stream"), False),
    "400 ResourceNotFoundException": (lambda b: _error(400, "ResourceNotFoundException", "no stream"), False),
    "400 namespaced KMSThrottlingException": (
        lambda b: _error(400, "com.amazonaws.kinesis#KMSThrottlingException", "KMS rate"), False),
    "400 ValidationException": (lambda b: _error(400, "ValidationException", "1 validation error"), False),
    "400 code in x-amzn-ErrorType only": (lambda b: Answer(400, b"", headers={
        "x-amzn-ErrorType": "AccessDeniedException:http://internal.amazon.com/"}), False),
    "413 bare": (lambda b: Answer(413, b"", "text/plain"), False),
    "500 JSON": (lambda b: _error(500, "InternalFailure", "Internal service failure."), False),
    "500 no body": (lambda b: Answer(500, b""), False),
    "503 JSON": (lambda b: _error(503, "ServiceUnavailable", "Slow down"), False),
    "503 no body": (lambda b: Answer(503, b""), False),
    "503 HTML": (lambda b: _html(503), False),
    "truncated body": (lambda b: Answer(200, all_written(b)[:20], length=500), False),
    "dropped connection": (lambda b: Answer(drop=True), False),
    "read timeout": (lambda b: Answer(200, all_written(b), delay=READ_TIMEOUT + 1.0), False),
}


READ_TIMEOUT = 0.5


@pytest.fixture(scope="module")
def stand_in():
    with StandIn() as server:
        client = sink_client(server.endpoint_url)
        yield server, client, DirectPutRecords(client)


@pytest.mark.parametrize("templated", [False, True], ids=["first call", "from the template"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_answer_is_read_as_boto3_reads_it(stand_in, name, templated):
    server, client, _ = stand_in
    if name == "read timeout":  # only here: a short timeout would make the others flaky on a busy machine
        client = sink_client(server.endpoint_url, read_timeout=READ_TIMEOUT)
    codec = DirectPutRecords(client)
    entries = [entry(b"\x00\xff" * i, f"key-{i}\u00e9", str(i) if i % 2 else None) for i in range(3)]
    if templated:
        server.scenario = lambda b: Answer(200, all_written(b))
        codec.put(NAME, entries)  # the first call: botocore builds the request
    server.scenario, fast = SCENARIOS[name]
    theirs = outcome(lambda: client.put_records(Records=entries, **NAME))
    before = codec.fast_answers
    ours = outcome(lambda: codec.put(NAME, entries))
    assert comparable(ours) == comparable(theirs)
    assert verdict(ours, 3) == verdict(theirs, 3)
    assert codec.fast_answers - before == int(fast)
    assert codec.templated_calls == int(templated)
    assert server.bodies[-1] == server.bodies[-2]  # the same bytes on the wire


def test_modelled_errors_are_the_clients_own_exception_classes(stand_in):
    server, client, codec = stand_in
    server.scenario = lambda b: _error(400, "ResourceNotFoundException", "no stream")
    with pytest.raises(client.exceptions.ResourceNotFoundException) as raised:
        codec.put(NAME, [entry(b"x", "k")])
    error = raised.value.response
    assert error["Error"]["Code"] == "ResourceNotFoundException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert SECRET_KEY not in str(raised.value) and SECRET_KEY not in repr(error)


def test_a_refused_connection_raises_what_boto3_raises():
    with StandIn() as server:
        server.scenario = lambda b: Answer(200, all_written(b))
        client = sink_client(server.endpoint_url)
        warm = DirectPutRecords(client)
        warm.put(NAME, [entry(b"x", "k")])  # its next call comes from the template
    # Nothing listens there any more.
    theirs = outcome(lambda: client.put_records(Records=[entry(b"x", "k")], **NAME))
    assert type(theirs[1]).__name__ == "EndpointConnectionError"
    for codec in (DirectPutRecords(client), warm):
        assert comparable(outcome(lambda c=codec: c.put(NAME, [entry(b"x", "k")]))) == comparable(theirs)
    assert warm.templated_calls == 1


def test_concurrent_calls_each_get_their_own_answer(stand_in):
    server, client, codec = stand_in

    def echo(body: bytes) -> Answer:
        keys = [r["PartitionKey"] for r in json.loads(body)["Records"]]
        return Answer(200, {"Records": [{"SequenceNumber": k, "ShardId": "s"} for k in keys]})

    server.scenario = echo

    def call(n: int) -> bool:
        entries = [entry(b"d", f"call-{n}-{i}") for i in range(1 + n % 7)]
        answer = codec.put(NAME, entries)
        return [r["SequenceNumber"] for r in answer["Records"]] == [e["PartitionKey"] for e in entries]

    with cf.ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(call, range(200)))


# ---------------------------------------------------------------- around the codec
def test_other_put_records_calls_of_the_client_are_left_alone(canned):
    client, codec, send = canned
    before = codec.fast_answers
    entries = [entry(b"plain", "k")]
    client.put_records(Records=entries, **NAME)
    assert json.loads(send.requests[-1].body)["Records"] == [{"Data": "cGxhaW4=", "PartitionKey": "k"}]
    assert codec.fast_answers == before
    assert DirectPutRecords(client).fast  # a second codec on the same client: the hooks once
    codec.put(NAME, entries)
    assert send.requests[-1].body == send.requests[-2].body


def test_a_validating_client_or_a_fake_gets_plain_put_records():
    validating = sink_client(skip_parameter_validation=False)
    send = CannedSend().install(validating)
    codec = DirectPutRecords(validating)
    assert not codec.fast and "validation" in (codec.reason or "")
    assert codec.put(NAME, [entry(b"x", "k")])["Records"] == receipts(1)
    assert json.loads(send.requests[-1].body)["Records"] == [{"Data": "eA==", "PartitionKey": "k"}]
    fake = FakeKinesis()
    codec = DirectPutRecords(fake)
    assert not codec.fast and codec(NAME, [entry(b"x", "k")])["FailedRecordCount"] == 0
    assert fake.calls


def test_refreshable_credentials_refresh_and_are_never_logged(caplog):
    issued = []

    def refresh() -> dict:
        n = len(issued) + 1
        expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=60)
        issued.append({"access_key": f"ASIACODEC{n:011d}", "secret_key": f"codec-refreshed-secret-{n}-xyz",
                       "token": f"codec-token-{n}-" + "t" * 40, "expiry_time": expiry.isoformat()})
        return issued[-1]

    # Every set expires within botocore's mandatory window: each signing refreshes.
    credentials = RefreshableCredentials.create_from_metadata(metadata=refresh(), refresh_using=refresh,
                                                              method="test")
    client = _session_with_credentials(credentials, region_name="us-east-1").client(
        "kinesis", config=Config(parameter_validation=False,
                                 retries={"mode": "standard", "total_max_attempts": 1}))
    redact = redactor_for(client)
    send = CannedSend().install(client)
    codec = DirectPutRecords(client)
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            codec.put(NAME, [entry(b"x", "k")])
    signed_with = [r.headers["Authorization"].decode().split("Credential=")[1].split("/")[0]
                   for r in send.requests]
    # Each request signed with a set refreshed for it, the last with the newest.
    assert len(set(signed_with)) == 3 and set(signed_with) <= {c["access_key"] for c in issued}
    assert signed_with[-1] == issued[-1]["access_key"]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert all(c["secret_key"] not in logged for c in issued)
    # The redactor's before-send hook saw the codec's requests: their tokens are redacted.
    sent = [c["token"] for c in issued if c["access_key"] in signed_with]
    assert len(sent) == 3 and all(token not in redact(f"quoted {token}") for token in sent)
    assert codec.templated_calls == 2  # the calls after the first: signed anew, each with its own set
    assert repr(codec) == "DirectPutRecords(fast=True, reason=None)"  # holds no credentials to show


def test_the_json_content_type_and_target_are_botocores(canned):
    client, codec, send = canned
    codec.put(NAME, [entry(b"x", "k")])
    headers = send.requests[-1].headers
    assert headers["Content-Type"] == JSON_TYPE.encode() or headers["Content-Type"] == JSON_TYPE
    assert headers["X-Amz-Target"] in (b"Kinesis_20131202.PutRecords", "Kinesis_20131202.PutRecords")


# ---------------------------------------------------------------- the template
def test_calls_after_the_first_are_botocores_request_with_their_own_id():
    client = sink_client()
    send = CannedSend().install(client)
    codec = DirectPutRecords(client)
    for stream_args in (NAME, ARN, NAME, ARN, NAME):
        expected = client.put_records(Records=[entry(b"x", "k")], **stream_args)
        assert codec.put(stream_args, [entry(b"x", "k")]) == expected
        theirs, ours = send.requests[-2], send.requests[-1]
        assert (ours.method, ours.url, ours.body, stable(ours)) == (
            theirs.method, theirs.url, theirs.body, stable(theirs))
    assert codec.templated_calls == 3  # one template per set of stream arguments
    ours = [r for i, r in enumerate(send.requests) if i % 2]
    # Each call its own invocation id and signature, as botocore gives each.
    assert len({r.headers["amz-sdk-invocation-id"] for r in ours}) == len(ours)
    assert all(r.headers["amz-sdk-request"] == send.requests[0].headers["amz-sdk-request"] for r in ours)
    assert all(b"Signature=" in r.headers["Authorization"] for r in ours)


def test_without_templates_every_call_is_put_records():
    client = sink_client()
    send = CannedSend().install(client)
    codec = DirectPutRecords(client, templates=False)
    for _ in range(3):
        client.put_records(Records=[entry(b"x", "k")], **NAME)
        codec.put(NAME, [entry(b"x", "k")])
        assert send.requests[-1].body == send.requests[-2].body
    assert codec.templated_calls == 0 and codec.calls == 3


def test_a_request_in_a_shape_it_does_not_know_makes_no_template():
    client = sink_client()
    send = CannedSend().install(client)

    def add_member(params: dict, **_: Any) -> None:
        params["unheard_of"] = 1  # a member a later botocore might add

    client.meta.events.register_last("before-call.kinesis.PutRecords", add_member)
    codec = DirectPutRecords(client)
    for _ in range(2):
        assert codec.put(NAME, [entry(b"x", "k")])["Records"] == receipts(1)
    assert codec.templated_calls == 0 and len(send.requests) == 2
