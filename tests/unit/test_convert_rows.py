"""KinesisRecords that are rows of another class.

Beam 2.62 decodes a ``KinesisRecord`` that crossed its ``RowCoder``
(``beam.Create``, a shuffle) as a NamedTuple of a class it generates from the
schema, ``BeamSchema_<uuid>``: same fields, same types, not a KinesisRecord.
The sink must write such a row as the record it is, not serialise it as JSON
(which made every record a dead letter, or a JSON object, on 2.62).
"""

# No ``from __future__ import annotations`` here: the NamedTuples below need
# real field types, as Beam's schemas do (string annotations are not a schema).

import json
import uuid
from typing import NamedTuple, Optional

import pytest
from apache_beam.typehints import schemas

from beam_kinesis_sink.convert import Converted, Converter, Rejection
from beam_kinesis_sink.records import ErrorCode, KinesisRecord


class SameSchema(NamedTuple):
    """Another class with KinesisRecord's fields and types."""

    data: bytes
    partition_key: str
    explicit_hash_key: Optional[str] = None


class Unrelated(NamedTuple):
    user: str
    amount: int


class DataIsText(NamedTuple):
    """KinesisRecord's field names, another type."""

    data: str
    partition_key: str
    explicit_hash_key: Optional[str] = None


class OtherOrder(NamedTuple):
    partition_key: str
    data: bytes
    explicit_hash_key: Optional[str] = None


def beam_generated_row_type() -> type:
    """The class Beam builds for KinesisRecord's schema when it does not know
    the schema's id (what 2.62 does whenever it decodes a KinesisRecord row)."""
    schema = schemas.named_tuple_to_schema(KinesisRecord)
    fresh = type(schema)()
    fresh.CopyFrom(schema)
    fresh.id = str(uuid.uuid4())
    generated = schemas.named_tuple_from_schema(fresh)
    assert generated is not KinesisRecord and generated.__name__.startswith("BeamSchema_")
    return generated


ROW_TYPES = [SameSchema, beam_generated_row_type()]


@pytest.mark.parametrize("row_type", ROW_TYPES, ids=["NamedTuple", "BeamSchema"])
@pytest.mark.parametrize("ehk", [None, "170141183460469231731687303715884105728"])
def test_a_row_with_the_record_schema_is_written_as_a_kinesis_record(row_type, ehk) -> None:
    row = row_type(b"\x00payload", "user-1", ehk)
    assert not isinstance(row, KinesisRecord)
    result = Converter().convert(row)
    assert result == Converter().convert(KinesisRecord(b"\x00payload", "user-1", ehk))
    assert isinstance(result, Converted)
    assert type(result.record) is KinesisRecord
    assert result.record == KinesisRecord(b"\x00payload", "user-1", ehk)
    assert result.size == len(b"\x00payload") + len("user-1")


@pytest.mark.parametrize("row_type", ROW_TYPES, ids=["NamedTuple", "BeamSchema"])
def test_a_row_with_the_record_schema_is_checked_as_a_kinesis_record(row_type) -> None:
    not_bytes = Converter().convert(row_type("text", "k", None))
    assert isinstance(not_bytes, Rejection)
    assert not_bytes.error_code == ErrorCode.SERIALIZATION_ERROR
    assert "KinesisRecord.data must be bytes" in not_bytes.error_message
    bad_key = Converter().convert(row_type(b"d", "", None))
    assert isinstance(bad_key, Rejection) and bad_key.error_code == ErrorCode.INVALID_PARTITION_KEY
    bad_hash = Converter().convert(row_type(b"d", "k", "-1"))
    assert isinstance(bad_hash, Rejection) and bad_hash.error_code == ErrorCode.INVALID_EXPLICIT_HASH_KEY


@pytest.mark.parametrize("row_type", ROW_TYPES, ids=["NamedTuple", "BeamSchema"])
def test_a_serializer_gets_the_rows_data_and_the_row_keeps_its_keys(row_type) -> None:
    result = Converter(serializer=lambda data: data.upper()).convert(row_type(b"abc", "k", "7"))
    assert isinstance(result, Converted)
    assert result.record == KinesisRecord(b"ABC", "k", "7")


def test_an_unrelated_namedtuple_is_still_serialised_as_json() -> None:
    element = Unrelated("u1", 5)
    result = Converter(partition_key=lambda e: e.user).convert(element)
    assert isinstance(result, Converted)
    assert json.loads(result.record.data) == {"user": "u1", "amount": 5}
    assert result.record.partition_key == "u1" and result.record.explicit_hash_key is None
    # and without a partition_key it is not a record: the usual refusal
    refused = Converter().convert(element)
    assert isinstance(refused, Rejection) and refused.error_code == ErrorCode.INVALID_PARTITION_KEY


def test_the_same_field_names_with_another_type_are_not_a_record() -> None:
    element = DataIsText("x", "k")
    refused = Converter().convert(element)
    assert isinstance(refused, Rejection) and refused.error_code == ErrorCode.INVALID_PARTITION_KEY
    result = Converter(partition_key=lambda e: e.partition_key).convert(element)
    assert isinstance(result, Converted)
    assert json.loads(result.record.data) == {"data": "x", "partition_key": "k", "explicit_hash_key": None}


def test_the_same_fields_in_another_order_are_not_a_record() -> None:
    # serialised as JSON, which bytes cannot be in
    refused = Converter(partition_key=lambda e: e.partition_key).convert(OtherOrder("k", b"x"))
    assert isinstance(refused, Rejection) and refused.error_code == ErrorCode.SERIALIZATION_ERROR


def test_a_plain_tuple_is_not_a_record() -> None:
    # serialised as a JSON array, which bytes cannot be in
    result = Converter().convert((b"d", "k", None))
    assert isinstance(result, Rejection) and result.error_code == ErrorCode.SERIALIZATION_ERROR
    text = Converter(partition_key=lambda e: "k").convert(("d", "k", None))
    assert isinstance(text, Converted) and json.loads(text.record.data) == ["d", "k", None]
