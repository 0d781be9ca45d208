"""The migration's record conversion (``ReadAndConvertFn``), without a pipeline:
keys, explicit hash keys, and the dead letters of records whose keys are wrong."""

from __future__ import annotations

from typing import Any, Optional

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beam_kinesis_sink import DeadLetter, ErrorCode, KinesisRecord
from beam_kinesis_sink.limits import check_partition_key, normalize_explicit_hash_key
from pipelines import migrate, sources

RECORD_CODER = beam.coders.registry.get_coder(KinesisRecord)
LETTER_CODER = beam.coders.registry.get_coder(DeadLetter)


def convert(value: Any, explicit_hash_key: Optional[str] = "route.ehk") -> Any:
    settings = migrate.MigrateSettings(
        stream="s", input_format="jsonl", serialize="json", partition_key="user.id",
        explicit_hash_key=explicit_hash_key,
    )
    fn = migrate.ReadAndConvertFn(settings)
    (out,) = list(fn._convert(sources.Record(value, "in.jsonl:7"), settings.partition_key))
    return out


def dead_letter(out: Any) -> Any:
    assert isinstance(out, TaggedOutput) and out.tag == migrate.DEAD_LETTERS, out
    return out.value


def test_explicit_hash_key_given_null_or_absent() -> None:
    data = b'{"user":{"id":"u1"},"route":{"ehk":123}}'
    assert convert({"user": {"id": "u1"}, "route": {"ehk": 123}}) == KinesisRecord(data, "u1", "123")
    # null (the field, or the record holding it) means: no explicit hash key for this record
    for route in ({"ehk": None}, None):
        record = convert({"user": {"id": "u1"}, "route": route})
        assert isinstance(record, KinesisRecord) and record.explicit_hash_key is None, route
    # absent is a dead letter, keyed with the record's partition key
    letter = dead_letter(convert({"user": {"id": "u1"}, "route": {}}))
    assert letter.error_code == ErrorCode.INVALID_EXPLICIT_HASH_KEY and letter.partition_key == "u1"
    assert letter.error_message == "in.jsonl:7: no field 'route.ehk' (the explicit hash key 'route.ehk')"
    letter = dead_letter(convert({"user": {"id": "u1"}, "route": {"ehk": [1]}}))
    assert letter.error_code == ErrorCode.INVALID_EXPLICIT_HASH_KEY
    assert letter.error_message == (
        "in.jsonl:7: the explicit hash key field 'route.ehk' is a list, not a decimal hash key"
    )


def test_partition_key_missing_null_or_not_a_scalar() -> None:
    for user in ({}, {"id": None}, None):
        letter = dead_letter(convert({"user": user}, explicit_hash_key=None))
        assert letter.error_code == ErrorCode.MISSING_PARTITION_KEY, user
        assert letter.error_message.endswith("(the partition key 'user.id')") and letter.data
        assert letter.element_preview == "in.jsonl:7" and letter.partition_key is None
    letter = dead_letter(convert({"user": {"id": {"a": 1}}}, explicit_hash_key=None))
    assert letter.error_code == ErrorCode.INVALID_PARTITION_KEY
    assert letter.error_message == "in.jsonl:7: the partition key field 'user.id' is a record, not a scalar"


def test_a_record_that_cannot_be_serialised() -> None:
    letter = dead_letter(convert({"user": {"id": "u1"}, "bad": object()}, explicit_hash_key=None))
    assert letter.error_code == ErrorCode.SERIALIZATION_ERROR and letter.data is None
    assert letter.error_message.startswith("in.jsonl:7: cannot serialise the record: TypeError: ")
    assert letter.element_preview.startswith("in.jsonl:7: {'user': {'id': 'u1'}, 'bad': <object object at")


#: any text, lone surrogates included (a JSON "\ud800" escape reads as one)
ANY_TEXT = st.text(st.characters(blacklist_categories=()), max_size=300)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.one_of(ANY_TEXT, st.integers(), st.floats(), st.booleans()),
       ehk=st.one_of(st.none(), ANY_TEXT, st.integers(min_value=-1, max_value=2**129)))
def test_every_record_out_can_cross_to_the_sink_and_every_refusal_is_a_letter(key: Any, ehk: Any) -> None:
    """Whatever the keys, the output is a record Beam's coder can carry and
    the sink accepts as it is, or a dead letter Beam's coder can carry,
    naming the line: never an exception (in the pipeline: a failed run)."""
    out = convert({"user": {"id": key}, "route": {"ehk": ehk}})
    if isinstance(out, KinesisRecord):
        RECORD_CODER.encode(out)  # a str with no UTF-8 encoding would raise here
        assert check_partition_key(out.partition_key) is None
        assert normalize_explicit_hash_key(out.explicit_hash_key)[1] is None
        return
    letter = dead_letter(out)
    LETTER_CODER.encode(letter)
    assert letter.error_code in (ErrorCode.INVALID_PARTITION_KEY, ErrorCode.INVALID_EXPLICIT_HASH_KEY)
    assert letter.error_message.startswith("in.jsonl:7: ") and letter.element_preview == "in.jsonl:7"
    assert letter.data
