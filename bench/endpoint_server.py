"""The fast loopback Kinesis endpoint, as its own process (the child side of
:mod:`bench.endpoint`).

    python -m bench.endpoint_server --ready-file F [--shards 4] [--latency-ms 25]
        [--throttle-records-per-second 0]

It answers the JSON 1.1 protocol botocore speaks (``X-Amz-Target:
Kinesis_20131202.<Operation>``): PutRecords at once (after ``latency_ms``, if
set) with a ``SequenceNumber`` and the right ``ShardId`` for every entry,
ListShards / DescribeStreamSummary / DescribeStream for ``shards`` shards
with even hash key ranges, ListStreams. Any stream name is accepted.
Nothing is stored: only counted (calls, records, bytes, per shard), for
``GET /_bench/stats``.

With ``throttle_records_per_second`` > 0 each shard admits that many
records per second (a token bucket holding one second's worth); the other
entries get ``ProvisionedThroughputExceededException``, as the service
answers.

It binds 127.0.0.1 on the port the OS picks (``--port 0``) and writes
``{"port": P, "pid": PID}`` to the ready file once it serves. Standard
library only, so that it starts fast.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional

from beam_kinesis_sink.testing.processes import LOOPBACK

TARGET_PREFIX = "Kinesis_20131202."
ADMIN_PREFIX = "/_bench/"
JSON_11 = "application/x-amz-json-1.1"
HASH_SPACE = 2**128
THROTTLED = "ProvisionedThroughputExceededException"
#: distinct partition keys whose shard is remembered (the bench uses ~10,000)
_KEY_CACHE_LIMIT = 200_000


def shard_ids(shards: int) -> List[str]:
    return [f"shardId-{i:012d}" for i in range(shards)]


def even_starts(shards: int) -> List[int]:
    """The starting hash key of each of ``shards`` even ranges."""
    return [i * HASH_SPACE // shards for i in range(shards)]


def base64_length(text: str) -> int:
    """Decoded length of a base64 string, without decoding it."""
    padding = 2 if text.endswith("==") else 1 if text.endswith("=") else 0
    return len(text) * 3 // 4 - padding


class Bucket:
    """Records a shard may still take: refilled at ``rate``/s up to one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.level = rate
        self.last = time.monotonic()

    def take(self, now: float) -> bool:
        self.level = min(self.rate, self.level + (now - self.last) * self.rate)
        self.last = now
        if self.level >= 1.0:
            self.level -= 1.0
            return True
        return False


class Stream:
    """The virtual stream every name maps to: its shards, their counters, the settings."""

    def __init__(self, shards: int, latency_ms: float, throttle: float) -> None:
        self.ids = shard_ids(shards)
        self.starts = even_starts(shards)
        self.latency_s = latency_ms / 1000.0
        self.throttle = throttle
        self.lock = threading.Lock()
        self._key_shard: Dict[str, int] = {}
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.calls = 0
            self.list_shards_calls = 0
            self.records = [0] * len(self.ids)
            self.nbytes = [0] * len(self.ids)
            self.throttled = [0] * len(self.ids)
            self.sequence = [0] * len(self.ids)
            self.buckets = [Bucket(self.throttle) for _ in self.ids] if self.throttle > 0 else None

    def configure(self, settings: Dict[str, Any]) -> None:
        if "latency_ms" in settings:
            self.latency_s = float(settings["latency_ms"]) / 1000.0
        if "throttle_records_per_second" in settings:
            self.throttle = float(settings["throttle_records_per_second"])
        self.reset()

    def shard_index(self, entry: Dict[str, Any]) -> int:
        explicit = entry.get("ExplicitHashKey")
        if explicit is not None:
            return bisect.bisect_right(self.starts, int(explicit)) - 1
        key = entry["PartitionKey"]
        index = self._key_shard.get(key)
        if index is None:
            hash_key = int.from_bytes(hashlib.md5(key.encode("utf-8")).digest(), "big")
            index = bisect.bisect_right(self.starts, hash_key) - 1
            if len(self._key_shard) >= _KEY_CACHE_LIMIT:
                self._key_shard.clear()
            self._key_shard[key] = index
        return index

    def put_records(self, entries: List[Dict[str, Any]]) -> Dict[str, Any]:
        placed = [(self.shard_index(e), base64_length(e["Data"]) + len(e["PartitionKey"].encode()))
                  for e in entries]
        now = time.monotonic()
        answers: List[Dict[str, str]] = []
        failed = 0
        with self.lock:
            self.calls += 1
            for index, nbytes in placed:
                if self.buckets is not None and not self.buckets[index].take(now):
                    self.throttled[index] += 1
                    failed += 1
                    message = f"Rate exceeded for shard {self.ids[index]}"
                    answers.append({"ErrorCode": THROTTLED, "ErrorMessage": message})
                    continue
                self.records[index] += 1
                self.nbytes[index] += nbytes
                self.sequence[index] += 1
                answers.append({"SequenceNumber": f"4960{index:04d}{self.sequence[index]:020d}",
                                "ShardId": self.ids[index]})
        return {"FailedRecordCount": failed, "Records": answers}

    def shards_listing(self) -> List[Dict[str, Any]]:
        ends = [start - 1 for start in self.starts[1:]] + [HASH_SPACE - 1]
        return [
            {"ShardId": sid, "HashKeyRange": {"StartingHashKey": str(start), "EndingHashKey": str(end)},
             "SequenceNumberRange": {"StartingSequenceNumber": "0"}}
            for sid, start, end in zip(self.ids, self.starts, ends)
        ]

    def stats(self) -> Dict[str, Any]:
        with self.lock:
            return {
                "put_records_calls": self.calls,
                "list_shards_calls": self.list_shards_calls,
                "records": sum(self.records),
                "bytes": sum(self.nbytes),
                "throttled": sum(self.throttled),
                "by_shard": {sid: {"records": r, "bytes": b, "throttled": t}
                             for sid, r, b, t in zip(self.ids, self.records, self.nbytes, self.throttled)},
                "latency_ms": self.latency_s * 1000.0,
                "throttle_records_per_second": self.throttle,
            }


