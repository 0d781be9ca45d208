"""``peers``: other Kinesis writers against the same throttling front as the
sink (4 shards, 1,000 records/s and 1 MiB/s each), writing the same
records, side by side: records/s, saturation, throttled attempts per record.

- the naive boto3 loop (:mod:`bench.naive`): measured with ``saturation``;
- async-kinesis 3.0.1 and aiokpl 0.2.0: each in its own virtual environment
  under ``.cache/bench-venvs/<name>`` (they pin botocore differently from
  the project and from each other), created by the bench on first use,
  driven by a small runner script (``bench/peer_runners/``) executed with
  that environment's Python;
- Beam's Java KinesisIO (aws2 ``KinesisIO.write()``, Beam 2.62.0) on the
  Java DirectRunner: a small Maven project in ``bench/java_peer/``, built
  once into ``.cache/bench-java/`` and run as a ``java`` child process
  (:mod:`bench.java_kinesisio`); with it, its own overhead ratio on the
  fast loopback endpoint, next to the sink's ``overhead_ratio``.

A peer that cannot run is listed as skipped, with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from beam_kinesis_sink.testing.processes import dying_with_parent
from bench import java_kinesisio
from bench.endpoint import REPO_ROOT
from bench.java_kinesisio import JAVA_PEER, JavaPeer, PeerSkipped
from bench.kinesis_front import ThrottlingFront
from bench.results import Entry, entry
from bench.saturation import measure_writer
from bench.sizes import Sizes

VENVS_DIR = REPO_ROOT / ".cache" / "bench-venvs"
RUNNERS_DIR = Path(__file__).resolve().parent / "peer_runners"
#: written in a venv once its requirement installed
MARKER = ".bench-installed"
_PIP_TIMEOUT_S = 600.0
#: a peer's runner is stopped (and the peer listed as skipped) if it is slower than this
_SLOWEST_RECORDS_PER_S = 400.0
Log = Callable[[str], None]


@dataclass(frozen=True)
class VenvPeer:
    name: str
    requirement: str
    runner: str
    #: what a reader of its figures should know (shown in the peers table)
    note: str = ""

    @property
    def label(self) -> str:
        return self.requirement.replace("==", " ")

    @property
    def venv(self) -> Path:
        return VENVS_DIR / self.name


VENV_PEERS = (
    VenvPeer("async-kinesis", "async-kinesis==3.0.1", "run_async_kinesis.py",
             "defaults: Producer.__init__ sizes its throttle before it has read the shards, so "
             "put_rate_limit_per_shard (1,000/s) caps the whole stream"),
    VenvPeer("aiokpl", "aiokpl==0.2.0", "run_aiokpl.py", "defaults, aggregation off"),
)


def venv_ready(peer: VenvPeer) -> bool:
    marker = peer.venv / MARKER
    return (peer.venv / "bin" / "python").exists() and marker.exists() and \
        marker.read_text().strip() == peer.requirement


def _run_logged(argv: List[str], log_path: Path, timeout: float, what: str) -> None:
    with open(log_path, "ab") as out:
        try:
            subprocess.run(dying_with_parent(argv), stdin=subprocess.DEVNULL, stdout=out,
                           stderr=subprocess.STDOUT, check=True, timeout=timeout)
        except subprocess.CalledProcessError as error:
            raise PeerSkipped(f"{what} failed (exit {error.returncode}): {_last_line(log_path)}") from None
        except subprocess.TimeoutExpired:
            raise PeerSkipped(f"{what} did not finish within {timeout:.0f} s") from None


def _last_line(log_path: Path) -> str:
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def ensure_venv(peer: VenvPeer, create: bool, log_dir: Path, log: Log) -> Path:
    """The venv's Python, creating the venv first if allowed; else PeerSkipped."""
    python = peer.venv / "bin" / "python"
    if venv_ready(peer):
        return python
    if not create:
        raise PeerSkipped(f"its virtual environment {peer.venv} does not exist yet "
                          "(a run without --smoke creates it)")
    log(f"    creating {peer.venv} ({peer.requirement}) ...")
    log_path = log_dir / f"venv-{peer.name}.log"
    _run_logged([sys.executable, "-m", "venv", "--clear", str(peer.venv)], log_path, 120.0, "python -m venv")
    _run_logged([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
                 peer.requirement], log_path, _PIP_TIMEOUT_S, f"pip install {peer.requirement}")
    (peer.venv / MARKER).write_text(peer.requirement)
    return python


