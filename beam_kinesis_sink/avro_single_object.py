"""Avro single-object encoding, from the Avro specification. Pure.

A single-object encoded datum is::

    C3 01 | CRC-64-AVRO fingerprint of the writer schema (8 bytes, little-endian) | Avro binary body

The fingerprint is the 64-bit Rabin fingerprint ("CRC-64-AVRO") of the UTF-8
bytes of the schema's *Parsing Canonical Form*. A reader looks the fingerprint
up in its schema store and decodes the body with that schema, so any Avro
library can decode these records (Java ``BinaryMessageDecoder``, Python
``fastavro.schemaless_reader`` after the 10-byte header, ...).

Both the Parsing Canonical Form and the fingerprint are implemented here
from the specification (sections "Parsing Canonical Form for Schemas" and
"Schema Fingerprints"); the tests check them against the specification's own
test vectors, against fastavro and against a bit-by-bit implementation.
"""

from __future__ import annotations

import io
import json
from typing import Any, Optional, Union

#: the two marker bytes that open a single-object encoded datum
MAGIC = b"\xc3\x01"
#: magic plus the 8-byte fingerprint
HEADER_SIZE = 10

#: the Rabin fingerprint of the empty string, and the polynomial (Avro spec)
EMPTY64 = 0xC15D213AA4D7A795

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})

Schema = Union[str, dict, list]


def _make_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY64 & -(fp & 1))
        table.append(fp)
    return tuple(table)


_TABLE = _make_table()


def rabin_fingerprint64(data: bytes) -> int:
    """CRC-64-AVRO of ``data``, as an unsigned 64-bit int (the spec's table algorithm)."""
    fp = EMPTY64
    table = _TABLE
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


# --------------------------------------------------------------------------
# Parsing Canonical Form


def _load(schema: Schema) -> Any:
    """A schema given as JSON text, as a parsed JSON value, or as a bare type name."""
    if isinstance(schema, str):
        text = schema.strip()
        if text[:1] in ("{", "[", '"'):
            return json.loads(text)
        return text
    return schema


def _q(text: str) -> str:
    # [STRINGS]: no \uXXXX escapes for non-ASCII; [WHITESPACE]: none
    return json.dumps(text, ensure_ascii=False)


def _fullname(name: str, namespace: Optional[str]) -> str:
    if "." in name:
        return name
    return f"{namespace}.{name}" if namespace else name


def _space_of(fullname: str) -> Optional[str]:
    return fullname.rsplit(".", 1)[0] if "." in fullname else None


def _canon(schema: Any, namespace: Optional[str], seen: set[str]) -> str:
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return _q(schema)
        # a reference to a named type defined earlier
        return _q(_fullname(schema, namespace))
    if isinstance(schema, list):
        return "[" + ",".join(_canon(branch, namespace, seen) for branch in schema) + "]"
    if not isinstance(schema, dict):
        raise ValueError(f"not an Avro schema: {schema!r}")
    kind = schema.get("type")
    if isinstance(kind, (dict, list)):
        return _canon(kind, namespace, seen)
    if not isinstance(kind, str):
        raise ValueError(f"Avro schema without a type: {schema!r}")
    if kind in PRIMITIVES:
        # [PRIMITIVES] and [STRIP]: {"type": "long", "logicalType": ...} is "long"
        return _q(kind)
    if kind == "array":
        return '{"type":"array","items":' + _canon(schema["items"], namespace, seen) + "}"
    if kind == "map":
        return '{"type":"map","values":' + _canon(schema["values"], namespace, seen) + "}"
    if kind in _NAMED:
        name = schema["name"]
        space = schema["namespace"] if "namespace" in schema else namespace
        full = _fullname(name, space or None)
        if full in seen:
            return _q(full)
        seen.add(full)
        inner = _space_of(full)
        head = '{"name":' + _q(full) + ',"type":' + _q(kind)
        if kind == "fixed":
            return head + ',"size":' + str(int(schema["size"])) + "}"
        if kind == "enum":
            return head + ',"symbols":[' + ",".join(_q(s) for s in schema["symbols"]) + "]}"
        fields = ",".join(
            '{"name":' + _q(f["name"]) + ',"type":' + _canon(f["type"], inner, seen) + "}"
            for f in schema["fields"]
        )
        return head + ',"fields":[' + fields + "]}"
    # {"type": "SomeNamedType"}
    return _q(_fullname(kind, namespace))


def parsing_canonical_form(schema: Schema) -> str:
    """The schema's Parsing Canonical Form (Avro specification), as text."""
    return _canon(_load(schema), None, set())


def schema_fingerprint(schema: Schema) -> int:
    """CRC-64-AVRO of the schema's Parsing Canonical Form (unsigned 64-bit)."""
    return rabin_fingerprint64(parsing_canonical_form(schema).encode("utf-8"))


# --------------------------------------------------------------------------
# Single-object encoding


def header(fingerprint: int) -> bytes:
    """``C3 01`` plus the fingerprint, little-endian."""
    return MAGIC + fingerprint.to_bytes(8, "little")


def encode(body: bytes, fingerprint: int) -> bytes:
    """A single-object datum from an Avro binary body and its schema's fingerprint."""
    return header(fingerprint) + body


def is_single_object(data: Optional[bytes]) -> bool:
    return data is not None and len(data) >= HEADER_SIZE and data[:2] == MAGIC


def decode_header(data: bytes) -> tuple[int, bytes]:
    """``(fingerprint, body)`` of a single-object datum; ValueError if it is not one."""
    if not is_single_object(data):
        raise ValueError("not Avro single-object encoded (no C3 01 marker)")
    return int.from_bytes(data[2:HEADER_SIZE], "little"), data[HEADER_SIZE:]


class SingleObjectEncoder:
    """Encodes Python values (as fastavro takes them) with one writer schema."""

    def __init__(self, schema: Schema) -> None:
        import fastavro

        loaded = _load(schema)
        self.fingerprint = schema_fingerprint(loaded)
        self._header = header(self.fingerprint)
        self._parsed = fastavro.parse_schema(loaded)

    def encode(self, value: Any) -> bytes:
        import fastavro

        buffer = io.BytesIO()
        buffer.write(self._header)
        fastavro.schemaless_writer(buffer, self._parsed, value)
        return buffer.getvalue()


class SingleObjectDecoder:
    """Decodes single-object data with a store of writer schemas, by fingerprint."""

    def __init__(self, *schemas: Schema) -> None:
        self._schemas: dict[int, Any] = {}
        for schema in schemas:
            self.add(schema)

    def add(self, schema: Schema) -> int:
        import fastavro

        loaded = _load(schema)
        fingerprint = schema_fingerprint(loaded)
        self._schemas[fingerprint] = fastavro.parse_schema(loaded)
        return fingerprint

    def decode(self, data: bytes) -> Any:
        import fastavro

        fingerprint, body = decode_header(data)
        parsed = self._schemas.get(fingerprint)
        if parsed is None:
            raise KeyError(f"no schema with fingerprint {fingerprint:#018x}")
        return fastavro.schemaless_reader(io.BytesIO(body), parsed, None)