def _summary(stream: Stream, name: str) -> Dict[str, Any]:
    return {"StreamName": name, "StreamARN": f"arn:aws:kinesis:us-east-1:000000000000:stream/{name}",
            "StreamStatus": "ACTIVE", "StreamModeDetails": {"StreamMode": "PROVISIONED"},
            "RetentionPeriodHours": 24, "StreamCreationTimestamp": 0, "EnhancedMonitoring": [],
            "EncryptionType": "NONE", "OpenShardCount": len(stream.ids), "ConsumerCount": 0}


def operations(stream: Stream) -> Dict[str, Callable[[Dict[str, Any]], Dict[str, Any]]]:
    """What each Kinesis operation answers, from its parsed request body."""

    def list_shards(body: Dict[str, Any]) -> Dict[str, Any]:
        with stream.lock:
            stream.list_shards_calls += 1
        return {"Shards": stream.shards_listing()}

    def describe_stream(body: Dict[str, Any]) -> Dict[str, Any]:
        name = body.get("StreamName") or "bench"
        description = {**_summary(stream, name), "Shards": stream.shards_listing(), "HasMoreShards": False}
        return {"StreamDescription": description}

    return {
        "PutRecords": lambda body: stream.put_records(body["Records"]),
        "ListShards": list_shards,
        "DescribeStreamSummary": lambda body: {
            "StreamDescriptionSummary": _summary(stream, body.get("StreamName") or "bench")},
        "DescribeStream": describe_stream,
        "ListStreams": lambda body: {"StreamNames": ["bench"], "HasMoreStreams": False},
    }


def make_handler(stream: Stream) -> type:
    answers = operations(stream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: botocore reuses its connections
        #: TCP_NODELAY: else the body of an answer, written after its headers, waits for the
        #: client's delayed ACK (40 ms a call)
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
            pass

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, status: int, payload: Dict[str, Any], content_type: str = JSON_11) -> None:
            data = json.dumps(payload, separators=(",", ":")).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path == ADMIN_PREFIX + "stats":
                self._send(200, stream.stats(), "application/json")
            else:
                self._send(404, {"message": f"no such path {self.path}"}, "application/json")

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            raw = self._body()
            if self.path.startswith(ADMIN_PREFIX):
                self._admin(self.path[len(ADMIN_PREFIX):], json.loads(raw or b"{}"))
                return
            operation = (self.headers.get("X-Amz-Target") or "").removeprefix(TARGET_PREFIX)
            answer = answers.get(operation)
            if answer is None:
                self._send(400, {"__type": "UnknownOperationException", "message": operation})
                return
            if operation == "PutRecords" and stream.latency_s > 0:
                time.sleep(stream.latency_s)
            self._send(200, answer(json.loads(raw or b"{}")))

        def _admin(self, command: str, payload: Dict[str, Any]) -> None:
            if command == "reset":
                stream.reset()
            elif command == "config":
                stream.configure(payload)
            else:
                self._send(404, {"message": f"no such command {command}"}, "application/json")
                return
            self._send(200, stream.stats(), "application/json")

    return Handler


def write_ready(path: str, port: int) -> None:
    """Atomically: the reader never sees half a file."""
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as f:
        json.dump({"port": port, "pid": os.getpid()}, f)
    os.replace(partial, path)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.endpoint_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--port", type=int, default=0, help="0: the OS picks a free one")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--throttle-records-per-second", type=float, default=0.0)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    stream = Stream(args.shards, args.latency_ms, args.throttle_records_per_second)
    server = ThreadingHTTPServer((LOOPBACK, args.port), make_handler(stream))
    server.daemon_threads = True
    write_ready(args.ready_file, server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
