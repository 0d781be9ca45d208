"""The KPL aggregated format written by ``aggregation`` is read back by independent decoders.

Two decoders, both from aws-kinesis-agg: its public deaggregator (Lambda-style event dicts with
base64 data) and its protobuf ``AggregatedRecord`` class. The deaggregator has two traits the
tests work around rather than trust:

* it gives a record without an explicit hash key the table's entry 0 when the table is not empty
  (it never asks ``HasField``), so "no hash key" is checked on the protobuf messages;
* on a bad magic, digest or protobuf it silently returns the input record unchanged, and an error
  while splitting is printed to stderr and ends the iteration early, so every check also counts
  the records and requires ``aggregated`` to be set.
"""

from __future__ import annotations

import base64
import hashlib
from typing import List, Optional, Tuple

from google.protobuf import unknown_fields
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from beam_kinesis_sink.aggregation import (
    DEFAULT_AGGREGATE_BYTES,
    DIGEST_BYTES,
    MAGIC,
    OVERHEAD,
    AggregateBuilder,
    encode_aggregate,
)
from tests import kpl

AggregatedRecord = kpl.AggregatedRecord

Rec = Tuple[bytes, str, Optional[str]]

# No shared example database: two suites may run at once on this machine.
PROPERTY = settings(max_examples=300, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MAX_HASH_KEY = 2**128 - 1

partition_keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=256)
hash_keys = st.one_of(st.sampled_from([0, 1, 127, 128, MAX_HASH_KEY]),
                      st.integers(0, MAX_HASH_KEY)).map(str)


@st.composite
def user_records(draw) -> List[Rec]:
    """1..60 records whose keys often repeat: each key is drawn from a small pool or fresh."""
    pk_pool = draw(st.lists(partition_keys, min_size=1, max_size=3))
    ehk_pool = draw(st.lists(hash_keys, min_size=1, max_size=3))
    pks = st.one_of(st.sampled_from(pk_pool), partition_keys)
    ehks = st.one_of(st.none(), st.sampled_from(ehk_pool), hash_keys)
    return draw(st.lists(st.tuples(st.binary(max_size=2000), pks, ehks), min_size=1, max_size=60))


# ------------------------------------------------------------------ decoders
def _split(blob: bytes) -> bytes:
    """The protobuf body, after checking the magic prefix and the trailing MD5."""
    assert blob[:4] == MAGIC
    body, digest = blob[4:-DIGEST_BYTES], blob[-DIGEST_BYTES:]
    assert digest == hashlib.md5(body).digest()
    return body


def _parse(blob: bytes) -> AggregatedRecord:
    """The protobuf message, required fields present, no unknown fields, canonical bytes."""
    body = _split(blob)
    message = AggregatedRecord()
    message.ParseFromString(body)
    assert message.IsInitialized()
    assert len(unknown_fields.UnknownFieldSet(message)) == 0
    assert all(len(unknown_fields.UnknownFieldSet(r)) == 0 for r in message.records)
    assert message.SerializeToString() == body  # our bytes are what protobuf itself writes
    return message


def _protobuf_records(blob: bytes) -> List[Rec]:
    message = _parse(blob)
    pks, ehks = message.partition_key_table, message.explicit_hash_key_table
    return [(r.data, pks[r.partition_key_index],
             ehks[r.explicit_hash_key_index] if r.HasField("explicit_hash_key_index") else None)
            for r in message.records]


def _deaggregate(blob: bytes) -> List[dict]:
    return kpl.deaggregate(blob)


def assert_decodes_to(blob: bytes, records: List[Rec]) -> None:
    """Both decoders give back exactly ``records``, in order."""
    assert _protobuf_records(blob) == records
    users = _deaggregate(blob)
    assert len(users) == len(records)
    for position, (user, (data, pk, ehk)) in enumerate(zip(users, records)):
        assert user["aggregated"] is True and user["subSequenceNumber"] == position
        assert base64.b64decode(user["data"]) == data
        assert user["partitionKey"] == pk
        if ehk is not None:  # see the module docstring for the None case
            assert user["explicitHashKey"] == ehk


# ------------------------------------------------------------------ properties
@PROPERTY
@given(records=user_records(), split=st.integers(0, 60))
@example(records=[(b"", "k", None)], split=0)
@example(records=[(b"x" * 2000, "\U0010FFFF" * 256, str(MAX_HASH_KEY))] * 3, split=2)
def test_aggregate_round_trips_and_builder_sizes_are_exact(records, split):
    builder = AggregateBuilder()
    decoy: Rec = (b"decoy", "decoy key \U0001F600", "42")  # asked about, never added
    for position, (data, pk, ehk) in enumerate(records):
        if position == split:  # encode() mid-way neither changes the builder nor is stale
            assert builder.encode() == encode_aggregate(records[:position])
        builder.size_with(*decoy)
        predicted = builder.size_with(data, pk, ehk)
        builder.add(data, pk, ehk)
        assert builder.size == predicted
        assert len(builder) == position + 1
    blob = builder.encode()
    assert builder.size == len(blob)
    assert blob == encode_aggregate(records)
    assert_decodes_to(blob, records)

    message = _parse(blob)
    assert list(message.partition_key_table) == list(dict.fromkeys(pk for _, pk, _ in records))
    assert list(message.explicit_hash_key_table) == list(
        dict.fromkeys(ehk for _, _, ehk in records if ehk is not None))


