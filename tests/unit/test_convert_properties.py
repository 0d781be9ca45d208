"""Hypothesis properties of the converter: it never raises, and whatever it
returns is either a record the service will take or a documented rejection.

The inputs are the classes that crashed it: strs with lone surrogates and
astral characters, ints beyond Python's 4,300-digit int/str limit,
non-finite floats, nested containers, objects whose ``repr`` or ``str``
fails, and user functions that return any of those or raise.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from beam_kinesis_sink.convert import Converted, Converter, FieldGetter, Rejection
from beam_kinesis_sink.limits import MAX_HASH_KEY, Limits, record_size
from beam_kinesis_sink.records import ErrorCode, KinesisRecord

# No shared example database: two suites may run at once on this machine.
PROPERTY = settings(max_examples=400, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ------------------------------------------------------------------ values
SPECIAL_CHARS = ["\ud800", "\udbff", "\udc00", "\udcff", "\udfff", "\U0001F600", "\U00010000",
                 "\U0010FFFF", "é", "a", "\x00", " "]
chars = st.one_of(st.characters(exclude_categories=()), st.sampled_from(SPECIAL_CHARS))
texts = st.one_of(
    st.text(chars, max_size=40),
    st.text(chars, min_size=120, max_size=300),  # around the 256-unit key limit
    st.builds(lambda c, n: c * n, st.sampled_from(SPECIAL_CHARS), st.integers(120, 300)),
)


def _huge_int(sign: int, digits: int, extra: int) -> int:
    return sign * (10**digits + extra)


ints = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**130), max_value=2**130),
    st.sampled_from([0, 1, MAX_HASH_KEY, MAX_HASH_KEY + 1, -1, 2**128]),
    st.builds(_huge_int, st.sampled_from([1, -1]), st.integers(4290, 6000), st.integers(0, 10)),
)
digit_strings = st.one_of(
    st.from_regex(r"\A\s?0*[0-9]{1,42}\s?\Z"),
    st.builds(lambda d, n: d * n, st.sampled_from("0123456789"), st.integers(4290, 6000)),
    st.builds(lambda z, n: "0" * z + str(n), st.integers(0, 5000), st.integers(0, 2**129)),
)


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


class SurrogateRepr:
    def __repr__(self) -> str:
        return "<SurrogateRepr \udcff>"


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str exploded")


class Point(NamedTuple):
    x: Any
    y: Any


@dataclasses.dataclass
class Box:
    content: Any


scalars = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.floats(),  # NaN and ±inf included
    texts,
    digit_strings,
    st.binary(max_size=64),
    st.builds(BrokenRepr),
    st.builds(SurrogateRepr),
    st.builds(object),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.one_of(texts, ints, st.floats(), st.none(), st.booleans()), inner,
                        max_size=4),
        st.builds(Point, inner, inner),
        st.builds(Box, inner),
    ),
    max_leaves=12,
)

exceptions = st.one_of(
    st.builds(KeyError, texts),
    st.builds(ValueError, texts),
    st.builds(AttributeError, texts),
    st.builds(Unprintable),
    st.builds(RecursionError),
)


# --------------------------------------------------------------- functions
@dataclasses.dataclass(frozen=True)
class Const:
    value: Any

    def __call__(self, element: Any) -> Any:
        return self.value


@dataclasses.dataclass(frozen=True)
class Raise:
    exc: BaseException

    def __call__(self, element: Any) -> Any:
        raise self.exc


def identity(element: Any) -> Any:
    return element


def functions(returns: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.builds(Const, returns),
        st.builds(Raise, exceptions),
        st.builds(FieldGetter, st.one_of(st.sampled_from(["k", "h", "x", "content"]), texts)),
        st.just(identity),
    )


elements = st.one_of(
    values,
    st.dictionaries(st.sampled_from(["k", "h", "x"]), values, max_size=3),
    st.builds(KinesisRecord, st.one_of(st.binary(max_size=64), values), values, values),
)
key_values = st.one_of(texts, values)
ehk_values = st.one_of(ints, digit_strings, values)
serializer_values = st.one_of(st.binary(max_size=300), st.binary(max_size=3).map(bytearray),
                              values)
limits = st.builds(lambda n: Limits(max_record_bytes=n, max_request_bytes=max(n, 5 * 1024 * 1024)),
                   st.integers(1, 2000))


# --------------------------------------------------------------- checks
def _utf16_units(text: str) -> int:
    return sum(2 if ord(c) > 0xFFFF else 1 for c in text)


def _valid_unicode(text: str) -> bool:
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def check_result(result: Any, converter: Converter) -> None:
    assert isinstance(result, (Converted, Rejection)), result
    if isinstance(result, Converted):
        record = result.record
        assert type(record.data) is bytes
        key = record.partition_key
        assert type(key) is str
        key.encode("utf-8")  # valid Unicode
        assert 1 <= _utf16_units(key) <= 256
        assert result.size == record_size(record.data, key) == len(record.data) + len(key.encode("utf-8"))
        assert result.size <= converter.limits.max_record_bytes
        ehk = record.explicit_hash_key
        if ehk is not None:
            assert type(ehk) is str and ehk.isascii() and ehk.isdigit()
            assert len(ehk) <= 39 and 0 <= int(ehk) <= MAX_HASH_KEY and str(int(ehk)) == ehk
    else:
        assert result.error_code in ErrorCode.PRE_REQUEST, result.error_code
        assert type(result.error_message) is str and result.error_message
        # Everything lands in a DeadLetter, encoded as UTF-8 by RowCoder / Avro.
        for text in (result.error_message, result.partition_key, result.explicit_hash_key,
                     result.element_preview):
            if text is not None:
                assert type(text) is str
                text.encode("utf-8")
        assert result.data is None or type(result.data) is bytes


# --------------------------------------------------------------- properties
@PROPERTY
@given(
    element=elements,
    partition_key=functions(key_values),
    serializer=functions(serializer_values),
    explicit_hash_key=functions(ehk_values),
    limits=limits,
)
# Keys just over the limit, by each path: drawn, they are too rare for the
# key-length check to be tried at all.
@example(element=KinesisRecord(b"d", "a" * 257), partition_key=None, serializer=None,
         explicit_hash_key=None, limits=Limits(max_record_bytes=2000))
@example(element={"x": 1}, partition_key=Const("a" * 257), serializer=None, explicit_hash_key=None,
         limits=Limits(max_record_bytes=2000))
@example(element={"x": 1}, partition_key=Const("\U0001F600" * 129), serializer=None,
         explicit_hash_key=None, limits=Limits(max_record_bytes=2000))
def test_convert_never_raises_and_returns_a_valid_record_or_a_documented_rejection(
    element, partition_key, serializer, explicit_hash_key, limits
):
    converter = Converter(partition_key=partition_key, serializer=serializer,
                          explicit_hash_key=explicit_hash_key, limits=limits)
    check_result(converter.convert(element), converter)


@PROPERTY
@given(key=key_values)
# Always at the limit, whatever Hypothesis draws: 256 units in and 257 out,
# in ASCII and in astral characters (2 units each).
@example(key="k" * 256)
@example(key="k" * 257)
@example(key="\U0001F600" * 128)
@example(key="\U0001F600" * 128 + "k")
def test_partition_key_is_accepted_exactly_when_valid(key):
    result = Converter(partition_key=Const(key), serializer=Const(b"d")).convert(None)
    check_result(result, Converter())
    valid = (isinstance(key, str) and _valid_unicode(key) and 1 <= _utf16_units(key) <= 256)
    assert isinstance(result, Converted) == valid, (key, result)
    if not valid:
        assert result.error_code == ErrorCode.INVALID_PARTITION_KEY
        if isinstance(key, str) and key and not _valid_unicode(key):
            position = next(i for i, c in enumerate(key) if 0xD800 <= ord(c) <= 0xDFFF)
            assert "not valid Unicode" in result.error_message
            assert f"at position {position}" in result.error_message
        elif isinstance(key, str) and key:
            assert f"has {_utf16_units(key)} UTF-16 code units; at most 256" in result.error_message


def _expected_hash_key(value: Any):
    """The canonical decimal of a valid explicit hash key, or None; computed
    without any int/str conversion of a huge value."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    if isinstance(value, int):
        return str(value) if 0 <= value <= MAX_HASH_KEY else None
    text = value.strip()
    if not text or not text.isascii() or not text.isdigit():
        return None
    significant = text.lstrip("0") or "0"
    if len(significant) > 39:
        return None
    return significant if int(significant) <= MAX_HASH_KEY else None


