"""``python -m pipelines.migrate`` against kinesalite, run as a user runs it."""

from __future__ import annotations

import base64
import datetime
import decimal
import gzip
import io
import json
import os
import random
import re
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import fastavro
import pytest
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from beam_kinesis_sink import ErrorCode
from beam_kinesis_sink.dead_letter_io import read_file
from beam_kinesis_sink.testing.local_servers import LocalKinesis
from beam_kinesis_sink.testing.readback import shard_ranges
from pipelines import migrate
from tests.oracle import hash_key_of
from tests.pipelines.conftest import Run, cli_env, stream_records, summary_value

pytestmark = pytest.mark.integration

UTC = datetime.timezone.utc
N_RECORDS = 100_000

ORDER_SCHEMA: dict = {
    "type": "record",
    "name": "Order",
    "namespace": "shop.history",
    "fields": [
        {"name": "order_id", "type": "long"},
        {
            "name": "customer",
            "type": {
                "type": "record",
                "name": "Customer",
                "fields": [
                    {"name": "id", "type": "string"},
                    {"name": "tier",
                     "type": {"type": "enum", "name": "Tier", "symbols": ["GOLD", "SILVER", "NONE"]}},
                    {
                        "name": "address",
                        "type": [
                            "null",
                            {
                                "type": "record",
                                "name": "Address",
                                "fields": [
                                    {"name": "city", "type": "string"},
                                    {"name": "zip", "type": ["null", "string"]},
                                ],
                            },
                        ],
                    },
                ],
            },
        },
        {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "updated_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "ship_date", "type": ["null", {"type": "int", "logicalType": "date"}]},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
        {"name": "order_uuid", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "payload", "type": "bytes"},
        {"name": "checksum", "type": {"type": "fixed", "name": "Checksum", "size": 4}},
        {"name": "score", "type": ["null", "double", "long", "string"]},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "counters", "type": {"type": "map", "values": "long"}},
    ],
}


