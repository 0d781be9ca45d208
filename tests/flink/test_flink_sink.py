"""WriteToKinesis on a real Flink cluster (parallelism 2) against a real local
Kinesis server (kinesalite), read back shard by shard.

* batch: 10,000 good records + every pre-request error code, through the
  EXTERNAL worker pool (as deployed), spread over both slots by a Reshuffle;
  stream content, placement, receipts, dead letters and Beam metrics checked;
* streaming: an unbounded ``PeriodicImpulse`` with small bundles; records must
  reach the stream *while the job runs* (bundle and stateful batching), then
  the job is cancelled and must stop;
* the sink's receipts and dead letters crossing a runner-side shuffle.

Two things found here (details in the README's "Running on Flink"):

* The sink's row types must have real schema field types: Flink's Java side
  decodes them wherever it shuffles them (the keyed input of
  ``GroupIntoBatches`` in ``batching="stateful"``, any GroupByKey/Reshuffle of
  ``written``/``dead_letters``). ``from __future__ import annotations`` in
  records.py once made every field ``pythonsdk_any``, and these jobs failed;
  tests/unit/test_transform.py now guards the schemas.
* ``PipelineResult.cancel()`` (job server 2.62, attached mode) marks the Beam
  job CANCELLED but leaves the Flink job running; the streaming test then
  cancels it through Flink's REST API, and says so in the session report.

This module is imported by the SDK workers too (they unpickle its functions):
it must not import ``tests.conftest``, which would put test credentials into
the workers' environment and hide a missing credential chain.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState
from apache_beam.transforms import window
from apache_beam.transforms.periodicsequence import PeriodicImpulse
from apache_beam.typehints.schemas import named_tuple_to_schema
from apache_beam.utils.timestamp import Timestamp

from beam_kinesis_sink import ClientConfig, DeadLetter, ErrorCode, WriteReceipt, WriteToKinesis
from beam_kinesis_sink.metrics import NAMESPACE
from beam_kinesis_sink.testing.readback import read_all, shard_ranges
from tests.integration.helpers import collect, collected
from tests.oracle import hash_key_of

# A streaming job runs up to STREAM_MAX_SECONDS; a job that cannot start hangs.
pytestmark = pytest.mark.timeout(300)

MiB = 1024 * 1024
GOOD = 10_000
SHARDS = 4

# Each pre-request error code, some more than once; (element, expected code).
BAD: List[Tuple[Dict[str, Any], str]] = [
    ({"i": -1}, ErrorCode.INVALID_PARTITION_KEY),  # no key
    ({"user": "", "i": -2}, ErrorCode.INVALID_PARTITION_KEY),
    ({"user": "k" * 257, "i": -3}, ErrorCode.INVALID_PARTITION_KEY),
    ({"user": 12345, "i": -4}, ErrorCode.INVALID_PARTITION_KEY),
    ({"user": "u", "h": "-1", "i": -5}, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
    ({"user": "u", "h": str(2**128), "i": -6}, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
    ({"user": "u", "h": "0x10", "i": -7}, ErrorCode.INVALID_EXPLICIT_HASH_KEY),
    ({"user": "big", "pad": "x" * MiB, "i": -8}, ErrorCode.RECORD_TOO_LARGE),
    ({"user": "u", "not_json": {1, 2}, "i": -9}, ErrorCode.SERIALIZATION_ERROR),
]

# Streaming: 20 elements/s, bundles of at most 10 elements or 200 ms.
FIRE_INTERVAL = 0.05
STREAM_MAX_SECONDS = 120  # PeriodicImpulse stops by itself then, should every cancel fail
SEE_RECORDS_WITHIN = 90.0
CANCEL_GRACE_SECONDS = 5.0

class FlinkJobFailed(AssertionError):
    """The Flink job ended (failed, or otherwise) while the test expected it running."""


class RunnerDecodeFailed(FlinkJobFailed):
    """The Flink job failed in a Java coder decoding what the Python SDK sent."""


_JAVA_DECODE = re.compile(r"at org\.apache\.beam\.sdk\.coders\.[\w$]+\.decode\(")


def _stream_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def client_config(server: Any) -> ClientConfig:
    """The sink's client config for the SDK workers.

    The fixture-started worker pool inherits this process's environment,
    test credentials included (``tests/conftest.py``): the workers use
    boto3's default chain, as a real deployment would (instance/pod role).
    A cluster attached with ``FLINK_CLUSTER_ATTACH`` was started from some
    shell whose environment is unknown: then the (fake) test credentials
    travel in the config instead.
    """
    if os.environ.get("FLINK_CLUSTER_ATTACH"):
        return ClientConfig(
            region_name="us-east-1",
            endpoint_url=server.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
    return ClientConfig(region_name="us-east-1", endpoint_url=server.endpoint_url)


def explicit_hash_key(element: Dict[str, Any]) -> Optional[str]:
    return element.get("h")



def good_elements(n: int) -> List[Dict[str, Any]]:
    out = []
    for i in range(n):
        element: Dict[str, Any] = {"user": f"user-{i % 997}", "i": i}
        if i % 10 == 0:
            element["h"] = str((i * 7919 * 2**100) % 2**128)
        out.append(element)
    return out


def encoded(element: Dict[str, Any]) -> bytes:
    return json.dumps(element, separators=(",", ":")).encode("utf-8")


def with_timestamp(indexed: Tuple[int, Dict[str, Any]]) -> window.TimestampedValue:
    index, element = indexed
    return window.TimestampedValue(element, 1_000 + index)


def with_pid(element: Any) -> Tuple[Any, int]:
    return element, os.getpid()


def periodic_impulse(start: float, stop: float, interval: float) -> PeriodicImpulse:
    """``PeriodicImpulse`` from ``start`` to ``stop``, rebased to when the job
    starts where Beam can (``RebaseMode``, which apache-beam 2.62, the job
    server's version, does not have yet): there the firings due before the job
    started come out at once when it does, and the job runs until ``stop``."""
    try:
        from apache_beam.transforms.periodicsequence import RebaseMode
    except ImportError:
        return PeriodicImpulse(start_timestamp=start, stop_timestamp=stop, fire_interval=interval)
    return PeriodicImpulse(
        start_timestamp=start, stop_timestamp=stop, fire_interval=interval, rebase=RebaseMode.REBASE_ALL
    )


def event_of(timestamp: Any) -> Dict[str, Any]:
    """A PeriodicImpulse firing as a record: unique ``t``, 13 partition keys."""
    micros = Timestamp.of(timestamp).micros  # a Timestamp, or float seconds
    return {"user": f"u{(micros // int(FIRE_INTERVAL * 1e6)) % 13}", "t": micros}


#: Beam 2.62's RowCoder decodes every row as a NamedTuple of a class it generates
#: from the schema (``named_tuple_from_schema`` never looks up the registered
#: type), so the sink's outputs come out of a runner shuffle as ``BeamSchema_<id>``
#: rows with their fields; 2.77 gives back DeadLetter and WriteReceipt themselves.
BEAM_REGENERATES_ROW_TYPES = tuple(int(part) for part in beam.__version__.split(".")[:2]) < (2, 77)


def is_row_of(value: Any, cls: type) -> bool:
    """``value`` is a ``cls``, or (where Beam regenerates row types) a row of a
    generated class with ``cls``'s Beam schema: its field names and types."""
    if isinstance(value, cls):
        return True
    row_type = type(value)
    if not (BEAM_REGENERATES_ROW_TYPES and row_type.__name__.startswith("BeamSchema_")):
        return False

    def fields(t: type) -> list:
        return [(f.name, f.type.SerializeToString()) for f in named_tuple_to_schema(t).fields]

    return fields(row_type) == fields(cls)


# ---------------------------------------------------------------- Flink REST
def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def find_flink_job(cluster: Any, job_name: str) -> Optional[Dict[str, Any]]:
    """The Flink REST overview of the job Beam submitted as ``job_name``, if there is one yet."""
    jobs = [j for j in _get(f"{cluster.rest_url}/jobs/overview")["jobs"] if j["name"] == job_name]
    assert len(jobs) <= 1, f"{len(jobs)} Flink jobs named {job_name!r}"
    return jobs[0] if jobs else None


def flink_job(cluster: Any, job_name: str) -> Dict[str, Any]:
    """The Flink REST details (vertices, parallelism, state) of ``job_name``."""
    found = find_flink_job(cluster, job_name)
    assert found is not None, f"job {job_name!r} not found on the Flink cluster"
    return _get(f"{cluster.rest_url}/jobs/{found['jid']}")


def job_failure(cluster: Any, jid: str, state: str) -> FlinkJobFailed:
    """The exception to raise for a job that ended early, with Flink's root cause."""
    try:
        text = _get(f"{cluster.rest_url}/jobs/{jid}/exceptions").get("root-exception") or ""
    except (urllib.error.URLError, OSError, ValueError) as error:
        text = f"(no exception history: {error})"
    lines = text.splitlines()
    summary = "\n".join(lines[:1] + [line.strip() for line in lines if line.startswith("Caused by")])
    kind = RunnerDecodeFailed if _JAVA_DECODE.search(text) else FlinkJobFailed
    return kind(f"Flink job {state} before records arrived:\n{summary}")


def watch_running_job(
    cluster: Any, job_name: str, t0: float, within: float, count: Callable[[], Tuple[int, int]], enough: int
) -> Tuple[List[Tuple[float, int, int]], Optional[str]]:
    """Poll ``count()`` (a count, and a second figure) while the job runs, for
    up to ``within`` seconds from ``t0``: ``[(seconds, count, figure)]`` each
    time the count grew, until it grew 3 times and reached ``enough``; and the
    Flink job id, once the job is there. A job that ended is raised with
    Flink's root cause."""
    seen: List[Tuple[float, int, int]] = []
    jid: Optional[str] = None
    while time.monotonic() < t0 + within:
        job = find_flink_job(cluster, job_name)
        if job is not None:
            jid = job["jid"]
            if job["state"] not in ("INITIALIZING", "CREATED", "RUNNING"):
                raise job_failure(cluster, jid, job["state"])
        now, figure = count()
        if now and (not seen or now > seen[-1][1]):
            seen.append((time.monotonic() - t0, now, figure))
        if len(seen) >= 3 and now >= enough:
            break
        time.sleep(0.5)
    return seen, jid


def cancel_if_running(cluster: Any, job_name: str) -> None:
    """For a test that failed with its job maybe still there: never leave it
    holding the slots (looked up by name, in case the test never saw its id)."""
    try:
        job = find_flink_job(cluster, job_name)
        if job is not None and job["state"] not in ("CANCELED", "FAILED", "FINISHED"):
            cancel_flink_job(cluster, job["jid"])
            wait_flink_state(cluster, job["jid"], {"CANCELED", "FAILED", "FINISHED"}, 60)
    except (urllib.error.URLError, OSError, AssertionError):
        pass


def cancel_flink_job(cluster: Any, jid: str) -> None:
    request = urllib.request.Request(f"{cluster.rest_url}/jobs/{jid}?mode=cancel", method="PATCH")
    with urllib.request.urlopen(request, timeout=10) as resp:
        resp.read()


def wait_flink_state(cluster: Any, jid: str, states: set, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        state = _get(f"{cluster.rest_url}/jobs/{jid}")["state"]
        if state in states or time.monotonic() >= deadline:
            return state
        time.sleep(0.25)


def wait_beam_state(result: Any, state: str, timeout: float) -> str:
    """The Beam job's state, once it is ``state`` or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while result.state != state and time.monotonic() < deadline:
        time.sleep(0.2)
    return result.state


def counters(result: Any) -> Dict[str, int]:
    found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    out: Dict[str, int] = {}
    for c in found["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + value
    return out


def check_placement(client: Any, stream: str, records: List[dict], hash_of: Callable[[dict], int]) -> None:
    """Every record sits on the shard whose hash-key range holds its hash key."""
    ranges = {r.shard_id: r for r in shard_ranges(client, stream)}
    for record in records:
        hash_key = hash_of(record)
        assert ranges[record["shard_id"]].holds(hash_key), (record["shard_id"], record["partition_key"])


# ---------------------------------------------------------------- batch
def test_batch_10k_records_dead_letters_receipts_metrics(
    flink_cluster, kinesalite, tmp_path: Path, report: Callable[[str], None]
) -> None:
    stream = _stream_name("flink-batch")
    kinesalite.create_stream(stream, shards=SHARDS)
    good = good_elements(GOOD)
    elements = good + [e for e, _ in BAD]
    job_name = f"kinesis-batch-{uuid.uuid4().hex[:8]}"
    options = PipelineOptions(flink_cluster.pipeline_options("EXTERNAL", job_name=job_name))

    pipeline = beam.Pipeline(options=options)
    result = (
        pipeline
        | beam.Create(list(enumerate(elements)))
        | beam.Map(with_timestamp)
        # Create runs as one task; the shuffle spreads the writes over both slots.
        | beam.Reshuffle()
        | WriteToKinesis(
            stream,
            partition_key="user",
            explicit_hash_key=explicit_hash_key,
            client_config=client_config(kinesalite),
        )
    )
    collect(result.written | "WithPid" >> beam.Map(with_pid), str(tmp_path / "written"), "CollectWritten")
    collect(result.dead_letters, str(tmp_path / "dead"), "CollectDead")
    t0 = time.monotonic()
    run = pipeline.run()
    assert run.wait_until_finish() == PipelineState.DONE
    elapsed = time.monotonic() - t0

    # Flink ran the sink with parallelism 2, and both slots wrote.
    job = flink_job(flink_cluster, job_name)
    assert job["state"] == "FINISHED"
    sink = [v for v in job["vertices"] if "WriteToKinesis" in v["name"]]
    assert len(sink) == 1, [v["name"] for v in job["vertices"]]
    assert sink[0]["parallelism"] == 2
    subtasks = _get(f"{flink_cluster.rest_url}/jobs/{job['jid']}/vertices/{sink[0]['id']}")["subtasks"]
    per_slot = [s["metrics"]["read-records"] for s in subtasks]
    assert len(per_slot) == 2 and min(per_slot) > len(elements) // 4, per_slot
    assert sum(per_slot) == len(elements)

    client = kinesalite.client()
    by_shard = read_all(client, stream)
    stored = [r for records in by_shard.values() for r in records]
    expected = {encoded(e): e for e in good}
    # Every good record exactly once, nothing else. (A worker without AWS
    # credentials dead-letters everything as NoCredentialsError: see the metrics.)
    assert len(stored) == len(good), f"{len(stored)} stored of {len(good)}; metrics: {counters(run)}"
    assert {r["data"] for r in stored} == set(expected)
    for record in stored:
        assert record["partition_key"] == expected[record["data"]]["user"]
    # Placement: the shard whose range holds MD5(partition key) or the explicit hash key.
    assert len(by_shard) == SHARDS and all(by_shard.values())

    def hash_of(record: dict) -> int:
        element = expected[record["data"]]
        return int(element["h"]) if "h" in element else hash_key_of(element["user"])

    check_placement(client, stream, stored, hash_of)

    # Receipts: one per stored record, naming its shard and sequence number.
    receipts = collected(str(tmp_path / "written"))
    assert len(receipts) == len(good)
    assert {pid for (_, pid), _, _ in receipts}.isdisjoint({os.getpid()}), (
        "EXTERNAL workers are other processes"
    )
    stored_at = {(r["shard_id"], r["sequence_number"]): r for r in stored}
    assert {(w.shard_id, w.sequence_number) for (w, _), _, _ in receipts} == set(stored_at)
    for (receipt, _), ts_micros, _ in receipts:
        assert isinstance(receipt, WriteReceipt)
        record = stored_at[(receipt.shard_id, receipt.sequence_number)]
        element = expected[record["data"]]
        assert receipt.partition_key == element["user"]
        assert receipt.explicit_hash_key == element.get("h")
        assert receipt.stream == stream and receipt.attempts >= 1
        assert receipt.size_bytes == len(record["data"]) + len(record["partition_key"])
        # The element's timestamp survives the shuffle and the sink.
        assert receipt.element_timestamp_micros == ts_micros == (1_000 + element["i"]) * 1_000_000

    # Dead letters: one per invalid element, with its code.
    letters = [d for d, _, _ in collected(str(tmp_path / "dead"))]
    assert sorted(d.error_code for d in letters) == sorted(code for _, code in BAD)
    for letter in letters:
        assert isinstance(letter, DeadLetter)
        assert letter.attempts == 0 and letter.stream == stream and letter.error_message
        assert (letter.data is None) == (letter.error_code == ErrorCode.SERIALIZATION_ERROR)
        assert letter.element_timestamp_micros is not None

    # Beam metrics of the Flink job, through the job service.
    metrics = counters(run)
    assert metrics["records_written"] == len(good)
    assert metrics["bytes_written"] == sum(len(r["data"]) + len(r["partition_key"]) for r in stored)
    assert metrics["dead_letters"] == len(BAD)
    for code in ErrorCode.PRE_REQUEST:
        # a code no element had (StreamSelectionError: one stream here) was never counted
        assert metrics.get(f"dead_letters_{code}", 0) == sum(1 for _, c in BAD if c == code), code
    assert metrics["put_records_calls"] >= SHARDS
    dists = run.metrics().query(MetricsFilter().with_namespace(NAMESPACE).with_name("batch_size_records"))
    batch_sizes = [d.committed if d.committed is not None else d.attempted for d in dists["distributions"]]
    assert sum(d.sum for d in batch_sizes) == len(good)
    assert max(d.max for d in batch_sizes) <= 500
    report(
        f"flink batch: {len(good)} records + {len(BAD)} dead letters, parallelism 2 "
        f"(per slot {per_slot}), {metrics['put_records_calls']} PutRecords calls, job {elapsed:.1f}s"
    )


# ---------------------------------------------------------------- streaming
@pytest.mark.parametrize("batching", ["bundle", "stateful"])
def test_streaming_records_arrive_while_running_then_cancel(
    flink_cluster, kinesalite, batching: str, report: Callable[[str], None]
) -> None:
    stream = _stream_name(f"flink-{batching}")
    kinesalite.create_stream(stream, shards=SHARDS)
    client = kinesalite.client()
    job_name = f"kinesis-stream-{batching}-{uuid.uuid4().hex[:8]}"
    options = PipelineOptions(
        flink_cluster.pipeline_options(
            "EXTERNAL",
            job_name=job_name,
            streaming=True,
            # Small bundles: FlinkPipelineOptions maxBundleSize / maxBundleTimeMills.
            max_bundle_size=10,
            max_bundle_time_mills=200,
        )
    )
    now = time.time()
    pipeline = beam.Pipeline(options=options)
    _ = (
        pipeline
        | periodic_impulse(now, now + STREAM_MAX_SECONDS, FIRE_INTERVAL)
        | beam.Map(event_of)
        | beam.Reshuffle()
        | WriteToKinesis(
            stream,
            partition_key="user",
            client_config=client_config(kinesalite),
            batching=batching,
            # stateful: batches of up to 500 per shard, or whatever 1 s gathered.
            max_buffering_seconds=1.0,
        )
    )
    t0 = time.monotonic()
    result = pipeline.run()
    stopped = False
    try:
        # Poll the stream while the job runs: records must arrive, and keep arriving.
        def stored_count() -> Tuple[int, int]:
            return sum(len(records) for records in read_all(client, stream).values()), 0

        watched, jid = watch_running_job(flink_cluster, job_name, t0, SEE_RECORDS_WITHIN, stored_count, 100)
        seen = [(at, count) for at, count, _ in watched]
        assert len(seen) >= 3, f"records seen while running: {seen} (beam state {result.state})"
        assert jid is not None
        assert result.state == PipelineState.RUNNING
        assert _get(f"{flink_cluster.rest_url}/jobs/{jid}")["state"] == "RUNNING"
        # 20 elements/s on 4 shards never fill a 500-record batch: in stateful
        # mode only the max_buffering_seconds timer can have flushed these.

        # Cancel through Beam; Flink must stop.
        result.cancel()
        beam_state = wait_beam_state(result, PipelineState.CANCELLED, 10)
        assert beam_state == PipelineState.CANCELLED
        state = wait_flink_state(flink_cluster, jid, {"CANCELED", "FAILED", "FINISHED"}, CANCEL_GRACE_SECONDS)
        if state != "CANCELED":
            report(
                f"flink streaming ({batching}): PipelineResult.cancel() left the Flink job {state} "
                f"for {CANCEL_GRACE_SECONDS:.0f}s (job server 2.62 attached mode); cancelled via Flink REST"
            )
            cancel_flink_job(flink_cluster, jid)
            state = wait_flink_state(flink_cluster, jid, {"CANCELED", "FAILED", "FINISHED"}, 60)
        assert state == "CANCELED"
        job = _get(f"{flink_cluster.rest_url}/jobs/{jid}")
        stopped = True
    finally:
        if not stopped:  # the test failed with the job maybe still there
            cancel_if_running(flink_cluster, job_name)

    sink = [v for v in job["vertices"] if "WriteToKinesis" in v["name"]]
    assert sink and max(v["parallelism"] for v in sink) == 2, [(v["name"], v["parallelism"]) for v in sink]

    # It stopped: nothing more arrives.
    time.sleep(1.0)
    after_cancel = read_all(client, stream)
    time.sleep(2.0)
    later = read_all(client, stream)
    stored = [r for records in later.values() for r in records]
    assert len(stored) == sum(len(records) for records in after_cancel.values())
    assert len(stored) >= seen[-1][1]

    # What arrived is right: each firing once, on its shard.
    events = [json.loads(r["data"]) for r in stored]
    assert len({e["t"] for e in events}) == len(events), "a record was written twice"
    for record, event in zip(stored, events):
        assert record["partition_key"] == event["user"]
    check_placement(client, stream, stored, lambda r: hash_key_of(r["partition_key"]))
    report(
        f"flink streaming ({batching}): first records in the stream {seen[0][0]:.1f}s after submission, "
        f"{seen[-1][1]} by {seen[-1][0]:.1f}s; {len(stored)} in total after cancel"
    )


# ---------------------------------------------------------------- shuffling the outputs
def test_receipts_and_dead_letters_cross_a_runner_shuffle(flink_cluster, kinesalite, tmp_path: Path) -> None:
    """Users group the outputs (dead letters to files per window, receipts to an
    audit table): Flink's Java side then decodes the sink's row types."""
    stream = _stream_name("flink-rows")
    kinesalite.create_stream(stream, shards=2)
    good = good_elements(200)
    options = PipelineOptions(
        flink_cluster.pipeline_options("EXTERNAL", job_name=f"kinesis-rows-{uuid.uuid4().hex[:8]}")
    )
    pipeline = beam.Pipeline(options=options)
    result = (
        pipeline
        | beam.Create(good + [e for e, _ in BAD])
        | WriteToKinesis(
            stream,
            partition_key="user",
            explicit_hash_key=explicit_hash_key,
            client_config=client_config(kinesalite),
        )
    )
    collect(
        result.written | "ShuffleWritten" >> beam.Reshuffle(), str(tmp_path / "written"), "CollectWritten"
    )
    collect(result.dead_letters | "ShuffleDead" >> beam.Reshuffle(), str(tmp_path / "dead"), "CollectDead")
    assert pipeline.run().wait_until_finish() == PipelineState.DONE

    stored = [r for records in read_all(kinesalite.client(), stream).values() for r in records]
    receipts = [w for w, _, _ in collected(str(tmp_path / "written"))]
    assert {(w.shard_id, w.sequence_number) for w in receipts} == {
        (r["shard_id"], r["sequence_number"]) for r in stored
    }
    assert len(receipts) == len(good) == len(stored)
    letters = [d for d, _, _ in collected(str(tmp_path / "dead"))]
    assert sorted(d.error_code for d in letters) == sorted(code for _, code in BAD)
    assert all(is_row_of(d, DeadLetter) and d.attempts == 0 for d in letters)
    assert all(is_row_of(w, WriteReceipt) for w in receipts)
