import pytest

from beam_kinesis_sink.convert import Converted, Converter, FieldGetter, Rejection, default_serializer
from beam_kinesis_sink.limits import (
    MAX_PARTITION_KEY_CHARS,
    Limits,
    check_partition_key,
    normalize_explicit_hash_key,
    normalize_partition_key,
    utf16_code_units,
)
from beam_kinesis_sink.records import ErrorCode, KinesisRecord

MAX = 2**128 - 1


@pytest.mark.parametrize(
    "value, expected, code",
    [
        (None, None, None),
        ("0", "0", None),
        (0, "0", None),
        (str(MAX), str(MAX), None),
        (MAX, str(MAX), None),
        (" 17 ", "17", None),
        ("-1", None, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
        (-1, None, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
        (str(2**128), None, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
        (2**128, None, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
        ("abc", None, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
        ("1e5", None, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
        ("", None, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
        ("١٢", None, ErrorCode.INVALID_EXPLICIT_HASH_KEY),  # Arabic-Indic digits
        (1.5, None, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
        (True, None, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
    ],
)
def test_explicit_hash_key_table(value, expected, code):
    normalized, problem = normalize_explicit_hash_key(value)
    assert normalized == expected
    assert (problem[0] if problem else None) == code


def by_user(e):
    return e["user"]


class Unserializable:
    pass


def boom(_):
    raise RuntimeError("serializer exploded")


LIMITS = Limits(max_record_bytes=100, max_request_bytes=1000)


@pytest.mark.parametrize(
    "element, kwargs, code",
    [
        ({"user": "u1"}, {}, None),
        (None, {}, ErrorCode.SERIALIZATION_ERROR),
        (Unserializable(), {}, ErrorCode.SERIALIZATION_ERROR),
        ({"user": "u1"}, {"serializer": boom}, ErrorCode.SERIALIZATION_ERROR),
        ({"user": "u1"}, {"serializer": lambda e: "not bytes"}, ErrorCode.SERIALIZATION_ERROR),
        ({"no_user": 1}, {}, ErrorCode.INVALID_PARTITION_KEY),
        ({"user": ""}, {}, ErrorCode.INVALID_PARTITION_KEY),
        ({"user": "k" * 257}, {}, ErrorCode.INVALID_PARTITION_KEY),
        ({"user": "k" * 256}, {}, None),
        ({"user": 7}, {}, ErrorCode.INVALID_PARTITION_KEY),
        ({"user": None}, {}, ErrorCode.INVALID_PARTITION_KEY),
        ({"user": "u", "h": "-1"}, {"explicit_hash_key": "h"}, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
        ({"user": "u", "h": str(2**128)}, {"explicit_hash_key": "h"}, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
        ({"user": "u", "h": "x"}, {"explicit_hash_key": "h"}, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
        ({"user": "u"}, {"explicit_hash_key": "h"}, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
        ({"user": "u", "h": 5}, {"explicit_hash_key": "h"}, None),
    ],
)
def test_conversion_table(element, kwargs, code):
    converter = Converter(partition_key=by_user, limits=Limits(), **{
        k: (v if k != "explicit_hash_key" else (lambda e, f=v: e[f])) for k, v in kwargs.items()
    })
    result = converter.convert(element)
    if code is None:
        assert isinstance(result, Converted), result
        assert result.size == len(result.record.data) + len(result.record.partition_key.encode())
    else:
        assert isinstance(result, Rejection)
        assert result.error_code == code
        assert result.error_message


def test_record_size_boundary_counts_the_key():
    converter = Converter(partition_key=lambda e: "kk", serializer=lambda e: e, limits=LIMITS)
    at_limit = converter.convert(b"x" * 98)
    over = converter.convert(b"x" * 99)
    assert isinstance(at_limit, Converted) and at_limit.size == 100
    assert isinstance(over, Rejection) and over.error_code == ErrorCode.RECORD_TOO_LARGE
    assert "101" in over.error_message and over.data == b"x" * 99


def test_multibyte_key_counts_utf8_bytes():
    converter = Converter(partition_key=lambda e: "é" * 10, serializer=lambda e: e, limits=LIMITS)
    result = converter.convert(b"x" * 80)  # 80 + 20 bytes
    assert isinstance(result, Converted) and result.size == 100
    assert isinstance(converter.convert(b"x" * 81), Rejection)


def test_kinesis_record_elements_pass_through():
    converter = Converter(limits=LIMITS)
    result = converter.convert(KinesisRecord(b"raw", "pk", "12"))
    assert isinstance(result, Converted)
    assert result.record == KinesisRecord(b"raw", "pk", "12")
    bad = converter.convert(KinesisRecord("not-bytes", "pk"))
    assert isinstance(bad, Rejection) and bad.error_code == ErrorCode.SERIALIZATION_ERROR
    nokey = Converter(limits=LIMITS).convert({"a": 1})
    assert isinstance(nokey, Rejection) and nokey.error_code == ErrorCode.INVALID_PARTITION_KEY


def test_default_serializer():
    assert default_serializer(b"\x00\x01") == b"\x00\x01"
    assert default_serializer("héllo") == "héllo".encode()
    assert default_serializer({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'.encode()
    no_type = (r"^the element holds a value of type object, which JSON has no type for, at element: "
               r"convert it before the sink \(turn it into a str, number, list or dict\)")
    with pytest.raises(TypeError, match=no_type):
        default_serializer(object())
    tuple_key = (r"^the element cannot be written as JSON: keys must be str.*not tuple; "
                 "convert what JSON has no type for before the sink")
    with pytest.raises(TypeError, match=tuple_key):
        default_serializer({(1, 2): "a tuple key"})
    rejected = Converter(partition_key=lambda e: "k").convert(None)
    assert isinstance(rejected, Rejection) and rejected.error_code == ErrorCode.SERIALIZATION_ERROR
    assert "the element is None: there is nothing to write; filter None out" in rejected.error_message


def test_limits_validation():
    with pytest.raises(ValueError):
        Limits(max_records_per_request=0)
    with pytest.raises(ValueError):
        Limits(max_request_bytes=10, max_record_bytes=20)
    ten_mib = Limits(max_record_bytes=10 * 1024 * 1024, max_request_bytes=10 * 1024 * 1024)
    assert ten_mib.max_record_bytes == 10 * 1024 * 1024


# ------------------------------------------------------------ hardening

EMOJI = "\U0001F600"  # one character, two UTF-16 code units, four UTF-8 bytes


def _const(value):
    return lambda e: value


@pytest.mark.parametrize("key", ["user-\udcff", "\ud800", "a\udbffb", "ok-" + "\udc80" * 3])
def test_partition_key_with_a_lone_surrogate_is_rejected_not_raised(key):
    position = next(i for i, c in enumerate(key) if 0xD800 <= ord(c) <= 0xDFFF)
    result = Converter(partition_key=_const(key), limits=LIMITS).convert({"a": 1})
    assert isinstance(result, Rejection)
    assert result.error_code == ErrorCode.INVALID_PARTITION_KEY
    assert "not valid Unicode" in result.error_message
    assert f"lone surrogate (U+{ord(key[position]):04X}) at position {position}" in result.error_message
    assert "errors='replace'" in result.error_message  # what to do
    # Nothing in the rejection is unencodable: it goes into a UTF-8 dead letter.
    assert result.partition_key is None
    for text in (result.error_message, result.element_preview):
        text.encode("utf-8")


def test_kinesis_record_with_a_lone_surrogate_key_is_rejected():
    result = Converter(limits=LIMITS).convert(KinesisRecord(b"x", "user-\udcff"))
    assert isinstance(result, Rejection) and result.error_code == ErrorCode.INVALID_PARTITION_KEY
    assert "position 5" in result.error_message


@pytest.mark.parametrize(
    "element, where",
    [
        ("text-\udcff", "position 5"),
        ({"a": "\ud800"}, "element['a']"),
        ({"a": [1, {"b": "x\udfff"}]}, "element['a'][1]['b']"),
        ({"\udcff": 1}, "a key of element"),
    ],
)
def test_elements_that_are_not_valid_unicode_are_serialization_errors(element, where):
    result = Converter(partition_key=_const("k"), limits=Limits()).convert(element)
    assert isinstance(result, Rejection), result
    assert result.error_code == ErrorCode.SERIALIZATION_ERROR
    assert "not valid Unicode" in result.error_message and "lone surrogate" in result.error_message
    assert where in result.error_message
    assert "serializer of your own" in result.error_message  # not clipped away
    result.error_message.encode("utf-8")
    result.element_preview.encode("utf-8")


@pytest.mark.parametrize(
    "value",
    ["9" * 4301, "1" + "0" * 10_000, " " + "7" * 5000 + " ", 10**4301, -(10**5000), 2**20000],
    ids=["str-4301-digits", "str-10001-digits", "str-5000-digits-spaced", "int-10**4301",
         "int--10**5000", "int-2**20000"],
)
def test_explicit_hash_key_beyond_python_int_str_limit_is_rejected(value):
    normalized, problem = normalize_explicit_hash_key(value)
    assert normalized is None and problem[0] == ErrorCode.INVALID_EXPLICIT_HASH_KEY
    assert len(problem[1]) < 200  # no 4,300-digit number in a message
    result = Converter(partition_key=_const("k"), explicit_hash_key=_const(value),
                       limits=LIMITS).convert({"a": 1})
    assert isinstance(result, Rejection) and result.error_code == ErrorCode.INVALID_EXPLICIT_HASH_KEY
    assert len(result.element_preview) < 250


def test_explicit_hash_key_with_leading_zeros_is_counted_by_its_value():
    assert normalize_explicit_hash_key("0" * 100 + "42") == ("42", None)
    assert normalize_explicit_hash_key("0" * 5000 + str(MAX)) == (str(MAX), None)
    assert normalize_explicit_hash_key("0" * 5000)[0] == "0"
    assert normalize_explicit_hash_key("0" * 5000 + str(MAX + 1))[1][0] == ErrorCode.INVALID_EXPLICIT_HASH_KEY
    assert "39 digits" in normalize_explicit_hash_key("1" * 40)[1][1]


@pytest.mark.parametrize(
    "key, units, ok",
    [
        (EMOJI * 128, 256, True),
        (EMOJI * 129, 258, False),
        (EMOJI * 256, 512, False),
        ("k" * 255 + EMOJI, 257, False),
        ("k" * 254 + EMOJI, 256, True),
        ("é" * 256, 256, True),  # two UTF-8 bytes, one UTF-16 unit
    ],
)
def test_partition_key_limit_counts_utf16_code_units(key, units, ok):
    assert utf16_code_units(key) == units
    problem = check_partition_key(key)
    result = Converter(partition_key=_const(key), serializer=lambda e: e).convert(b"x")
    if ok:
        assert problem is None and isinstance(result, Converted)
        assert result.size == 1 + len(key.encode("utf-8"))
    else:
        assert problem[0] == ErrorCode.INVALID_PARTITION_KEY
        assert f"has {units} UTF-16 code units; at most {MAX_PARTITION_KEY_CHARS}" in problem[1]
        assert isinstance(result, Rejection) and result.error_message == problem[1]


def test_str_subclass_key_becomes_a_plain_str():
    import enum

    class Region(str, enum.Enum):
        EU = "eu"

    key, problem = normalize_partition_key(Region.EU)
    assert problem is None and key == "eu" and type(key) is str
    result = Converter(partition_key=_const(Region.EU)).convert({"a": 1})
    assert isinstance(result, Converted) and type(result.record.partition_key) is str


@pytest.mark.parametrize(
    "element, shown",
    [
        (float("nan"), "the float nan at element"),
        ({"a": [1, float("inf")]}, "the float inf at element['a'][1]"),
        ({"x": {"y": float("-inf")}}, "the float -inf at element['x']['y']"),
        ({float("nan"): 1}, "the float nan at a key of element"),
    ],
)
def test_default_serializer_is_strict_json(element, shown):
    with pytest.raises(ValueError) as raised:
        default_serializer(element)
    assert shown in str(raised.value)
    result = Converter(partition_key=_const("k")).convert(element)
    assert isinstance(result, Rejection) and result.error_code == ErrorCode.SERIALIZATION_ERROR
    assert shown in result.error_message
    assert "None" in result.error_message and "serializer of your own" in result.error_message


def test_default_serializer_strict_json_in_dataclasses_and_namedtuples():
    import dataclasses
    from typing import NamedTuple

    @dataclasses.dataclass
    class Point:
        x: float

    class Reading(NamedTuple):
        value: float

    with pytest.raises(ValueError, match=r"nan at element\['p'\]\.x"):
        default_serializer({"p": Point(float("nan"))})
    with pytest.raises(ValueError, match=r"inf at element\['value'\]"):
        default_serializer(Reading(float("inf")))
    assert default_serializer({"p": Point(1.5)}) == b'{"p":{"x":1.5}}'


@pytest.mark.parametrize("kind", ["dict", "object"])
def test_field_name_partition_key_missing_explains_the_porting_trap(kind):
    element = {"user": "u"} if kind == "dict" else object()
    result = Converter(partition_key=FieldGetter("pk"), serializer=lambda e: b"x").convert(element)
    assert isinstance(result, Rejection) and result.error_code == ErrorCode.INVALID_PARTITION_KEY
    message = result.error_message
    assert "no field 'pk'" in message
    assert "a str partition_key is the name of a field" in message
    assert "partition_key=lambda e: 'pk'" in message


def test_field_name_explicit_hash_key_missing_explains_the_porting_trap():
    result = Converter(partition_key=_const("k"), explicit_hash_key=FieldGetter("12345")).convert({"a": 1})
    assert isinstance(result, Rejection) and result.error_code == ErrorCode.INVALID_EXPLICIT_HASH_KEY
    assert "no field '12345'" in result.error_message
    assert "a str explicit_hash_key is the name of a field" in result.error_message
    assert "explicit_hash_key=lambda e: '12345'" in result.error_message
    assert result.partition_key == "k"


def test_a_lambda_that_fails_keeps_its_message():
    result = Converter(partition_key=by_user).convert({"no_user": 1})
    assert result.error_message == "partition_key function failed (missing key?): KeyError: 'user'"


def test_exceptions_whose_text_cannot_be_read_or_encoded():
    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("no str for you")

    def raises(exc):
        def fn(_):
            raise exc
        return fn

    for exc in (Unprintable(), ValueError("bad \udcff"), KeyError("\ud800")):
        for kwargs, code in (
            ({"serializer": raises(exc)}, ErrorCode.SERIALIZATION_ERROR),
            ({"partition_key": raises(exc)}, ErrorCode.INVALID_PARTITION_KEY),
            ({"explicit_hash_key": raises(exc)}, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
        ):
            kwargs.setdefault("partition_key", _const("k"))
            result = Converter(**kwargs).convert({"a": 1})
            assert isinstance(result, Rejection) and result.error_code == code
            assert type(exc).__name__ in result.error_message
            result.error_message.encode("utf-8")


def test_broken_repr_and_unencodable_repr_in_previews():
    class BrokenRepr:
        def __repr__(self):
            raise RuntimeError("nope")

    class SurrogateRepr:
        def __repr__(self):
            return "<\udcff>"

    for element in (BrokenRepr(), SurrogateRepr()):
        result = Converter(partition_key=_const("k")).convert(element)
        assert isinstance(result, Rejection) and result.error_code == ErrorCode.SERIALIZATION_ERROR
        result.element_preview.encode("utf-8")


@pytest.mark.parametrize("value", ["\U0010ffff" * 60, "\udcff" * 60, "x" * 10_000])
def test_explicit_hash_key_message_stays_short(value):
    _, problem = normalize_explicit_hash_key(value)
    assert problem[0] == ErrorCode.INVALID_EXPLICIT_HASH_KEY
    assert len(problem[1]) < 160
    problem[1].encode("utf-8")


@pytest.mark.parametrize("key", [42, 4.2, True, b"42", ("a",)])
def test_a_key_that_is_not_a_str_says_how_to_make_it_one(key):
    result = Converter(partition_key=FieldGetter("id"), serializer=lambda e: b"d").convert({"id": key})
    assert isinstance(result, Rejection) and result.error_code == ErrorCode.INVALID_PARTITION_KEY
    assert result.error_message.startswith(f"partition key must be a str, got {type(key).__name__}: ")
    assert "partition_key=lambda e: str(e[...])" in result.error_message


@pytest.mark.parametrize("key, remedy", [
    (None, "give every element one"),
    ("", "give every element a non-empty key"),
    ("k" * 257, "shorten it"),
    ("\U0001f600" * 129, "shorten it"),
])
def test_a_refused_partition_key_says_what_to_do(key, remedy):
    key_out, problem = normalize_partition_key(key)
    assert key_out is None and problem is not None
    code, message = problem
    assert code == ErrorCode.INVALID_PARTITION_KEY
    assert remedy in message, message


def test_a_kinesis_record_with_str_data_says_how_to_fix_it_and_the_fix_works():
    rejected = Converter().convert(KinesisRecord("text", "k"))
    assert isinstance(rejected, Rejection) and rejected.error_code == ErrorCode.SERIALIZATION_ERROR
    assert "text.encode('utf-8')" in rejected.error_message and "serializer" in rejected.error_message
    assert rejected.partition_key == "k"  # the letter keeps the record's key, for a replay
    fixed = Converter(serializer=lambda text: text.encode("utf-8")).convert(KinesisRecord("text", "k"))
    assert isinstance(fixed, Converted) and fixed.record == KinesisRecord(b"text", "k")
