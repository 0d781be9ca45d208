"""Single-object encoding, Parsing Canonical Form and CRC-64-AVRO, checked three ways:

- the test vectors of the Avro project (``share/test/data/schema-tests.txt``
  in apache/avro: canonical forms and fingerprints, as signed 64-bit ints);
- fastavro's own ``to_parsing_canonical_form`` and ``fingerprint``;
- a bit-at-a-time CRC written here from the specification's definition
  (no table), independent of the table-driven implementation under test.
"""

from __future__ import annotations

import io
import json

import fastavro
import pytest
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form as fastavro_pcf
from hypothesis import given
from hypothesis import strategies as st

from beam_kinesis_sink.avro_single_object import (
    EMPTY64,
    MAGIC,
    SingleObjectDecoder,
    SingleObjectEncoder,
    decode_header,
    encode,
    header,
    is_single_object,
    parsing_canonical_form,
    rabin_fingerprint64,
    schema_fingerprint,
)

# (input schema text, canonical form, fingerprint as the Avro project lists it: a signed long)
AVRO_PROJECT_VECTORS = [
    ('"null"', '"null"', 7195948357588979594),
    ('{"type":"null"}', '"null"', 7195948357588979594),
    ('"boolean"', '"boolean"', -6970731678124411036),
    ('"int"', '"int"', 8247732601305521295),
    ('{"type":"int"}', '"int"', 8247732601305521295),
    ('"long"', '"long"', -3434872931120570953),
    ('"float"', '"float"', 5583340709985441680),
    ('"double"', '"double"', -8181574048448539266),
    ('"bytes"', '"bytes"', 5746618253357095269),
    ('"string"', '"string"', -8142146995180207161),
    ("[  ]", "[]", -1241056759729112623),
    ('[ "int"  ]', '["int"]', -5232228896498058493),
    ('[ "int" , {"type":"boolean"} ]', '["int","boolean"]', 5392556393470105090),
    ('{"fields":[], "type":"record", "name":"foo"}', '{"name":"foo","type":"record","fields":[]}',
     -4824392279771201922),
    ('{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}',
     '{"name":"x.y.foo","type":"record","fields":[]}', 5916914534497305771),
    ('{"fields":[], "type":"record", "name":"a.b.foo", "namespace":"x.y"}',
     '{"name":"a.b.foo","type":"record","fields":[]}', -4616218487480524110),
    ('{"fields":[], "type":"record", "name":"foo", "doc":"Useful info"}',
     '{"name":"foo","type":"record","fields":[]}', -4824392279771201922),
    ('{"fields":[], "type":"record", "name":"foo", "aliases":["foo","bar"]}',
     '{"name":"foo","type":"record","fields":[]}', -4824392279771201922),
    ('{"fields":[{"type":{"type":"boolean"}, "name":"f1"}], "type":"record", "name":"foo"}',
     '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}', 7843277075252814651),
    ('{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":"true"},'
     '{"order":"descending","name":"f2","doc":"Hello","type":"int"}], "type":"record", "name":"foo"}',
     '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}',
     -4860222112080293046),
    ('{"type":"enum", "name":"foo", "symbols":["A1"]}', '{"name":"foo","type":"enum","symbols":["A1"]}',
     -6342190197741309591),
    ('{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}',
     '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}', -4448647247586288245),
    ('{"name":"foo","type":"fixed","size":15}', '{"name":"foo","type":"fixed","size":15}',
     1756455273707447556),
    ('{"namespace":"x.y.z", "type":"fixed", "name":"foo", "doc":"foo bar", "size":32}',
     '{"name":"x.y.z.foo","type":"fixed","size":32}', -3064184465700546786),
    ('{ "items":{"type":"null"}, "type":"array"}', '{"type":"array","items":"null"}', -589620603366471059),
    ('{ "values":"string", "type":"map"}', '{"type":"map","values":"string"}', -8732877298790414990),
    ('{"name":"PigValue","type":"record", '
     '"fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}',
     '{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}',
     -1759257747318642341),
]

