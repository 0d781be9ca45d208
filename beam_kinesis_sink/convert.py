"""Element → KinesisRecord: serialisation, keys and checks. Pure.

Every element either becomes a valid :class:`KinesisRecord` (with its size)
or a :class:`Rejection` with one of the pre-request error codes. Nothing
raised by a user function escapes.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from beam_kinesis_sink.limits import (
    Limits,
    check_partition_key,
    check_size,
    normalize_explicit_hash_key,
    record_size,
)
from beam_kinesis_sink.messages import describe, preview
from beam_kinesis_sink.records import ErrorCode, KinesisRecord

KeyFn = Union[Callable[[Any], Any], str, None]
Serializer = Optional[Callable[[Any], bytes]]

def _jsonable(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        return value._asdict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def default_serializer(element: Any) -> bytes:
    """bytes as-is, str as UTF-8, anything else as compact JSON."""
    if isinstance(element, bytes):
        return element
    if isinstance(element, (bytearray, memoryview)):
        return bytes(element)
    if isinstance(element, str):
        return element.encode("utf-8")
    if element is None:
        raise TypeError("element is None")
    if hasattr(element, "_asdict"):
        element = element._asdict()
    return json.dumps(element, separators=(",", ":"), ensure_ascii=False, default=_jsonable).encode(
        "utf-8"
    )


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


@dataclass(frozen=True)
class Rejection:
    error_code: str
    error_message: str
    data: Optional[bytes]
    partition_key: Optional[str]
    explicit_hash_key: Optional[str]
    element_preview: Optional[str]


@dataclass(frozen=True)
class Converted:
    record: KinesisRecord
    size: int


@dataclass(frozen=True)
class Converter:
    """Turns elements into records. Holds only picklable user functions."""

    partition_key: Optional[Callable[[Any], Any]] = None
    serializer: Serializer = None
    explicit_hash_key: Optional[Callable[[Any], Any]] = None
    limits: Limits = Limits()

    def _partition_key_of(self, element: Any) -> Any:
        if self.partition_key is not None:
            return self.partition_key(element)
        if isinstance(element, KinesisRecord):
            return element.partition_key
        raise LookupError("no partition_key was given and the element is not a KinesisRecord")

    def _explicit_hash_key_of(self, element: Any) -> Any:
        if self.explicit_hash_key is not None:
            return self.explicit_hash_key(element)
        if isinstance(element, KinesisRecord):
            return element.explicit_hash_key
        return None

    def convert(self, element: Any) -> Union[Converted, Rejection]:
        def reject(code: str, message: str, data: Optional[bytes] = None, key: Any = None) -> Rejection:
            return Rejection(code, message, data, key if isinstance(key, str) else None, None,
                             preview(element))

        data: Optional[bytes]
        if isinstance(element, KinesisRecord) and self.partition_key is None and self.serializer is None:
            data, key, raw_ehk = element.data, element.partition_key, element.explicit_hash_key
            if not isinstance(data, (bytes, bytearray)):
                return reject(ErrorCode.SERIALIZATION_ERROR,
                              f"KinesisRecord.data must be bytes, got {type(data).__name__}", key=key)
            data = bytes(data)
        else:
            source = element.data if isinstance(element, KinesisRecord) else element
            try:
                data = (self.serializer or default_serializer)(source)
                if isinstance(data, (bytearray, memoryview)):
                    data = bytes(data)
                if not isinstance(data, bytes):
                    raise TypeError(f"serializer returned {type(data).__name__}, not bytes")
            except Exception as exc:
                return reject(ErrorCode.SERIALIZATION_ERROR, f"serializer failed: {describe(exc)}")
            try:
                key = self._partition_key_of(element)
            except Exception as exc:
                return reject(ErrorCode.INVALID_PARTITION_KEY,
                              f"partition_key function failed (missing key?): {describe(exc)}", data)
            try:
                raw_ehk = self._explicit_hash_key_of(element)
            except Exception as exc:
                return reject(ErrorCode.INVALID_EXPLICIT_HASH_KEY,
                              f"explicit_hash_key function failed: {describe(exc)}", data, key)

        problem = check_partition_key(key)
        if problem:
            rejection = reject(problem[0], problem[1], data, key)
            # The element is shown only when the key itself cannot be.
            return rejection if not isinstance(key, str) else dataclasses.replace(rejection,
                                                                                 element_preview=None)
        ehk, problem = normalize_explicit_hash_key(raw_ehk)
        if problem:
            return Rejection(problem[0], problem[1], data, key, None, preview(raw_ehk))
        size = record_size(data, key)
        problem = check_size(size, self.limits)
        if problem:
            return Rejection(problem[0], problem[1], data, key, ehk, None)
        return Converted(KinesisRecord(data, key, ehk), size)
