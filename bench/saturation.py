"""How close writers keep a throttled stream to its provisioned rate, and
what it costs them in throttled attempts: 4 shards behind the fault front
(1,000 records/s and 1 MiB/s per shard) in front of kinesalite.

- ``saturation`` / ``throttled_per_record``: ``WriteToKinesis`` (its
  defaults: the adaptive rate limiter on) on the DirectRunner, beside the
  naive boto3 loop (:mod:`bench.naive`) writing the same records;
- ``adaptive_saturation``: the front admits only 600 records/s per shard
  while the sink assumes 1,000; measured after the sink had
  ``adaptive_warmup_s`` to find the real rate;
- ``aggregation``: user records/s on one shard with
  ``WriteToKinesis(..., aggregation=True)``, once the sink has that option.

Rates come from the front's timeline (:func:`bench.kinesis_front.write_phase`),
throttled attempts from its counts.
"""

from __future__ import annotations

import inspect
import time
from typing import Any, Callable, Dict, Iterator, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics, MetricsFilter

from beam_kinesis_sink import ClientConfig, KinesisRecord, WriteToKinesis
from bench.kinesis_front import StatsSampler, ThrottlingFront, WritePhase, admissible, write_phase
from bench.naive import naive_put
from bench.results import ALSO, GOALS, Entry, entry, ratio, skipped
from bench.sizes import Sizes
from bench.workload import small_records

SHARDS = 4
ADAPTIVE_SHARD_RATE = 600.0
AGGREGATION_TARGET = 7_500.0
AGGREGATION_PENDING = "aggregation lands with the beyond-the-peers issue"
Log = Callable[[str], None]


class CountFn(beam.DoFn):
    """Counts what reaches it in a Beam counter of namespace ``bench``."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.counter = Metrics.counter("bench", name)

    def process(self, element: Any) -> tuple:
        self.counter.inc()
        return ()


def generate(_seed: int, n: int, run: str) -> Iterator[KinesisRecord]:
    for data, key in small_records(n, run):
        yield KinesisRecord(data, key)


def run_sink(endpoint_url: str, stream: str, n: int, run: str, **options: Any) -> Dict[str, Any]:
    """``WriteToKinesis`` on the DirectRunner; counts receipts and dead letters."""
    config = ClientConfig(region_name="us-east-1", endpoint_url=endpoint_url)
    start = time.monotonic()
    p = beam.Pipeline()
    result = (p | beam.Create([0]) | beam.FlatMap(generate, n, run)
              | WriteToKinesis(stream, client_config=config, **options))
    _ = result.written | "CountWritten" >> beam.ParDo(CountFn("written"))
    _ = result.dead_letters | "CountDead" >> beam.ParDo(CountFn("dead_letters"))
    outcome = p.run()
    outcome.wait_until_finish()
    counters = {c.key.metric.name: c.committed
                for c in outcome.metrics().query(MetricsFilter().with_namespace("bench"))["counters"]}
    return {"seconds": round(time.monotonic() - start, 2), "receipts": counters.get("written", 0),
            "dead_letters": counters.get("dead_letters", 0)}


def run_naive(front: ThrottlingFront, stream: str, n: int) -> Dict[str, Any]:
    start = time.monotonic()
    out = naive_put(front.client(), stream, small_records(n, "naive"))
    return {"seconds": round(time.monotonic() - start, 2), **out}


def figures(front: ThrottlingFront, n: int, provisioned: float, phase: WritePhase) -> Dict[str, Any]:
    """A writer's figures behind the front: rate, saturation, throttled attempts."""
    assert front.front is not None
    stats = front.front.stats()
    return {
        "records": n, "accepted": stats.records_accepted, "throttled": stats.records_throttled,
        "records_per_s": round(phase.records_per_s, 1),
        "saturation": round(ratio(phase.accepted, admissible(phase, provisioned)), 4),
        "rate_over_provisioned": round(ratio(phase.records_per_s, provisioned), 4),
        "throttled_per_record": round(ratio(stats.records_throttled, max(1, stats.records_accepted)), 4),
        "write_phase_s": round(phase.seconds, 2), "provisioned_records_per_s": provisioned,
        "admissible_records": round(admissible(phase, provisioned)),
    }


def measure_writer(front: ThrottlingFront, name: str, n: int, write: Callable[[str], Dict[str, Any]],
                   log: Log) -> Dict[str, Any]:
    """One writer on a fresh 4-shard stream: its figures, with what it said of itself."""
    stream = front.new_stream(name.split()[0].lower())
    own = write(stream)
    assert front.front is not None
    result = {**figures(front, n, SHARDS * 1000.0, write_phase(front.front.timeline())), "writer": own}
    log(f"    {name:<28} {result['records_per_s']:8,.0f} records/s, saturation {result['saturation']:.3f}, "
        f"{result['throttled_per_record']:.3f} throttled/record ({own['seconds']:.1f} s)")
    return result


