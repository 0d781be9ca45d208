"""Credentials resolved by boto3 (here: from the environment, the README's
recommended default chain) never reach a dead letter, a log line or an
exception, even when the service quotes the signed request back.

The server is a stdlib stand-in on a free loopback port that answers every
call as AWS answers a bad signature: HTTP 400 ``InvalidSignatureException``
with the canonical request (session token included) in the message.
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import apache_beam as beam
import pytest

from beam_kinesis_sink import ClientConfig, WriteToKinesis
from beam_kinesis_sink.errors import FatalStreamError
from tests.integration.helpers import collect, collected

pytestmark = pytest.mark.integration

KEY_ID = "ASIAENVENVENVENVENV1"
SECRET = "env-secret-key-0123456789-abcdefghijklmn"
TOKEN = "IQoJb3JpZ2luX2VjEnvironmentSessionToken0123456789abcdefghijklmnopqrstuvwxyz"


class _QuotesTheRequest(BaseHTTPRequestHandler):
    calls = 0

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).calls += 1
        canonical = "\n".join(f"{k.lower()}:{v}" for k, v in self.headers.items())
        body = json.dumps({
            "__type": "InvalidSignatureException",
            "message": "The request signature we calculated does not match the signature you provided. "
                       f"The Canonical String for this request should have been\n'POST\n/\n\n{canonical}'",
        }).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def quoting_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _QuotesTheRequest)
    _QuotesTheRequest.calls = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def environment_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)


def _leaks(text: str) -> list:
    return [name for name, value in (("key id", KEY_ID), ("secret", SECRET), ("token", TOKEN),
                                     ("token prefix", TOKEN[:24])) if value in text]


def test_environment_credentials_quoted_by_the_service_are_redacted(
        quoting_server, environment_credentials, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="beam_kinesis_sink")
    config = ClientConfig(region_name="us-east-1", endpoint_url=quoting_server)
    with beam.Pipeline() as p:
        result = p | beam.Create([{"user": f"u{i}"} for i in range(5)]) | WriteToKinesis(
            "s", partition_key="user", client_config=config, rate_limit=False)
        collect(result.dead_letters, str(tmp_path / "d"), "CD")
    dead = [d for d, _, _ in collected(str(tmp_path / "d"))]
    assert _QuotesTheRequest.calls >= 2  # ListShards and PutRecords both got the quoting answer
    assert len(dead) == 5 and {d.error_code for d in dead} == {"InvalidSignatureException"}
    assert all("Canonical String" in d.error_message for d in dead)  # the message is there...
    assert "ListShards failed" in caplog.text
    assert _leaks(" ".join(d.error_message for d in dead) + caplog.text) == []  # ...the credentials not


def test_fail_fast_error_quoting_environment_credentials_is_redacted(quoting_server, environment_credentials):
    config = ClientConfig(region_name="us-east-1", endpoint_url=quoting_server)
    with pytest.raises(Exception) as info:
        with beam.Pipeline() as p:
            _ = p | beam.Create([{"user": "u"}]) | WriteToKinesis(
                "s", partition_key="user", client_config=config, on_fatal_error="fail")
    # What a user sees: the whole printed traceback, with every chained exception.
    text = "".join(traceback.format_exception(info.value))
    assert "InvalidSignatureException" in text and FatalStreamError.__name__ in text
    assert _leaks(text) == []
