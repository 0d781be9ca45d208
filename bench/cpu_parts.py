"""Where the sink's CPU goes: its parts one by one, in this process.

    python -m bench.cpu_parts [--records N] [--calls C]

Three measurements, each CPU time of the thread doing the work (so a
shared machine's other work does not count):

1. **The pipelines' threads.** The DirectRunner pipeline of
   :mod:`bench.beam_runs` ending in a no-op, in ``WriteToKinesis`` and in
   the bare hand-written sink, against the fast loopback endpoint (a child
   process): CPU per record of the bundle's thread (the main thread on the
   DirectRunner), and of the whole process (the sink's pool threads too).
   The least of two runs each (construction and start-up included, as in
   ``python -m bench``), and the sink's and the bare loop's above the
   no-op's. The sink runs twice over: as ``python -m bench`` runs it, and
   with one call in flight (``max_in_flight=1``), which shows what its
   concurrent calls cost in CPU; a second table gives each pipeline's
   voluntary context switches per PutRecords call (``getrusage``).
2. **One PutRecords call of 500 records**, in one thread: boto3's
   ``put_records`` against the sink's codec
   (:class:`~beam_kinesis_sink.direct_put_records.DirectPutRecords`); and
   a call of one record through the codec, what a call costs whatever it
   carries (in µs per call).
3. **The per-record steps of a call's life**, pure and without I/O, on 500
   records: encoding the body, reading the answer, judging it, building the
   receipts, and wrapping them for Beam.
4. **The sink's DoFn without Beam or a network**: ``_WriteFn.process`` on
   windowed values made beforehand, then ``finish_bundle``, with a client
   stand-in that answers every call at once (its pool threads barely run):
   the engine's own bookkeeping per record, in the bundle's thread (the
   least of three runs). The quickest A/B of a change to the per-record path.

It prints a Markdown table of µs per record, and the table of context switches. The figures are for reading
where the time goes; the ratios against baselines are ``python -m bench``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Tuple

if TYPE_CHECKING:
    from bench.endpoint import LoopbackEndpoint

RECORDS_PER_CALL = 500
SHARD = "shardId-000000000001"
ONE_RECORD_ROW = "one 1-record call, the sink's codec: a call's own cost, µs per call"
ENGINE_ROW = "the sink's DoFn without Beam: _WriteFn.process, an instant client, the bundle's thread"


def _thread_us_per(fn: Callable[[], object], repeats: int, per: int) -> float:
    """CPU µs of this thread per unit of ``fn``'s work (``per`` units a call), after one warm-up."""
    fn()
    start = time.thread_time()
    for _ in range(repeats):
        fn()
    return (time.thread_time() - start) / repeats / per * 1e6


#: the sink's pipeline with one call in flight (``max_in_flight=1``): what its pool threads cost
ONE_CALL = "sink with max_in_flight=1"


def pipelines(endpoint: LoopbackEndpoint,
              records: int) -> Tuple[Dict[str, Tuple[float, float]], Dict[str, float]]:
    """{variant: (bundle thread µs/record, process µs/record)}, the least of
    two runs; and {variant: voluntary context switches of the process per
    PutRecords call} of the same runs (the least)."""
    import resource

    from beam_kinesis_sink import WriteToKinesis
    from bench import beam_runs

    ends = {name: end for name, (_, end) in beam_runs.variants(endpoint).items()
            if name in ("noop", "sink", "bare")}
    config = beam_runs.sink_config(endpoint)
    ends[ONE_CALL] = lambda: WriteToKinesis(beam_runs.STREAM, client_config=config, rate_limit=False,
                                            max_in_flight=1)
    found: Dict[str, Tuple[float, float]] = {}
    switches: Dict[str, float] = {}
    for name, end in ends.items():
        beam_runs.run_pipeline(min(records, 2_000), f"{name}-warm", end())
        runs, per_call = [], []
        for round_no in range(2):
            endpoint.configure(latency_ms=0.0)  # resets its counts
            thread0, process0 = time.thread_time(), time.process_time()
            before = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
            beam_runs.run_pipeline(records, f"{name}-{round_no}", end())
            runs.append(((time.thread_time() - thread0) / records * 1e6,
                         (time.process_time() - process0) / records * 1e6))
            calls = endpoint.stats().put_records_calls
            if calls:
                per_call.append((resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - before) / calls)
        found[name] = min(runs)
        if per_call:
            switches[name] = min(per_call)
    return found, switches


