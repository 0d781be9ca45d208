"""``pipelines.dead_letter_files``: what inspect and replay find unreadable, and how they say it."""

from __future__ import annotations

from pathlib import Path

import pytest

from beam_kinesis_sink import DeadLetter
from beam_kinesis_sink.dead_letter_io import DEAD_LETTER_SCHEMA, check_file, to_avro
from pipelines.dead_letter_files import FileReading, read_readable, read_through
from pipelines.inspect_dead_letters import inspect_files
from tests.pipelines.test_replay_dead_letters import good_letters, write_blocks


def records(letters: list[DeadLetter]) -> list[dict]:
    return [to_avro(dl) for dl in letters]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """One file of each kind, and ``{name: path}``."""
    paths = {name: tmp_path / f"{name}.avro" for name in
             ("whole", "no_letters", "truncated", "bad_sync", "empty", "text", "other", "version2")}
    write_blocks(paths["whole"], DEAD_LETTER_SCHEMA, records(good_letters("w", 5)))
    write_blocks(paths["no_letters"], DEAD_LETTER_SCHEMA)  # what a Beam sink writes when it has nothing
    letters = good_letters("t", 7)
    write_blocks(paths["truncated"], DEAD_LETTER_SCHEMA, records(letters[:4]), records(letters[4:]))
    whole = paths["truncated"].read_bytes()
    paths["truncated"].write_bytes(whole[: len(whole) - 20])
    # three blocks; the sync marker after the second is damaged: only the first block is readable
    blocks = [records(good_letters(f"s{b}", 3)) for b in range(3)]
    write_blocks(paths["bad_sync"], DEAD_LETTER_SCHEMA, *blocks)
    data = paths["bad_sync"].read_bytes()
    sync = data[-16:]  # a container file ends with its sync marker, which is in its header too
    at = [i for i in range(len(data)) if data.startswith(sync, i)]
    assert len(at) == 4  # the header's, then one after each block
    paths["bad_sync"].write_bytes(data[: at[2]] + bytes(16) + data[at[2] + 16:])
    paths["empty"].write_bytes(b"")
    paths["text"].write_text("not avro at all")
    other = {"type": "record", "name": "Other", "fields": [{"name": "x", "type": "int"}]}
    write_blocks(paths["other"], other, [{"x": 1}])
    later = records(good_letters("v", 4))
    later[3]["schema_version"] = 2  # in the second block, after a good letter: that block is not read
    write_blocks(paths["version2"], DEAD_LETTER_SCHEMA, later[:2], later[2:])
    return paths


def test_what_is_unreadable_and_why(files: dict[str, Path]) -> None:
    found = {}
    for name, path in files.items():
        reading = FileReading(str(path))
        letters = list(reading)
        assert len(letters) == reading.letters
        found[name] = (reading.letters, reading.problem)
    assert found["whole"] == (5, None)
    assert found["no_letters"] == (0, None)
    letters, problem = found["truncated"]
    assert letters == 4 and problem and problem.startswith("corrupt after 4 dead letters: EOFError: ")
    letters, problem = found["bad_sync"]  # fastavro's reader would have yielded the second block's letters
    assert letters == 3 and problem and problem.startswith("corrupt after 3 dead letters: ")
    assert found["empty"] == (0, "not a readable Avro file: it is empty (0 bytes)")
    assert found["empty"][1] == check_file(str(files["empty"]))
    assert found["text"][0] == 0 and found["text"][1] == check_file(str(files["text"]))
    assert (found["text"][1] or "").startswith("not a readable Avro file: ValueError: ")
    assert found["other"][0] == 0 and found["other"][1] == check_file(str(files["other"]))
    assert (found["other"][1] or "").startswith("not a dead-letter file: its schema is Other")
    letters, problem = found["version2"]
    assert letters == 2 and problem == (
        "after 2 dead letters: dead-letter schema version 2 is not supported (this code reads 1)"
    )
    reading = FileReading(str(files["truncated"]))
    list(reading)
    assert reading.describe() == f"{files['truncated']}: {reading.problem} (4 dead letters readable)"


def test_inspect_and_replay_agree(files: dict[str, Path]) -> None:
    paths = [str(p) for p in files.values()]
    found = read_through(paths)
    report = inspect_files(paths, samples=0)
    assert {r.path: r.problem for r in found.broken} == dict(report.file_errors)
    assert found.whole == [str(files["whole"]), str(files["no_letters"])]
    assert found.readable_parts == [
        (str(files["truncated"]), 4), (str(files["bad_sync"]), 3), (str(files["version2"]), 2)
    ]
    assert found.letters == report.total == 5 + 4 + 3 + 2
    assert sorted(report.files_read) == sorted(
        str(files[n]) for n in ("whole", "no_letters", "truncated", "bad_sync", "version2")
    )


def test_read_readable_reads_exactly_the_readable_letters(files: dict[str, Path]) -> None:
    truncated = str(files["truncated"])
    assert [dl.partition_key for dl in read_readable((truncated, 4))] == [f"t-{i}" for i in range(4)]
    assert len(list(read_readable((str(files["version2"]), 2)))) == 2
    # a file damaged further after the check: the pipeline fails, naming it
    with pytest.raises(OSError, match=r"truncated\.avro: 5 dead letters were readable .* 4 now: corrupt"):
        list(read_readable((truncated, 5)))

