"""Micro-benchmark: µs per record of one PutRecords call, boto3's
``put_records`` against :class:`beam_kinesis_sink.direct_put_records.DirectPutRecords`.

No network: a ``before-send`` hook answers every call with a canned HTTP 200
(all records written), so the figures are the client's own CPU per call:
request building, signing, the answer's parsing. The client is the sink's
(``ClientConfig.create_client``: no parameter validation, one attempt).

    python -m bench.codec                       # 500 records of 100 bytes
    python -m bench.codec --records 100 --size 1000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any, Callable, Dict, List, Tuple

from beam_kinesis_sink.client import ClientConfig
from beam_kinesis_sink.direct_put_records import DirectPutRecords
from beam_kinesis_sink.put_records_codec import encode_records


class _Raw:
    """The raw stream of a canned answer (what ``AWSResponse`` reads)."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def canned_client(records: int) -> Tuple[Any, bytes]:
    """The sink's client, answered by a ``before-send`` hook; and the answer."""
    from botocore.awsrequest import AWSResponse

    answer = json.dumps({
        "FailedRecordCount": 0,
        "Records": [{"SequenceNumber": f"4960{i:052d}", "ShardId": "shardId-000000000000"}
                    for i in range(records)],
    }).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "bench"}

    def answer_it(request: Any, **_: Any) -> Any:
        return AWSResponse(request.url, 200, headers, _Raw(answer))

    client = ClientConfig(region_name="us-east-1", aws_access_key_id="bench",
                          aws_secret_access_key="bench-secret").create_client()
    client.meta.events.register("before-send.kinesis.PutRecords", answer_it)
    return client, answer


def hand_built_floor(client: Any, stream_args: Dict[str, Any], entries: List[dict],
                     answer: bytes) -> Callable[[], Any]:
    """The floor of the design not taken: body, SigV4 and answer by hand,
    around none of botocore's call machinery (no endpoint rules, user agent,
    event hooks, retry handler or error parsing), to measure what that
    machinery costs per call. Not a working client: it sends nothing."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    from beam_kinesis_sink.put_records_codec import decode_result_entries, request_body

    url, region = client.meta.endpoint_url + "/", client.meta.region_name
    credentials = client._request_signer._credentials
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "Kinesis_20131202.PutRecords"}

    def call() -> Any:
        request = AWSRequest("POST", url, data=request_body(stream_args, entries), headers=dict(headers))
        SigV4Auth(credentials.get_frozen_credentials(), "kinesis", region).add_auth(request)
        request.prepare()
        parsed = json.loads(answer.decode("utf-8"))
        parsed["Records"] = decode_result_entries(parsed["Records"])
        parsed["ResponseMetadata"] = {"RequestId": "bench", "HTTPStatusCode": 200, "RetryAttempts": 0}
        return parsed

    return call


def measure(calls: Dict[str, Callable[[], Any]], records: int, rounds: int,
            seconds: float) -> Dict[str, List[float]]:
    """CPU µs per record of each call (this thread's CPU time, so other
    processes on a shared machine count less), one figure per round; the
    calls take turns in each round, so a busy moment hits them alike."""
    for call in calls.values():
        call()  # warm caches (endpoint rules, parser, signer)
    figures: Dict[str, List[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            count, start = 0, time.thread_time()
            while True:
                call()
                count += 1
                elapsed = time.thread_time() - start
                if elapsed >= seconds:
                    break
            figures[name].append(elapsed / count / records * 1e6)
    return figures


def main(argv: Any = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--size", type=int, default=100, help="bytes of data per record")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=0.4, help="CPU seconds of each call per round")
    args = parser.parse_args(argv)

    entries = [{"Data": os.urandom(args.size), "PartitionKey": f"user-{i}"} for i in range(args.records)]
    stream_args = {"StreamName": "bench"}
    client, answer = canned_client(args.records)
    codec = DirectPutRecords(client)
    assert codec.fast, codec.reason
    assert codec.put(stream_args, entries) == client.put_records(Records=entries, **stream_args)

    calls = {
        "boto3 put_records": lambda: client.put_records(Records=entries, **stream_args),
        "DirectPutRecords.put": lambda: codec.put(stream_args, entries),
        "  its encode_records": lambda: encode_records(entries),
        "hand-built floor (no botocore call)": hand_built_floor(client, stream_args, entries, answer),
    }
    figures = measure(calls, args.records, args.rounds, args.seconds)
    base = statistics.median(figures["boto3 put_records"])
    print(f"{args.records} records of {args.size} bytes, canned answer: CPU µs per record "
          f"(median, best of {args.rounds} rounds)")
    results: Dict[str, Any] = {}
    for name, values in figures.items():
        median = statistics.median(values)
        results[name] = {"median_us": median, "min_us": min(values), "of_boto3": median / base}
        print(f"  {name:36s} {median:7.2f} {min(values):7.2f}   {median / base:5.2f} of boto3")
    return results


if __name__ == "__main__":
    main()
