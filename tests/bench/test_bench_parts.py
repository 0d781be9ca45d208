"""The bench's parts that its figures rest on: the request lower bound, the
write-phase rate read from a front's timeline, and the fast loopback
endpoint (a child process on a free port; about a second)."""

from __future__ import annotations

import os

import pytest

from beam_kinesis_sink.sharding import ShardMap, hash_key_of
from beam_kinesis_sink.testing.local_servers import make_client
from bench.efficiency import first_fit_decreasing, lower_bound
from bench.endpoint import start_loopback_endpoint
from bench.endpoint_server import base64_length
from bench.kinesis_front import admissible, write_phase
from bench.workload import mixed_size_records, record_bytes, small_records

MIB = 1024 * 1024


def test_lower_bound_takes_the_larger_of_the_count_and_the_bytes_per_shard() -> None:
    assert lower_bound({"a": {"records": 1000, "bytes": 100}}) == 2
    assert lower_bound({"a": {"records": 501, "bytes": 100}}) == 2
    assert lower_bound({"a": {"records": 20, "bytes": 11 * MIB}}) == 3
    assert lower_bound({"a": {"records": 500, "bytes": 5 * MIB}, "b": {"records": 0, "bytes": 0}}) == 1


Timeline = dict[str, list[tuple[float, int]]]


def _steady(shards: int, per_batch: int, every_s: float, seconds: float) -> Timeline:
    steps = int(seconds / every_s) + 1
    return {f"s{i}": [(100.0 + k * every_s, per_batch) for k in range(steps)] for i in range(shards)}


def test_write_phase_of_a_steady_writer_is_its_rate() -> None:
    phase = write_phase(_steady(4, 500, 0.5, 10.0))
    assert phase.records_per_s == pytest.approx(4000.0)
    assert phase.accepted == 4 * 21 * 500
    assert phase.seconds == pytest.approx(10.0)


def test_a_window_leaves_the_start_out() -> None:
    timeline = _steady(2, 500, 0.5, 10.0)
    for events in timeline.values():  # a burst of a full bucket at the start
        events.insert(0, (99.9, 1000))
    assert write_phase(timeline).records_per_s > 2000.0
    phase = write_phase(timeline, skip_s=1.0)
    assert phase.records_per_s == pytest.approx(2000.0)
    assert phase.window_start == pytest.approx(100.9)


def test_a_writer_at_the_limit_fills_what_the_front_could_admit() -> None:
    # a full bucket of 1,000 at the start, then 1,000/s: 11,000 by t = 10 s, per shard
    timeline = {f"s{i}": [(0.0, 1000)] + [(k * 0.5, 500) for k in range(1, 21)] for i in range(4)}
    phase = write_phase(timeline)
    assert phase.accepted / admissible(phase, 4000.0) == pytest.approx(1.0)


def test_base64_length_is_the_decoded_length() -> None:
    import base64

    for n in range(0, 9):
        assert base64_length(base64.b64encode(b"x" * n).decode()) == n


def test_mixed_records_span_their_range_and_repeat() -> None:
    sizes = [len(d) for d, _ in mixed_size_records(2000)]
    assert min(sizes) < 100 and max(sizes) > 100_000 and max(sizes) <= 900 * 1024
    assert sizes == [len(d) for d, _ in mixed_size_records(2000)]


def test_the_endpoint_answers_like_kinesis_and_counts(tmp_path) -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with start_loopback_endpoint(4, log_dir=tmp_path) as endpoint:
        client = make_client(endpoint.endpoint_url)
        shards = client.list_shards(StreamName="any")["Shards"]
        shard_map = ShardMap.from_list_shards(shards)
        assert len(shard_map) == 4
        summary = client.describe_stream_summary(StreamName="any")["StreamDescriptionSummary"]
        assert summary["OpenShardCount"] == 4
        records = list(small_records(300))
        entries = [{"Data": d, "PartitionKey": k} for d, k in records]
        answer = client.put_records(StreamName="any", Records=entries)
        assert answer["FailedRecordCount"] == 0
        for (_, key), entry in zip(records, answer["Records"]):
            assert entry["ShardId"] == shard_map.shard_for(hash_key_of(key)).shard_id
            assert entry["SequenceNumber"]
        stats = endpoint.stats()
        assert (stats.put_records_calls, stats.records) == (1, 300)
        assert stats.bytes == sum(record_bytes(d, k) for d, k in records)

        endpoint.configure(throttle_records_per_second=10)
        answer = client.put_records(StreamName="any", Records=entries)
        assert 0 < answer["FailedRecordCount"] < 300
        codes = {e.get("ErrorCode") for e in answer["Records"]}
        assert codes == {None, "ProvisionedThroughputExceededException"}
        assert endpoint.stats().throttled == answer["FailedRecordCount"]
        process = endpoint.process
    assert process is not None and process.poll() is not None  # stopped on leaving the block


