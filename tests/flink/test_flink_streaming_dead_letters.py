"""Dead letters of a streaming job on Flink reach their files while it runs.

An unbounded ``PeriodicImpulse`` (20 elements/s, small bundles), every fifth
event without a partition key, through ``WriteToKinesis`` to kinesalite, its
dead letters through ``WriteDeadLetters`` to a directory. Beam's file sinks
cannot take that PCollection (apache-beam 2.62, the job server's version,
refuses the pipeline at construction), so the sink writes a file per bundle
and window: the letters must be readable, by the code ``beam-kinesis-inspect``
and ``-replay`` use, while the job is still running, and keep coming.

Imported by the SDK workers too (they unpickle ``keyless_every_fifth``): it
must not import ``tests.conftest``.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState

from beam_kinesis_sink import ErrorCode, WriteToKinesis
from beam_kinesis_sink.dead_letter_io import WriteDeadLetters, read_file
from beam_kinesis_sink.testing.readback import read_all
from pipelines.common import dead_letter_files
from tests.flink.test_flink_sink import (
    FIRE_INTERVAL,
    STREAM_MAX_SECONDS,
    cancel_flink_job,
    cancel_if_running,
    client_config,
    event_of,
    periodic_impulse,
    wait_flink_state,
    watch_running_job,
)

pytestmark = pytest.mark.timeout(300)

SEE_LETTERS_WITHIN = 90.0


def keyless_every_fifth(timestamp: Any) -> Dict[str, Any]:
    event = event_of(timestamp)
    if (event["t"] // int(FIRE_INTERVAL * 1e6)) % 5 == 0:
        del event["user"]  # no partition key: a dead letter
    return event


def _letters(directory: Path) -> Dict[str, List[Any]]:
    return {path: list(read_file(path)) for path in dead_letter_files(str(directory))}


def test_streaming_dead_letters_reach_files_while_the_job_runs(
    flink_cluster, kinesalite, tmp_path: Path, report: Callable[[str], None]
) -> None:
    stream = f"flink-dl-{uuid.uuid4().hex[:10]}"
    kinesalite.create_stream(stream, shards=2)
    out = tmp_path / "dead-letters"
    job_name = f"kinesis-stream-dl-{uuid.uuid4().hex[:8]}"
    options = PipelineOptions(flink_cluster.pipeline_options(
        "EXTERNAL", job_name=job_name, streaming=True, max_bundle_size=10, max_bundle_time_mills=200))
    now = time.time()
    pipeline = beam.Pipeline(options=options)
    result = (
        pipeline
        | periodic_impulse(now, now + STREAM_MAX_SECONDS, FIRE_INTERVAL)
        | beam.Map(keyless_every_fifth)
        | WriteToKinesis(stream, partition_key=lambda e: e["user"], client_config=client_config(kinesalite))
    )
    _ = result.dead_letters | WriteDeadLetters(f"{out}/")
    t0 = time.monotonic()
    beam_result = pipeline.run()
    stopped = False
    try:
        def letters_and_files() -> Tuple[int, int]:
            letters = _letters(out)
            return sum(len(v) for v in letters.values()), len(letters)

        # (seconds, letters, files) while running
        seen, jid = watch_running_job(flink_cluster, job_name, t0, SEE_LETTERS_WITHIN, letters_and_files, 20)
        assert len(seen) >= 3, f"dead letters seen while running: {seen} (beam state {beam_result.state})"
        assert jid is not None
        assert beam_result.state == PipelineState.RUNNING
        assert seen[-1][2] > seen[0][2], f"no new file while running: {seen}"
        cancel_flink_job(flink_cluster, jid)
        assert wait_flink_state(flink_cluster, jid, {"CANCELED", "FAILED", "FINISHED"}, 60) == "CANCELED"
        stopped = True
    finally:
        if not stopped:
            cancel_if_running(flink_cluster, job_name)

    letters = [letter for batch in _letters(out).values() for letter in batch]
    assert len(letters) >= seen[-1][1]
    assert {letter.error_code for letter in letters} == {ErrorCode.INVALID_PARTITION_KEY}
    assert all(letter.stream == stream and letter.partition_key is None for letter in letters)
    ticks = [letter.element_timestamp_micros // int(FIRE_INTERVAL * 1e6) for letter in letters]
    assert all(tick % 5 == 0 for tick in ticks), "a keyed event was dead-lettered"
    assert len(set(ticks)) == len(ticks), "a dead letter was written twice"
    # The keyed events went to the stream meanwhile.
    stored = [r for records in read_all(kinesalite.client(), stream).values() for r in records]
    assert len(stored) >= 3 * len(letters)
    report(
        f"flink streaming dead letters: first in a file {seen[0][0]:.1f}s after submission, "
        f"{seen[-1][1]} in {seen[-1][2]} files by {seen[-1][0]:.1f}s while running; "
        f"{len(letters)} in total after cancel, each once; {len(stored)} records in the stream"
    )
