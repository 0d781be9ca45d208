"""Assumed-role credentials are refreshed before they expire.

``ClientConfig(role_arn=...)`` assumes the role through a local STS
stand-in (a stdlib HTTP server answering AssumeRole in STS's XML format),
and writes to a real kinesalite through an observing front that sees the
access key id and session token of every Kinesis call, and refuses a key
past its lifetime with ``ExpiredTokenException``, as the service does.

botocore refreshes credentials when they have less than its *advisory*
window left (15 minutes in botocore 1.44: ``RefreshableCredentials.
_advisory_refresh_timeout``; it blocks for it below the *mandatory* window,
10 minutes). A stand-in answering "expires in 2 s" would be inside both
windows at once, and botocore would call AssumeRole before every request.
So the stand-in gives each set ``LIFETIME`` seconds of use and reports an
``Expiration`` that much past the advisory window: botocore's advisory
refresh opens exactly when the set's use ends. The front refuses a set used
more than ``GRACE`` seconds after that (generous: this machine is shared).
"""

from __future__ import annotations

import datetime
import http.client
import json
import math
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

import pytest
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import ClientError

from beam_kinesis_sink.client import ClientConfig, redactor_for
from tests.conftest import unique_stream
from tests.integration.helpers import read_stream

pytestmark = pytest.mark.integration

ADVISORY_WINDOW = RefreshableCredentials._advisory_refresh_timeout  # 900 s in botocore 1.44
LIFETIME = 2.0  # seconds of use of each credential set
GRACE = 6.0  # past LIFETIME, before the front calls the set expired
RUN_SECONDS = 20.0  # ten lifetimes; static credentials would expire after 8 s
ROLE_ARN = "arn:aws:iam::000000000000:role/beam-kinesis-sink-writer"
BASE_ACCESS_KEY = "AKIABASECREDENTIAL01"


class _Server:
    """A ThreadingHTTPServer on a free loopback port, in a daemon thread."""

    def __init__(self, handler: type) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        pass

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _signing_access_key(headers) -> Optional[str]:
    match = re.search(r"Credential=([^/,\s]+)/", headers.get("Authorization") or "")
    return match.group(1) if match else None


class StsStandIn(_Server):
    """AssumeRole: a new credential set per call."""

    def __init__(self) -> None:
        super().__init__(_StsHandler)
        self.lock = threading.Lock()
        #: access key id -> (secret, token, monotonic issue time)
        self.issued: Dict[str, Tuple[str, str, float]] = {}
        #: (RoleArn, RoleSessionName, access key id that signed the call)
        self.calls: List[Tuple[str, str, Optional[str]]] = []

    def issue(self, role_arn: str, session_name: str, signer: Optional[str]) -> str:
        with self.lock:
            n = len(self.calls) + 1
            self.calls.append((role_arn, session_name, signer))
            access_key = f"ASIASTANDIN{n:09d}"
            secret = secrets.token_urlsafe(30)
            token = "FwoGZXIvYXdzE" + secrets.token_urlsafe(200).replace("-", "/").replace("_", "+")
            self.issued[access_key] = (secret, token, time.monotonic())
        expires = datetime.datetime.fromtimestamp(
            math.ceil(time.time() + ADVISORY_WINDOW + LIFETIME), tz=datetime.timezone.utc)
        return f"""<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::000000000000:assumed-role/beam-kinesis-sink-writer/{escape(session_name)}</Arn>
      <AssumedRoleId>AROASTANDIN000000000:{escape(session_name)}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>{access_key}</AccessKeyId>
      <SecretAccessKey>{secret}</SecretAccessKey>
      <SessionToken>{escape(token)}</SessionToken>
      <Expiration>{expires.strftime("%Y-%m-%dT%H:%M:%SZ")}</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>{secrets.token_hex(8)}</RequestId></ResponseMetadata>
</AssumeRoleResponse>"""


class _StsHandler(_Quiet):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        stand_in: StsStandIn = self.server.owner  # type: ignore[attr-defined]
        form = {k: v[0] for k, v in parse_qs(self._body().decode()).items()}
        if form.get("Action") != "AssumeRole":
            self._reply(400, b"<ErrorResponse><Error><Code>InvalidAction</Code></Error></ErrorResponse>",
                        "text/xml")
            return
        xml = stand_in.issue(form.get("RoleArn", ""), form.get("RoleSessionName", ""),
                             _signing_access_key(self.headers))
        self._reply(200, xml.encode(), "text/xml")


class ObservingFront(_Server):
    """In front of kinesalite: checks and records the credentials of each call."""

    def __init__(self, upstream: str, sts: StsStandIn) -> None:
        super().__init__(_FrontHandler)
        self.upstream = urlsplit(upstream)
        self.sts = sts
        self.lock = threading.Lock()
        #: (access key id, its age in seconds, X-Amz-Target)
        self.seen: List[Tuple[str, float, str]] = []

    def check(self, headers) -> Optional[Tuple[int, str, str]]:
        """None if the credentials are good; else (status, code, message)."""
        access_key = _signing_access_key(headers) or ""
        issued = self.sts.issued.get(access_key)
        if issued is None or headers.get("X-Amz-Security-Token") != issued[1]:
            return (400, "UnrecognizedClientException",
                    "The security token included in the request is invalid.")
        age = time.monotonic() - issued[2]
        with self.lock:
            self.seen.append((access_key, age, headers.get("X-Amz-Target") or ""))
        if age > LIFETIME + GRACE:
            return 400, "ExpiredTokenException", "The security token included in the request is expired"
        return None


