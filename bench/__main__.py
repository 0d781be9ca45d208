"""Benchmarks of beam-kinesis-sink against a real local Kinesis server
(kinesalite) behind the fault-injecting front, which throttles each shard
like the service (1,000 records/s and 1 MiB/s by default).

    python -m bench                       # sink engine, sink on Beam, naive loop; 20,000 records
    python -m bench --records 50000
    python -m bench --memory 1000000      # peak memory, 1,000,000 records, heavy throttling

Every figure is measured in this run; rates are also given as a ratio of the
provisioned rate (shards x per-shard limit) and of the naive loop measured in
the same run, because these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, List, Optional, Tuple

import psutil

from beam_kinesis_sink.limits import record_size
from beam_kinesis_sink.metrics import PUT_RECORDS_CALLS, CountingMetrics
from beam_kinesis_sink.rate_limit import RateLimitConfig
from beam_kinesis_sink.records import KinesisRecord
from beam_kinesis_sink.testing.fault_front import FaultConfig, start_fault_front_process
from beam_kinesis_sink.testing.local_servers import make_client, start_kinesalite
from beam_kinesis_sink.testing.readback import read_all
from beam_kinesis_sink.writer import KinesisWriter, WriterOptions
from bench.naive import naive_put

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def records(n: int, prefix: str) -> Iterator[Tuple[bytes, str]]:
    """About 100-byte records over many keys, spread evenly over the shards."""
    pad = "x" * 60
    for i in range(n):
        yield f'{{"n":{i},"run":"{prefix}","p":"{pad}"}}'.encode(), f"key-{i % 10007}"


class PeakRss:
    """Samples this process's RSS every 20 ms; reports the peak over the start."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.base) / 2**20


@dataclass
class Result:
    name: str
    records: int
    seconds: float
    provisioned_rate: float
    accepted: int
    throttled_attempts: int
    stored_unique: Optional[int] = None
    duplicates: Optional[int] = None
    lost: Optional[int] = None
    dead_letters: int = 0
    peak_rss_growth_mib: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    def row(self, baseline: Optional[Result]) -> dict:
        d = asdict(self)
        d["rate_records_per_s"] = round(self.rate)
        d["share_of_provisioned"] = round(self.rate / self.provisioned_rate, 3)
        d["throttled_per_record"] = round(self.throttled_attempts / max(1, self.records), 3)
        if baseline is not None:
            d["rate_vs_naive"] = round(self.rate / baseline.rate, 2)
        d["seconds"] = round(self.seconds, 2)
        d["peak_rss_growth_mib"] = round(self.peak_rss_growth_mib, 1)
        return d


class Bench:
    def __init__(self, shards: int, shard_rate: float) -> None:
        self.shards = shards
        self.shard_rate = shard_rate
        self.server = start_kinesalite(shard_limit=1000)
        self.front = start_fault_front_process(
            self.server.endpoint_url,
            FaultConfig(throttle=True, shard_records_per_second=shard_rate, record_timeline=False),
        )
        self.client = make_client(self.front.endpoint_url, max_pool_connections=16)
        self._n = 0

    def close(self) -> None:
        self.front.stop()
        self.server.stop()

    def new_stream(self) -> str:
        self._n += 1
        name = f"bench-{self._n}"
        self.server.create_stream(name, shards=self.shards)
        self.front.reset()
        return name

    def check(self, result: Result, stream: str, expect_prefix: str) -> Result:
        stored = [r for rs in read_all(self.server.client(), stream).values() for r in rs]
        unique = {r["data"] for r in stored}
        result.stored_unique = len(unique)
        result.duplicates = len(stored) - len(unique)
        result.lost = result.records - len(unique) - result.dead_letters
        return result

    def stats(self) -> Any:
        return self.front.stats()

    def run_naive(self, n: int, check: bool = True) -> Result:
        stream = self.new_stream()
        with PeakRss() as mem:
            start = time.monotonic()
            out = naive_put(self.client, stream, records(n, "naive"))
            seconds = time.monotonic() - start
        s = self.stats()
        result = Result("naive boto3 loop", n, seconds, self.shards * self.shard_rate, s.records_accepted,
                        s.records_throttled, peak_rss_growth_mib=mem.growth_mib,
                        extra={"calls": out["calls"]})
        return self.check(result, stream, "naive") if check else result

    def run_engine(self, n: int, check: bool = True, **options: Any) -> Result:
        stream = self.new_stream()
        metrics = CountingMetrics()
        writer = KinesisWriter(self.client, stream, WriterOptions(**options), metrics=metrics)
        dead = 0
        with PeakRss() as mem:
            start = time.monotonic()
            for data, key in records(n, "engine"):
                writer.add(KinesisRecord(data, key), record_size(data, key))
                if writer.pending_outcomes > 10_000:
                    dead += _count_dead(writer.take_outcomes())
            writer.flush()
            dead += _count_dead(writer.take_outcomes())
            seconds = time.monotonic() - start
        writer.close()
        s = self.stats()
        result = Result("sink engine (KinesisWriter)", n, seconds, self.shards * self.shard_rate,
                        s.records_accepted, s.records_throttled, dead_letters=dead,
                        peak_rss_growth_mib=mem.growth_mib,
                        extra={"calls": metrics.counters[PUT_RECORDS_CALLS],
                               "max_buffered_records": writer.buffers.peak_records})
        return self.check(result, stream, "engine") if check else result

    def run_beam(self, n: int) -> Result:
        import apache_beam as beam

        from beam_kinesis_sink import ClientConfig, WriteToKinesis

        stream = self.new_stream()
        elements = [KinesisRecord(d, k) for d, k in records(n, "beam")]
        config = ClientConfig(region_name="us-east-1", endpoint_url=self.front.endpoint_url)
        with PeakRss() as mem:
            start = time.monotonic()
            with beam.Pipeline() as p:
                _ = p | beam.Create(elements, reshuffle=False) | WriteToKinesis(stream, client_config=config)
            seconds = time.monotonic() - start
        s = self.stats()
        result = Result("WriteToKinesis on DirectRunner", n, seconds, self.shards * self.shard_rate,
                        s.records_accepted, s.records_throttled, peak_rss_growth_mib=mem.growth_mib)
        return self.check(result, stream, "beam")


