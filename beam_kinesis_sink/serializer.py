"""The default serializer: bytes as they are, str as UTF-8, anything else
as compact, strict JSON; and, when it refuses an element, a message that
says what is wrong, where in the element, and what to do. Pure.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Callable, Iterator, Optional, Tuple

from beam_kinesis_sink.limits import lone_surrogate
from beam_kinesis_sink.messages import clip, preview

__all__ = ["default_serializer"]

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
            yield f"{path}[{preview(k)}]", v
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

