"""JSON mapping of Avro values, dotted paths and key strings (pure)."""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.values import (
    MissingField,
    NotAScalar,
    NullField,
    explicit_hash_key_string,
    key_string,
    lookup,
    parse_path,
    to_json_bytes,
    to_jsonable,
)

UTC = datetime.timezone.utc


def test_json_is_compact_and_utf8() -> None:
    assert to_json_bytes({"a": 1, "b": [1, 2], "c": "é"}) == '{"a":1,"b":[1,2],"c":"é"}'.encode()


def test_bytes_are_base64() -> None:
    assert to_jsonable({"b": b"\x00\xff\x10"}) == {"b": base64.b64encode(b"\x00\xff\x10").decode()}
    assert to_jsonable({"b": b""}) == {"b": ""}


def test_decimals_are_plain_strings_with_their_scale() -> None:
    assert to_jsonable([decimal.Decimal("12.30"), decimal.Decimal("-0.05"), decimal.Decimal("1E+3")]) == [
        "12.30", "-0.05", "1000"
    ]


def test_timestamps_dates_times_uuids() -> None:
    value = {
        "aware": datetime.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC),
        "whole_second": datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
        "offset": datetime.datetime(2024, 5, 1, 14, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
        "naive": datetime.datetime(2024, 5, 1, 12, 0, 0, 1),
        "date": datetime.date(2024, 5, 1),
        "time": datetime.time(12, 0, 0, 250),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    }
    assert to_jsonable(value) == {
        "aware": "2024-05-01T12:00:00.250000Z",
        "whole_second": "2024-05-01T12:00:00.000000Z",
        "offset": "2024-05-01T12:00:00.000000Z",
        "naive": "2024-05-01T12:00:00.000001",
        "date": "2024-05-01",
        "time": "12:00:00.000250",
        "uuid": "12345678-1234-5678-1234-567812345678",
    }


def test_non_finite_floats_become_strings() -> None:
    out = to_json_bytes({"x": [float("nan"), float("inf"), -float("inf"), 1.5], "y": {"z": float("nan")}})
    assert json.loads(out) == {"x": ["NaN", "Infinity", "-Infinity", 1.5], "y": {"z": "NaN"}}
    assert b"NaN" not in out.replace(b'"NaN"', b"")  # never a bare NaN


def test_lone_surrogates_stay_valid_json() -> None:
    out = to_json_bytes({"s": "a\ud800b"})
    assert json.loads(out) == {"s": "a\ud800b"}
    out.decode("utf-8")


def test_unknown_types_raise() -> None:
    with pytest.raises(TypeError):
        to_json_bytes({"x": object()})


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
))
def test_plain_json_values_round_trip(value: object) -> None:
    assert json.loads(to_json_bytes(value)) == value


def test_parse_path() -> None:
    assert parse_path("a") == ("a",)
    assert parse_path("a.b.0") == ("a", "b", "0")
    assert parse_path(r"a\.b.c") == ("a.b", "c")
    assert parse_path(r"a\\.b") == ("a\\", "b")
    for bad in ("", "a..b", ".a", "a."):
        with pytest.raises(ValueError):
            parse_path(bad)


def test_lookup() -> None:
    record = {"customer": {"id": "c1", "tags": ["x", {"k": "v"}], "none": None}, "a.b": 1}
    assert lookup(record, parse_path("customer.id")) == "c1"
    assert lookup(record, parse_path("customer.tags.1.k")) == "v"
    assert lookup(record, parse_path(r"a\.b")) == 1
    with pytest.raises(MissingField, match="no field 'customer.name'"):
        lookup(record, parse_path("customer.name"))
    with pytest.raises(MissingField, match="is null"):
        lookup(record, parse_path("customer.none"))
    with pytest.raises(MissingField, match="'customer.none' is null"):
        lookup(record, parse_path("customer.none.x"))
    with pytest.raises(MissingField):
        lookup(record, parse_path("customer.tags.5"))
    with pytest.raises(MissingField, match="customer.id is str"):
        lookup(record, parse_path("customer.id.x"))
    # a null on the way is told apart by its type (an absent field is not a null)
    for path in ("customer.none", "customer.none.x"):
        with pytest.raises(NullField):
            lookup(record, parse_path(path))
    for path in ("customer.name", "customer.tags.5", "customer.id.x"):
        with pytest.raises(MissingField) as info:
            lookup(record, parse_path(path))
        assert not isinstance(info.value, NullField), path


def test_key_string() -> None:
    assert key_string("c1") == "c1"
    assert key_string(42) == "42"
    assert key_string(True) == "true"
    assert key_string(1.5) == "1.5"
    assert key_string(decimal.Decimal("1.50")) == "1.50"
    assert key_string(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert key_string(datetime.datetime(2024, 1, 1, tzinfo=UTC)) == "2024-01-01T00:00:00.000000Z"
    assert key_string(b"ab") == "YWI="
    for bad in ({"a": 1}, [1]):
        with pytest.raises(NotAScalar):
            key_string(bad)


def test_explicit_hash_key_string() -> None:
    assert explicit_hash_key_string(None) is None
    assert explicit_hash_key_string(2**127) == str(2**127)
    assert explicit_hash_key_string("123") == "123"
    assert explicit_hash_key_string(decimal.Decimal("7")) == "7"
    for bad in (True, 1.5, {"a": 1}):
        with pytest.raises(NotAScalar):
            explicit_hash_key_string(bad)


def test_eprint_redacts_credentials(capsys):
    from pipelines.common import eprint

    eprint("could not reach https://AKIAIOSFODNN7EXAMPLE:wJalr@kinesis.example/ :", "AKIAIOSFODNN7EXAMPLE")
    err = capsys.readouterr().err
    assert "AKIAIOSFODNN7EXAMPLE" not in err and "wJalr" not in err
    assert "kinesis.example" in err
