"""The Java peer: Beam's Java KinesisIO (aws2 ``KinesisIO.write()``, Beam
2.62.0, aggregation off) on the Java DirectRunner, a small Maven project in
``bench/java_peer/`` (``bench.javapeer.KinesisIOPeer``).

- Built once, on demand, into ``.cache/bench-java/`` (never into the source
  folder): ``mvn -o compile dependency:build-classpath`` from the local
  Maven repository, or online from Maven Central if that fails. The built
  classpath is kept in ``.cache/bench-java/built.json`` with a fingerprint
  of the pom and the sources; a change to either, or a jar gone from the
  local repository, builds again. ``--smoke`` never builds: the peer is
  then skipped, with the reason.
- Run as a child process (``java -cp ...``) with a timeout, its output to a
  log file in the run's ``logs/``. It writes the bench's ~100-byte records
  (``bench/workload.py``'s ``small_records``, re-implemented byte for byte
  in Java) made inside the pipeline by ``GenerateSequence``.
- Behind the throttling front, like the other peers (its records/s,
  saturation and throttled attempts per record come from the front); and on
  the fast loopback endpoint, its own overhead ratio: the same Java
  pipeline ending in ``KinesisIO.write()`` ÷ ending in a no-op ParDo, one
  JVM, variants taking turns after a warm-up round, the fastest of each.

Three things the AWS SDK v2 needs here (the pipeline's arguments): a Netty
client speaking HTTP/1.1 (``--clientBuilderFactory=...Http1ClientBuilderFactory``:
the Kinesis async client speaks HTTP/2 by default, which kinesalite and the
fronts refuse), JSON instead of CBOR (``-Daws.cborEnabled=false``), and
``--endpoint``, ``--awsRegion`` and static dummy credentials.

Whatever step fails (no ``java``, no ``mvn``, an artifact Maven cannot
resolve, the pipeline's error), :class:`PeerSkipped` says which, and the
peer is listed as skipped with that reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from beam_kinesis_sink.testing.processes import dying_with_parent
from bench.endpoint import REPO_ROOT, LoopbackEndpoint
from bench.workload import record_bytes, small_records

JAVA_PEER = "Beam Java KinesisIO"
BEAM_VERSION = "2.62.0"
NOTE = (f"aws2 KinesisIO.write() {BEAM_VERSION} on the Java DirectRunner, its defaults but aggregation off; "
        "HTTP/1.1, JSON (not CBOR)")
PROJECT_DIR = Path(__file__).resolve().parent / "java_peer"
CACHE_DIR = REPO_ROOT / ".cache" / "bench-java"
BUILT_FILE = "built.json"
MAIN_CLASS = "bench.javapeer.KinesisIOPeer"
MAIN_CLASS_FILE = Path("classes") / "bench" / "javapeer" / "KinesisIOPeer.class"
CLIENT_FACTORY = "bench.javapeer.Http1ClientBuilderFactory"
CREDENTIALS = json.dumps({"@type": "StaticCredentialsProvider", "accessKeyId": "bench",
                          "secretAccessKey": "bench"}, separators=(",", ":"))
JVM_FLAGS = ("-Xmx2g", "-Daws.cborEnabled=false", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
#: the JVM's start, Beam's class loading, the first pipeline's set-up
_JVM_START_S = 90.0
#: a run slower than this many records/s is stopped (and the peer skipped)
_SLOWEST_RECORDS_PER_S = 400.0
_BUILD_TIMEOUT_S = 900.0
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
Log = Callable[[str], None]


class PeerSkipped(Exception):
    """A peer cannot run here; the message says why (for the Java peer: which step failed)."""


@dataclass
class JavaPeer:
    """What :func:`prepare` found: the classpath to run, or why the peer is skipped."""

    classpath: Optional[str] = None
    skipped: Optional[str] = None
    build_s: float = 0.0
    #: the overhead measurement on the fast loopback endpoint, once made (or its skip reason)
    overhead: Dict[str, Any] = field(default_factory=dict)


def fingerprint(project: Optional[Path] = None) -> str:
    """sha256 over the pom and every source file (their paths and contents)."""
    project = project or PROJECT_DIR
    digest = hashlib.sha256()
    files = [project / "pom.xml", *sorted((project / "src").rglob("*"))]
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def built_classpath(cache: Optional[Path] = None, project: Optional[Path] = None) -> Optional[str]:
    """The classpath of an earlier build of these very sources, if all of it is still there."""
    cache, project = cache or CACHE_DIR, project or PROJECT_DIR
    try:
        built = json.loads((cache / BUILT_FILE).read_text())
    except (OSError, ValueError):
        return None
    if built.get("fingerprint") != fingerprint(project) or not (cache / "target" / MAIN_CLASS_FILE).is_file():
        return None
    classpath = str(built.get("classpath", ""))
    entries = classpath.split(os.pathsep) if classpath else []
    if not entries or not all(Path(entry).exists() for entry in entries):
        return None
    return classpath


def failure_line(log_path: Path) -> str:
    """What a failed step said: Maven's first ``[ERROR]`` line (it names the goal, the
    project and the artifact), else the JVM's ``java peer failed:`` line, else the last line."""
    try:
        text = _ANSI.sub("", log_path.read_text(errors="replace"))
    except OSError:
        return "(no log)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for marker in ("java peer failed:", "[ERROR]"):
        found = [line for line in lines if line.startswith(marker)]
        if found:
            line = found[-1] if marker == "java peer failed:" else found[0]
            return line if len(line) <= 600 else line[:597] + "..."
    return lines[-1][:600] if lines else "(no output)"