def test_first_fit_decreasing_packs_by_count_and_by_bytes() -> None:
    assert first_fit_decreasing([10] * 1000) == 2
    assert first_fit_decreasing([3 * MIB, 3 * MIB, 2 * MIB, 2 * MIB]) == 2
    assert first_fit_decreasing([]) == 0


# The Java peer (bench/java_kinesisio.py): its skip path says which step failed. None of these
# needs Maven or a JVM: fake `mvn` scripts and cache folders under tmp_path stand in.


def _no_tool(name: str):
    import shutil

    real = shutil.which
    return lambda tool, *args, **kwargs: None if tool == name else real(tool, *args, **kwargs)


def test_the_java_peer_names_a_missing_java(tmp_path, monkeypatch) -> None:
    from bench import java_kinesisio

    monkeypatch.setattr(java_kinesisio.shutil, "which", _no_tool("java"))
    peer = java_kinesisio.prepare(True, tmp_path, lambda line: None)
    assert peer.classpath is None
    assert peer.skipped is not None and peer.skipped.startswith("step 'find java' failed: no java on PATH")


def test_a_smoke_run_never_builds_the_java_peer(tmp_path, monkeypatch) -> None:
    from bench import java_kinesisio

    monkeypatch.setattr(java_kinesisio.shutil, "which", lambda tool, *a, **k: f"/usr/bin/{tool}")
    monkeypatch.setattr(java_kinesisio, "CACHE_DIR", tmp_path / "bench-java")
    monkeypatch.setattr(java_kinesisio, "build", lambda *a, **k: pytest.fail("built in a smoke run"))
    peer = java_kinesisio.prepare(False, tmp_path, lambda line: None)
    assert peer.skipped is not None and peer.skipped.startswith("step 'build' not done")
    assert "(a run without --smoke builds it)" in peer.skipped


def test_a_failed_maven_build_names_the_step_and_the_artifact(tmp_path, monkeypatch) -> None:
    from bench import java_kinesisio

    artifact = "org.apache.beam:beam-sdks-java-io-amazon-web-services2:jar:2.62.0"
    fake = tmp_path / "bin" / "mvn"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho \"$@\" >> \"$(dirname \"$0\")/calls\"\n"
                    "echo '[INFO] resolving'\n"
                    f"echo '\x1b[1;31m[ERROR]\x1b[m Failed to execute goal on project beam-kinesisio-peer: "
                    f"Could not resolve dependencies: Could not find artifact {artifact} in central'\n"
                    "echo '[ERROR] -> [Help 1]'\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(java_kinesisio.shutil, "which",
                        lambda tool, *a, **k: str(fake) if tool == "mvn" else f"/usr/bin/{tool}")
    monkeypatch.setattr(java_kinesisio, "CACHE_DIR", tmp_path / "bench-java")
    lines: list = []
    peer = java_kinesisio.prepare(True, tmp_path, lines.append)
    assert peer.classpath is None and peer.skipped is not None
    assert peer.skipped.startswith("step 'mvn compile dependency:build-classpath' (online, Maven Central) "
                                   "failed (exit 1): [ERROR] Failed to execute goal")
    assert f"Could not find artifact {artifact}" in peer.skipped
    assert str(tmp_path / "java-peer-build.log") in peer.skipped
    calls = (fake.parent / "calls").read_text().splitlines()
    assert len(calls) == 2 and " -o " in f" {calls[0]} " and " -o " not in f" {calls[1]} "  # offline first
    assert any("offline build failed" in line for line in lines)


def test_a_maven_build_without_its_classes_is_not_taken(tmp_path, monkeypatch) -> None:
    from bench import java_kinesisio

    fake = tmp_path / "mvn"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setattr(java_kinesisio.shutil, "which",
                        lambda tool, *a, **k: str(fake) if tool == "mvn" else f"/usr/bin/{tool}")
    monkeypatch.setattr(java_kinesisio, "CACHE_DIR", tmp_path / "bench-java")
    peer = java_kinesisio.prepare(True, tmp_path, lambda line: None)
    assert peer.skipped is not None and peer.skipped.startswith("step 'mvn compile' left no ")


def test_the_built_classpath_is_reused_only_for_the_same_sources_and_jars(tmp_path) -> None:
    import json

    from bench import java_kinesisio

    project, cache = tmp_path / "project", tmp_path / "cache"
    (project / "src").mkdir(parents=True)
    (project / "pom.xml").write_text("<project/>")
    (project / "src" / "Main.java").write_text("class Main {}")
    classes = cache / "target" / java_kinesisio.MAIN_CLASS_FILE
    classes.parent.mkdir(parents=True)
    classes.write_bytes(b"\xca\xfe")
    jar = tmp_path / "dep.jar"
    jar.write_bytes(b"PK")
    classpath = f"{cache / 'target' / 'classes'}:{jar}"
    (cache / java_kinesisio.BUILT_FILE).write_text(json.dumps(
        {"fingerprint": java_kinesisio.fingerprint(project), "classpath": classpath}))
    assert java_kinesisio.built_classpath(cache, project) == classpath
    jar.unlink()  # a jar gone from the local Maven repository
    assert java_kinesisio.built_classpath(cache, project) is None
    jar.write_bytes(b"PK")
    (project / "src" / "Main.java").write_text("class Main { }")  # a changed source
    assert java_kinesisio.built_classpath(cache, project) is None