def make_order(rng: random.Random, i: int) -> dict[str, Any]:
    base = datetime.datetime(2023, 1, 1, tzinfo=UTC)
    score: Any = [None, rng.random() * 100, rng.randrange(-(2**40), 2**40), f"s{i}"][i % 4]
    if i % 1000 == 1:
        score = [float("nan"), float("inf"), -float("inf")][i // 1000 % 3]
    return {
        "order_id": i,
        "customer": {
            "id": f"cust-{rng.randrange(5000):05d}",
            "tier": ["GOLD", "SILVER", "NONE"][i % 3],
            "address": None if i % 5 == 0 else {
                "city": f"city-{i % 97}", "zip": None if i % 2 else f"{i % 99999:05d}"
            },
        },
        "created_at": base + datetime.timedelta(milliseconds=rng.randrange(10**10)),
        "updated_at": base + datetime.timedelta(microseconds=rng.randrange(10**13)),
        "ship_date": None if i % 7 == 0 else datetime.date(2023, 1, 1) + datetime.timedelta(days=i % 700),
        "amount": decimal.Decimal(rng.randrange(-10**8, 10**8)) / 100,
        "order_uuid": uuid.UUID(int=rng.getrandbits(128), version=4),
        "payload": rng.randbytes(rng.randrange(0, 24)),
        "checksum": rng.randbytes(4),
        "score": score,
        "tags": [f"t{j}" for j in range(i % 4)],
        "counters": {f"c{j}": rng.randrange(10**6) for j in range(i % 3)},
    }


@pytest.fixture(scope="module")
def orders_avro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("history") / "orders.avro"
    rng = random.Random(20240501)
    with path.open("wb") as f:
        orders = (make_order(rng, i) for i in range(N_RECORDS))
        fastavro.writer(f, fastavro.parse_schema(ORDER_SCHEMA), orders, codec="deflate")
    return path


def read_input(path: Path) -> tuple[dict, list[dict]]:
    """The file's header schema and its records, as fastavro decodes them."""
    with path.open("rb") as f:
        reader = fastavro.reader(f)
        return json.loads(reader.metadata["avro.schema"]), list(reader)


def expected_json(order: dict[str, Any]) -> dict[str, Any]:
    """The documented JSON mapping, written out field by field for this schema."""

    def ts(value: datetime.datetime) -> str:
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    score = order["score"]
    if isinstance(score, float) and score != score:
        score = "NaN"
    elif score == float("inf"):
        score = "Infinity"
    elif score == -float("inf"):
        score = "-Infinity"
    return {
        "order_id": order["order_id"],
        "customer": order["customer"],
        "created_at": ts(order["created_at"]),
        "updated_at": ts(order["updated_at"]),
        "ship_date": order["ship_date"].isoformat() if order["ship_date"] else None,
        "amount": str(order["amount"]),
        "order_uuid": str(order["order_uuid"]),
        "payload": base64.b64encode(order["payload"]).decode(),
        "checksum": base64.b64encode(order["checksum"]).decode(),
        "score": score,
        "tags": order["tags"],
        "counters": order["counters"],
    }


def check_summary(run: Run, read: int, written: int, dead: int) -> None:
    assert summary_value(run.stdout, "records read") == read, run
    assert summary_value(run.stdout, "records written") == written, run
    assert summary_value(run.stdout, "records dead-lettered") == dead, run
    assert re.search(r"migrate: finished in [\d.,]+ s", run.stdout), run
    assert "records/s" in run.stdout


def check_shards(server: LocalKinesis, stream: str, records: list[dict[str, Any]]) -> None:
    ranges = {r.shard_id: r for r in shard_ranges(server.client(), stream)}
    assert len(ranges) == 4
    for record in records:
        assert ranges[record["shard_id"]].holds(hash_key_of(record["partition_key"]))


def migrate_100k(
    cli: Callable[..., Run], server: LocalKinesis, new_stream: Callable[[int], str], orders_avro: Path,
    serialize: str, tmp_path: Path,
) -> tuple[Run, str]:
    stream = new_stream(4)
    run = cli(
        "migrate", "--input", str(orders_avro), "--format", "avro", "--stream", stream,
        "--partition-key", "customer.id", "--serialize", serialize,
        "--endpoint-url", server.endpoint_url, "--region", "us-east-1",
        "--dead-letter-dir", str(tmp_path / "dl"), "--no-rate-limit",
    )
    assert run.returncode == 0, run
    check_summary(run, N_RECORDS, N_RECORDS, 0)
    return run, stream


def test_migrate_100k_avro_single_object(
    cli: Callable[..., Run], kinesalite: LocalKinesis, new_stream: Callable[[int], str], orders_avro: Path,
    tmp_path: Path,
) -> None:
    run, stream = migrate_100k(cli, kinesalite, new_stream, orders_avro, "avro", tmp_path)
    schema, orders = read_input(orders_avro)
    # An independent decoder: fastavro's canonical form and fingerprint, fastavro's reader.
    fingerprint = bytes.fromhex(fastavro_fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))
    store = {fingerprint: fastavro.parse_schema(schema)}
    assert fingerprint[::-1].hex() in run.stdout  # the summary names the writer schema's fingerprint

    records = stream_records(kinesalite, stream)
    assert len(records) == N_RECORDS
    check_shards(kinesalite, stream, records)
    decoded = {}
    for record in records:
        data = record["data"]
        assert data[:2] == b"\xc3\x01"
        value = fastavro.schemaless_reader(io.BytesIO(data[10:]), store[data[2:10]], None)
        assert record["partition_key"] == value["customer"]["id"]
        decoded[value["order_id"]] = value
    assert len(decoded) == N_RECORDS
    for order in orders:
        value = decoded[order["order_id"]]
        if isinstance(order["score"], float) and order["score"] != order["score"]:  # NaN != NaN
            assert value["score"] != value["score"]
            value = dict(value, score=None)
            order = dict(order, score=None)
        assert value == order