def _run(argv: List[str], log_path: Path, timeout: float, what: str, cwd: Path,
         env: Optional[Dict[str, str]] = None) -> None:
    with open(log_path, "ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            subprocess.run(dying_with_parent(argv), stdin=subprocess.DEVNULL, stdout=out,
                           stderr=subprocess.STDOUT, cwd=str(cwd), env=env, check=True, timeout=timeout)
        except subprocess.CalledProcessError as error:
            raise PeerSkipped(f"{what} failed (exit {error.returncode}): {failure_line(log_path)} "
                              f"(log: {log_path})") from None
        except subprocess.TimeoutExpired:
            raise PeerSkipped(f"{what} did not finish within {timeout:.0f} s (log: {log_path})") from None
        except OSError as error:
            raise PeerSkipped(f"{what} could not start: {error}") from None


def maven_argv(mvn: str, cache: Path, offline: bool) -> List[str]:
    """Compile the peer into ``cache/target`` and write its dependencies' classpath."""
    return [mvn, "-B", "-q", *(["-o"] if offline else []), "-Dstyle.color=never",
            "-f", str(PROJECT_DIR / "pom.xml"), f"-Dbench.out={cache / 'target'}",
            "compile", "dependency:build-classpath",
            f"-Dmdep.outputFile={cache / 'classpath.txt'}"]


def build(log_dir: Path, log: Log, cache: Optional[Path] = None) -> str:
    """Build the peer (offline from the local Maven repository, else online); its classpath."""
    cache = cache or CACHE_DIR
    mvn = shutil.which("mvn")
    if mvn is None:
        raise PeerSkipped("step 'find mvn' failed: no mvn on PATH "
                          "(Maven builds the Java peer, bench/java_peer/)")
    cache.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "java-peer-build.log"
    log_path.unlink(missing_ok=True)
    (cache / "classpath.txt").unlink(missing_ok=True)
    sources = fingerprint()
    log(f"    building the Java peer (Beam {BEAM_VERSION} KinesisIO) into {cache} ...")
    try:
        _run(maven_argv(mvn, cache, offline=True), log_path, _BUILD_TIMEOUT_S,
             "step 'mvn -o compile dependency:build-classpath' (offline)", PROJECT_DIR)
    except PeerSkipped as offline:
        log(f"    offline build failed ({offline}); online, from Maven Central ...")
        _run(maven_argv(mvn, cache, offline=False), log_path, _BUILD_TIMEOUT_S,
             "step 'mvn compile dependency:build-classpath' (online, Maven Central)", PROJECT_DIR)
    classes = cache / "target" / MAIN_CLASS_FILE
    if not classes.is_file():
        raise PeerSkipped(f"step 'mvn compile' left no {classes} (log: {log_path})")
    try:
        dependencies = (cache / "classpath.txt").read_text().strip()
    except OSError:
        raise PeerSkipped(f"step 'dependency:build-classpath' wrote no {cache / 'classpath.txt'} "
                          f"(log: {log_path})") from None
    classpath = os.pathsep.join([str(cache / "target" / "classes"), dependencies])
    (cache / BUILT_FILE).write_text(json.dumps({"fingerprint": sources, "classpath": classpath}))
    return classpath


def prepare(may_build: bool, log_dir: Path, log: Log) -> JavaPeer:
    """The peer's classpath, building it if allowed; else the step that failed."""
    start = time.monotonic()
    try:
        if shutil.which("java") is None:
            raise PeerSkipped("step 'find java' failed: no java on PATH (the Java peer needs Java 17)")
        classpath = built_classpath()
        if classpath is None:
            if not may_build:
                raise PeerSkipped(f"step 'build' not done: {CACHE_DIR} holds no build of bench/java_peer/ "
                                  "(a run without --smoke builds it)")
            classpath = build(log_dir, log)
        return JavaPeer(classpath=classpath, build_s=time.monotonic() - start)
    except PeerSkipped as why:
        log(f"    {JAVA_PEER}: skipped: {why}")
        return JavaPeer(skipped=str(why), build_s=time.monotonic() - start)


