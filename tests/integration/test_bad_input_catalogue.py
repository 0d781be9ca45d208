"""The bad-input catalogue: each case with its expected dead-letter code.

Every case runs a pipeline that also carries good records: the bad element
goes to dead_letters with its code and message, the good ones are written,
and the pipeline keeps running. The writes go through the fault front to a
real kinesalite, so the front's exact limit checks see the at-limit record.
"""

from __future__ import annotations

import apache_beam as beam
import pytest

from beam_kinesis_sink import ClientConfig, ErrorCode, KinesisRecord, WriteToKinesis
from beam_kinesis_sink.advice import FATAL_ADVICE
from beam_kinesis_sink.testing.fault_front import FaultConfig, FaultFront
from tests.conftest import unique_stream
from tests.integration.helpers import collect, collected, read_stream

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
GOOD = [{"key": f"good-{i}", "value": i} for i in range(20)]


class Unserializable:
    def __repr__(self) -> str:
        return "<Unserializable>"


def picky_serializer(element):
    if element.get("explode"):
        raise ValueError("cannot encode this one")
    import json

    return json.dumps(element).encode()


# (case id, bad element, WriteToKinesis options, expected code or None = written)
CASES = [
    ("none", None, {}, ErrorCode.SERIALIZATION_ERROR),
    ("unserializable-object", {"key": "k", "v": Unserializable()}, {}, ErrorCode.SERIALIZATION_ERROR),
    ("serializer-raises", {"key": "k", "explode": True}, {"serializer": picky_serializer},
     ErrorCode.SERIALIZATION_ERROR),
    ("empty-key", {"key": ""}, {}, ErrorCode.INVALID_PARTITION_KEY),
    ("key-257-chars", {"key": "k" * 257}, {}, ErrorCode.INVALID_PARTITION_KEY),
    ("key-not-str", {"key": 42}, {}, ErrorCode.INVALID_PARTITION_KEY),
    ("key-missing", {"value": 1}, {}, ErrorCode.INVALID_PARTITION_KEY),
    ("hash-key-negative", {"key": "k", "h": "-1"}, {"explicit_hash_key": "h"},
     ErrorCode.INVALID_EXPLICIT_HASH_KEY),
    ("hash-key-2^128", {"key": "k", "h": str(2**128)}, {"explicit_hash_key": "h"},
     ErrorCode.INVALID_EXPLICIT_HASH_KEY),
    ("hash-key-not-a-number", {"key": "k", "h": "0x10"}, {"explicit_hash_key": "h"},
     ErrorCode.INVALID_EXPLICIT_HASH_KEY),
    ("data-at-limit", KinesisRecord(b"x" * (MiB - 5), "limit"), {}, None),
    ("data-one-byte-over", KinesisRecord(b"x" * (MiB - 4), "limit"), {}, ErrorCode.RECORD_TOO_LARGE),
]


@pytest.fixture(scope="module")
def front(kinesalite):
    with FaultFront(kinesalite.endpoint_url, FaultConfig(throttle=False)) as front:
        yield front


def _key(element):
    return element["key"] if isinstance(element, dict) else element.partition_key


def _run(front, stream, elements, tmp_path, **options):
    extra = dict(options)
    if "explicit_hash_key" in extra:
        field = extra.pop("explicit_hash_key")
        extra["explicit_hash_key"] = lambda e, f=field: e.get(f) if isinstance(e, dict) else None
    with beam.Pipeline() as p:
        result = p | beam.Create(elements, reshuffle=False) | WriteToKinesis(
            stream,
            partition_key=lambda e: e["key"] if isinstance(e, dict) else _key(e),
            serializer=extra.pop("serializer", None) or _serialize,
            client_config=ClientConfig(region_name="us-east-1", endpoint_url=front.endpoint_url),
            **extra,
        )
        collect(result.written, str(tmp_path / "w"), "CW")
        collect(result.dead_letters, str(tmp_path / "d"), "CD")
    written = [w for w, _, _ in collected(str(tmp_path / "w"))]
    dead = [d for d, _, _ in collected(str(tmp_path / "d"))]
    return written, dead


def _serialize(element):
    from beam_kinesis_sink.convert import default_serializer

    if isinstance(element, KinesisRecord):
        return element.data
    return default_serializer(element)


@pytest.mark.parametrize("case_id, bad, options, code", CASES, ids=[c[0] for c in CASES])
def test_bad_input_catalogue(kinesalite, front, tmp_path, case_id, bad, options, code):
    stream = unique_stream("bad")
    kinesalite.create_stream(stream, shards=2)
    written, dead = _run(front, stream, GOOD[:10] + [bad] + GOOD[10:], tmp_path, **options)
    stored = [r for rs in read_stream(kinesalite, stream).values() for r in rs]
    good_keys = {g["key"] for g in GOOD}
    # The pipeline kept running: every good record is in the stream.
    assert good_keys <= {r["partition_key"] for r in stored}
    if code is None:
        assert not dead
        assert len(written) == len(stored) == len(GOOD) + 1
        assert front.stats().validation_rejections == 0  # the front's exact check agreed
    else:
        assert [d.error_code for d in dead] == [code], case_id
        assert dead[0].error_message and dead[0].attempts == 0
        assert len(written) == len(stored) == len(GOOD)


@pytest.mark.parametrize("case_id", ["stream-does-not-exist", "access-denied"])
def test_stream_level_errors_are_dead_lettered(kinesalite, front, tmp_path, case_id):
    stream = unique_stream("fatal")
    if case_id == "access-denied":
        kinesalite.create_stream(stream, shards=2)
        front.configure(deny_streams=frozenset({stream}))
        expected = "AccessDeniedException"
    else:
        expected = "ResourceNotFoundException"
    before = front.stats()
    try:
        written, dead = _run(front, stream, GOOD, tmp_path)
    finally:
        front.configure(deny_streams=frozenset())
    after = front.stats()
    assert not written
    assert len(dead) == len(GOOD) and {d.error_code for d in dead} == {expected}
    assert all(d.data is not None and d.attempts == 1 for d in dead)  # replayable, not retried
    # The service's words, then what to do about them.
    assert all(d.error_message.endswith(": " + FATAL_ADVICE[expected]) and len(d.error_message) > len(
        FATAL_ADVICE[expected]) + 2 for d in dead), dead[0].error_message
    if case_id == "access-denied":
        assert after.access_denied > before.access_denied  # the front really denied it
        assert read_stream(kinesalite, stream) == {"shardId-000000000000": [], "shardId-000000000001": []}
