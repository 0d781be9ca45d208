"""Element → KinesisRecord: serialisation, keys and checks. Pure.

Every element either becomes a valid :class:`KinesisRecord` (with its size)
or a :class:`Rejection` with one of the pre-request error codes. Nothing
raised by a user function escapes, and every text of a rejection is valid
Unicode (it goes into a ``DeadLetter``, which is encoded as UTF-8).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, NamedTuple, Optional, Tuple, Union

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
from beam_kinesis_sink.messages import clip, describe, preview
from beam_kinesis_sink.records import ErrorCode, KinesisRecord

KeyFn = Union[Callable[[Any], Any], str, None]
Serializer = Optional[Callable[[Any], bytes]]

#: most values :func:`_find_in` looks at when it explains a refused element
_FIND_MAX_NODES = 100_000


def _jsonable(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        return value._asdict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _is_record(value: Any) -> bool:
    """A NamedTuple or a dataclass instance: written as a JSON object."""
    return hasattr(value, "_asdict") or (dataclasses.is_dataclass(value) and not isinstance(value, type))


def _children(path: str, value: Any) -> Iterator[Tuple[str, Any]]:
    """(path, child) of a container, as the default serializer's JSON sees it."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"a key of {path}", k
            yield f"{path}[{_safe_repr(k)}]", v
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield f"{path}[{i}]", v
    elif _is_record(value):
        for k, v in _jsonable(value).items():
            yield f"{path}.{k}", v


def _find_in(element: Any, bad: Callable[[Any], bool]) -> Optional[Tuple[str, Any]]:
    """``(path, value)`` of the first value in ``element`` that is ``bad``, in
    the order JSON encodes them (depth-first); None if there is none among the
    first values looked at. Never raises, follows no cycle."""
    seen: set[int] = set()
    stack: list[Tuple[str, Any]] = [("element", element)]
    looked = 0
    try:
        while stack and looked < _FIND_MAX_NODES:
            path, value = stack.pop()
            looked += 1
            if bad(value):
                return path, value
            if isinstance(value, (str, bytes, int, float)) or value is None or id(value) in seen:
                continue
            seen.add(id(value))
            stack.extend(reversed(list(_children(path, value))))
    except Exception:
        return None
    return None


def _non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _invalid_unicode(value: Any) -> bool:
    return isinstance(value, str) and lone_surrogate(value) is not None


#: what JSON holds as it is (bool is an int), and the containers it writes as arrays and objects
_JSON_TYPES = (str, int, float, type(None), dict, list, tuple)


def _not_json(value: Any) -> bool:
    """A value the default serializer's JSON has no type for (its containers:
    dict, list, tuple, NamedTuple, dataclass)."""
    return not (isinstance(value, _JSON_TYPES) or _is_record(value))


#: what to do with a value JSON has no type for, by type name
_JSON_ADVICE = {
    "bytes": "base64.b64encode(x).decode()",
    "bytearray": "base64.b64encode(x).decode()",
    "Decimal": "str(x) keeps every digit",
    "datetime": "x.isoformat()",
    "date": "x.isoformat()",
    "time": "x.isoformat()",
    "UUID": "str(x)",
    "ndarray": "x.tolist()",
    "set": "sorted(x) or list(x)",
    "frozenset": "sorted(x) or list(x)",
}


def _no_json_type(element: Any, exc: TypeError) -> str:
    """The message for an element the default serializer's JSON cannot encode:
    what is where, and what to do."""
    found = _find_in(element, _not_json)
    if found is None:  # e.g. a dict key that is a tuple
        return (f"the element cannot be written as JSON: {exc}; convert what JSON has no type for "
                "before the sink, or pass a serializer of your own")
    path, value = found
    kind = type(value).__name__
    if kind in _JSON_ADVICE:
        hint = _JSON_ADVICE[kind]
    elif hasattr(value, "item") and callable(value.item):  # a numpy scalar
        hint = "x.item() gives the Python number"
    else:
        hint = "turn it into a str, number, list or dict"
    return (f"the element holds a value of type {kind}, which JSON has no type for, at {clip(path, 80)}: "
            f"convert it before the sink ({hint}), or pass a serializer of your own "
            "(e.g. lambda e: json.dumps(e, default=str).encode())")


def _safe_repr(value: Any) -> str:
    return _valid_text(preview(value))


