"""Element → KinesisRecord: keys, sizes and checks. Pure.

Every element either becomes a valid :class:`KinesisRecord` (with its size)
or a :class:`Rejection` with one of the pre-request error codes. Nothing
raised by a user function escapes, and every text of a rejection is valid
Unicode (it goes into a ``DeadLetter``, which is encoded as UTF-8). The
default serializer, and what it says when it refuses an element, are in
:mod:`~beam_kinesis_sink.serializer`.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional, Union

from beam_kinesis_sink.limits import (
    MAX_PARTITION_KEY_CHARS,
    Limits,
    check_size,
    describe_int,
    lone_surrogate,
    normalize_explicit_hash_key,
    normalize_partition_key,
    record_size,
)
from beam_kinesis_sink.messages import describe, preview, valid_text
from beam_kinesis_sink.records import ErrorCode, KinesisRecord
from beam_kinesis_sink.serializer import default_serializer

__all__ = ["Converted", "Converter", "FieldGetter", "KeyFn", "Rejection", "Serializer", "as_function",
           "default_serializer"]

KeyFn = Union[Callable[[Any], Any], str, None]
Serializer = Optional[Callable[[Any], bytes]]


@dataclass(frozen=True)
class FieldGetter:
    """``element[name]`` for dicts, ``element.name`` otherwise; picklable."""

    name: str

    def __call__(self, element: Any) -> Any:
        if isinstance(element, dict):
            return element[self.name]
        return getattr(element, self.name)


def as_function(fn: KeyFn) -> Optional[Callable[[Any], Any]]:
    """A key option is a callable, a field name, or None."""
    if fn is None or callable(fn):
        return fn
    if isinstance(fn, str):
        return FieldGetter(fn)
    raise TypeError(f"expected a callable or a field name, got {type(fn).__name__}")


def _key_failure(option: str, fn: Any, exc: Exception) -> str:
    """The message for a key function that raised. A field name that is not
    in the element gets the porting hint: Beam's own Kinesis sink takes a
    constant ``partition_key="pk"``, this one reads a field of that name."""
    if isinstance(fn, FieldGetter) and isinstance(exc, (LookupError, AttributeError)):
        name = valid_text(repr(fn.name))
        one_shard = " (every record then goes to one shard)" if option == "partition_key" else ""
        return (
            f"the element has no field {name} ({describe(exc)}): a str {option} is the name of "
            f"a field to read from each element, not a constant. For one constant key, pass "
            f"{option}=lambda e: {name}{one_shard}"
        )
    if option == "partition_key":
        return f"partition_key function failed (missing key?): {describe(exc)}"
    return f"{option} function failed: {describe(exc)}"


@dataclass(frozen=True)
class Rejection:
    error_code: str
    error_message: str
    data: Optional[bytes]
    partition_key: Optional[str]
    explicit_hash_key: Optional[str]
    element_preview: Optional[str]


#: ``tuple.__new__``: a NamedTuple from its fields in order, a Python call less
_new_tuple = tuple.__new__


class Converted(NamedTuple):
    """A valid record and its size (data plus key, bytes). A NamedTuple, not
    a dataclass: one is made per element, and a frozen dataclass's
    ``__init__`` costs several times a tuple's."""

    record: KinesisRecord
    size: int


@functools.lru_cache(maxsize=64)
def _has_record_schema(cls: type) -> bool:
    """``cls`` is a NamedTuple with :class:`KinesisRecord`'s schema: the same
    field names, in order, with the same types."""
    return (
        getattr(cls, "_fields", None) == KinesisRecord._fields
        and getattr(cls, "__annotations__", None) == KinesisRecord.__annotations__
    )


def _record_of(element: Any) -> Optional[KinesisRecord]:
    """``element`` as a :class:`KinesisRecord`, or None if it is not one.

    A row of another class with KinesisRecord's schema counts as one: Beam
    2.62 decodes a ``KinesisRecord`` that crossed its ``RowCoder``
    (``beam.Create``, a shuffle) as a generated ``BeamSchema_<uuid>``
    NamedTuple with the same fields and types (tests/unit/test_convert_rows.py).
    """
    if isinstance(element, KinesisRecord):
        return element
    try:
        if isinstance(element, tuple) and _has_record_schema(type(element)):
            return KinesisRecord(*element)
    except Exception:  # a type that cannot be hashed or compared: not a record
        pass
    return None


_NO_PARTITION_KEY = (
    "no partition_key was given and the element is not a KinesisRecord: pass "
    "partition_key=lambda e: ... (or the name of a field)"
)


