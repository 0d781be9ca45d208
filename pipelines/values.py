"""Pure helpers of the pipelines: JSON mapping of Avro values, dotted paths, keys.

JSON mapping (``--serialize json``). Values fastavro reads from Avro that
JSON cannot hold are mapped like this:

=========================================  ==========================================
Avro type (as fastavro returns it)         JSON
=========================================  ==========================================
``bytes``, ``fixed`` (bytes)               string, standard Base64 with padding (RFC 4648 §4)
``decimal`` (Decimal)                      string, plain notation with the schema's scale: ``"12.30"``
``timestamp-millis/micros`` (aware dt)     string, ISO-8601 UTC, 6 decimals: ``"2024-05-01T12:00:00.250000Z"``
``local-timestamp-millis/micros`` (naive)  string, ISO-8601, no offset: ``"2024-05-01T12:00:00.250000"``
``date``                                   string, ISO-8601: ``"2024-05-01"``
``time-millis/micros``                     string, ISO-8601: ``"12:00:00.250000"``
``uuid`` (UUID)                            string, canonical ``"8-4-4-4-12"`` lower case
float/double NaN, +Inf, -Inf               string ``"NaN"``, ``"Infinity"``, ``"-Infinity"``
enum                                       string, the symbol
union                                      the value itself (no ``{"type": value}`` wrapper)
record, map / array                        object / array
=========================================  ==========================================

Dotted paths (``--partition-key customer.id``): each dot goes one level into
a nested record (or JSON object); a segment made of digits indexes an array
(``items.0.sku``); ``\\.`` is a literal dot inside a field name.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import math
import uuid
from typing import Any, Optional, Sequence


class MissingField(LookupError):
    """The path does not lead to a value (a field is absent, or null)."""


class NullField(MissingField):
    """The path meets a null: the field itself, or a record on the way to it, is null."""


class NotAScalar(TypeError):
    """The path leads to a record, map or array, which cannot be a key."""


# --------------------------------------------------------------------------
# JSON mapping


def _iso_datetime(value: datetime.datetime) -> str:
    if value.tzinfo is None:
        return value.isoformat(timespec="microseconds")
    utc = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` hook for the Avro values JSON cannot hold."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return str(value)
        return format(value, "f")
    if isinstance(value, datetime.datetime):
        return _iso_datetime(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, datetime.time):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot map a {type(value).__name__} to JSON")


def _nonfinite(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _replace_nonfinite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return _nonfinite(value)
    if isinstance(value, dict):
        return {k: _replace_nonfinite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace_nonfinite(v) for v in value]
    return value


def to_json_bytes(value: Any) -> bytes:
    """Compact JSON (no spaces), UTF-8, with the mapping in the module doc."""
    try:
        text = json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=json_default
        )
    except ValueError:
        # NaN or an infinity somewhere: map them, then dump again
        text = json.dumps(
            _replace_nonfinite(value),
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            default=json_default,
        )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # a lone surrogate (possible in JSON input): keep it as a \\u escape
        return json.dumps(
            _replace_nonfinite(value), separators=(",", ":"), ensure_ascii=True, default=json_default
        ).encode("ascii")


def to_jsonable(value: Any) -> Any:
    """The value as plain JSON types (what ``to_json_bytes`` would write)."""
    return json.loads(to_json_bytes(value))


# --------------------------------------------------------------------------
# Dotted paths


def parse_path(path: str) -> tuple[str, ...]:
    """``"a.b\\.c.0"`` → ``("a", "b.c", "0")``."""
    if not path:
        raise ValueError("empty field path")
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(path):
        char = path[i]
        if char == "\\" and i + 1 < len(path) and path[i + 1] in ".\\":
            current.append(path[i + 1])
            i += 2
            continue
        if char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    if any(part == "" for part in parts):
        raise ValueError(f"empty segment in field path {path!r}")
    return tuple(parts)


def lookup(record: Any, path: Sequence[str]) -> Any:
    """The value at ``path``; :class:`MissingField` if absent, :class:`NullField` if null on the way."""
    value = record
    for depth, segment in enumerate(path):
        where = ".".join(path[: depth + 1])
        if isinstance(value, dict):
            if segment not in value:
                raise MissingField(f"no field {where!r}")
            value = value[segment]
        elif isinstance(value, (list, tuple)) and segment.isdigit():
            index = int(segment)
            if index >= len(value):
                raise MissingField(f"no element {where!r} (the array has {len(value)})")
            value = value[index]
        else:
            parent = ".".join(path[:depth]) or "the record"
            if value is None:
                raise NullField(f"no field {where!r} ({parent} is null)")
            raise MissingField(f"no field {where!r} ({parent} is {type(value).__name__})")
        if value is None:
            raise NullField(f"field {where!r} is null")
    return value


def key_string(value: Any) -> str:
    """A scalar as a partition key: strings as they are, others as in the JSON mapping
    (numbers in decimal, booleans ``true``/``false``, timestamps ISO-8601...)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else _nonfinite(value)
    if isinstance(value, (dict, list, tuple)):
        raise NotAScalar(f"is a {'record' if isinstance(value, dict) else 'array'}, not a scalar")
    mapped = json_default(value)
    if not isinstance(mapped, str):
        raise NotAScalar(f"is a {type(value).__name__}, not a scalar")
    return mapped


def explicit_hash_key_string(value: Any) -> Optional[str]:
    """An explicit hash key field's value as the sink takes it (validated there)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise NotAScalar("is a boolean, not a decimal hash key")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
        return str(int(value))
    if isinstance(value, str):
        return value
    raise NotAScalar(f"is a {type(value).__name__}, not a decimal hash key")