# Schemas beyond the vectors: nesting, namespace inheritance, references, logical types.
RICH_SCHEMAS = [
    {
        "type": "record",
        "name": "Order",
        "namespace": "shop.v1",
        "doc": "an order",
        "fields": [
            {"name": "id", "type": "long", "doc": "id"},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "amount",
             "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
            {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}},
            {
                "name": "customer",
                "type": {
                    "type": "record",
                    "name": "Customer",
                    "fields": [
                        {"name": "id", "type": "string"},
                        {"name": "tier",
                         "type": {"type": "enum", "name": "Tier", "symbols": ["GOLD", "SILVER"]}},
                        {"name": "home", "type": ["null", {"type": "record", "name": "geo.Address",
                                                           "fields": [{"name": "city", "type": "string"}]}]},
                    ],
                },
            },
            {"name": "billing", "type": ["null", "geo.Address"], "default": None},
            {"name": "second_tier", "type": "Tier"},
            {"name": "digest", "type": {"type": "fixed", "name": "MD5", "size": 16, "aliases": ["x"]}},
            {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
            {"name": "attrs", "type": {"type": "map", "values": ["null", "long", "MD5"]}},
            {"name": "nothing", "type": {"type": "record", "name": "Empty", "namespace": "", "fields": []}},
        ],
    },
    {"type": "array",
     "items": {"type": "record", "name": "R", "fields": [{"name": "r", "type": ["null", "R"]}]}},
    {"type": "record", "name": "Ünïcode", "fields": [{"name": "é", "type": "string"}]},
]


def crc64_avro_bitwise(data: bytes) -> int:
    """The spec's fingerprint, one bit at a time (LSB first), no table."""
    fp = EMPTY64
    for byte in data:
        fp ^= byte
        for _ in range(8):
            fp = (fp >> 1) ^ EMPTY64 if fp & 1 else fp >> 1
    return fp


def fastavro_fp(schema: object) -> int:
    return int.from_bytes(bytes.fromhex(fastavro_fingerprint(fastavro_pcf(schema), "CRC-64-AVRO")), "little")


@pytest.mark.parametrize("text, canonical, signed", AVRO_PROJECT_VECTORS)
def test_avro_project_vectors(text: str, canonical: str, signed: int) -> None:
    assert parsing_canonical_form(text) == canonical
    assert schema_fingerprint(text) == signed & (2**64 - 1)
    assert crc64_avro_bitwise(canonical.encode()) == signed & (2**64 - 1)


@pytest.mark.parametrize("schema", RICH_SCHEMAS)
def test_matches_fastavro(schema: dict) -> None:
    assert parsing_canonical_form(schema) == fastavro_pcf(schema)
    assert schema_fingerprint(schema) == fastavro_fp(schema)
    # JSON text or parsed: the same
    assert schema_fingerprint(json.dumps(schema)) == schema_fingerprint(schema)


def test_fastavro_file_header_schema_has_the_same_fingerprint() -> None:
    """fastavro writes the *parsed* schema (fullnames, no namespace keys) in file
    headers: its canonical form, hence fingerprint, must not change.

    (Except for a nested record in the null namespace, ``"namespace": ""``:
    fastavro drops that key from the header, and the record then inherits the
    enclosing namespace. fastavro's own canonical forms disagree there too.)"""
    schema = dict(RICH_SCHEMAS[0], fields=RICH_SCHEMAS[0]["fields"][:-1])
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(schema), [])
    buffer.seek(0)
    header_schema = json.loads(fastavro.reader(buffer).metadata["avro.schema"])
    assert header_schema != schema
    assert schema_fingerprint(header_schema) == schema_fingerprint(schema) == fastavro_fp(header_schema)


def test_empty_input_is_the_empty_fingerprint() -> None:
    assert rabin_fingerprint64(b"") == EMPTY64


@given(st.binary(max_size=300))
def test_table_and_bitwise_agree(data: bytes) -> None:
    assert rabin_fingerprint64(data) == crc64_avro_bitwise(data)


def test_header_layout() -> None:
    fp = 0x0102030405060708
    assert header(fp) == b"\xc3\x01\x08\x07\x06\x05\x04\x03\x02\x01"
    datum = encode(b"body", fp)
    assert is_single_object(datum)
    assert decode_header(datum) == (fp, b"body")
    assert not is_single_object(b"\xc3\x01short")
    with pytest.raises(ValueError):
        decode_header(b'{"json": true}')


def test_encoder_output_decodes_with_a_plain_avro_reader() -> None:
    schema = {"type": "record", "name": "T", "fields": [{"name": "a", "type": "long"},
                                                          {"name": "b", "type": ["null", "string"]}]}
    encoder = SingleObjectEncoder(schema)
    datum = encoder.encode({"a": 5, "b": "x"})
    assert datum[:2] == MAGIC
    assert int.from_bytes(datum[2:10], "little") == fastavro_fp(schema)
    assert fastavro.schemaless_reader(io.BytesIO(datum[10:]), schema, None) == {"a": 5, "b": "x"}
    assert SingleObjectDecoder(schema).decode(datum) == {"a": 5, "b": "x"}
    with pytest.raises(KeyError):
        SingleObjectDecoder('"long"').decode(datum)