def one_call(endpoint_url: str, calls: int) -> Tuple[Dict[str, float], float]:
    """CPU µs per record of one 500-record call, in this thread: boto3 and
    the codec; and CPU µs of one 1-record call through the codec, what a
    call costs whatever it carries (botocore's request, signing, HTTP and
    answer)."""
    from beam_kinesis_sink import ClientConfig
    from beam_kinesis_sink.direct_put_records import DirectPutRecords
    from bench.beam_runs import REGION, STREAM
    from bench.workload import small_records

    client = ClientConfig(region_name=REGION, endpoint_url=endpoint_url).create_client()
    entries = [{"Data": data, "PartitionKey": key} for data, key in small_records(RECORDS_PER_CALL, "parts")]
    direct = DirectPutRecords(client)
    args = {"StreamName": STREAM}
    per_record = {
        "boto3 put_records": _thread_us_per(lambda: client.put_records(Records=entries, **args), calls,
                                            RECORDS_PER_CALL),
        "the sink's codec (DirectPutRecords)": _thread_us_per(lambda: direct.put(args, entries), calls,
                                                              RECORDS_PER_CALL),
    }
    return per_record, _thread_us_per(lambda: direct.put(args, entries[:1]), calls, 1)


def steps(repeats: int) -> Dict[str, float]:
    """CPU µs per record of each pure step of a call's life, on 500 records."""
    from apache_beam.transforms.window import GlobalWindow
    from apache_beam.utils.timestamp import MIN_TIMESTAMP
    from apache_beam.utils.windowed_value import WindowedValue

    from beam_kinesis_sink.classifier import judge_answer
    from beam_kinesis_sink.limits import record_size
    from beam_kinesis_sink.metrics import MetricsSink
    from beam_kinesis_sink.outcomes import Outcomes
    from beam_kinesis_sink.put_records_codec import decode_result_entries, encode_kinesis_records
    from beam_kinesis_sink.records import KinesisRecord
    from beam_kinesis_sink.shard_buffers import Item
    from beam_kinesis_sink.write_fn import _emit
    from bench.workload import small_records

    context = WindowedValue(None, MIN_TIMESTAMP, (GlobalWindow(),))
    items = [Item(KinesisRecord(data, key, None), record_size(data, key), i, context, None)
             for i, (data, key) in enumerate(small_records(RECORDS_PER_CALL, "parts"))]
    answer = {"FailedRecordCount": 0, "Records": [
        {"SequenceNumber": f"{49_000_000 + i:056d}", "ShardId": SHARD} for i in range(RECORDS_PER_CALL)]}
    body = json.dumps(answer).encode("utf-8")
    verdict = judge_answer(answer, RECORDS_PER_CALL, SHARD)
    outcomes = Outcomes(MetricsSink(), time.time, str)  # the base records nothing

    def receipts() -> List[object]:
        outcomes.written_by_index("bench", items, verdict.written)
        return list(outcomes.take())

    made = receipts()
    n = RECORDS_PER_CALL
    return {
        "encode the body (encode_kinesis_records)": _thread_us_per(lambda: encode_kinesis_records(items),
                                                                   repeats, n),
        "read the answer (json.loads, decode_result_entries)": _thread_us_per(
            lambda: decode_result_entries(json.loads(body.decode("utf-8"))["Records"]), repeats, n),
        "judge it (judge_answer)": _thread_us_per(lambda: judge_answer(answer, n, SHARD), repeats, n),
        "build the receipts (Outcomes.written_by_index)": _thread_us_per(receipts, repeats, n),
        "wrap them for Beam (_emit)": _thread_us_per(lambda: _emit(made), repeats, n),
    }


class _InstantKinesis:
    """A client stand-in for :func:`engine_alone`: four shards, and every
    record written at once, on the shard it was sent to (not botocore's, so
    the plain ``put_records`` path)."""

    def __init__(self) -> None:
        from beam_kinesis_sink.sharding import ShardMap

        step = 2**128 // 4
        self.shards = [{"ShardId": f"shardId-{i:012d}",
                        "HashKeyRange": {"StartingHashKey": str(i * step),
                                         "EndingHashKey": str(2**128 - 1 if i == 3 else (i + 1) * step - 1)},
                        "SequenceNumberRange": {"StartingSequenceNumber": "1"}} for i in range(4)]
        self.map = ShardMap.from_list_shards(self.shards)

    def list_shards(self, **_: object) -> Dict[str, object]:
        return {"Shards": self.shards}

    def put_records(self, Records: List[Dict[str, str]], **_: object) -> Dict[str, object]:  # noqa: N803
        from beam_kinesis_sink.sharding import hash_key_of

        first = Records[0]  # a request holds one shard's records
        shard = self.map.shard_for(hash_key_of(first["PartitionKey"], first.get("ExplicitHashKey"))).shard_id
        return {"FailedRecordCount": 0, "Records": [{"SequenceNumber": "1", "ShardId": shard}] * len(Records)}