@PROPERTY
@given(value=ehk_values)
def test_explicit_hash_key_is_accepted_exactly_when_in_range(value):
    result = Converter(partition_key=Const("k"), serializer=Const(b"d"),
                       explicit_hash_key=Const(value)).convert(None)
    check_result(result, Converter())
    expected = _expected_hash_key(value)
    if value is None:
        assert isinstance(result, Converted) and result.record.explicit_hash_key is None
    elif expected is None:
        assert isinstance(result, Rejection), result
        assert result.error_code == ErrorCode.INVALID_EXPLICIT_HASH_KEY
        assert len(result.error_message) < 300
    else:
        assert isinstance(result, Converted) and result.record.explicit_hash_key == expected


def _non_finite_inside(value: Any, depth: int = 0) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite_inside(k) or _non_finite_inside(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_non_finite_inside(v) for v in value)
    if isinstance(value, Box):
        return _non_finite_inside(value.content)
    return False


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(),
              st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.text(max_size=4), st.floats()), inner,
                                            max_size=4),
                            st.builds(Box, inner)),
    max_leaves=10,
)


@PROPERTY
@given(value=json_values)
def test_default_serializer_writes_strict_json_or_names_the_non_finite_float(value):
    import json

    result = Converter(partition_key=Const("k")).convert({"v": value})
    check_result(result, Converter())
    if _non_finite_inside(value):
        assert isinstance(result, Rejection) and result.error_code == ErrorCode.SERIALIZATION_ERROR
        assert "not strict JSON" in result.error_message
        assert any(f"the float {name} at {where}element['v']" in result.error_message
                   for name in ("nan", "inf", "-inf") for where in ("", "a key of "))
    else:
        assert isinstance(result, Converted), result
        # Strict parsers refuse NaN / Infinity: so must a strict reading here.
        def refuse(name):
            raise ValueError(name)

        json.loads(result.record.data, parse_constant=refuse)