def test_migrate_100k_json(
    cli: Callable[..., Run], kinesalite: LocalKinesis, new_stream: Callable[[int], str], orders_avro: Path,
    tmp_path: Path,
) -> None:
    run, stream = migrate_100k(cli, kinesalite, new_stream, orders_avro, "json", tmp_path)
    _, orders = read_input(orders_avro)
    records = stream_records(kinesalite, stream)
    assert len(records) == N_RECORDS
    check_shards(kinesalite, stream, records)
    by_id = {}
    for record in records:
        assert b", " not in record["data"] and b": " not in record["data"]  # compact
        value = json.loads(record["data"])
        assert record["partition_key"] == value["customer"]["id"]
        by_id[value["order_id"]] = value
    assert len(by_id) == N_RECORDS
    for order in orders:
        assert by_id[order["order_id"]] == expected_json(order)


JSONL_GOOD = 300


def test_jsonl_with_broken_lines_and_missing_keys(
    cli: Callable[..., Run], kinesalite: LocalKinesis, new_stream: Callable[[int], str], tmp_path: Path,
) -> None:
    stream = new_stream(2)
    good: list[dict[str, Any]] = []
    lines_a: list[bytes] = []
    expected_dead: dict[str, str] = {}  # origin -> code
    path_a = tmp_path / "in" / "a.jsonl"
    path_b = tmp_path / "in" / "b.jsonl.gz"
    path_a.parent.mkdir()
    for i in range(JSONL_GOOD):
        record = {"id": i, "customer": {"id": f"c{i % 17}"}, "note": "é" * (i % 3)}
        good.append(record)
        lines_a.append(json.dumps(record).encode())
        if i % 50 == 7:
            lines_a.append(b'{"id": %d, "customer": {"id": "broken"' % i)
            expected_dead[f"{path_a}:{len(lines_a)}"] = ErrorCode.MALFORMED_INPUT
        if i % 60 == 3:
            lines_a.append(json.dumps({"id": -i, "customer": {"name": "no id"}}).encode())
            expected_dead[f"{path_a}:{len(lines_a)}"] = ErrorCode.MISSING_PARTITION_KEY
        if i % 100 == 99:
            lines_a.append(json.dumps({"id": -i}).encode())
            expected_dead[f"{path_a}:{len(lines_a)}"] = ErrorCode.MISSING_PARTITION_KEY
        if i % 70 == 11:  # keys the sink refuses; the first is no valid Unicode (no UTF-8 for Beam's coders)
            for bad_key in ("\ud800", "", "k" * 257):
                lines_a.append(json.dumps({"id": -i, "customer": {"id": bad_key}}).encode())
                expected_dead[f"{path_a}:{len(lines_a)}"] = ErrorCode.INVALID_PARTITION_KEY
    path_a.write_bytes(b"\n".join(lines_a) + b"\n")
    b_lines = [json.dumps({"id": 1000 + i, "customer": {"id": f"c{i}"}}).encode() for i in range(20)]
    good += [json.loads(line) for line in b_lines]
    b_lines.insert(5, b"garbage")
    expected_dead[f"{path_b}:6"] = ErrorCode.MALFORMED_INPUT
    path_b.write_bytes(gzip.compress(b"\n".join(b_lines) + b"\n"))
    dead_dir = tmp_path / "dl"

    run = cli(
        "migrate", "--input", str(tmp_path / "in" / "*"), "--format", "jsonl", "--stream", stream,
        "--partition-key", "customer.id", "--endpoint-url", kinesalite.endpoint_url,
        "--dead-letter-dir", str(dead_dir),
    )
    assert run.returncode == 3, run
    check_summary(run, len(good) + len(expected_dead), len(good), len(expected_dead))
    assert re.search(r"MalformedInput\s+" + str(sum(c == "MalformedInput" for c in expected_dead.values())),
                     run.stdout), run
    files = sorted(dead_dir.glob("dead-letters-*.avro"))
    assert files and all(str(f) in run.stdout for f in files)

    letters = [dl for f in files for dl in read_file(str(f))]
    assert {dl.element_preview: dl.error_code for dl in letters} == expected_dead
    for dl in letters:
        assert dl.element_preview and dl.error_message.startswith(dl.element_preview + ":")  # file:line
        assert dl.stream == stream and dl.attempts == 0 and dl.data
    malformed = [dl for dl in letters if dl.error_code == ErrorCode.MALFORMED_INPUT]
    assert all("not valid JSON" in dl.error_message for dl in malformed)
    refused = [dl.error_message for dl in letters if dl.error_code == ErrorCode.INVALID_PARTITION_KEY]
    assert len(refused) == 3 * sum(1 for i in range(JSONL_GOOD) if i % 70 == 11) > 0
    assert all(m.endswith("(the partition key 'customer.id')") for m in refused)
    assert {("lone surrogate (U+D800)" in m, "is empty" in m, "257 UTF-16 code units" in m)
            for m in refused} == {(True, False, False), (False, True, False), (False, False, True)}

    records = stream_records(kinesalite, stream)
    assert sorted((json.loads(r["data"]) for r in records), key=lambda r: r["id"]) == sorted(
        good, key=lambda r: r["id"]
    )
    assert all(r["partition_key"] == json.loads(r["data"])["customer"]["id"] for r in records)


