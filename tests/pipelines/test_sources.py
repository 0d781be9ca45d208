"""Reading input files: every line and record is accounted for, nothing crashes."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import fastavro

from beam_kinesis_sink.avro_single_object import schema_fingerprint
from pipelines.sources import Blank, Malformed, Record, Unreadable, read_avro, read_jsonl

SCHEMA = {
    "type": "record",
    "name": "T",
    "namespace": "t",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "s", "type": ["null", "string"]},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    ],
}


def _records(n: int) -> list[dict]:
    import datetime

    base = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    return [{"id": i, "s": None if i % 3 else f"s{i}", "at": base + datetime.timedelta(seconds=i)}
            for i in range(n)]


def _write_avro(path: Path, n: int, codec: str = "null", sync_interval: int = 16000) -> None:
    with path.open("wb") as f:
        fastavro.writer(f, fastavro.parse_schema(SCHEMA), _records(n), codec=codec,
                        sync_interval=sync_interval)


def test_jsonl_every_line_is_accounted_for(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"a": 1}\r\n'      # 1: BOM and CRLF
        b'{"a": 2\n'                     # 2: broken
        b"\n"                            # 3: blank
        b"   \n"                         # 4: blank
        b"[1, 2]\n"                      # 5: not an object
        b'{"a": NaN}\n'                  # 6: NaN is not JSON
        b'\xff{"a": 3}\n'                # 7: not UTF-8
        b'{"a": "\xc3\xa9"}'             # 8: last line without newline
    )
    events = list(read_jsonl(str(path)))
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Record", "Malformed", "Blank", "Blank", "Malformed", "Malformed", "Malformed", "Record"]
    assert events[0] == Record({"a": 1}, f"{path}:1")
    assert events[-1] == Record({"a": "é"}, f"{path}:8")
    malformed = [e for e in events if isinstance(e, Malformed)]
    assert [m.origin for m in malformed] == [f"{path}:{n}" for n in (2, 5, 6, 7)]
    assert malformed[0].message.startswith(f"{path}:2: not valid JSON")
    assert malformed[0].raw == b'{"a": 2'
    assert "not a JSON object" in malformed[1].message
    assert "NaN" in malformed[2].message
    assert "not UTF-8" in malformed[3].message
    assert isinstance(events[2], Blank)


def test_jsonl_gzip(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n{"a": 2}\n'))
    assert [e.value for e in read_jsonl(str(path)) if isinstance(e, Record)] == [{"a": 1}, {"a": 2}]


def test_truncated_gzip_is_reported_after_the_lines_read(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl.gz"
    data = gzip.compress(b"".join(b'{"a": %d}\n' % i for i in range(5000)))
    path.write_bytes(data[: len(data) // 2])
    events = list(read_jsonl(str(path)))
    assert isinstance(events[-1], Unreadable)
    assert str(path) in events[-1].message
    assert events[-1].records_before == len(events) - 1 > 0


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    events = list(read_jsonl(str(tmp_path / "gone.jsonl")))
    assert len(events) == 1 and isinstance(events[0], Unreadable)
    assert "gone.jsonl" in events[0].message


def test_avro_raw_bodies_are_the_exact_encoding(tmp_path: Path) -> None:
    path = tmp_path / "in.avro"
    _write_avro(path, 1000, codec="deflate", sync_interval=500)
    events = list(read_avro(str(path), want_raw=True))
    assert len(events) == 1000 and all(isinstance(e, Record) for e in events)
    with path.open("rb") as f:
        expected = list(fastavro.reader(f))
    parsed = fastavro.parse_schema(SCHEMA)
    for event, record in zip(events, expected):
        assert isinstance(event, Record)
        assert event.value == record
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, record)
        assert event.raw == buffer.getvalue()
        assert event.fingerprint == schema_fingerprint(SCHEMA)
    assert events[41].origin == f"{path}#42"


def test_avro_without_raw(tmp_path: Path) -> None:
    path = tmp_path / "in.avro"
    _write_avro(path, 3)
    events = list(read_avro(str(path)))
    assert [e.raw for e in events] == [None] * 3  # type: ignore[union-attr]


def test_corrupt_avro_block_reports_the_file_after_the_good_records(tmp_path: Path) -> None:
    path = tmp_path / "in.avro"
    _write_avro(path, 3000, sync_interval=2000)
    data = bytearray(path.read_bytes())
    with path.open("rb") as f:
        marker = fastavro.reader(f)._header["sync"]
    # markers: after the header, after block 1, after block 2 (fastavro checks a
    # block's trailing marker before it yields the block's records)
    after_first = data.index(marker, data.index(marker) + 16)
    after_second = data.index(marker, after_first + 16)
    data[after_second:after_second + 16] = b"\x00" * 16
    path.write_bytes(bytes(data))
    events = list(read_avro(str(path)))
    last = events[-1]
    assert isinstance(last, Unreadable)
    good = len(events) - 1
    assert 0 < good < 3000 and last.records_before == good
    assert str(path) in last.message and f"after record {good}" in last.message


def test_not_avro(tmp_path: Path) -> None:
    path = tmp_path / "in.avro"
    path.write_text(json.dumps({"a": 1}))
    events = list(read_avro(str(path)))
    assert len(events) == 1 and isinstance(events[0], Unreadable)
    assert "not a readable Avro file" in events[0].message and str(path) in events[0].message