finite_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=4), inner, max_size=4)),
    max_leaves=10,
)


def _no_json_type_values():
    import datetime
    import decimal
    import uuid

    import numpy

    return st.sampled_from([
        decimal.Decimal("1.10"), datetime.datetime(2024, 5, 1, 12), datetime.date(2024, 5, 1),
        uuid.UUID(int=7), b"raw", bytearray(b"raw"), {1, 2}, frozenset(), numpy.int64(3),
        numpy.arange(3), object(), Ellipsis,
    ])


def _put(value: Any, path: str, bad: Any, data: Any) -> tuple[Any, str]:
    """``value`` with ``bad`` put in place of one of its parts (or of itself), and where."""
    if isinstance(value, list) and value and data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(value) - 1))
        value[i], where = _put(value[i], f"{path}[{i}]", bad, data)
        return value, where
    if isinstance(value, dict) and value and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(value)))
        value[key], where = _put(value[key], f"{path}[{key!r}]", bad, data)
        return value, where
    return bad, path


@PROPERTY
@given(tree=finite_json, bad=_no_json_type_values(), data=st.data())
def test_a_value_json_has_no_type_for_is_named_with_where_it_is_and_what_to_do(tree, bad, data):
    # It was "TypeError: Object of type Decimal is not JSON serializable": no
    # place, nothing to do. Wherever such a value sits, the message names it.
    from beam_kinesis_sink.messages import clip

    inner, where = _put(tree, "element['v']", bad, data)
    element = {"v": inner}
    result = Converter(partition_key=Const("k")).convert(element)
    assert isinstance(result, Rejection) and result.error_code == ErrorCode.SERIALIZATION_ERROR
    assert f"holds a value of type {type(bad).__name__}, which JSON has no type for, at {clip(where, 80)}: " \
        in result.error_message, (where, result.error_message)
    assert "convert it before the sink (" in result.error_message
    assert result.error_message.endswith("default=str).encode())"), result.error_message  # not clipped


# ------------------------------------------------------------------ the fast path
record_datas = st.one_of(st.binary(max_size=64), st.builds(bytearray, st.binary(max_size=8)),
                         st.builds(lambda n: b"x" * n, st.integers(0, 2048)), st.text(max_size=4),
                         st.none())
record_keys = st.one_of(texts, st.sampled_from(["", "k", "a" * 256, "a" * 257, "é", "\ud800"]),
                        st.text(st.characters(max_codepoint=127), min_size=250, max_size=260),
                        st.integers(), st.none())
record_ehks = st.one_of(st.none(), ints, digit_strings, st.sampled_from(["", "0", "x"]))


class KeyText(str):
    """A str subclass as a key: plain str values only on the fast path."""


@PROPERTY
@given(data=record_datas, key=st.one_of(record_keys, st.builds(KeyText, st.text(max_size=4))),
       ehk=record_ehks, limit=st.sampled_from([1, 10, 64, 300, 1024 * 1024]))
@example(data=b"d" * 10, key="k" * 246, ehk=None, limit=256)  # size == the limit: taken
@example(data=b"d" * 11, key="k" * 246, ehk=None, limit=256)  # one byte over: refused
@example(data=b"", key="k", ehk=None, limit=1)
@example(data=b"d", key="a" * 256, ehk=None, limit=1024 * 1024)  # the longest key: taken
@example(data=b"d", key="a" * 257, ehk=None, limit=1024 * 1024)  # one over: refused
@example(data=b"d", key="", ehk=None, limit=1024 * 1024)
def test_the_fast_path_answers_as_the_general_path(data, key, ehk, limit):
    """``convert`` takes a shortcut for plain KinesisRecords: for every record,
    it must give what the general path gives."""
    converter = Converter(limits=Limits(max_record_bytes=limit))
    element = KinesisRecord(data, key, ehk)
    fast, general = converter.convert(element), converter.convert_generally(element)
    assert fast == general
    assert type(fast) is type(general)
    if isinstance(fast, Converted):
        assert type(fast.record) is KinesisRecord and type(fast.record.partition_key) is str
