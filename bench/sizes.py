"""How big each measurement is in each mode: full (at most 10 minutes on the
2-core machine), ``--quick`` (at most 2 minutes) and ``--smoke`` (seconds:
every measurement runs, nothing it shows is worth reading)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    mode: str
    #: the time the whole run should stay within, seconds
    budget_s: float
    #: ~100-byte records per DirectRunner pipeline (no-op, sink, bare loop, sink with latency)
    pipeline_records: int
    #: rounds of those four pipelines; the fastest of each variant counts (and
    #: the ratios round by round show the spread)
    pipeline_repeats: int
    #: mixed-size records (10 B - 900 KB) for request_efficiency
    efficiency_records: int
    #: records for the peak-RSS measurement under heavy throttling
    memory_records: int
    #: records per writer behind the throttling front for saturation (the sink, the naive loop)
    saturation_records: int
    #: records per other peer (async-kinesis, aiokpl); the same as saturation_records in a full
    #: run, fewer in the shorter ones, as these peers write about 1,000 records/s here
    peer_records: int
    #: adaptive_saturation: seconds ignored at the start, then seconds measured
    adaptive_warmup_s: float
    adaptive_measure_s: float
    #: aggregation: seconds of writing at the target rate, one shard
    aggregation_s: float
    #: whether peers' virtual environments may be created (else: skipped if missing)
    create_peer_venvs: bool


FULL = Sizes("full", 600.0, pipeline_records=200_000, pipeline_repeats=5, efficiency_records=12_000,
             memory_records=1_000_000, saturation_records=60_000, peer_records=60_000, adaptive_warmup_s=10.0,
             adaptive_measure_s=20.0, aggregation_s=20.0, create_peer_venvs=True)
QUICK = Sizes("quick", 120.0, pipeline_records=20_000, pipeline_repeats=2, efficiency_records=800,
              memory_records=200_000, saturation_records=20_000, peer_records=8_000, adaptive_warmup_s=3.0,
              adaptive_measure_s=5.0, aggregation_s=6.0, create_peer_venvs=True)
SMOKE = Sizes("smoke", 90.0, pipeline_records=2_000, pipeline_repeats=1, efficiency_records=40,
              memory_records=5_000, saturation_records=3_000, peer_records=2_000, adaptive_warmup_s=1.0,
              adaptive_measure_s=1.5, aggregation_s=1.5, create_peer_venvs=False)


def sizes_for(quick: bool, smoke: bool) -> Sizes:
    return SMOKE if smoke else QUICK if quick else FULL