def write_small_avro(path: Path, first_id: int, n: int, sync_interval: int = 16000) -> list[dict]:
    schema = {"type": "record", "name": "Small", "fields": [
        {"name": "id", "type": "long"}, {"name": "key", "type": "string"}]}
    rows = [{"id": first_id + i, "key": f"k{i % 10}"} for i in range(n)]
    with path.open("wb") as f:
        fastavro.writer(f, fastavro.parse_schema(schema), rows, codec="null", sync_interval=sync_interval)
    return rows


def test_unreadable_files_are_named_and_the_run_goes_on(
    cli: Callable[..., Run], kinesalite: LocalKinesis, new_stream: Callable[[int], str], tmp_path: Path,
) -> None:
    stream = new_stream(1)
    src = tmp_path / "in"
    src.mkdir()
    good = write_small_avro(src / "a.avro", 0, 500) + write_small_avro(src / "b.avro", 1000, 500)
    corrupt = src / "c.avro"
    rows = write_small_avro(corrupt, 2000, 3000, sync_interval=2000)
    data = bytearray(corrupt.read_bytes())
    with corrupt.open("rb") as f:
        marker = fastavro.reader(f)._header["sync"]
    after_first = data.index(marker, data.index(marker) + 16)
    after_second = data.index(marker, after_first + 16)
    data[after_second:after_second + 16] = bytes(16)  # block 3 onwards cannot be read
    corrupt.write_bytes(bytes(data))
    (src / "d.avro").write_text('{"not": "avro"}\n')

    run = cli(
        "migrate", "--input", str(src / "*.avro"), "--format", "avro", "--stream", stream,
        "--partition-key", "key", "--endpoint-url", kinesalite.endpoint_url,
        "--dead-letter-dir", str(tmp_path / "dl"),
    )
    assert run.returncode == 3, run
    assert summary_value(run.stdout, "UnreadableInput") == 2
    letters = [dl for f in (tmp_path / "dl").glob("*.avro") for dl in read_file(str(f))]
    assert sorted(dl.element_preview for dl in letters) == [str(corrupt), str(src / "d.avro")]
    assert all(dl.error_code == ErrorCode.UNREADABLE_INPUT and dl.data is None for dl in letters)
    by_file = {dl.element_preview: dl.error_message for dl in letters}
    assert by_file[str(corrupt)].startswith(f"{corrupt}: corrupt Avro data after record ")
    assert by_file[str(src / "d.avro")].startswith(f"{src / 'd.avro'}: not a readable Avro file")
    partial = int(re.search(r"after record (\d+)", by_file[str(corrupt)]).group(1))  # type: ignore[union-attr]
    assert 0 < partial < 3000

    ids = sorted(json.loads(r["data"])["id"] for r in stream_records(kinesalite, stream))
    assert ids == sorted([r["id"] for r in good] + [r["id"] for r in rows[:partial]])
    assert summary_value(run.stdout, "records read") == len(ids)


