"""What the beyond-the-peers features cost and bring, measured in one run
against kinesalite behind the throttling fault front (1,000 records/s and
1 MiB/s per shard, as the service):

    python -m bench.features [--quick] [--json PATH]

* aggregation: user records per second on one shard, with and without
  ``aggregation``, over the write phase (first to last accepted record, from
  the front's timeline); the byte limit allows about 9,400 100-byte user
  records/s once aggregated;
* ordered mode: records per second on 4 shards, ordered vs not, over many
  keys and over a few hot keys, with 10% of records failed at random.

The engine (``KinesisWriter``) is driven directly, so the DirectRunner's own
cost is not in these figures; ``python -m bench`` measures that.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional

from beam_kinesis_sink.aggregator import AggregationOptions
from beam_kinesis_sink.limits import record_size
from beam_kinesis_sink.records import DeadLetter, KinesisRecord
from beam_kinesis_sink.testing.fault_front import FaultConfig, start_fault_front_process
from beam_kinesis_sink.testing.local_servers import make_client, start_kinesalite
from beam_kinesis_sink.writer import KinesisWriter, WriterOptions

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

SHARD_RATE = 1000.0


#: the front's buckets start full (1 s of burst): rates are read after this
#: much of the write phase, so that the burst does not inflate them
SETTLE_SECONDS = 2.0


def write_phase_rate(front: Any, user_records: int) -> float:
    """User records per second over the write phase, after its first
    ``SETTLE_SECONDS`` (the timeline counts Kinesis records; an aggregate
    stands for the average number of user records per Kinesis record)."""
    events = sorted(event for shard_events in front.timeline().values() for event in shard_events)
    total = sum(n for _, n in events)
    if len(events) < 2 or not total:
        return float("nan")
    # From the first acceptance after the settling time (its own records
    # excluded: they were sent before it) to the last one.
    settled_at = events[0][0] + SETTLE_SECONDS
    start = next((t for t, _ in events if t >= settled_at and t < events[-1][0]), events[0][0])
    end = events[-1][0]
    settled = sum(n for t, n in events if t > start)
    return settled * (user_records / total) / (end - start)


def run_writer(front: Any, server: Any, stream: str, records: List[KinesisRecord],
               options: WriterOptions) -> Dict[str, Any]:
    writer = KinesisWriter(make_client(front.endpoint_url, max_pool_connections=16), stream, options)
    started = time.monotonic()
    for r in records:
        writer.add(r, record_size(r.data, r.partition_key))
    writer.flush(600)
    seconds = time.monotonic() - started
    outcomes = writer.take_outcomes()
    writer.close()
    dead = sum(1 for o, _ in outcomes if isinstance(o, DeadLetter))
    stats = front.stats()
    written = len(outcomes) - dead
    return {"records": len(records), "written": written, "dead_letters": dead, "seconds": round(seconds, 2),
            "kinesis_records": stats.records_accepted, "throttled": stats.records_throttled,
            "write_phase_records_per_s": round(write_phase_rate(front, written))}


def fresh(server: Any, front: Any, name: str, shards: int) -> str:
    stream = f"{name}-{time.monotonic_ns()}"
    server.create_stream(stream, shards=shards)
    front.reset()
    return stream


def aggregation(server: Any, front: Any, quick: bool) -> Dict[str, Any]:
    front.configure(record_internal_failure_rate=0.0)
    pad = "x" * 70

    def users(n: int) -> List[KinesisRecord]:
        return [KinesisRecord(f'{{"n":{i:07d},"p":"{pad}"}}'.encode(), f"user-{i}") for i in range(n)]

    plain = run_writer(front, server, fresh(server, front, "plain", 1), users(8000 if quick else 20_000),
                       WriterOptions())
    agg = run_writer(front, server, fresh(server, front, "agg", 1), users(80_000 if quick else 200_000),
                     WriterOptions(aggregation=AggregationOptions()))
    value = agg["write_phase_records_per_s"]
    return {"user_records_per_s_per_shard": {"value": value, "baseline": plain["write_phase_records_per_s"],
                                             "ratio": round(value / plain["write_phase_records_per_s"], 2),
                                             "goal": ">= 7500", "met": value >= 7500},
            "raw": {"without": plain, "with": agg}}


def ordered(server: Any, front: Any, quick: bool) -> Dict[str, Any]:
    front.configure(record_internal_failure_rate=0.1, seed=11)
    out: Dict[str, Any] = {}
    for label, keys, n in (("many_keys", 10_007, 16_000 if quick else 40_000),
                           ("hot_keys", 8, 2000 if quick else 6000)):
        records = [KinesisRecord(f"{i}".encode() * 10, f"key-{i % keys}") for i in range(n)]
        runs = {}
        for mode in (False, True):
            stream = fresh(server, front, f"{label}-{mode}", 4)
            runs["ordered" if mode else "unordered"] = run_writer(front, server, stream, records,
                                                                  WriterOptions(ordered=mode))
        ratio = runs["ordered"]["write_phase_records_per_s"] / runs["unordered"]["write_phase_records_per_s"]
        out[label] = {"ordered_vs_unordered": round(ratio, 3), "keys": keys, "raw": runs}
    front.configure(record_internal_failure_rate=0.0)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller workloads (about a minute)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    server = start_kinesalite(shard_limit=1000)
    front = start_fault_front_process(
        server.endpoint_url,
        FaultConfig(throttle=True, shard_records_per_second=SHARD_RATE, record_timeline=True),
    )
    try:
        results = {"aggregation": aggregation(server, front, args.quick),
                   "ordered": ordered(server, front, args.quick), "quick": args.quick,
                   "measured_at": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    finally:
        front.stop()
        server.stop()
    agg = results["aggregation"]["user_records_per_s_per_shard"]
    print("| measurement | value | baseline in the same run | ratio |\n|---|---|---|---|")
    print(f"| user records/s on one shard, aggregated | {agg['value']} | {agg['baseline']} (not aggregated) "
          f"| {agg['ratio']} |")
    for o in results["ordered"].values():
        ordered_rate = o["raw"]["ordered"]["write_phase_records_per_s"]
        unordered_rate = o["raw"]["unordered"]["write_phase_records_per_s"]
        print(f"| records/s on 4 shards, ordered, {o['keys']} keys | {ordered_rate} "
              f"| {unordered_rate} (unordered) | {o['ordered_vs_unordered']} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
