"""Smoke tests of the real Flink cluster: Beam Python pipelines through the
PortableRunner and Beam's Flink job server, parallelism 2, SDK workers from
the external worker pool (as deployed) and, once, LOOPBACK."""

from __future__ import annotations

import json
import os
import pickle
import urllib.request
import uuid
from pathlib import Path
from typing import Any, List

import apache_beam as beam
import pytest
from apache_beam.coders import VarIntCoder
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState
from apache_beam.transforms import window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, TimerSpec, on_timer

# A job whose SDK workers cannot start hangs rather than fails: cap each test.
pytestmark = pytest.mark.timeout(300)

NAMESPACE = "flink-smoke"


class CountFn(beam.DoFn):
    """Counts and measures elements with Beam metrics; tags each with its worker's pid."""

    def __init__(self) -> None:
        self.elements = Metrics.counter(NAMESPACE, "elements")
        self.values = Metrics.distribution(NAMESPACE, "values")

    def process(self, element: int):
        self.elements.inc()
        self.values.update(element)
        yield element, os.getpid()


class WriteFilesFn(beam.DoFn):
    """Writes each bundle's elements to its own file under ``directory``."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def start_bundle(self) -> None:
        self._items: List[Any] = []

    def process(self, element):
        self._items.append(element)

    def finish_bundle(self) -> None:
        if self._items:
            with open(os.path.join(self.directory, f"{uuid.uuid4().hex}.pkl"), "wb") as f:
                pickle.dump(self._items, f)


def read_files(directory: Path) -> List[Any]:
    items: List[Any] = []
    for path in sorted(directory.glob("*.pkl")):
        items.extend(pickle.loads(path.read_bytes()))
    return items


class BufferUntilWindowEndFn(beam.DoFn):
    """Keyed state + an event-time timer: emits (key, sum, count) per window."""

    BUFFER = BagStateSpec("buffer", VarIntCoder())
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)

    def process(
        self,
        kv,
        w=beam.DoFn.WindowParam,
        buffer=beam.DoFn.StateParam(BUFFER),
        flush=beam.DoFn.TimerParam(FLUSH),
    ):
        buffer.add(kv[1])
        flush.set(w.end)

    @on_timer(FLUSH)
    def on_flush(self, key=beam.DoFn.KeyParam, buffer=beam.DoFn.StateParam(BUFFER)):
        values = list(buffer.read())
        buffer.clear()
        yield key, sum(values), len(values)


def counter(result, name: str) -> int:
    found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE).with_name(name))
    values = [c.committed if c.committed is not None else c.attempted for c in found["counters"]]
    return sum(values)


def flink_job(cluster, job_name: str) -> dict:
    """The Flink REST view of the job Beam submitted under ``job_name``."""
    with urllib.request.urlopen(f"{cluster.rest_url}/jobs/overview", timeout=10) as resp:
        jobs = [j for j in json.load(resp)["jobs"] if j["name"] == job_name]
    assert len(jobs) == 1, f"job {job_name!r} not found on the Flink cluster"
    with urllib.request.urlopen(f"{cluster.rest_url}/jobs/{jobs[0]['jid']}", timeout=10) as resp:
        return json.load(resp)


def test_external_workers_parallelism_2_metrics_and_files(flink_cluster, tmp_path: Path) -> None:
    job_name = f"smoke-external-{uuid.uuid4().hex[:8]}"
    options = PipelineOptions(flink_cluster.pipeline_options("EXTERNAL", job_name=job_name))
    out = tmp_path / "out"
    out.mkdir()

    pipeline = beam.Pipeline(options=options)
    _ = (
        pipeline
        | beam.Create(list(range(1, 1001)))
        | beam.Map(lambda x: x * 2)
        | beam.ParDo(CountFn())
        | beam.Reshuffle()
        | beam.ParDo(WriteFilesFn(str(out)))
    )
    result = pipeline.run()
    assert result.wait_until_finish() == PipelineState.DONE

    assert counter(result, "elements") == 1000
    dists = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE).with_name("values"))
    dist = dists["distributions"][0]
    dist = dist.committed if dist.committed is not None else dist.attempted
    assert (dist.count, dist.sum, dist.min, dist.max) == (1000, 1001000, 2, 2000)

    written = read_files(out)
    assert sorted(value for value, _ in written) == list(range(2, 2001, 2))
    worker_pids = {pid for _, pid in written}
    assert os.getpid() not in worker_pids, "EXTERNAL workers must be other processes"

    job = flink_job(flink_cluster, job_name)
    assert job["state"] == "FINISHED"
    assert max(v["parallelism"] for v in job["vertices"]) == 2


def test_loopback_environment(flink_cluster, tmp_path: Path) -> None:
    job_name = f"smoke-loopback-{uuid.uuid4().hex[:8]}"
    options = PipelineOptions(flink_cluster.pipeline_options("LOOPBACK", job_name=job_name))
    pipeline = beam.Pipeline(options=options)
    _ = pipeline | beam.Create(list(range(100))) | beam.ParDo(CountFn())
    result = pipeline.run()
    assert result.wait_until_finish() == PipelineState.DONE
    assert counter(result, "elements") == 100
    assert flink_job(flink_cluster, job_name)["state"] == "FINISHED"


def test_streaming_state_timers_and_batches(flink_cluster, tmp_path: Path) -> None:
    """Runner-side keyed state, watermark timers and GroupIntoBatches in streaming mode."""
    options = PipelineOptions(flink_cluster.pipeline_options("EXTERNAL", streaming=True))
    out_state, out_batches = tmp_path / "state", tmp_path / "batches"
    out_state.mkdir()
    out_batches.mkdir()

    pipeline = beam.Pipeline(options=options)
    keyed = (
        pipeline
        | beam.Create(list(range(1000)))
        | beam.Map(lambda x: window.TimestampedValue(x, x))
        | beam.WindowInto(window.FixedWindows(100))
        | beam.Map(lambda x: ("even" if x % 2 == 0 else "odd", x))
    )
    _ = keyed | beam.ParDo(BufferUntilWindowEndFn()) | "ws" >> beam.ParDo(WriteFilesFn(str(out_state)))
    _ = (
        keyed
        | beam.GroupIntoBatches(7)
        | beam.MapTuple(lambda key, batch: (key, sorted(batch)))
        | "wb" >> beam.ParDo(WriteFilesFn(str(out_batches)))
    )
    result = pipeline.run()
    assert result.wait_until_finish() == PipelineState.DONE

    flushed = read_files(out_state)
    assert len(flushed) == 20  # 10 windows x 2 keys
    assert sum(total for _, total, _ in flushed) == sum(range(1000))
    assert sum(n for _, _, n in flushed) == 1000

    batches = read_files(out_batches)
    assert all(1 <= len(batch) <= 7 for _, batch in batches)
    assert sorted(x for _, batch in batches for x in batch) == list(range(1000))
