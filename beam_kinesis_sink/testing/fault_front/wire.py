"""HTTP as the fault front speaks it: a :class:`Response` value, the JSON 1.1
bodies of the Kinesis API (``{"__type": code, "message": ...}`` for an
error) and the hop-by-hop headers that are never passed along."""

from __future__ import annotations

import http.client
import json
import uuid
from typing import Any, NamedTuple, Sequence

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "content-length",
    }
)
_SEPARATORS = (",", ":")


class Response(NamedTuple):
    """An HTTP answer (the upstream's, or one the front made up)."""

    status: int
    reason: str
    headers: Sequence[tuple[str, str]]
    body: bytes


def dumps(payload: Any) -> bytes:
    """Compact JSON, as the service writes it."""
    return json.dumps(payload, separators=_SEPARATORS).encode()


def service_headers(*extra: tuple[str, str]) -> list[tuple[str, str]]:
    """The headers of an answer the front makes up: content type and a fresh request id."""
    return [("Content-Type", JSON_CONTENT_TYPE), ("x-amzn-RequestId", str(uuid.uuid4())), *extra]


def json_response(status: int, payload: Any) -> Response:
    return Response(status, http.client.responses.get(status, ""), service_headers(), dumps(payload))


def error_response(status: int, code: str, message: str) -> Response:
    """An error in the service's shape; botocore reads ``code`` from ``__type``."""
    return Response(
        status,
        http.client.responses.get(status, ""),
        service_headers(("x-amzn-ErrorType", f"{code}:")),
        dumps({"__type": code, "message": message}),
    )