def test_a_failed_java_run_reports_its_root_cause(tmp_path) -> None:
    from bench import java_kinesisio

    log = tmp_path / "peer.log"
    log.write_text("java.lang.RuntimeException: wrapped\n\tat a.b(C.java:1)\n"
                   "Caused by: software.amazon.awssdk.core.exception.SdkClientException: x\n"
                   "\tat d.e(F.java:2)\n\n"
                   "java peer failed: io.netty.handler.codec.http2.Http2Exception: First received frame was "
                   "not SETTINGS\n")
    assert java_kinesisio.failure_line(log) == (
        "java peer failed: io.netty.handler.codec.http2.Http2Exception: "
        "First received frame was not SETTINGS")
    peer = java_kinesisio.JavaPeer(skipped="step 'find java' failed: no java on PATH")
    with pytest.raises(java_kinesisio.PeerSkipped, match="step 'find java' failed"):
        java_kinesisio.run_java(peer, "http://127.0.0.1:1", "sink", "s", 10, tmp_path, 10.0)


def test_the_java_argv_carries_what_the_sdk_needs_here() -> None:
    from bench import java_kinesisio

    argv = java_kinesisio.java_argv("cp", "http://127.0.0.1:4567", "sink", "s-1", 8000, "/tmp/o.json",
                                    run="java")
    assert "-Daws.cborEnabled=false" in argv
    assert "--clientBuilderFactory=bench.javapeer.Http1ClientBuilderFactory" in argv
    assert "--endpoint=http://127.0.0.1:4567" in argv and "--awsRegion=us-east-1" in argv
    assert {"--stream=s-1", "--records=8000", "--run=java", "--mode=sink"} <= set(argv)
    credentials = next(a for a in argv if a.startswith("--awsCredentialsProvider="))
    assert '"@type":"StaticCredentialsProvider"' in credentials


def test_a_skipped_java_peer_is_listed_with_the_failed_step(tmp_path) -> None:
    from bench import peers
    from bench.java_kinesisio import JAVA_PEER, JavaPeer
    from bench.sizes import SMOKE

    figures = {"records": 10, "saturation": 0.9, "throttled_per_record": 0.0}
    baseline = {"sink": dict(figures), "naive": dict(figures)}
    unavailable = {peer.label: "no venv here" for peer in peers.VENV_PEERS}
    reason = "step 'mvn compile dependency:build-classpath' (online, Maven Central) failed (exit 1): [ERR] x"
    result = peers.measure_peers(None, SMOKE, baseline, unavailable, tmp_path, lambda line: None,  # type: ignore
                                 JavaPeer(skipped=reason), 0.5)
    writers = result["peers"]["raw"]["writers"]
    assert writers[JAVA_PEER] == {"skipped": reason}
    assert "overhead_ratios" not in result["peers"]["raw"]


def test_the_java_note_puts_its_overhead_next_to_the_sinks() -> None:
    from bench import peers, report
    from bench.java_kinesisio import JAVA_PEER, JavaPeer

    peer = JavaPeer(classpath="cp", overhead={"overhead_ratio": 0.39, "sink_records_per_s": 28435.0,
                                              "noop_records_per_s": 72512.0, "records": 200000})
    note = peers.java_note(peer, 0.8)
    assert "overhead ratio 0.390 on the fast endpoint (28,435 ÷ 72,512 records/s" in note
    assert note.endswith("the sink's 0.800")
    results = {"peers": {"raw": {"writers": {}, "overhead_ratios": {"beam-kinesis-sink": 0.8, JAVA_PEER: 0.39,
                                                                    "is": "..."}}}}
    assert report.overhead_line(results).endswith("beam-kinesis-sink 0.800, Beam Java KinesisIO 0.390")


def test_the_pipeline_ratios_are_given_round_by_round_beside_the_fastest() -> None:
    from bench import report
    from bench.beam_runs import by_round

    runs = {"sink": [{"records_per_s": 30.0}, {"records_per_s": 44.0}, {"records_per_s": 40.0}],
            "bare": [{"records_per_s": 40.0}, {"records_per_s": 40.0}, {"records_per_s": 20.0}]}
    rounds = by_round(runs, "sink", "bare")
    # fastest ÷ fastest would be 44/40 = 1.1; round by round the sink lost one and won two
    assert rounds == {"by_round": [0.75, 1.1, 2.0], "median_of_rounds": 1.1}
    results = {"vs_bare_loop": {"raw": rounds}, "overhead_ratio": {"raw": {"by_round": [0.1],
                                                                           "median_of_rounds": 0.1}}}
    line = report.rounds_line(results)
    assert line.endswith("the fastest of each): vs_bare_loop 0.750, 1.100, 2.000 (median 1.100)")
    assert "overhead_ratio" not in line  # one round: nothing beside the table's own figure
    assert report.rounds_line({}) == ""
