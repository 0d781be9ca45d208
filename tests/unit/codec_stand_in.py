"""Stand-ins for the PutRecords codec's tests: a canned ``before-send``
answer (no server at all), and a tiny stdlib HTTP server on a free loopback
port that answers each call with the scenario it is given."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional

from botocore.awsrequest import AWSResponse

from beam_kinesis_sink.testing.processes import LOOPBACK, free_port

JSON_TYPE = "application/x-amz-json-1.1"


def receipts(count: int, shard: str = "shardId-000000000001") -> List[dict]:
    return [{"SequenceNumber": f"4960{i:052d}", "ShardId": shard} for i in range(count)]


def all_written(request_body: bytes) -> bytes:
    """A 200 answer's body: every record of the request written."""
    count = len(json.loads(request_body)["Records"])
    return json.dumps({"FailedRecordCount": 0, "Records": receipts(count)}).encode()


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


class CannedSend:
    """A ``before-send`` hook: records each request and answers it with
    ``answer(body)`` (HTTP 200), so the client never reaches a server."""

    def __init__(self, answer: Callable[[bytes], bytes] = all_written) -> None:
        self.answer = answer
        self.requests: List[Any] = []

    def __call__(self, request: Any, **_: Any) -> Any:
        self.requests.append(request)
        body = request.body if isinstance(request.body, bytes) else bytes(request.body or b"")
        headers = {"Content-Type": JSON_TYPE, "x-amzn-RequestId": "canned"}
        return AWSResponse(request.url, 200, headers, _Raw(self.answer(body)))

    def install(self, client: Any) -> CannedSend:
        client.meta.events.register("before-send.kinesis.PutRecords", self)
        return self


# -------------------------------------------------------------- HTTP stand-in
class Answer:
    """What the stand-in does with one request."""

    def __init__(self, status: int = 200, body: Any = b"", content_type: str = JSON_TYPE,
                 headers: Optional[Dict[str, str]] = None, length: Optional[int] = None,
                 drop: bool = False, delay: float = 0.0) -> None:
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.content_type = content_type
        self.headers = headers or {}
        #: Content-Length to announce (more than the body: a truncated answer)
        self.length = length
        #: close the connection without answering
        self.drop = drop
        self.delay = delay


Scenario = Callable[[bytes], Answer]


class _Handler(BaseHTTPRequestHandler):
    server: StandIn

    def version_string(self) -> str:  # the same Server header for every answer
        return "codec-stand-in"

    def date_time_string(self, timestamp: Any = None) -> str:  # and the same Date
        return "Thu, 01 Jan 2026 00:00:00 GMT"

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.bodies.append(body)
        answer = self.server.scenario(body)
        if answer.delay:
            time.sleep(answer.delay)
        if answer.drop:
            self.close_connection = True
            return
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("x-amzn-RequestId", "stand-in-request")
        for name, value in answer.headers.items():
            self.send_header(name, value)
        length = answer.length if answer.length is not None else len(answer.body)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(answer.body)
        if answer.length is not None:
            self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


class StandIn(ThreadingHTTPServer):
    """``with StandIn() as server:``; set ``server.scenario``; read
    ``server.bodies``; ``server.endpoint_url`` for the client."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__((LOOPBACK, free_port()), _Handler)
        self.scenario: Scenario = lambda body: Answer(200, all_written(body))
        self.bodies: List[bytes] = []
        self.endpoint_url = f"http://{LOOPBACK}:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def __enter__(self) -> StandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
        self.server_close()
