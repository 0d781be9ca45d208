"""The sink's pipeline cost at several git revisions, side by side in one run.

    python -m bench.revisions [--records N] [--rounds R] [--latency] REV [REV ...]

Each revision is checked out (``git worktree add --detach``, into a
temporary directory, removed at the end). Round after round, each one runs
the pipeline of :mod:`bench.beam_runs` ending in ``WriteToKinesis`` in a
child process that imports that revision's ``beam_kinesis_sink``; the
current checkout then runs the no-op and the bare hand-written sink once
per round, the baselines. The fastest run of each counts, as in
``python -m bench``, and every run is printed. What it prints is a
Markdown table: records/s, ``vs_bare_loop``, µs per record (1/rate −
1/no-op rate), the process's CPU per record above the no-op's (user and
system time of every thread of the child, pool threads included: steadier
than a rate on a shared machine, as other work slows a run's wall clock
more than it adds to its CPU), the garbage collector's share (the
least of the runs; ``gc.callbacks`` in the child), and the median rate
(less swayed than the fastest by one lucky run) per revision.

With ``--latency``, each revision's sink also runs with 25 ms added to
every call (the ``sink_latency`` pipeline of ``python -m bench``), and a
second table gives its ``latency_hiding_ratio`` (fastest with ÷ fastest
without) and, from its runs with the added latency, the median seconds its
bundles' drains took (``finish_bundle``) and the most records one shard
had queued when the drain began.

A revision must have ``bench/beam_runs.py`` and ``bench/endpoint.py`` (the
benchmark suite's first version on).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent


def child(repo: str, records: int, variants: Sequence[str]) -> None:
    """In a child process: the pipelines of ``variants`` with ``repo``'s code."""
    sys.path.insert(0, repo)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    import beam_kinesis_sink
    from bench.beam_runs import run_pipeline
    from bench.beam_runs import variants as pipeline_ends
    from bench.endpoint import start_loopback_endpoint

    drains = _watch_drains()
    with tempfile.TemporaryDirectory() as logs, start_loopback_endpoint(4, log_dir=Path(logs)) as endpoint:
        # The revision's own pipelines of python -m bench, each with its latency.
        ends = pipeline_ends(endpoint)
        run_pipeline(2_000, "warm-up", ends["sink"][1]())
        for name in variants:
            latency_ms, end = ends[name]
            endpoint.configure(latency_ms=latency_ms)
            drains.clear()
            cpu = _cpu_seconds()
            with _collections() as gc_seconds:
                seconds = run_pipeline(records, name, end())
            print(json.dumps({"variant": name, "records_per_s": records / seconds,
                              "cpu_seconds": _cpu_seconds() - cpu, "gc_seconds": gc_seconds[0],
                              "drain_seconds": sum(d for _, d in drains),
                              "queued_at_finish": max((q for q, _ in drains), default=0),
                              "code": beam_kinesis_sink.__file__}), flush=True)


def _watch_drains() -> List[tuple]:
    """Wrap the sink's ``finish_bundle`` (the revision's own) to record, per
    bundle, the most records queued in one shard when it starts, and the
    seconds its drain takes. Returns the list the records go to."""
    from beam_kinesis_sink import write_fn

    drains: List[tuple] = []
    finish_bundle = write_fn._WriteFn.finish_bundle

    def watched(self: Any) -> Iterator[Any]:
        queued = max((len(queue) for queue in self._open().buffers.queues()), default=0)
        start = time.monotonic()
        yield from finish_bundle(self)
        drains.append((queued, time.monotonic() - start))

    write_fn._WriteFn.finish_bundle = watched
    return drains