def measure_saturation(front: ThrottlingFront, sizes: Sizes,
                       log: Log) -> Tuple[Dict[str, Entry], Dict[str, Any]]:
    """``saturation`` and ``throttled_per_record``; also returns both writers' figures (for ``peers``)."""
    n = sizes.saturation_records
    sink = measure_writer(front, "sink WriteToKinesis", n,
                          lambda stream: run_sink(front.endpoint_url, stream, n, "sink"), log)
    naive = measure_writer(front, "naive boto3 loop", n, lambda stream: run_naive(front, stream, n), log)
    common = {"shards": SHARDS, "shard_records_per_s": 1000, "shard_bytes_per_s": 2**20,
              "sink": sink, "naive": naive}
    entries = {
        "saturation": entry(sink["saturation"], naive["saturation"], {
            **common, "value_is": "sink: accepted records ÷ what the front could admit over the write phase "
                                  "(4,000/s × the phase + its initial one-second buckets)",
            "baseline_is": "naive boto3 loop, the same"}, GOALS["saturation"]),
        "throttled_per_record": entry(sink["throttled_per_record"], naive["throttled_per_record"], {
            **common, "value_is": "sink: throttled attempts ÷ records accepted",
            "baseline_is": "naive boto3 loop, the same"}, GOALS["throttled_per_record"]),
    }
    return entries, {"sink": sink, "naive": naive}


def measure_adaptive(front: ThrottlingFront, sizes: Sizes, log: Log) -> Dict[str, Entry]:
    """``adaptive_saturation``: the front admits 600/s per shard, the sink assumes 1,000."""
    admitted = SHARDS * ADAPTIVE_SHARD_RATE
    n = int(admitted * (sizes.adaptive_warmup_s + sizes.adaptive_measure_s))
    stream = front.new_stream("adaptive", SHARDS, ADAPTIVE_SHARD_RATE)
    assert front.front is not None
    with StatsSampler(front.front) as sampler:
        own = run_sink(front.endpoint_url, stream, n, "adaptive")
    phase = write_phase(front.front.timeline(), skip_s=sizes.adaptive_warmup_s)
    stats = front.front.stats()
    window_throttled = stats.records_throttled - sampler.throttled_at(phase.window_start)
    per_record = ratio(window_throttled, max(1, phase.window_accepted))
    value = ratio(phase.records_per_s, admitted)
    log(f"    sink at 600/s per shard: {phase.records_per_s:8,.0f} records/s after "
        f"{sizes.adaptive_warmup_s:g} s = {value:.3f} of admitted, {per_record:.3f} throttled/record "
        f"({own['seconds']:.1f} s)")
    raw = {
        "value_is": f"sink: accepted records/s after the first {sizes.adaptive_warmup_s:g} s ÷ admitted "
                    f"{admitted:,.0f}/s (600 per shard; the sink assumes 1,000)",
        "baseline_is": "admitted records/s", "records": n, "warmup_s": sizes.adaptive_warmup_s,
        "window_s": round(phase.last - phase.window_start, 2), "window_accepted": phase.window_accepted,
        "window_throttled": window_throttled, "throttled_per_record": round(per_record, 4),
        "throttled_total": stats.records_throttled, "accepted_total": stats.records_accepted, "writer": own,
    }
    return {"adaptive_saturation": entry(value, admitted, raw, GOALS["adaptive_saturation"],
                                         also=ALSO["adaptive_saturation"])}


def measure_aggregation(front: ThrottlingFront, sizes: Sizes, log: Log) -> Dict[str, Entry]:
    """``aggregation``: user records/s on one throttled shard, 100-byte records."""
    goal = GOALS["aggregation"]
    if "aggregation" not in inspect.signature(WriteToKinesis).parameters:
        return {"aggregation": skipped(AGGREGATION_PENDING, goal)}
    n = int(AGGREGATION_TARGET * sizes.aggregation_s)
    stream = front.new_stream("aggregation", shards=1)
    own = run_sink(front.endpoint_url, stream, n, "aggregation", aggregation=True)
    assert front.front is not None
    phase = write_phase(front.front.timeline())
    # Kinesis records/s, times the user records each one carried
    user_rate = phase.records_per_s * ratio(own["receipts"], max(1, phase.accepted))
    log(f"    aggregation, one shard: {user_rate:8,.0f} user records/s ({own['seconds']:.1f} s)")
    raw = {"value_is": "user records/s over the write phase, one shard: the front's Kinesis records/s × "
                       "the receipts per Kinesis record",
           "baseline_is": "the shard's limit without aggregation, records/s", "records": n,
           "kinesis_records_accepted": phase.accepted, "write_phase_s": round(phase.seconds, 2),
           "writer": own}
    return {"aggregation": entry(user_rate, 1000.0, raw, goal)}