@dataclass(frozen=True)
class Converter:
    """Turns elements into records. Holds only picklable user functions."""

    partition_key: Optional[Callable[[Any], Any]] = None
    serializer: Serializer = None
    explicit_hash_key: Optional[Callable[[Any], Any]] = None
    limits: Limits = Limits()

    def _explicit_hash_key_of(self, element: Any) -> Any:
        if self.explicit_hash_key is not None:
            return self.explicit_hash_key(element)
        record = _record_of(element)
        return record.explicit_hash_key if record is not None else None

    def convert(self, element: Any) -> Union[Converted, Rejection]:
        """A :class:`Converted` record, or a :class:`Rejection`; never raises
        (but for ``BaseException`` s that are not ``Exception`` s)."""
        # The common case in one look: a KinesisRecord of bytes with a short
        # ASCII key and no explicit hash key, and no function of the user's.
        # The general path gives the same answer for it (a property test).
        if (type(element) is KinesisRecord and self.partition_key is None and self.serializer is None
                and self.explicit_hash_key is None):
            data, key, ehk = element
            if (ehk is None and type(data) is bytes and type(key) is str and key and key.isascii()
                    and len(key) <= MAX_PARTITION_KEY_CHARS):
                size = len(data) + len(key)
                if size <= self.limits.max_record_bytes:
                    # Converted's fields in order, without its keyword __new__
                    return _new_tuple(Converted, (element, size))
        return self.convert_generally(element)

    def convert_generally(self, element: Any) -> Union[Converted, Rejection]:
        """:meth:`convert` without its fast path, for any element."""

        def reject(
            code: str,
            message: str,
            data: Optional[bytes] = None,
            key: Optional[str] = None,
            shown: Optional[str] = None,
        ) -> Rejection:
            """``shown``: the element_preview; by default the element's."""
            return Rejection(code, valid_text(message), data, key, None,
                             valid_text(preview(element) if shown is None else shown))

        data: Optional[bytes]
        raw_key: Any
        record = _record_of(element)
        if record is not None and self.partition_key is None and self.serializer is None:
            data, raw_key = record.data, record.partition_key
            if not isinstance(data, (bytes, bytearray)):
                key, _ = normalize_partition_key(raw_key)
                return reject(ErrorCode.SERIALIZATION_ERROR,
                              f"KinesisRecord.data must be bytes, got {type(data).__name__}: make it "
                              "bytes where the record is made (for a str, text.encode('utf-8')), "
                              "or pass a serializer, which the sink applies to KinesisRecord.data",
                              key=key)
            data = bytes(data)
        else:
            source = record.data if record is not None else element
            try:
                data = (self.serializer or default_serializer)(source)
                if isinstance(data, (bytes, bytearray, memoryview)) and type(data) is not bytes:
                    data = bytes(data)
                if type(data) is not bytes:
                    raise TypeError(f"serializer returned {type(data).__name__}, not bytes")
            except Exception as exc:
                return reject(ErrorCode.SERIALIZATION_ERROR, f"serializer failed: {describe(exc)}")
            if self.partition_key is None and record is None:
                return reject(ErrorCode.INVALID_PARTITION_KEY, _NO_PARTITION_KEY, data)
            try:
                raw_key = (self.partition_key(element) if self.partition_key is not None
                           else record.partition_key)
            except Exception as exc:
                return reject(ErrorCode.INVALID_PARTITION_KEY,
                              _key_failure("partition_key", self.partition_key, exc), data)

        key, problem = normalize_partition_key(raw_key)
        if problem:
            # The element is shown only when the key itself cannot be; a key
            # that is not valid Unicode cannot be (its message locates the fault).
            if type(raw_key) is str and lone_surrogate(raw_key) is None:
                return dataclasses.replace(reject(problem[0], problem[1], data, raw_key),
                                           element_preview=None)
            return reject(problem[0], problem[1], data)
        assert key is not None
        try:
            raw_ehk = self._explicit_hash_key_of(element)
        except Exception as exc:
            return reject(ErrorCode.INVALID_EXPLICIT_HASH_KEY,
                          _key_failure("explicit_hash_key", self.explicit_hash_key, exc), data, key)
        ehk, problem = normalize_explicit_hash_key(raw_ehk)
        if problem:
            huge = isinstance(raw_ehk, int) and int.bit_length(raw_ehk) > 256
            shown = describe_int(int.__int__(raw_ehk)) if huge else preview(raw_ehk)
            return reject(problem[0], problem[1], data, key, shown=shown)
        size = record_size(data, key)
        problem = check_size(size, self.limits)
        if problem:
            return Rejection(problem[0], problem[1], data, key, ehk, None)
        return Converted(KinesisRecord(data, key, ehk), size)