def _count_dead(outcomes: List[Any]) -> int:
    from beam_kinesis_sink.records import DeadLetter

    return sum(1 for v, _ in outcomes if isinstance(v, DeadLetter))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--shard-rate", type=float, default=1000.0, help="records/s per shard at the front")
    parser.add_argument("--only", choices=["naive", "engine", "beam"], action="append")
    parser.add_argument("--memory", type=int, default=0, metavar="N",
                        help="also measure peak memory writing N records under heavy throttling")
    parser.add_argument("--no-check", action="store_true",
                        help="in --memory runs, skip reading the stream back")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    args = parser.parse_args(argv)
    only = set(args.only or ["naive", "engine", "beam"])

    bench = Bench(args.shards, args.shard_rate)
    results: List[Result] = []
    try:
        print(f"{args.shards} shards, front throttling at {args.shard_rate:.0f} records/s per shard "
              f"(provisioned {args.shards * args.shard_rate:.0f}/s); {args.records} records of ~100 bytes",
              flush=True)
        runners: List[Tuple[str, Callable[[], Result]]] = [
            ("naive", lambda: bench.run_naive(args.records)),
            ("engine", lambda: bench.run_engine(args.records)),
            ("beam", lambda: bench.run_beam(args.records)),
        ]
        for name, run in runners:
            if name in only:
                print(f"  running {name} ...", flush=True)
                results.append(run())
        if args.memory:
            print(f"  memory: {args.memory} records with the sink's rate limiter off, so the front "
                  "throttles everything over the provisioned rate (heavy throttling) ...", flush=True)
            heavy = bench.run_engine(args.memory, check=not args.no_check,
                                     rate_limit=RateLimitConfig(enabled=False))
            heavy.name = "sink engine, limiter off (memory)"
            results.append(heavy)
            print(f"  memory: {args.memory} records, sink with its defaults ...", flush=True)
            limited = bench.run_engine(args.memory, check=not args.no_check)
            limited.name = "sink engine, defaults (memory)"
            results.append(limited)
            print(f"  memory: {args.memory} records, naive loop ...", flush=True)
            naive = bench.run_naive(args.memory, check=not args.no_check)
            naive.name = "naive boto3 loop (memory)"
            results.append(naive)
    finally:
        bench.close()

    def baseline_for(r: Result) -> Optional[Result]:
        group = "(memory)" in r.name
        return next((b for b in results if b.name.startswith("naive") and ("(memory)" in b.name) == group),
                    None)

    rows = [r.row(baseline_for(r)) for r in results]
    print()
    header = f"{'run':<40} {'rec/s':>7} {'of prov.':>8} {'vs naive':>8} {'throttled/rec':>13} " \
             f"{'lost':>5} {'dup':>5} {'dead':>5} {'peak RSS +MiB':>13}"
    print(header)
    print("-" * len(header))
    for d in rows:
        print(f"{d['name']:<40} {d['rate_records_per_s']:>7} {d['share_of_provisioned']:>8.1%} "
              f"{d.get('rate_vs_naive', '-'):>8} {d['throttled_per_record']:>13} "
              f"{'-' if d['lost'] is None else d['lost']:>5} "
              f"{'-' if d['duplicates'] is None else d['duplicates']:>5} {d['dead_letters']:>5} "
              f"{d['peak_rss_growth_mib']:>13}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
