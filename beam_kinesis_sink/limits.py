"""Kinesis PutRecords limits, and the checks a record must pass before any request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from beam_kinesis_sink.messages import clip
from beam_kinesis_sink.records import ErrorCode

MiB = 1024 * 1024
#: the largest record limit a stream can have (UpdateMaxRecordSize), in KiB
MAX_RECORD_KIB = 10 * 1024
#: the request limit of a stream whose record limit was not raised, and of one that was
DEFAULT_REQUEST_BYTES = 5 * MiB
RAISED_REQUEST_BYTES = 10 * MiB
#: the most records one PutRecords request may carry
MAX_RECORDS_PER_REQUEST = 500
MAX_HASH_KEY = 2**128 - 1
#: digits of MAX_HASH_KEY: a decimal key with more significant digits is out of range
MAX_HASH_KEY_DIGITS = len(str(MAX_HASH_KEY))
#: the most UTF-16 code units a partition key may have. The service, both local
#: servers (kinesalite, kinesis-mock) and Java strings count UTF-16 code units:
#: a character outside the Basic Multilingual Plane (an emoji) counts as 2.
MAX_PARTITION_KEY_CHARS = 256
#: an int with more bits than this is described by its size, not its digits
_DESCRIBE_INT_MAX_BITS = 256


@dataclass(frozen=True)
class Limits:
    """Service limits the packer and validator respect.

    Defaults are the Kinesis defaults. ``max_record_bytes`` counts data plus the
    UTF-8 partition key; a stream whose ``MaxRecordSizeInKiB`` was raised (up to
    10 MiB) can raise it. ``max_request_bytes`` also counts partition keys, as
    the service does.
    """

    max_records_per_request: int = MAX_RECORDS_PER_REQUEST
    max_request_bytes: int = DEFAULT_REQUEST_BYTES
    max_record_bytes: int = 1 * MiB

    def __post_init__(self) -> None:
        if self.max_records_per_request < 1:
            raise ValueError(f"max_records_per_request must be >= 1, got {self.max_records_per_request}")
        if self.max_records_per_request > MAX_RECORDS_PER_REQUEST:
            raise ValueError(f"max_records_per_request ({self.max_records_per_request}) is above the "
                             f"PutRecords limit ({MAX_RECORDS_PER_REQUEST} records)")
        if self.max_record_bytes < 1:
            raise ValueError(f"max_record_bytes must be >= 1, got {self.max_record_bytes}")
        if self.max_record_bytes > MAX_RECORD_KIB * 1024:
            raise ValueError(f"max_record_bytes ({self.max_record_bytes}) is above the largest record "
                             f"limit a stream can have ({MAX_RECORD_KIB * 1024} bytes, 10 MiB)")
        if self.max_request_bytes > RAISED_REQUEST_BYTES:
            raise ValueError(f"max_request_bytes ({self.max_request_bytes}) is above the PutRecords "
                             f"limit ({RAISED_REQUEST_BYTES} bytes, 10 MiB)")
        if self.max_request_bytes < self.max_record_bytes:
            raise ValueError(
                f"max_request_bytes ({self.max_request_bytes}) must be >= max_record_bytes "
                f"({self.max_record_bytes}), or a record at the limit could never be sent"
            )

    def for_stream(self, record_limit_bytes: Optional[int], request_bytes_given: bool) -> Limits:
        """These limits with the record limit a stream reported (None: 1 MiB).
        The request limit follows it (5 MiB, or 10 MiB for a raised stream)
        unless it was given."""
        record = record_limit_bytes or MiB
        request = self.max_request_bytes if request_bytes_given else (
            RAISED_REQUEST_BYTES if record > MiB else DEFAULT_REQUEST_BYTES)
        return Limits(self.max_records_per_request, request, min(record, request))


Problem = Tuple[str, str]  # (error_code, error_message)


def lone_surrogate(text: str) -> Optional[Tuple[int, str]]:
    """``(position, "U+D800")`` of the first lone surrogate in ``text``, or None.

    Such a str (from ``surrogateescape`` decoding, or JSON ``"\\ud800"``) is
    not valid Unicode and has no UTF-8 encoding.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start, f"U+{ord(text[exc.start]):04X}"
    return None


