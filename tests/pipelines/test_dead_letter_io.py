"""Dead-letter storage: schema, WriteDeadLetters / ReadDeadLetters round trip."""

from __future__ import annotations

import json
import re
from pathlib import Path

import apache_beam as beam
import fastavro
import pytest
from apache_beam.testing.util import assert_that, equal_to

from beam_kinesis_sink import DeadLetter, ErrorCode
from beam_kinesis_sink.dead_letter_io import (
    DEAD_LETTER_SCHEMA,
    SCHEMA_FULLNAME,
    NotADeadLetterError,
    ReadDeadLetters,
    WriteDeadLetters,
    check_file,
    from_avro,
    read_file,
    to_avro,
)
from beam_kinesis_sink.records import DeadLetter as RecordsDeadLetter

AVSC = Path(__file__).resolve().parents[2] / "beam_kinesis_sink" / "dead_letter.avsc"


def letter(i: int, **changes: object) -> DeadLetter:
    base = DeadLetter(
        stream="orders",
        data=b'{"i":%d}' % i if i % 4 else None,
        partition_key=f"k{i}" if i % 5 else None,
        explicit_hash_key=str(2**127 + i) if i % 2 else None,
        error_code=ErrorCode.INTERNAL_FAILURE,
        error_message=f"boom {i}",
        attempts=i,
        shard_id=f"shardId-{i % 3:012d}" if i % 3 else None,
        failed_at_micros=1_714_564_800_000_000 + i,
        element_timestamp_micros=1_714_000_000_123_456 if i % 2 else None,
        element_preview=None if i % 4 else f"<{i}>",
    )
    return base._replace(**changes)


def test_avsc_file_is_the_schema() -> None:
    assert json.loads(AVSC.read_text()) == DEAD_LETTER_SCHEMA


def test_schema_has_every_dead_letter_field_and_timestamp_logical_types() -> None:
    names = [f["name"] for f in DEAD_LETTER_SCHEMA["fields"]]
    assert set(RecordsDeadLetter._fields) <= set(names)
    assert names[0] == "schema_version"
    types = {f["name"]: f["type"] for f in DEAD_LETTER_SCHEMA["fields"]}
    assert types["failed_at_micros"] == {"type": "long", "logicalType": "timestamp-micros"}
    assert types["element_timestamp_micros"] == ["null", {"type": "long", "logicalType": "timestamp-micros"}]
    assert f"{DEAD_LETTER_SCHEMA['namespace']}.{DEAD_LETTER_SCHEMA['name']}" == SCHEMA_FULLNAME
    fastavro.parse_schema(DEAD_LETTER_SCHEMA)


def test_to_and_from_avro() -> None:
    for i in range(10):
        assert from_avro(to_avro(letter(i))) == letter(i)


def test_out_of_range_element_timestamp_is_noted_not_lost_silently() -> None:
    record = to_avro(letter(1, element_timestamp_micros=2**62 - 1))
    assert record["element_timestamp_micros"] is None
    assert "out of range" in record["element_preview"]


def test_from_avro_refuses_other_records() -> None:
    with pytest.raises(NotADeadLetterError):
        from_avro({"a": 1})
    with pytest.raises(NotADeadLetterError, match="version 2"):
        from_avro(dict(to_avro(letter(1)), schema_version=2))


def test_write_and_read_with_beam(tmp_path: Path) -> None:
    letters = [letter(i) for i in range(50)]
    prefix = str(tmp_path / "dl") + "/"
    with beam.Pipeline() as p:
        _ = p | beam.Create(letters) | WriteDeadLetters(prefix)
    files = sorted((tmp_path / "dl").glob("dead-letters-*.avro"))
    assert files
    # timestamps are Avro timestamp-micros in the file (fastavro reads datetimes)
    with files[0].open("rb") as f:
        reader = fastavro.reader(f)
        header = json.loads(reader.metadata["avro.schema"])
        first = next(iter(reader))
    assert header["name"] in ("DeadLetter", SCHEMA_FULLNAME)
    assert first["failed_at_micros"].tzinfo is not None
    assert sorted((dl for f in files for dl in read_file(str(f))), key=lambda d: d.attempts) == letters

    for pattern in (prefix + "*.avro", [prefix + "*.avro"]):
        with beam.Pipeline() as p:
            assert_that(p | ReadDeadLetters(pattern), equal_to(letters))


def test_two_pipelines_writing_to_one_directory_keep_each_others_dead_letters(tmp_path: Path) -> None:
    # Both wrote dead-letters-00000-of-00001.avro, and the second replaced the first.
    directory = f"{tmp_path}/dl/"
    first, second = WriteDeadLetters(directory), WriteDeadLetters(directory)
    assert first.file_prefix != second.file_prefix
    assert re.fullmatch(re.escape(directory) + r"dead-letters-\d{8}T\d{6}Z-[0-9a-f]{6}", first.file_prefix)
    for transform, letters in ((first, [letter(1), letter(2)]), (second, [letter(3)])):
        with beam.Pipeline() as p:
            _ = p | beam.Create(letters) | transform
    files = sorted((tmp_path / "dl").glob("dead-letters-*.avro"))
    assert len(files) == 2 and all(str(f).startswith((first.file_prefix, second.file_prefix)) for f in files)
    assert sorted(dl.attempts for f in files for dl in read_file(str(f))) == [1, 2, 3]
    assert WriteDeadLetters(f"{tmp_path}/letters").file_prefix == f"{tmp_path}/letters"  # a prefix is kept


