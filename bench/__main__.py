"""Benchmarks of beam-kinesis-sink, every figure a ratio against a baseline
measured in the same run (the 2-core machines are shared and noisy).

    python -m bench                 # at most 10 minutes
    python -m bench --quick         # smaller workloads, at most 2 minutes
    python -m bench --smoke         # seconds: every measurement, tiny (for the test)
    python -m bench --json out/r.json

Against the fast loopback endpoint (a child process answering PutRecords at
once): overhead_ratio, vs_bare_loop, cpu_us_per_record, latency_hiding_ratio,
request_efficiency, peak_rss_mb. Against kinesalite behind the throttling
fault front: saturation, throttled_per_record, adaptive_saturation, peers,
aggregation. docs/benchmarks.md says what each key means.

Prints a Markdown table, writes the JSON (default bench-results/results.json)
and a PNG chart beside it; the servers' and peers' logs go to logs/ there.
Exits 1 if a measurement failed (its key then says why).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional

import psutil

# The sink and boto3 read credentials from the environment; the local servers accept any.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from bench import beam_runs, efficiency, java_kinesisio, memory, peers, report, saturation  # noqa: E402
from bench.endpoint import LoopbackEndpoint, start_loopback_endpoint  # noqa: E402
from bench.java_kinesisio import JavaPeer  # noqa: E402
from bench.kinesis_front import ThrottlingFront  # noqa: E402
from bench.results import GOALS, Entry, at_most, entry, failed  # noqa: E402
from bench.sizes import Sizes, sizes_for  # noqa: E402

DEFAULT_JSON = Path("bench-results/results.json")
#: the keys measured against the fast loopback endpoint, and behind the throttling front
ENDPOINT_KEYS = ("overhead_ratio", "vs_bare_loop", "cpu_us_per_record", "latency_hiding_ratio",
                 "request_efficiency", "peak_rss_mb")
FRONT_KEYS = ("saturation", "throttled_per_record", "adaptive_saturation", "peers", "aggregation")


def log(line: str) -> None:
    print(line, flush=True)


def fail_keys(run: Run, what: str, keys: Iterable[str], error: Exception) -> None:
    """``what`` raised ``error``: its keys say so, and the run exits 1 at the end."""
    traceback.print_exc()
    run.failures.append(what)
    run.results.update({key: failed(error, GOALS.get(key)) for key in keys})


class Run:
    """The results so far, and the measurements that failed."""

    def __init__(self) -> None:
        self.results: Dict[str, Entry] = {}
        self.failures: List[str] = []
        self.step_seconds: Dict[str, float] = {}

    def step(self, title: str, keys: Iterable[str], measure: Callable[[], Dict[str, Entry]]) -> None:
        """Run one measurement; if it raises, its keys say so and the others go on."""
        log(f"  {title} ...")
        start = time.monotonic()
        try:
            self.results.update(measure())
        except Exception as error:  # noqa: BLE001 - one failed measurement must not lose the others
            fail_keys(self, title, keys, error)
        self.step_seconds[title] = round(time.monotonic() - start, 1)
        log(f"    ({self.step_seconds[title]:.1f} s)")


def measure_java_overhead(endpoint: LoopbackEndpoint, sizes: Sizes, java: JavaPeer, log_dir: Path) -> None:
    """The Java peer's own overhead ratio, kept in ``java.overhead`` for ``peers`` (not a key:
    a peer that cannot run is skipped, not failed)."""
    try:
        endpoint.configure(latency_ms=0.0)
        java.overhead = java_kinesisio.measure_overhead(java, endpoint, sizes.pipeline_records,
                                                        sizes.pipeline_repeats, log_dir, log)
    except java_kinesisio.PeerSkipped as why:
        java.overhead = {"skipped": str(why)}
        log(f"    {java_kinesisio.JAVA_PEER} overhead: skipped: {why}")


def measure_on_endpoint(run: Run, sizes: Sizes, log_dir: Path, java: JavaPeer) -> None:
    try:
        endpoint = start_loopback_endpoint(4, log_dir=log_dir)
    except Exception as error:  # noqa: BLE001 - the other keys are still worth having
        fail_keys(run, "starting the loopback endpoint", ENDPOINT_KEYS, error)
        return
    with endpoint:
        log(f"  fast loopback endpoint at {endpoint.endpoint_url} (pid {endpoint.pid})")
        run.step(f"pipelines, {sizes.pipeline_records:,} records × {sizes.pipeline_repeats} rounds",
                 ("overhead_ratio", "vs_bare_loop", "cpu_us_per_record", "latency_hiding_ratio"),
                 lambda: beam_runs.measure_pipelines(endpoint, sizes, log))
        if java.classpath is not None and sizes.mode == "full":  # a JVM per round: over --quick's budget
            run.step(f"Java KinesisIO overhead, {sizes.pipeline_records:,} records × "
                     f"{sizes.pipeline_repeats} rounds", (),
                     lambda: measure_java_overhead(endpoint, sizes, java, log_dir) or {})
        run.step(f"request efficiency, {sizes.efficiency_records:,} mixed-size records",
                 ("request_efficiency",),
                 lambda: efficiency.measure_request_efficiency(endpoint, sizes, log))
        run.step(f"peak RSS, {sizes.memory_records:,} records under heavy throttling", ("peak_rss_mb",),
                 lambda: memory.measure_peak_rss(endpoint, sizes, log, log_dir))


def measure_behind_front(run: Run, sizes: Sizes, unavailable: Dict[str, str], log_dir: Path,
                         java: JavaPeer) -> None:
    try:
        front = ThrottlingFront(log)
    except Exception as error:  # noqa: BLE001 - the other keys are still worth having
        fail_keys(run, "starting kinesalite and the fault front", FRONT_KEYS, error)
        return
    figures: Dict[str, Dict] = {}

    def saturation_keys() -> Dict[str, Entry]:
        entries, writers = saturation.measure_saturation(front, sizes, log)
        figures.update(writers)
        return entries

    with front:
        run.step(f"saturation, {sizes.saturation_records:,} records per writer",
                 ("saturation", "throttled_per_record", "peers"), saturation_keys)
        run.step("adaptive saturation, 600 records/s per shard", ("adaptive_saturation",),
                 lambda: saturation.measure_adaptive(front, sizes, log))
        if figures:
            run.step(f"peers, {sizes.peer_records:,} records each", ("peers",),
                     lambda: peers.measure_peers(front, sizes, figures, unavailable, log_dir, log, java,
                                                 sink_overhead(run)))
        run.step("aggregation", ("aggregation",), lambda: saturation.measure_aggregation(front, sizes, log))


def sink_overhead(run: Run) -> Optional[float]:
    """The sink's ``overhead_ratio`` of this run, if measured."""
    value = run.results.get("overhead_ratio", {}).get("value")
    return value if isinstance(value, (int, float)) else None