# ------------------------------------------------------------------ examples
def test_empty_builder_is_the_bare_overhead():
    builder = AggregateBuilder()
    assert (OVERHEAD, DEFAULT_AGGREGATE_BYTES) == (20, 51200)
    assert len(builder) == 0 and builder.size == OVERHEAD
    assert builder.encode() == MAGIC + hashlib.md5(b"").digest() == encode_aggregate([])


def test_single_record_bytes_match_a_hand_worked_encoding():
    blob = encode_aggregate([(b"hi", "k", None)])
    # pk table "k"; records[0] = {pk index 0, data "hi"}
    assert blob[:4] == b"\xf3\x89\x9a\xc2"
    assert _split(blob) == bytes.fromhex("0a016b" "1a06" "0800" "1a026869")
    assert_decodes_to(blob, [(b"hi", "k", None)])

    blob = encode_aggregate([(b"hi", "k", "7")])
    # ehk table "7"; the record gains {ehk index 0}
    assert _split(blob) == bytes.fromhex("0a016b" "120137" "1a08" "0800" "1000" "1a026869")
    assert_decodes_to(blob, [(b"hi", "k", "7")])


def test_trailing_digest_is_md5_of_the_protobuf_body():
    blob = encode_aggregate([(b"payload", "pk", "123"), (b"more", "pk2", None)])
    assert blob[-DIGEST_BYTES:] == hashlib.md5(blob[len(MAGIC):-DIGEST_BYTES]).digest()
    corrupted = blob[:-1] + bytes([blob[-1] ^ 1])
    assert _deaggregate(corrupted)[0].get("aggregated") is None  # the decoder does check it


def test_key_tables_are_deduplicated_and_indexes_reused():
    records = [(b"1", "a", None), (b"2", "b", "1"), (b"3", "a", "1"), (b"4", "a", None), (b"5", "b", "2")]
    message = _parse(encode_aggregate(records))
    assert list(message.partition_key_table) == ["a", "b"]
    assert list(message.explicit_hash_key_table) == ["1", "2"]
    assert [r.partition_key_index for r in message.records] == [0, 1, 0, 0, 1]
    has_ehk = [r.HasField("explicit_hash_key_index") for r in message.records]
    assert has_ehk == [False, True, True, False, True]
    assert [r.explicit_hash_key_index for r, has in zip(message.records, has_ehk) if has] == [0, 0, 1]


def test_empty_data_is_written_as_a_present_empty_field():
    blob = encode_aggregate([(b"", "k", None), (b"", "k", "0")])
    message = _parse(blob)
    assert all(r.HasField("data") and r.data == b"" for r in message.records)
    assert_decodes_to(blob, [(b"", "k", None), (b"", "k", "0")])


def test_multi_byte_varints_for_indexes_and_lengths():
    # 300 distinct partition keys and 150 hash keys (every other record): indexes past 127 need two
    # varint bytes, at different records for the two tables; data lengths cross 1, 2 and 3 bytes.
    lengths = [0, 127, 128, 16383, 16384, 1024 * 1024] + [1, 2, 3] * 98
    records = [(bytes([i % 251]) * n, f"key-{i}-é", None if i % 2 else str(MAX_HASH_KEY - i))
               for i, n in enumerate(lengths)]
    builder = AggregateBuilder()
    for record in records:
        predicted = builder.size_with(*record)
        builder.add(*record)
        assert builder.size == predicted
    blob = builder.encode()
    assert builder.size == len(blob)
    assert_decodes_to(blob, records)
    message = _parse(blob)
    assert [r.partition_key_index for r in message.records] == list(range(300))
    assert [r.explicit_hash_key_index for r in message.records[::2]] == list(range(150))


def test_protobuf_parses_exactly_the_fields_written():
    records = [(b"\x00\xff" * 50, "\U0001F600 astral", str(MAX_HASH_KEY)), (b"z", "plain", None)]
    blob = encode_aggregate(records)
    message = _parse(blob)  # IsInitialized, no unknown fields, re-serializes byte-identically
    assert [f.name for f, _ in message.ListFields()] == [
        "partition_key_table", "explicit_hash_key_table", "records"]
    assert [[f.name for f, _ in r.ListFields()] for r in message.records] == [
        ["partition_key_index", "explicit_hash_key_index", "data"], ["partition_key_index", "data"]]
    assert len(blob) == OVERHEAD + message.ByteSize()