@pytest.mark.parametrize("codec, why", [("nope", "unrecognized codec: nope"),
                                        ("lz4", "you need to install one of the following libraries")])
def test_a_codec_that_cannot_be_written_is_refused_at_construction(codec: str, why: str) -> None:
    # It failed every dead-letter file on the workers, after the records were written.
    pytest.importorskip("fastavro")
    if codec == "lz4":
        try:
            import lz4  # noqa: F401

            pytest.skip("lz4 is installed here")
        except ImportError:
            pass
    with pytest.raises(ValueError, match=f"the Avro codec '{codec}' cannot be written here .*{why}"):
        WriteDeadLetters("dl/", codec=codec)
    for fine in ("deflate", "null", "bzip2"):
        assert WriteDeadLetters("dl/", codec=fine).file_prefix.startswith("dl/dead-letters-")


def test_check_file(tmp_path: Path) -> None:
    other = tmp_path / "other.avro"
    with other.open("wb") as f:
        schema = {"type": "record", "name": "X", "fields": [{"name": "a", "type": "int"}]}
        fastavro.writer(f, schema, [{"a": 1}])
    text = tmp_path / "text.avro"
    text.write_text("hello")
    assert "not a dead-letter file" in (check_file(str(other)) or "")
    assert "not a readable Avro file" in (check_file(str(text)) or "")
    with pytest.raises(NotADeadLetterError):
        list(read_file(str(other)))


# ---------------------------------------------------------------- unbounded input: a file per bundle
def _bundle_fn(prefix: str):
    from beam_kinesis_sink.dead_letter_writing import WriteBundleFilesFn

    fn = WriteBundleFilesFn(prefix, DEAD_LETTER_SCHEMA, "deflate", ".avro")
    fn.setup()
    fn.start_bundle()
    return fn


def test_a_bundle_file_appears_whole_at_the_bundle_end_and_reads_back(tmp_path: Path) -> None:
    from apache_beam.transforms.window import GlobalWindow, IntervalWindow
    from apache_beam.utils.timestamp import Timestamp

    fn = _bundle_fn(f"{tmp_path}/dead-letters")
    windows = [GlobalWindow(), IntervalWindow(0, 60)]
    for i in range(10):
        fn.process(to_avro(letter(i)), window=windows[i % 2], timestamp=Timestamp(i))
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []  # not before the end
    out = list(fn.finish_bundle())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(Path(v.value).name for v in out)
    expected = [([windows[0]], Timestamp(8)), ([windows[1]], Timestamp(9))]
    assert [(v.windows, v.timestamp) for v in out] == expected
    read = {v.value: [x.attempts for x in read_file(v.value)] for v in out}
    assert list(read.values()) == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]
    assert all(check_file(name) is None for name in read)


def test_a_failed_bundle_leaves_no_file_and_no_partial_one(tmp_path: Path) -> None:
    from apache_beam.transforms.window import GlobalWindow
    from apache_beam.utils.timestamp import Timestamp

    fn = _bundle_fn(f"{tmp_path}/dead-letters")
    at = {"window": GlobalWindow(), "timestamp": Timestamp(1)}
    fn.process(to_avro(letter(1)), **at)
    assert [p.name.endswith(".partial") for p in tmp_path.iterdir()] == [True]  # being written
    with pytest.raises(ValueError):
        fn.process({"not": "a dead letter"}, **at)  # fastavro refuses it: the bundle fails
    fn.start_bundle()  # the runner's retry, or teardown
    assert list(tmp_path.iterdir()) == []
    fn.process(to_avro(letter(2)), **at)
    fn.teardown()
    assert list(tmp_path.iterdir()) == []


def test_a_rename_that_fails_leaves_no_partial_file_after_the_retry(tmp_path: Path, monkeypatch) -> None:
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.transforms.window import GlobalWindow, IntervalWindow
    from apache_beam.utils.timestamp import Timestamp

    fn = _bundle_fn(f"{tmp_path}/dead-letters")
    for i, w in enumerate([GlobalWindow(), IntervalWindow(0, 60)]):
        fn.process(to_avro(letter(i)), window=w, timestamp=Timestamp(i))
    rename, calls = FileSystems.rename, []

    def second_fails(sources, destinations):
        calls.append(sources)
        if len(calls) == 2:
            raise OSError("the filesystem refused the rename")
        rename(sources, destinations)

    monkeypatch.setattr(FileSystems, "rename", second_fails)
    with pytest.raises(OSError, match="refused the rename"):
        list(fn.finish_bundle())
    assert len(calls) == 2  # the fault fired, on the second file
    assert sum(p.name.endswith(".partial") for p in tmp_path.iterdir()) == 1
    fn.start_bundle()  # the runner retries the bundle
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 1 and not names[0].startswith(".")  # the first file, whole; no partial left
    assert [x.attempts for x in read_file(str(tmp_path / names[0]))] == [0]