def since_process_start() -> float:
    """Seconds since this process started: the imports (Apache Beam's take seconds) count too."""
    return time.time() - psutil.Process().create_time()


def run_info(run: Run, sizes: Sizes, venv_setup_s: float, java_build_s: float, started: datetime.datetime,
             load_before: tuple) -> Entry:
    """``bench_seconds``: this run's wall time, without the one-time creation of the peers' venvs
    and build of the Java peer."""
    total = since_process_start()
    seconds = total - venv_setup_s - java_build_s
    raw = {"value_is": "wall seconds of this run, less the one-time creation of the peers' venvs and "
                       "build of the Java peer",
           "baseline_is": f"the time budget of a {sizes.mode} run", "wall_s": round(total, 1),
           "venv_setup_s": round(venv_setup_s, 1), "java_build_s": round(java_build_s, 1),
           "steps_s": run.step_seconds,
           "mode": sizes.mode, "started": started.isoformat(timespec="seconds"),
           "load_average_before": [round(x, 2) for x in load_before],
           "load_average_after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
           "python": sys.version.split()[0]}
    return entry(seconds, sizes.budget_s, raw, at_most(sizes.budget_s))


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smaller workloads: at most 2 minutes")
    mode.add_argument("--smoke", action="store_true",
                      help="a tiny run of every measurement; peers only if their venv exists")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="PATH",
                        help=f"where to write the results (default {DEFAULT_JSON}); the PNG goes beside it")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    sizes = sizes_for(args.quick, args.smoke)
    json_path: Path = args.json
    log_dir = json_path.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    started, load_before = datetime.datetime.now(), os.getloadavg()
    log(f"python -m bench ({sizes.mode}), {started:%Y-%m-%d %H:%M}, load average {load_before[0]:.1f}")
    run = Run()
    log("  peers' virtual environments ...")
    venv_start = time.monotonic()
    unavailable = peers.prepare_venvs(sizes, log_dir, log)
    venv_setup_s = time.monotonic() - venv_start
    log("  the Java peer's build ...")
    java = java_kinesisio.prepare(sizes.create_peer_venvs, log_dir, log)
    measure_on_endpoint(run, sizes, log_dir, java)
    measure_behind_front(run, sizes, unavailable, log_dir, java)
    run.results["bench_seconds"] = run_info(run, sizes, venv_setup_s, java.build_s, started, load_before)
    title = (f"python -m bench{'' if sizes.mode == 'full' else ' --' + sizes.mode}, "
             f"{started:%Y-%m-%d %H:%M}, load average {load_before[0]:.1f} → {os.getloadavg()[0]:.1f}")
    results = {key: run.results[key] for key in report.KEYS if key in run.results}
    report.write_json(results, json_path)
    report.write_chart(results, json_path.with_suffix(".png"), title)
    log("")
    log(report.markdown(results, title))
    log(f"\nwrote {json_path} and {json_path.with_suffix('.png')}")
    if run.failures:
        log(f"FAILED: {', '.join(run.failures)}")
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