def run_runner(peer: VenvPeer, python: Path, endpoint_url: str, stream: str, n: int,
               log_dir: Path) -> Dict[str, Any]:
    """The peer's runner script, with its venv's Python; what it reported."""
    out = log_dir / f"peer-{peer.name}.json"
    out.unlink(missing_ok=True)
    argv = [str(python), str(RUNNERS_DIR / peer.runner), "--endpoint", endpoint_url, "--stream", stream,
            "--records", str(n), "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    log_path = log_dir / f"peer-{peer.name}.log"
    timeout = 60.0 + n / _SLOWEST_RECORDS_PER_S
    with open(log_path, "wb") as output:
        try:
            subprocess.run(dying_with_parent(argv), stdin=subprocess.DEVNULL, stdout=output,
                           stderr=subprocess.STDOUT, env=env, cwd=str(REPO_ROOT), check=True, timeout=timeout)
        except subprocess.CalledProcessError as error:
            reason = f"its runner failed (exit {error.returncode}): {_last_line(log_path)}"
            raise PeerSkipped(reason) from None
        except subprocess.TimeoutExpired:
            raise PeerSkipped(f"its runner did not finish within {timeout:.0f} s") from None
    return json.loads(out.read_text())


def measure_venv_peer(front: ThrottlingFront, peer: VenvPeer, sizes: Sizes, log_dir: Path,
                      log: Log) -> Dict[str, Any]:
    python = ensure_venv(peer, sizes.create_peer_venvs, log_dir, log)
    n = sizes.peer_records
    def write(stream: str) -> Dict[str, Any]:
        return run_runner(peer, python, front.endpoint_url, stream, n, log_dir)

    return {**measure_writer(front, peer.label, n, write, log), "note": peer.note}


def prepare_venvs(sizes: Sizes, log_dir: Path, log: Log) -> Dict[str, str]:
    """Create the missing venvs before anything is measured (pip would
    disturb the figures); returns the peers that cannot run, with why."""
    reasons: Dict[str, str] = {}
    for peer in VENV_PEERS:
        try:
            ensure_venv(peer, sizes.create_peer_venvs, log_dir, log)
        except PeerSkipped as why:
            reasons[peer.label] = str(why)
            log(f"    {peer.label}: skipped: {why}")
    return reasons


def measure_java_peer(front: ThrottlingFront, peer: JavaPeer, sizes: Sizes, log_dir: Path,
                      log: Log) -> Dict[str, Any]:
    """The Java peer behind the front; raises :class:`PeerSkipped` if it cannot run."""
    if peer.classpath is None:
        raise PeerSkipped(peer.skipped or "not built")
    n = sizes.peer_records

    def write(stream: str) -> Dict[str, Any]:
        return java_kinesisio.write_behind_front(peer, front.endpoint_url, stream, n, log_dir)

    return measure_writer(front, JAVA_PEER, n, write, log)


def java_note(peer: Optional[JavaPeer], sink_overhead: Optional[float]) -> str:
    """The Java peer's note: what runs, and its overhead ratio next to the sink's."""
    note = java_kinesisio.NOTE
    overhead = peer.overhead if peer is not None else {}
    if "overhead_ratio" in overhead:
        note += (f"; overhead ratio {overhead['overhead_ratio']:.3f} on the fast endpoint "
                 f"({overhead['sink_records_per_s']:,.0f} ÷ {overhead['noop_records_per_s']:,.0f} records/s, "
                 f"{overhead['records']:,} records)")
        if sink_overhead is not None:
            note += f", the sink's {sink_overhead:.3f}"
    elif "skipped" in overhead:
        note += f"; overhead not measured: {overhead['skipped']}"
    return note


def measure_peers(front: ThrottlingFront, sizes: Sizes, baseline: Dict[str, Any], unavailable: Dict[str, str],
                  log_dir: Path, log: Log, java: Optional[JavaPeer] = None,
                  sink_overhead: Optional[float] = None) -> Dict[str, Entry]:
    """``peers``: ``baseline`` holds the sink's and the naive loop's figures
    (from ``saturation``, the same records and front); ``java`` the Java
    peer's build (and its overhead on the fast endpoint, if measured),
    ``sink_overhead`` the sink's ``overhead_ratio`` of the same run."""
    writers: Dict[str, Any] = {"beam-kinesis-sink (WriteToKinesis, DirectRunner)": baseline["sink"],
                               "naive boto3 loop": baseline["naive"]}
    for peer in VENV_PEERS:
        if peer.label in unavailable:
            writers[peer.label] = {"skipped": unavailable[peer.label]}
            continue
        try:
            writers[peer.label] = measure_venv_peer(front, peer, sizes, log_dir, log)
        except PeerSkipped as why:
            writers[peer.label] = {"skipped": str(why)}
            log(f"    {peer.label}: skipped: {why}")
    if java is None:
        java = JavaPeer(skipped="its build was not prepared (bench.java_kinesisio.prepare)")
    try:
        writers[JAVA_PEER] = {**measure_java_peer(front, java, sizes, log_dir, log),
                              "note": java_note(java, sink_overhead)}
    except PeerSkipped as why:
        writers[JAVA_PEER] = {"skipped": str(why)}
        if java.skipped is None:
            log(f"    {JAVA_PEER}: skipped: {why}")
    ran = [w["saturation"] for name, w in writers.items()
           if "saturation" in w and not name.startswith("beam-")]
    best: Optional[float] = max(ran) if ran else None
    raw = {"value_is": "the sink's saturation (accepted ÷ admissible over the write phase)",
           "baseline_is": "the best saturation among the peers that ran",
           "records_sink_and_naive": sizes.saturation_records, "records_other_peers": sizes.peer_records,
           "writers": writers}
    if "overhead_ratio" in java.overhead:
        raw["overhead_ratios"] = {"beam-kinesis-sink": sink_overhead,
                                  JAVA_PEER: java.overhead["overhead_ratio"],
                                  "is": "records/s ending in the writer ÷ ending in a no-op, each in its own "
                                        "runner's DirectRunner, the fast loopback endpoint, the same run"}
    if java.overhead:
        raw["java_overhead"] = java.overhead
    return {"peers": entry(baseline["sink"]["saturation"], best, raw)}
