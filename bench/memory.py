"""``peak_rss_mb``: how much the sink's engine grows a process while it
writes many records under heavy throttling.

The engine (``KinesisWriter``, the code the sink's DoFn runs) writes
``memory_records`` ~100-byte records to the fast loopback endpoint, which
admits only :data:`HEAVY_SHARD_RATE` records/s per shard; the engine's rate
limiter is off, so it sends as fast as it can and most attempts are
throttled (heavy throttling). The buffers' bound must hold memory flat: the
figure is the peak RSS over the RSS just before the first record.

It runs in a fresh process (``python -m bench.memory``): in the bench's own
process, the memory freed by the pipelines before it would be reused and
hide growth.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from beam_kinesis_sink.testing.processes import dying_with_parent
from bench.endpoint import REPO_ROOT, LoopbackEndpoint, child_env
from bench.results import GOALS, Entry, entry
from bench.sizes import Sizes

#: records/s each shard of the loopback endpoint admits during the measurement
HEAVY_SHARD_RATE = 2000.0
STREAM = "bench-memory"


class PeakRss:
    """Samples this process's RSS every 20 ms while the block runs."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self.base = self._process.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def write_under_throttling(endpoint_url: str, n: int) -> Dict[str, Any]:
    """The child's work: write ``n`` records with the engine, return what it measured."""
    from beam_kinesis_sink.limits import record_size
    from beam_kinesis_sink.metrics import CountingMetrics
    from beam_kinesis_sink.rate_limit import RateLimitConfig
    from beam_kinesis_sink.records import DeadLetter, KinesisRecord
    from beam_kinesis_sink.testing.local_servers import make_client
    from beam_kinesis_sink.writer import KinesisWriter, WriterOptions
    from bench.workload import small_records

    client = make_client(endpoint_url, max_pool_connections=16, parameter_validation=False)
    metrics = CountingMetrics()
    options = WriterOptions(rate_limit=RateLimitConfig(enabled=False))
    writer = KinesisWriter(client, STREAM, options, metrics=metrics)
    writer.locate(KinesisRecord(b"", "warm-up"))  # the shard map, before the base is taken
    gc.collect()
    outcomes: List[int] = [0, 0]  # receipts, dead letters

    def take() -> None:
        for value, _ in writer.take_outcomes():
            outcomes[isinstance(value, DeadLetter)] += 1

    start = time.monotonic()
    with PeakRss() as rss:
        for data, key in small_records(n, "memory"):
            writer.add(KinesisRecord(data, key), record_size(data, key))
            if writer.pending_outcomes > 10_000:
                take()
        writer.flush()
        take()
    seconds = time.monotonic() - start
    writer.close()
    return {"records": n, "seconds": round(seconds, 2), "base_rss_mib": round(rss.base / 2**20, 1),
            "peak_rss_mib": round(rss.peak / 2**20, 1), "growth_mib": round((rss.peak - rss.base) / 2**20, 2),
            "receipts": outcomes[0], "dead_letters": outcomes[1],
            "peak_buffered_records": writer.buffers.peak_records, "metrics": dict(metrics.counters)}


def measure_peak_rss(endpoint: LoopbackEndpoint, sizes: Sizes, log: Callable[[str], None],
                     log_dir: Path) -> Dict[str, Entry]:
    n = sizes.memory_records
    endpoint.configure(latency_ms=0.0, throttle_records_per_second=HEAVY_SHARD_RATE)
    out = log_dir / "memory-child.json"
    child_log = log_dir / "memory-child.log"
    argv = [sys.executable, "-m", "bench.memory", "--endpoint", endpoint.endpoint_url,
            "--records", str(n), "--out", str(out)]
    env = child_env()
    try:
        with open(child_log, "wb") as child_output:
            subprocess.run(dying_with_parent(argv), stdin=subprocess.DEVNULL, stdout=child_output,
                           stderr=subprocess.STDOUT, env=env, cwd=str(REPO_ROOT), check=True,
                           timeout=sizes.budget_s)
    except subprocess.CalledProcessError as error:
        tail = child_log.read_text(errors="replace")[-1500:]
        raise RuntimeError(f"the memory child exited with {error.returncode}:\n{tail}") from None
    finally:
        stats = endpoint.stats()
        endpoint.configure(throttle_records_per_second=0.0)
    child = json.loads(out.read_text())
    log(f"    {n:,} records, {stats.throttled:,} throttled attempts: RSS +{child['growth_mib']:.1f} MiB "
        f"over {child['base_rss_mib']:.0f} MiB ({child['seconds']:.1f} s)")
    raw = {"value_is": "peak RSS − RSS before the first record, MiB (the engine, in a fresh process)",
           "baseline_is": "RSS before the first record, MiB",
           "shard_records_per_s_admitted": HEAVY_SHARD_RATE,
           "shards": 4, "throttled_attempts": stats.throttled,
           "throttled_per_record": round(stats.throttled / max(1, stats.records), 3), **child}
    return {"peak_rss_mb": entry(child["growth_mib"], child["base_rss_mib"], raw, GOALS["peak_rss_mb"])}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    Path(args.out).write_text(json.dumps(write_under_throttling(args.endpoint, args.records)))


if __name__ == "__main__":
    main()