def test_usage_errors_exit_2(
    cli: Callable[..., Run], kinesalite: LocalKinesis, new_stream: Callable[[int], str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """One case as a subprocess (the real exit code), the others through ``main`` in this process."""
    stream = new_stream(1)
    (tmp_path / "x.jsonl").write_text('{"k": "v"}\n')
    common = ["--stream", stream, "--partition-key", "k", "--endpoint-url", kinesalite.endpoint_url]
    run = cli("migrate", *common, "--input", str(tmp_path / "nothing*.avro"), "--format", "avro")
    assert run.returncode == 2 and "no file matches" in run.stderr, run

    for name, value in cli_env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    jsonl = ["--input", str(tmp_path / "x.jsonl")]
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "fine.jsonl").write_text('{"k": "v"}\n')
    (odd / os.fsdecode(b"bad\xffname.jsonl")).write_text('{"k": "v"}\n')  # no UTF-8 for this name
    cases = {
        "are not valid UTF-8, which Beam cannot carry": ["--input", str(odd), "--format", "jsonl"],
        "/odd/bad\\xffname.jsonl'. Rename them": ["--input", str(odd), "--format", "jsonl"],
        "--serialize avro needs --format avro": [*jsonl, "--format", "jsonl", "--serialize", "avro"],
        "unrecognized arguments: --partiton-key": [*jsonl, "--format", "jsonl", "--partiton-key", "k"],
        "the following arguments are required: --format": jsonl,
        "does not exist": [*jsonl, "--format", "jsonl", "--stream", "no-such"],
        "empty segment in field path": [*jsonl, "--format", "jsonl", "--partition-key", "a..b"],
        "no input file could be read": [*jsonl, "--format", "avro",
                                        "--dead-letter-dir", str(tmp_path / "dl")],
        # an OverflowError traceback once; a negative or NaN interval was taken
        "--max-records-per-second: must be a positive number, not 'inf'": [
            *jsonl, "--format", "jsonl", "--max-records-per-second", "inf"],
        "--max-records-per-second: must be a positive number, not 'nan'": [
            *jsonl, "--format", "jsonl", "--max-records-per-second", "nan"],
        "--progress-interval: must be 0 (no progress lines) or a number of seconds, not '-1'": [
            *jsonl, "--format", "jsonl", "--progress-interval", "-1"],
        "--progress-interval: must be 0 (no progress lines) or a number of seconds, not 'nan'": [
            *jsonl, "--format", "jsonl", "--progress-interval", "nan"],
        # each a traceback once (exit 1), the last two from a worker, once the pipeline ran
        "argument --stream: 'a/b' is not a stream name (1 to 128 of": [
            *jsonl, "--format", "jsonl", "--stream", "a/b"],
        "--endpoint-url 'notaurl' is not a URL botocore can use": [
            *jsonl, "--format", "jsonl", "--no-preflight", "--endpoint-url", "notaurl"],
        "--region 'bad_region!' is not a region name": [
            *jsonl, "--format", "jsonl", "--no-preflight", "--region", "bad_region!"],
    }
    for message, args in cases.items():
        try:
            code = migrate.main([*common, *args])
        except SystemExit as exit_:
            code = exit_.code  # argparse
        err = capsys.readouterr().err
        assert code == 2, (message, err)
        assert message in err, (message, err)


def test_rate_cap_and_progress(
    cli: Callable[..., Run], kinesalite: LocalKinesis, new_stream: Callable[[int], str], tmp_path: Path,
) -> None:
    """3,000 records capped at 600/s: at least (3,000 - burst) / 600 s of writing,
    and progress lines every second meanwhile (--progress-interval 1; 5 s by default)."""
    stream = new_stream(2)
    n, rate = 3000, 600
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": i, "k": f"k{i % 50}"}) + "\n" for i in range(n)))
    started = time.monotonic()
    run = cli(
        "migrate", "--input", str(path), "--format", "jsonl", "--stream", stream, "--partition-key", "k",
        "--endpoint-url", kinesalite.endpoint_url, "--max-records-per-second", str(rate),
        "--progress-interval", "1", "--dead-letter-dir", str(tmp_path / "dl"),
    )
    wall = time.monotonic() - started
    assert run.returncode == 0, run
    check_summary(run, n, n, 0)
    burst = rate * 0.2  # the sink's token bucket holds 0.2 s of the cap
    minimum = (n - burst) / rate
    elapsed = float(re.search(r"finished in ([\d.,]+) s", run.stdout).group(1))  # type: ignore[union-attr]
    assert elapsed >= minimum, run
    assert wall >= minimum
    assert elapsed < minimum * 2 + 10, run  # and the cap is not grossly slower either
    progress = [line for line in run.stderr.splitlines() if line.startswith("[migrate]")]
    assert len(progress) >= int(minimum) - 1, run
    counts = [int(re.search(r"written ([\d,]+)", line).group(1).replace(",", ""))  # type: ignore[union-attr]
              for line in progress]
    assert counts == sorted(counts) and 0 < counts[-1] <= n
    assert all(re.search(r"read [\d,]+ .*records/s\).*dead letters 0", line) for line in progress), progress
    assert len(stream_records(kinesalite, stream)) == n


def test_runs_that_share_a_dead_letter_dir_keep_every_runs_dead_letters(
    cli: Callable[..., Run], kinesalite: LocalKinesis, new_stream: Callable[[int], str], tmp_path: Path,
) -> None:
    # Each run wrote dead-letters-00000-of-00001.avro: the second migration into
    # the same --dead-letter-dir (a re-run, a daily job) replaced the first's
    # letters, and a replay into its own source directory could replace the
    # letters it had just left there as not replayable.
    stream = new_stream(1)
    dead_dir = tmp_path / "dl"
    for day in ("day1", "day2"):
        (tmp_path / f"{day}.jsonl").write_text(f'{{"u": "{day}"}}\nnot json on {day}\n{{"no_key": 1}}\n')
    runs = [cli("migrate", "--input", str(tmp_path / f"{day}.jsonl"), "--format", "jsonl", "--stream", stream,
                "--partition-key", "u", "--endpoint-url", kinesalite.endpoint_url, "--no-rate-limit",
                "--dead-letter-dir", str(dead_dir)) for day in ("day1", "day2")]
    assert [r.returncode for r in runs] == [3, 3], runs
    files = sorted(str(f) for f in dead_dir.glob("dead-letters-*.avro"))
    assert len(files) == 2
    for run in runs:  # each summary names its own run's file, not the other's
        assert sum(f in run.stdout for f in files) == 1, run.stdout
    letters = [dl for f in files for dl in read_file(f)]
    assert sorted(dl.element_preview for dl in letters) == sorted(
        f"{tmp_path / day}.jsonl:{line}" for day in ("day1", "day2") for line in (2, 3))

    replay = cli("replay_dead_letters", str(dead_dir), "--stream", stream, "--endpoint-url",
                 kinesalite.endpoint_url, "--dead-letter-dir", str(dead_dir))
    assert replay.returncode == 3, replay  # 2 MalformedInput + 2 MissingPartitionKey: none replayable...
    assert summary_value(replay.stdout, "not replayable") == 4
    after = sorted(str(f) for f in dead_dir.glob("dead-letters-*.avro"))
    assert set(files) < set(after) and len(after) == 3  # ...and they stay where they were
    assert sorted(dl.element_preview for f in files for dl in read_file(f)) == sorted(
        dl.element_preview for dl in letters)