def _valid_text(text: str) -> str:
    """``text`` with any lone surrogate written as a ``\\udcff`` escape, so it
    can be encoded as UTF-8 (into a dead letter, a log line)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _describe(exc: BaseException) -> str:
    """:func:`describe`, even for an exception whose ``str()`` fails."""
    try:
        return _valid_text(describe(exc))
    except Exception:
        return f"{type(exc).__name__} (its message could not be read)"


_UNICODE_ADVICE = (
    "decode the source with errors='replace' rather than 'surrogateescape' (or fix the data), "
    "or pass a serializer of your own"
)


#: one encoder for every element (``json.dumps`` with options builds a new one per call)
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_jsonable)


def default_serializer(element: Any) -> bytes:
    """bytes as-is, str as UTF-8, anything else as compact JSON.

    JSON is strict, as parsers other than Python's expect: a non-finite float
    (``nan``, ``inf``, ``-inf``) is refused with a ``ValueError`` that names
    the value and where it is (JSON has no ``NaN`` or ``Infinity``; Python's
    ``json`` would write them, and Jackson, ``JSON.parse``, Go and most other
    readers refuse them). Map such values to ``None`` before the sink, or pass
    a ``serializer`` of your own that encodes them as your readers expect.

    A str that is not valid Unicode (a lone surrogate, from
    ``surrogateescape`` decoding or a JSON ``"\\ud800"`` escape), as the
    element or anywhere in it, is refused too: it has no UTF-8 encoding.
    NamedTuples and dataclasses are written as JSON objects.
    """
    if isinstance(element, bytes):
        return element if type(element) is bytes else bytes(element)
    if isinstance(element, (bytearray, memoryview)):
        return bytes(element)
    if isinstance(element, str):
        surrogate = lone_surrogate(element)
        if surrogate:
            position, code_point = surrogate
            raise ValueError(
                f"the element is a str that is not valid Unicode: it has a lone surrogate "
                f"({code_point}) at position {position}, so it has no UTF-8 encoding; {_UNICODE_ADVICE}"
            )
        return str.__str__(element).encode("utf-8")
    if element is None:
        raise TypeError("the element is None: there is nothing to write; filter None out before the sink "
                        "(beam.Filter(lambda e: e is not None)) or map it to what should be written")
    if hasattr(element, "_asdict"):
        element = element._asdict()
    try:
        text = _ENCODER.encode(element)
    except TypeError as exc:
        raise TypeError(_no_json_type(element, exc)) from None
    except ValueError as exc:
        if "Out of range float" not in str(exc):
            raise
        found = _find_in(element, _non_finite)
        where = f"the float {found[1]!r} at {found[0]}" if found else "a non-finite float"
        raise ValueError(
            f"the element is not strict JSON: it holds {where}. JSON has no NaN or Infinity and "
            "strict parsers refuse them: map non-finite floats to None before the sink, or pass "
            "a serializer of your own"
        ) from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        found = _find_in(element, _invalid_unicode)
        if found:
            position, code_point = lone_surrogate(found[1]) or (0, "?")
            where = f"the str at {found[0]} has a lone surrogate ({code_point}) at position {position}"
        else:
            where = "a str in it has a lone surrogate"
        raise ValueError(
            f"the element is not valid Unicode: {where}, so it has no UTF-8 encoding; {_UNICODE_ADVICE}"
        ) from None


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
        name = _valid_text(repr(fn.name))
        one_shard = " (every record then goes to one shard)" if option == "partition_key" else ""
        return (
            f"the element has no field {name} ({_describe(exc)}): a str {option} is the name of "
            f"a field to read from each element, not a constant. For one constant key, pass "
            f"{option}=lambda e: {name}{one_shard}"
        )
    if option == "partition_key":
        return f"partition_key function failed (missing key?): {_describe(exc)}"
    return f"{option} function failed: {_describe(exc)}"


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
            return Rejection(code, _valid_text(message), data, key, None,
                             _valid_text(preview(element) if shown is None else shown))

        data: Optional[bytes]
        raw_key: Any
        record = _record_of(element)
        if record is not None and self.partition_key is None and self.serializer is None:
            data, raw_key = record.data, record.partition_key
            if not isinstance(data, (bytes, bytearray)):
                key, _ = normalize_partition_key(raw_key)
                return reject(ErrorCode.SERIALIZATION_ERROR,
                              f"KinesisRecord.data must be bytes, got {type(data).__name__}", key=key)
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
                return reject(ErrorCode.SERIALIZATION_ERROR, f"serializer failed: {_describe(exc)}")
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