def _cpu_seconds() -> float:
    """User and system CPU of this process so far, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def _collections() -> Iterator[List[float]]:
    """The seconds the garbage collector spent collecting, in ``[0]``, while
    the block ran (the DirectRunner runs the pipeline in this process)."""
    spent = [0.0]
    started = [0.0]

    def callback(phase: str, _info: Dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - started[0]

    gc.callbacks.append(callback)
    try:
        yield spent
    finally:
        gc.callbacks.remove(callback)


def _run(repo: Path, records: int, variants: Sequence[str]) -> Dict[str, Dict[str, float]]:
    done = subprocess.run(
        [sys.executable, str(HERE), "--child", str(repo), "--records", str(records), "--variants",
         ",".join(variants)],
        capture_output=True, text=True, cwd=tempfile.gettempdir(),
    )
    if done.returncode != 0:
        raise SystemExit(f"the pipelines of {repo} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    rates = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    for rate in rates:  # the sink that ran is the revision's, not the installed one
        if not Path(rate["code"]).resolve().is_relative_to(repo.resolve()):
            raise SystemExit(f"the pipelines meant for {repo} ran the sink of {rate['code']}")
    return {r["variant"]: r for r in rates}


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def _check(revision: str) -> None:
    found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], cwd=ROOT,
                           capture_output=True, text=True)
    if found.returncode != 0:
        raise SystemExit(f"{revision!r} is not a commit of this repository ({ROOT})")


def compare(revisions: Sequence[str], records: int, rounds: int, latency: bool = False) -> str:
    for rev in revisions:
        _check(rev)
    runs: Dict[str, List[float]] = {name: [] for name in [*revisions, "noop", "bare"]}
    #: with ``latency``: each revision's runs with 25 ms added per call
    slow: Dict[str, List[dict]] = {rev: [] for rev in revisions}
    #: garbage collection, µs per record, of each run of each revision's sink
    gc_us: Dict[str, List[float]] = {rev: [] for rev in revisions}
    #: the process's CPU, µs per record, of each run of every pipeline
    cpu_us: Dict[str, List[float]] = {name: [] for name in runs}
    with tempfile.TemporaryDirectory(prefix="bench-revisions-") as tmp:
        trees = {}
        for i, rev in enumerate(revisions):
            trees[rev] = Path(tmp) / str(i)
            _git("worktree", "add", "--detach", "--quiet", str(trees[rev]), rev)
        try:
            for round_no in range(1, rounds + 1):
                for rev in revisions:
                    sink = _run(trees[rev], records, ["sink"])["sink"]
                    runs[rev].append(sink["records_per_s"])
                    gc_us[rev].append(sink["gc_seconds"] / records * 1e6)
                    cpu_us[rev].append(sink["cpu_seconds"] / records * 1e6)
                    print(f"  round {round_no}: {rev:>12} sink {sink['records_per_s']:9,.0f} records/s, "
                          f"CPU {cpu_us[rev][-1]:.1f}, GC {gc_us[rev][-1]:.1f} µs per record", flush=True)
                    if latency:
                        slow[rev].append(_run(trees[rev], records, ["sink_latency"])["sink_latency"])
                        print(f"  round {round_no}: {rev:>12} sink, 25 ms per call "
                              f"{slow[rev][-1]['records_per_s']:9,.0f} records/s, drain "
                              f"{slow[rev][-1]['drain_seconds']:.2f} s", flush=True)
                for name, run in _run(ROOT, records, ["noop", "bare"]).items():
                    runs[name].append(run["records_per_s"])
                    cpu_us[name].append(run["cpu_seconds"] / records * 1e6)
                    rate = run["records_per_s"]
                    print(f"  round {round_no}: {name:>12}      {rate:9,.0f} records/s, "
                          f"CPU {cpu_us[name][-1]:.1f} µs per record", flush=True)
        finally:
            for tree in trees.values():
                _git("worktree", "remove", "--force", str(tree))
    table = _table(revisions, runs, gc_us, cpu_us, records, rounds)
    return table + "\n\n" + _latency_table(revisions, runs, slow) if latency else table


def _latency_table(revisions: Sequence[str], runs: Dict[str, List[float]],
                   slow: Dict[str, List[dict]]) -> str:
    """Each revision with 25 ms added per call: the fastest run against its
    fastest without, and the drains at the ends of its bundles (medians)."""
    lines = [
        "| revision | records/s | with 25 ms per call | latency_hiding_ratio | drain s (median) | "
        "most records queued in a shard at the drain (median) |",
        "|---|---|---|---|---|---|",
    ]
    for rev in revisions:
        best = max(run["records_per_s"] for run in slow[rev])
        drain = statistics.median(run["drain_seconds"] for run in slow[rev])
        queued = statistics.median(run["queued_at_finish"] for run in slow[rev])
        lines.append(f"| {_git('rev-parse', '--short', rev)} | {max(runs[rev]):,.0f} | {best:,.0f} | "
                     f"{best / max(runs[rev]):.3f} | {drain:.2f} | {queued:,.0f} |")
    return "\n".join(lines)


def _table(revisions: Sequence[str], runs: Dict[str, List[float]], gc_us: Dict[str, List[float]],
           cpu_us: Dict[str, List[float]], records: int, rounds: int) -> str:
    noop, bare = max(runs["noop"]), max(runs["bare"])
    noop_cpu = min(cpu_us["noop"])
    lines = [
        f"{records:,} records, {rounds} round(s), the fastest run of each; no-op {noop:,.0f} records/s, "
        f"bare boto3 sink {bare:,.0f} records/s ({(1 / bare - 1 / noop) * 1e6:.1f} µs per record; "
        f"CPU {min(cpu_us['bare']) - noop_cpu:.1f} µs per record above the no-op's {noop_cpu:.1f})",
        "",
        "| revision | change | records/s | vs_bare_loop | µs per record | CPU µs per record | "
        "GC µs per record | median records/s | runs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rev in revisions:
        best = max(runs[rev])
        subject = _git("log", "-1", "--format=%s", rev)
        shown = subject if len(subject) <= 70 else subject[:67] + "..."
        lines.append(f"| {_git('rev-parse', '--short', rev)} | {shown} | {best:,.0f} | {best / bare:.3f} | "
                     f"{(1 / best - 1 / noop) * 1e6:.1f} | {min(cpu_us[rev]) - noop_cpu:.1f} | "
                     f"{min(gc_us[rev]):.1f} | {statistics.median(runs[rev]):,.0f} | "
                     f"{', '.join(f'{r:,.0f}' for r in runs[rev])} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.revisions", description=__doc__.split("\n\n")[0])
    parser.add_argument("revisions", nargs="*", help="git revisions (commits, tags, branches)")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", action="store_true",
                        help="also run each revision's sink with 25 ms added per call (latency_hiding_ratio, "
                             "and the drains at the ends of its bundles)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--variants", default="sink", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.records, args.variants.split(","))
        return 0
    if not args.revisions:
        parser.error("name at least one revision")
    print(compare(args.revisions, args.records, args.rounds, args.latency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
