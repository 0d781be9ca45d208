"""The fault front's side towards the real server: one keep-alive HTTP
connection per client connection (:class:`Upstream`), and ListShards calls
made on it for the throttling's shard maps (:meth:`Upstream.list_page`).

Every failure to reach the upstream is an :class:`UpstreamUnreachable`
(the client gets HTTP 502); an error answer to the front's own ListShards is
an :class:`UpstreamAnswer`, passed back to the client as it came.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import Any, Callable, Mapping, Optional

from beam_kinesis_sink.testing.fault_front.wire import HOP_BY_HOP, Response

_RETRYABLE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class UpstreamUnreachable(Exception):
    """The upstream could not be reached, or hung up mid-answer."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(repr(error))
        self.error = error


class UpstreamAnswer(Exception):
    """An upstream error answer to pass back to the client as is."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def forward_headers(headers: Mapping[str, str], body: bytes) -> dict[str, str]:
    """The client's headers, without the hop-by-hop ones, for ``body``."""
    out = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
    out["Content-Length"] = str(len(body))
    return out


class Upstream:
    """One keep-alive HTTP connection to the upstream, reopened when idle
    or when the upstream closed it."""

    IDLE_REOPEN_S = 3.0  # node's server closes idle keep-alive sockets after 5 s

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.conn: Optional[http.client.HTTPConnection] = None
        self.last_used = 0.0
        self.reconnects = 0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Response:
        try:
            return self._request(method, path, body, headers)
        except (OSError, http.client.HTTPException) as error:
            raise UpstreamUnreachable(error) from error

    def list_page(self, client_headers: Mapping[str, str]) -> Callable[..., dict[str, Any]]:
        """A callable that makes one ListShards call (the shape of
        ``client.list_shards``), with the client's other headers."""
        headers = {k: v for k, v in client_headers.items() if k.lower() != "x-amz-target"}
        headers["X-Amz-Target"] = "Kinesis_20131202.ListShards"

        def list_page(**request: Any) -> dict[str, Any]:
            body = json.dumps(request).encode()
            response = self.request("POST", "/", body, forward_headers(headers, body))
            if response.status != 200:
                raise UpstreamAnswer(response)
            return dict(json.loads(response.body))

        return list_page

    def _connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        conn.connect()
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _request(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Response:
        for attempt in (0, 1):
            if self.conn is not None and time.monotonic() - self.last_used > self.IDLE_REOPEN_S:
                self.close()
            fresh = self.conn is None
            if self.conn is None:
                self.conn = self._connect()
            conn = self.conn
            try:
                conn.request(method, path, body, dict(headers))
                response = conn.getresponse()
                data = response.read()
            except _RETRYABLE:
                self.close()
                if fresh or attempt:
                    raise
                self.reconnects += 1  # a kept-alive connection the upstream had closed
                continue
            except BaseException:
                self.close()
                raise
            self.last_used = time.monotonic()
            if response.will_close:
                self.close()
            return Response(response.status, response.reason, response.getheaders(), data)
        raise AssertionError("unreachable")