def java_argv(classpath: str, endpoint_url: str, mode: str, stream: str, n: int, out: Path,
              **extra: Any) -> List[str]:
    argv = ["java", *JVM_FLAGS, "-cp", classpath, MAIN_CLASS, f"--mode={mode}", f"--stream={stream}",
            f"--records={n}", f"--out={out}", f"--endpoint={endpoint_url}", "--awsRegion=us-east-1",
            f"--awsCredentialsProvider={CREDENTIALS}", f"--clientBuilderFactory={CLIENT_FACTORY}"]
    return argv + [f"--{name}={value}" for name, value in extra.items()]


def run_java(peer: JavaPeer, endpoint_url: str, mode: str, stream: str, n: int, log_dir: Path,
             timeout: float, **extra: Any) -> Dict[str, Any]:
    """One run of the peer's main class; what it reported (its JSON)."""
    if peer.classpath is None:
        raise PeerSkipped(peer.skipped or "not built")
    out = log_dir / f"peer-java-{mode}.json"
    out.unlink(missing_ok=True)
    log_path = log_dir / f"peer-java-{mode}.log"
    log_path.unlink(missing_ok=True)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")
    _run(java_argv(peer.classpath, endpoint_url, mode, stream, n, out, **extra), log_path, timeout,
         f"its Java pipeline (--mode={mode})", REPO_ROOT, env)
    try:
        return json.loads(out.read_text())
    except (OSError, ValueError) as error:
        raise PeerSkipped(f"its Java pipeline (--mode={mode}) wrote no result to {out}: {error}") from None


def write_timeout(n: int) -> float:
    return _JVM_START_S + n / _SLOWEST_RECORDS_PER_S


def write_behind_front(peer: JavaPeer, endpoint_url: str, stream: str, n: int,
                       log_dir: Path) -> Dict[str, Any]:
    """``KinesisIO.write()`` of ``n`` records to ``stream``: the writer's own figures."""
    own = run_java(peer, endpoint_url, "sink", stream, n, log_dir, write_timeout(n), run="java")
    # its CPU time includes the JVM's start and JIT: kept, but not as CPU per record
    return {"seconds": own["seconds"], "jvm_s": own.get("jvm_s"), "jvm_cpu_s": own.get("cpu_s"),
            "records": own["records"], "java": own.get("java")}


def best(runs: List[Dict[str, Any]], mode: str) -> float:
    return max(r["records_per_s"] for r in runs if r["mode"] == mode and not r.get("warmup"))


def expected_bytes(n: int) -> int:
    """What Kinesis counts of the first ``n`` small records (data and key), as Python makes them."""
    return sum(record_bytes(data, key) for data, key in small_records(n, "java"))


def measure_overhead(peer: JavaPeer, endpoint: LoopbackEndpoint, n: int, rounds: int, log_dir: Path,
                     log: Log) -> Dict[str, Any]:
    """The Java pipeline's overhead ratio on the fast loopback endpoint: ``KinesisIO.write()``
    ÷ a no-op end, the fastest of ``rounds`` rounds each, after a warm-up round of both. Also
    checks, from the endpoint's counts, that the Java records are the Python ones, byte for byte."""
    warmup = min(n, 5_000)
    timeout = _JVM_START_S + 2 * (rounds * n + warmup) / 2_000.0
    endpoint.reset()
    own = run_java(peer, endpoint.endpoint_url, "overhead", "bench-pipeline", n, log_dir, timeout,
                   rounds=rounds, warmup=warmup)
    stats = endpoint.stats()
    written = {"records": stats.records, "bytes": stats.bytes,
               "expected_records": rounds * n + warmup,
               "expected_bytes": rounds * expected_bytes(n) + expected_bytes(warmup)}
    runs = own["runs"]
    noop, sink = best(runs, "noop"), best(runs, "sink")
    value = sink / noop if noop else float("nan")
    for r in runs:
        if not r.get("warmup"):
            log(f"    java {r['mode']:<5} round {r['round'] + 1}: {r['records_per_s']:9,.0f} records/s "
                f"({r['seconds']:.2f} s)")
    log(f"    Java KinesisIO overhead ratio {value:.3f} ({sink:,.0f} ÷ {noop:,.0f} records/s)")
    return {"overhead_ratio": round(value, 4), "sink_records_per_s": sink, "noop_records_per_s": noop,
            "records": n, "rounds": rounds, "warmup_records": warmup, "runs": runs,
            "value_is": "Java pipeline ending in KinesisIO.write() records/s ÷ the same ending in a no-op "
                        "ParDo, fast loopback endpoint, fastest of each",
            "jvm_s": own.get("jvm_s"), "endpoint": written,
            "same_records_as_python": written["bytes"] == written["expected_bytes"]
            and written["records"] == written["expected_records"]}