def utf16_code_units(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (astral characters count 2).

    ``text`` must be valid Unicode (see :func:`lone_surrogate`).
    """
    return len(text.encode("utf-16-le")) // 2


def normalize_partition_key(key: object) -> Tuple[Optional[str], Optional[Problem]]:
    """Return the partition key as a plain ``str``, or a problem.

    A key must be a str of 1 to 256 UTF-16 code units that is valid Unicode
    (no lone surrogate), so that it has a UTF-8 encoding. A str subclass (a
    ``str`` enum, say) becomes its plain str value.
    """
    if key is None:
        return None, (ErrorCode.INVALID_PARTITION_KEY,
                      "partition key is missing (None): give every element one (for example a "
                      "fallback in the key function, partition_key=lambda e: e.get('id') or 'none'), "
                      "or filter out the elements without one before the sink")
    if not isinstance(key, str):
        return None, (
            ErrorCode.INVALID_PARTITION_KEY,
            f"partition key must be a str, got {type(key).__name__}: make it one where it is made "
            f"(for a number, partition_key=lambda e: str(e[...]), or str() in the KinesisRecord); "
            "the sink does not guess a text form (42, 42.0 and '42' would hash to different shards)",
        )
    if type(key) is not str:
        try:
            key = str.__str__(key)
        except Exception:  # a str lookalike that is not one
            return None, (
                ErrorCode.INVALID_PARTITION_KEY,
                f"partition key must be a str, got {type(key).__name__}: make it a plain str",
            )
    if not key:
        return None, (
            ErrorCode.INVALID_PARTITION_KEY,
            f"partition key is empty; it needs 1 to {MAX_PARTITION_KEY_CHARS} characters "
            "(UTF-16 code units): give every element a non-empty key (for example a fallback "
            "in the key function), or filter out the others before the sink",
        )
    if key.isascii() and len(key) <= MAX_PARTITION_KEY_CHARS:
        return key, None  # the common case: no surrogate, one code unit a character
    surrogate = lone_surrogate(key)
    if surrogate:
        position, code_point = surrogate
        return None, (
            ErrorCode.INVALID_PARTITION_KEY,
            f"partition key is not valid Unicode: it has a lone surrogate ({code_point}) at "
            f"position {position}, so it has no UTF-8 encoding. It usually comes from bytes "
            "decoded with errors='surrogateescape' or from JSON \"\\ud800\" escapes: decode the "
            "source with errors='replace' (or fix the data), or derive the key from valid text",
        )
    units = utf16_code_units(key)
    if units > MAX_PARTITION_KEY_CHARS:
        return None, (
            ErrorCode.INVALID_PARTITION_KEY,
            f"partition key has {units} UTF-16 code units; at most {MAX_PARTITION_KEY_CHARS} are "
            "allowed (a character outside the Basic Multilingual Plane, such as an emoji, "
            "counts as 2): shorten it; a digest of it, such as hashlib.md5(key.encode()).hexdigest(), "
            "keeps each key's records together",
        )
    return key, None


def check_partition_key(key: object) -> Optional[Problem]:
    """The problem with a partition key, or None (see :func:`normalize_partition_key`)."""
    return normalize_partition_key(key)[1]


def describe_int(number: int) -> str:
    """An int in a message: its digits, or its size when it is huge (Python
    refuses to turn ints of more than 4,300 digits into text)."""
    if number.bit_length() <= _DESCRIBE_INT_MAX_BITS:
        return str(number)
    sign = "a negative" if number < 0 else "an"
    return f"<{sign} int of {number.bit_length()} bits>"


def normalize_explicit_hash_key(value: object) -> Tuple[Optional[str], Optional[Problem]]:
    """Return the canonical decimal string of an explicit hash key, or a problem.

    Accepts ``None`` (no explicit key), an ``int`` or a decimal ``str`` within
    0..2**128-1. ``bool`` is refused: ``True`` is almost surely a bug. Never
    raises: a str of more than 39 significant digits is refused before any
    conversion, and an int is compared with the bounds before it is ever
    turned into text (Python refuses int/str conversions beyond 4,300 digits).
    """
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None, (
            ErrorCode.INVALID_EXPLICIT_HASH_KEY,
            f"explicit hash key must be a decimal str or int, got {type(value).__name__}",
        )
    try:
        # Plain values from subclasses (an IntEnum, a str enum): their own
        # methods are not trusted.
        plain: object = int.__int__(value) if isinstance(value, int) else str.__str__(value)
    except Exception:
        return None, (
            ErrorCode.INVALID_EXPLICIT_HASH_KEY,
            f"explicit hash key must be a decimal str or int, got {type(value).__name__}",
        )
    if isinstance(plain, str):
        text = plain.strip()
        if not text.isascii() or not text.isdigit():
            return None, (
                ErrorCode.INVALID_EXPLICIT_HASH_KEY,
                f"explicit hash key {clip(repr(plain[:60]), 80)} is not a non-negative decimal integer",
            )
        significant = text.lstrip("0") or "0"
        if len(significant) > MAX_HASH_KEY_DIGITS:
            return None, (
                ErrorCode.INVALID_EXPLICIT_HASH_KEY,
                f"explicit hash key {significant[:20]}... has {len(significant)} digits; it must "
                f"be in 0..2**128-1 (at most {MAX_HASH_KEY_DIGITS} digits)",
            )
        number = int(significant)
    else:
        assert isinstance(plain, int)
        number = plain
    if number < 0 or number > MAX_HASH_KEY:
        return None, (
            ErrorCode.INVALID_EXPLICIT_HASH_KEY,
            f"explicit hash key {describe_int(number)} is outside 0..2**128-1",
        )
    return str(number), None


def record_size(data: bytes, partition_key: str) -> int:
    """Bytes a record counts against the limits: data plus the UTF-8 partition key.

    ``partition_key`` must have passed :func:`normalize_partition_key`.
    """
    if partition_key.isascii():
        return len(data) + len(partition_key)
    return len(data) + len(partition_key.encode("utf-8"))


def check_size(size: int, limits: Limits, whose: str = "the limit") -> Optional[Problem]:
    """``RecordTooLarge`` with a message naming ``whose`` limit, or None."""
    if size > limits.max_record_bytes:
        return (
            ErrorCode.RECORD_TOO_LARGE,
            f"record is {size} bytes (data + partition key); {whose} is {limits.max_record_bytes}: "
            "make the element smaller, or raise the stream's record limit "
            "(UpdateMaxRecordSize, up to 10 MiB)",
        )
    return None