class _FrontHandler(_Quiet):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        front: ObservingFront = self.server.owner  # type: ignore[attr-defined]
        body = self._body()
        problem = front.check(self.headers)
        if problem is None and b'"PartitionKey":"quote-me"' in body.replace(b" ", b""):
            # What InvalidSignatureException says: the canonical request, token included.
            problem = (400, "InvalidSignatureException",
                       "The request signature we calculated does not match the signature you "
                       "provided. The Canonical String for this request should have been 'POST / "
                       f"x-amz-security-token:{self.headers.get('X-Amz-Security-Token')}'")
        if problem is not None:
            status, code, message = problem
            self._reply(status, json.dumps({"__type": code, "message": message}).encode(),
                        "application/x-amz-json-1.1")
            return
        connection = http.client.HTTPConnection(front.upstream.hostname, front.upstream.port, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            connection.request("POST", self.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            self._reply(response.status, payload,
                        response.getheader("Content-Type") or "application/x-amz-json-1.1")
        finally:
            connection.close()


@pytest.fixture
def base_credentials(monkeypatch, tmp_path):
    """The base credentials (environment only) that sign AssumeRole."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", BASE_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "base-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_STS", raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))


def test_assumed_role_credentials_are_refreshed_before_they_expire(kinesalite, base_credentials, report):
    assert ADVISORY_WINDOW > RefreshableCredentials._mandatory_refresh_timeout > 0
    stream = unique_stream("creds")
    kinesalite.create_stream(stream, shards=1)
    with StsStandIn() as sts, ObservingFront(kinesalite.endpoint_url, sts) as front:
        config = ClientConfig(region_name="us-east-1", endpoint_url=front.url, role_arn=ROLE_ARN,
                              role_session_name="refresh-test", sts_endpoint_url=sts.url)
        client = config.create_client()
        assert len(sts.calls) == 1  # assumed when the client is built
        redact = redactor_for(client, config)

        errors: List[str] = []
        sent = written = 0
        started = time.monotonic()
        while time.monotonic() - started < RUN_SECONDS:
            records = [{"Data": f"record-{sent + i}".encode(), "PartitionKey": f"k{sent + i}"}
                       for i in range(5)]
            sent += len(records)
            try:
                response = client.put_records(StreamName=stream, Records=records)
                written += len(records) - response.get("FailedRecordCount", 0)
            except ClientError as exc:
                errors.append(exc.response["Error"]["Code"])
            time.sleep(0.1)

        # A service error quoting the token now in use: the redactor removes it.
        with pytest.raises(ClientError) as raised:
            client.put_records(StreamName=stream, Records=[{"Data": b"x", "PartitionKey": "quote-me"}])
        message = str(raised.value)

    used = [key for key, _, target in front.seen if target.endswith("PutRecords")]
    report(f"credentials refresh: {len(sts.calls)} AssumeRole calls in {RUN_SECONDS:.0f} s, "
           f"{len(set(used))} access keys over {len(used)} PutRecords calls, oldest key used at "
           f"{max(age for _, age, _ in front.seen):.1f} s (lifetime {LIFETIME:.0f} s), "
           f"{len(errors)} errors")
    assert errors == []  # no ExpiredTokenException: never a set past its lifetime
    assert written == sent
    stored = [r for records in read_stream(kinesalite, stream).values() for r in records]
    assert len(stored) == written

    # STS was called again and again, always as the role, signed with the base credentials.
    assert len(sts.calls) >= 3, sts.calls
    assert {(arn, name, signer) for arn, name, signer in sts.calls} == {
        (ROLE_ARN, "refresh-test", BASE_ACCESS_KEY)}
    # The Kinesis calls moved on to each new set, in the order STS issued them.
    assert len(set(used)) >= 3
    assert used == sorted(used)
    assert max(age for _, age, _ in front.seen) <= LIFETIME + GRACE

    # The redactor removes the token quoted by the service, and every set the
    # client used, though they refreshed under it.
    assert "InvalidSignatureException" in message
    token_in_message = re.search(r"x-amz-security-token:(\S+?)'", message).group(1)
    current_key = used[-1]
    assert token_in_message == sts.issued[current_key][1]
    redacted = redact(message)
    assert token_in_message not in redacted and "x-amz-security-token:***" in redacted
    for access_key in set(used):
        secret, token, _ = sts.issued[access_key]
        assert token not in redact(f"token {token}")
        assert access_key not in redact(f"key {access_key}")
    secret, token, _ = sts.issued[current_key]
    assert secret not in redact(f"secret {secret}")