def engine_alone(records: int) -> float:
    """Bundle-thread CPU µs per record of ``_WriteFn.process`` and
    ``finish_bundle`` over ``records`` windowed values, with
    :class:`_InstantKinesis`; the least of three runs."""
    from apache_beam.transforms.window import GlobalWindow
    from apache_beam.utils.timestamp import MIN_TIMESTAMP
    from apache_beam.utils.windowed_value import WindowedValue

    from beam_kinesis_sink import ClientConfig, KinesisRecord, WriteToKinesis
    from beam_kinesis_sink.metrics import MetricsSink
    from beam_kinesis_sink.write_fn import _WriteFn
    from beam_kinesis_sink.writer import KinesisWriter
    from bench.workload import small_records

    settings = WriteToKinesis("bench", client_config=ClientConfig(region_name="us-east-1"),
                              rate_limit=False)._settings
    window = (GlobalWindow(),)
    elements = [WindowedValue(KinesisRecord(data, key), MIN_TIMESTAMP, window)
                for data, key in small_records(records, "engine")]
    runs = []
    for _ in range(3):
        fn = _WriteFn(settings)
        fn._writer = KinesisWriter(_InstantKinesis(), settings.default_stream, settings.writer,
                                   metrics=MetricsSink())
        fn.start_bundle()
        outputs = 0
        start = time.thread_time()
        for element in elements:
            outputs += len(fn.process(element.value, element))
        outputs += sum(1 for _ in fn.finish_bundle())
        runs.append((time.thread_time() - start) / records * 1e6)
        fn.teardown()
        if outputs < records:
            raise RuntimeError(f"engine_alone: {outputs} outputs for {records} records")
    return min(runs)


def switches_table(switches: Dict[str, float]) -> str:
    lines = ["| pipeline ending in | voluntary context switches of the process per PutRecords call |",
             "|---|---|"]
    lines += [f"| {name} | {per_call:.1f} |" for name, per_call in switches.items()]
    return "\n".join(lines)


def table(found: Dict[str, Tuple[float, float]], call: Dict[str, float], fixed_us: float,
          parts: Dict[str, float], engine_us: float) -> str:
    lines = ["| what | CPU µs per record |", "|---|---|"]
    noop_thread, noop_process = found["noop"]
    for name, (thread_us, process_us) in found.items():
        lines.append(f"| pipeline ending in {name}: the bundle's thread | {thread_us:.2f} |")
        lines.append(f"| pipeline ending in {name}: the whole process | {process_us:.2f} |")
        if name != "noop":
            above = f"| {name}, above the no-op's:"
            lines.append(f"{above} the bundle's thread | {thread_us - noop_thread:.2f} |")
            lines.append(f"{above} the whole process | {process_us - noop_process:.2f} |")
    for name, us in call.items():
        lines.append(f"| one {RECORDS_PER_CALL}-record call, {name} | {us:.2f} |")
    lines.append(f"| {ONE_RECORD_ROW} | {fixed_us:.0f} |")
    for name, us in parts.items():
        lines.append(f"| {name} | {us:.2f} |")
    lines.append(f"| {ENGINE_ROW} | {engine_us:.2f} |")
    return "\n".join(lines)


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_parts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000, help="records per pipeline (default 200,000)")
    parser.add_argument("--calls", type=int, default=200, help="calls timed per client (default 200)")
    args = parser.parse_args(argv)
    from bench.endpoint import start_loopback_endpoint

    # The loopback endpoint checks no signature; botocore still needs a key to sign with.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    with start_loopback_endpoint(shards=4, log_dir=Path(tempfile.mkdtemp(prefix="bench-cpu-parts-"))) as ep:
        found, switches = pipelines(ep, args.records)
        call, fixed_us = one_call(ep.endpoint_url, args.calls)
    parts = steps(max(1, args.calls * 2))
    engine_us = engine_alone(args.records)
    print(f"### python -m bench.cpu_parts, {time.strftime('%Y-%m-%d %H:%M')}, {args.records:,} records per "
          f"pipeline, {args.calls} calls per client\n")
    print(table(found, call, fixed_us, parts, engine_us))
    print()
    print(switches_table(switches))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
