"""The fault front's HTTP side: a threading server on loopback
(:class:`FrontServer`) whose handler reads each client request, decides
what happens to it, and forwards it upstream or answers in the upstream's
place.

A request, top to bottom (:meth:`Handler.handle_request`): counted; delayed
if latency is configured; parsed when the front needs to look inside; the
stream's existence, the limits and access checked; a whole-request fault
drawn; ``StreamARN`` rewritten to ``StreamName``; then PutRecords and
PutRecord go through :mod:`.put_records`, UpdateMaxRecordSize (and
DescribeStreamSummary of a raised stream, CreateStream with a record size)
through :mod:`.record_size`, anything else upstream as is. Requests under
``/_fault/`` are the admin endpoints (stats, config, reset, timeline, large
records).
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Callable, Optional
from urllib.parse import parse_qs

from beam_kinesis_sink.testing.fault_front.config import FaultConfig
from beam_kinesis_sink.testing.fault_front.exchange import Exchange, stream_of
from beam_kinesis_sink.testing.fault_front.faults import (
    Fault,
    draw_latency,
    draw_request_fault,
    fault_response,
)
from beam_kinesis_sink.testing.fault_front.put_records import PutRecordsCall, put_record
from beam_kinesis_sink.testing.fault_front.record_size import RECORD_SIZE_OPERATIONS, wants_body
from beam_kinesis_sink.testing.fault_front.record_size import answer as record_size_answer
from beam_kinesis_sink.testing.fault_front.upstream import Upstream, UpstreamAnswer, UpstreamUnreachable
from beam_kinesis_sink.testing.fault_front.validation import (
    FrontError,
    Rejected,
    access_denied,
    check_put_record,
    check_put_records,
    not_found,
)
from beam_kinesis_sink.testing.fault_front.wire import (
    HOP_BY_HOP,
    Response,
    dumps,
    error_response,
    json_response,
)

if TYPE_CHECKING:
    from beam_kinesis_sink.testing.fault_front.front import FaultFront

ADMIN_PREFIX = "/_fault/"
#: the operations whose body the front always reads
PARSED_OPERATIONS = frozenset({"PutRecords", "PutRecord"})


class FrontServer(ThreadingHTTPServer):
    """A thread per client connection; remembers the open connections so
    that ``stop()`` can close them."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], front: FaultFront) -> None:
        self.front = front
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_all_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
            self._open.clear()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: FrontServer

    def setup(self) -> None:
        super().setup()
        self.front = self.server.front
        front = self.front
        self.upstream = Upstream(front.upstream_host, front.upstream_port, front.upstream_timeout)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.upstream.close()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    # -- entry points ------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._serve()

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self._serve()

    def _serve(self) -> None:
        body = self._read_body()
        if self.path.startswith(ADMIN_PREFIX):
            self._reply(admin_answer(self.front, self.command, self.path, body))
            return
        stats = self.front.recorder
        try:
            response = self.handle_request(body)
        except FrontError as error:
            response = error.response()
        except UpstreamAnswer as answer:
            stats.add(upstream_error_responses=1)
            response = answer.response
        except UpstreamUnreachable as unreachable:
            stats.add(upstream_connection_errors=1)
            response = error_response(
                502, "InternalFailure", f"fault front: upstream unreachable: {unreachable.error!r}"
            )
        self._reply(response)

    # -- one request -------------------------------------------------------------------

    def handle_request(self, body: bytes) -> Optional[Response]:
        """The client's answer (None: drop the connection)."""
        exchange = self._exchange()
        cfg = exchange.cfg
        operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        exchange.stats.request(operation)
        faulty = operation in cfg.fault_operations
        if faulty and cfg.latency_max_s > 0:
            delay = draw_latency(exchange.dice, cfg)
            time.sleep(delay)
            exchange.stats.latency(delay)
        request = self._parse(body, operation, cfg)
        stream, account = stream_of(request)
        account = account or cfg.account_id
        self._check(exchange, operation, request, stream, account, faulty)
        fault = draw_request_fault(exchange.dice, cfg) if faulty else None
        if fault is not None and not fault.after:
            return fault_response(fault, cfg, exchange.stats)
        if cfg.arn_to_name and request is not None and "StreamARN" in request and stream:
            request["StreamName"] = stream
            del request["StreamARN"]
            body = dumps(request)
        if request is not None and operation in RECORD_SIZE_OPERATIONS:
            set_size = self.front.set_max_record_size
            answer = record_size_answer(operation, exchange, request, stream, body, set_size)
            if answer is not None:
                return answer if fault is None else fault_response(fault, cfg, exchange.stats)
        if request is not None and stream is not None:
            if operation == "PutRecords":
                return PutRecordsCall(exchange, request, stream, account, fault).run(body)
            if operation == "PutRecord":
                return put_record(exchange, request, stream, account, body, fault)
        return pass_through(exchange, body, fault)

    def _exchange(self) -> Exchange:
        front = self.front
        return Exchange(
            cfg=front.config,
            stats=front.recorder,
            dice=front.dice,
            buckets=front.buckets,
            shard_maps=front.shard_maps,
            large=front.large,
            upstream=self.upstream,
            method=self.command,
            path=self.path,
            headers=self.headers,
        )

    def _parse(self, body: bytes, operation: str, cfg: FaultConfig) -> Optional[dict[str, Any]]:
        """The JSON request, when the front needs to read it (else None)."""
        is_json = "json" in self.headers.get("Content-Type", "")
        needed = (
            operation in PARSED_OPERATIONS
            or cfg.missing_streams
            or (operation in cfg.fault_operations and cfg.deny_streams)
            or (cfg.arn_to_name and b'"StreamARN"' in body)
            or wants_body(operation, cfg, body)
        )
        request = None
        if is_json and needed:
            try:
                parsed = json.loads(body) if body else {}
            except ValueError:
                parsed = None
            request = parsed if isinstance(parsed, dict) else None
        if operation in PARSED_OPERATIONS and request is None:
            self.front.recorder.add(unparsed_requests=1)
        return request

    def _check(
        self,
        exchange: Exchange,
        operation: str,
        request: Optional[dict[str, Any]],
        stream: Optional[str],
        account: str,
        faulty: bool,
    ) -> None:
        """Raise the service's error for a missing stream, a broken limit or denied access."""
        cfg, stats = exchange.cfg, exchange.stats
        if stream is not None and stream in cfg.missing_streams:
            stats.add(resource_not_found=1)
            raise not_found(stream, account)
        if request is not None:
            check_limits(exchange, operation, request, stream)
        if faulty and (cfg.deny_access or (stream is not None and stream in cfg.deny_streams)):
            stats.add(access_denied=1)
            raise access_denied(operation, stream, account, cfg.region)

    # -- HTTP plumbing -------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length))
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunks()
        return b""

    def _read_chunks(self) -> bytes:
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _reply(self, response: Optional[Response]) -> None:
        """Send ``response``; None: drop the connection without an answer."""
        if response is None:
            self._drop()
            return
        status, reason, headers, body = response
        lines = [f"HTTP/1.1 {status} {reason}\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers if name.lower() not in HOP_BY_HOP)
        lines.append(f"Content-Length: {len(body)}\r\n")
        if self.close_connection:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        self.wfile.write("".join(lines).encode("latin-1") + body)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def check_limits(
    exchange: Exchange, operation: str, request: dict[str, Any], stream: Optional[str] = None
) -> None:
    """Count a PutRecords/PutRecord and check it against the stream's limits."""
    stats = exchange.stats
    try:
        if operation == "PutRecords":
            records = request.get("Records")
            received = len(records) if isinstance(records, list) else 0
            stats.add(put_records_calls=1, records_received=received)
            check_put_records(records, exchange.cfg, stream)
        elif operation == "PutRecord":
            stats.add(put_record_calls=1, records_received=1)
            check_put_record(request, exchange.cfg, stream)
    except Rejected as rejected:
        stats.rejection(rejected.reason)
        raise


def pass_through(exchange: Exchange, body: bytes, after_fault: Optional[Fault]) -> Optional[Response]:
    """Forward a request the front does not look into, answer as the upstream did
    (or with the fault drawn for after forwarding)."""
    if after_fault is not None:
        try:
            exchange.forward(body)
        except UpstreamUnreachable:
            exchange.stats.add(upstream_connection_errors=1)
        return fault_response(after_fault, exchange.cfg, exchange.stats)
    response = exchange.forward(body)
    if response.status >= 300:
        exchange.stats.add(upstream_error_responses=1)
    return response


def admin_answer(front: FaultFront, method: str, path: str, body: bytes) -> Response:
    """The answer of an admin endpoint ``/_fault/<name>``."""
    name, _, query = path[len(ADMIN_PREFIX) :].partition("?")

    def config() -> Any:
        if method == "GET":
            return front.config.to_dict()
        return front.configure(**json.loads(body or b"{}")).to_dict()

    def max_record_size() -> Any:
        change = json.loads(body or b"{}")
        return front.set_max_record_size(str(change["stream"]), change["kib"]).to_dict()

    endpoints: dict[str, Callable[[], Any]] = {
        "stats": lambda: front.stats().to_dict(),
        "config": config,
        "reset": front.reset,
        "reset-stats": front.reset_stats,
        "reset-buckets": front.reset_buckets,
        "invalidate-shard-maps": front.invalidate_shard_maps,
        "timeline": front.timeline,
        "large-records": lambda: _large_records(front, query),
        "clear-large-records": front.clear_large_records,
        "max-record-size": max_record_size,
        "ping": lambda: {"upstream": front.upstream_url},
    }
    endpoint = endpoints.get(name)
    if endpoint is None:
        return json_response(404, {"error": f"unknown admin path {path}"})
    try:
        result = endpoint()
    except (KeyError, TypeError, ValueError) as error:
        return json_response(400, {"error": str(error)})
    return json_response(200, {} if result is None else result)


def _large_records(front: FaultFront, query: str) -> dict[str, Any]:
    """``GET /_fault/large-records?stream=NAME``: the records the front kept,
    each ``[shard_id, sequence_number, partition_key, base64 data]``."""
    streams = parse_qs(query).get("stream")
    if not streams:
        raise ValueError("large-records needs ?stream=NAME")
    records = front.large_records(streams[0])
    return {"Records": [[r.shard_id, r.sequence_number, r.partition_key, _b64(r.data)] for r in records]}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
