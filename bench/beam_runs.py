"""DirectRunner pipelines against the fast loopback endpoint: the sink's cost
in a pipeline, against a no-op end and against the bare hand-written sink,
and how well it hides a slow service.

Every pipeline is the same up to its last step::

    Create([0]) ─▶ FlatMap(generate n records) ─▶ end

with ``end`` one of: a no-op ParDo; ``WriteToKinesis`` (``rate_limit=False``);
:class:`bench.bare_sink.BareSinkFn`; ``WriteToKinesis`` while the endpoint
adds 25 ms to every PutRecords call. The records are made inside the
pipeline: a ``Create`` of 200,000 records would spend seconds pickling and
compressing them into the pipeline graph, a constant that would hide the
sink's cost. Throughput is records over the whole pipeline's wall time
(construction and start-up included). The variants take turns, round after
round, and the fastest run of each counts (the least disturbed by the
other work on the machine); every run is kept in ``raw``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Dict, Iterator, List

import apache_beam as beam

from beam_kinesis_sink import ClientConfig, KinesisRecord, WriteToKinesis
from bench.bare_sink import BareSinkFn
from bench.endpoint import LoopbackEndpoint
from bench.results import GOALS, Entry, entry, ratio
from bench.sizes import Sizes
from bench.workload import small_records

STREAM = "bench-pipeline"
REGION = "us-east-1"
ADDED_LATENCY_MS = 25.0

End = Callable[[], beam.PTransform]


class NoOpFn(beam.DoFn):
    def process(self, element: Any) -> tuple:
        return ()


def generate(_seed: int, n: int, run: str) -> Iterator[KinesisRecord]:
    for data, key in small_records(n, run):
        yield KinesisRecord(data, key)


def run_pipeline(n: int, run: str, end: beam.PTransform) -> float:
    """Wall seconds of one DirectRunner pipeline, construction included."""
    start = time.monotonic()
    with beam.Pipeline() as p:
        _ = p | "Seed" >> beam.Create([0]) | "Generate" >> beam.FlatMap(generate, n, run) | "End" >> end
    return time.monotonic() - start


def sink_config(endpoint: LoopbackEndpoint) -> ClientConfig:
    """The sink's client settings for ``endpoint``."""
    return ClientConfig(region_name=REGION, endpoint_url=endpoint.endpoint_url)


def variants(endpoint: LoopbackEndpoint) -> Dict[str, tuple[float, End]]:
    """Each variant: the endpoint's added latency (ms), and its last step."""
    config = sink_config(endpoint)

    def sink() -> beam.PTransform:
        return WriteToKinesis(STREAM, client_config=config, rate_limit=False)

    return {
        "noop": (0.0, lambda: beam.ParDo(NoOpFn())),
        "sink": (0.0, sink),
        "bare": (0.0, lambda: beam.ParDo(BareSinkFn(STREAM, endpoint.endpoint_url, REGION))),
        "sink_latency": (ADDED_LATENCY_MS, sink),
    }


def run_rounds(endpoint: LoopbackEndpoint, sizes: Sizes, log: Callable[[str], None]) -> Dict[str, List[dict]]:
    """Every variant once per round; returns each variant's runs."""
    n = sizes.pipeline_records
    runs: Dict[str, List[dict]] = {}
    for round_no in range(sizes.pipeline_repeats):
        for name, (latency_ms, end) in variants(endpoint).items():
            endpoint.configure(latency_ms=latency_ms)  # also resets its counts
            seconds = run_pipeline(n, f"{name}-{round_no}", end())
            stats = endpoint.stats()
            runs.setdefault(name, []).append({
                "seconds": round(seconds, 3), "records_per_s": round(n / seconds, 1),
                "endpoint_records": stats.records, "put_records_calls": stats.put_records_calls,
            })
            log(f"    {name:<13} round {round_no + 1}: {n / seconds:9,.0f} records/s ({seconds:.2f} s)")
    endpoint.configure(latency_ms=0.0)
    return runs


def best_rate(runs: List[dict]) -> float:
    return max(run["records_per_s"] for run in runs)


def by_round(runs: Dict[str, List[dict]], value: str, baseline: str) -> Dict[str, Any]:
    """``value``'s records/s ÷ ``baseline``'s, round by round (both ran in
    the same round, seconds apart, so a slow spell of the machine weighs on
    both), and their median: how far the fastest-against-fastest ratio can
    be trusted on a noisy machine."""
    ratios = [ratio(v["records_per_s"], b["records_per_s"]) for v, b in zip(runs[value], runs[baseline])]
    return {"by_round": [round(r, 3) for r in ratios],
            "median_of_rounds": round(statistics.median(ratios), 3)}


def measure_pipelines(endpoint: LoopbackEndpoint, sizes: Sizes,
                      log: Callable[[str], None]) -> Dict[str, Entry]:
    """``overhead_ratio``, ``vs_bare_loop``, ``cpu_us_per_record``, ``latency_hiding_ratio``."""
    runs = run_rounds(endpoint, sizes, log)
    n = sizes.pipeline_records
    noop, sink, bare, slow = (best_rate(runs[k]) for k in ("noop", "sink", "bare", "sink_latency"))
    common = {"records": n, "shards": 4, "runs": runs,
              "sink_wrote_everything": all(r["endpoint_records"] == n for k in ("sink", "sink_latency")
                                           for r in runs[k])}
    sink_us = (1 / sink - 1 / noop) * 1e6
    bare_us = (1 / bare - 1 / noop) * 1e6
    return {
        "overhead_ratio": entry(ratio(sink, noop), noop, {
            **common, "value_is": "sink pipeline records/s ÷ no-op pipeline records/s",
            "baseline_is": "no-op pipeline, records/s", "sink_records_per_s": sink,
            **by_round(runs, "sink", "noop")}, GOALS["overhead_ratio"]),
        "vs_bare_loop": entry(ratio(sink, bare), bare, {
            "records": n, "value_is": "sink pipeline records/s ÷ bare-loop pipeline records/s",
            "baseline_is": "bare hand-written sink pipeline, records/s", "sink_records_per_s": sink,
            "bare_records_per_s": bare, **by_round(runs, "sink", "bare")}, GOALS["vs_bare_loop"]),
        "cpu_us_per_record": entry(sink_us, bare_us, {
            "records": n, "value_is": "sink: (1/sink rate − 1/no-op rate), µs per record",
            "baseline_is": "bare loop: (1/bare rate − 1/no-op rate), µs per record",
            "noop_records_per_s": noop, "sink_records_per_s": sink, "bare_records_per_s": bare}),
        "latency_hiding_ratio": entry(ratio(slow, sink), sink, {
            "records": n, "added_latency_ms": ADDED_LATENCY_MS,
            "value_is": f"sink records/s with {ADDED_LATENCY_MS:g} ms per PutRecords ÷ with none",
            "baseline_is": "sink pipeline with no added latency, records/s",
            "sink_latency_records_per_s": slow, **by_round(runs, "sink_latency", "sink")},
            GOALS["latency_hiding_ratio"]),
    }
