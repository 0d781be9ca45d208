import pytest

from beam_kinesis_sink.convert import Converted, Converter, Rejection, default_serializer
from beam_kinesis_sink.limits import Limits, normalize_explicit_hash_key
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
    with pytest.raises(TypeError):
        default_serializer(object())


def test_limits_validation():
    with pytest.raises(ValueError):
        Limits(max_records_per_request=0)
    with pytest.raises(ValueError):
        Limits(max_request_bytes=10, max_record_bytes=20)
    ten_mib = Limits(max_record_bytes=10 * 1024 * 1024, max_request_bytes=10 * 1024 * 1024)
    assert ten_mib.max_record_bytes == 10 * 1024 * 1024
