"""The client's credentials: refreshable assumed-role credentials, and the
redactor of whatever credentials boto3 resolved. No network: clients are
built but never called (their endpoint is a closed loopback port)."""

from __future__ import annotations

import datetime
import pickle
from urllib.parse import quote

import pytest
from botocore.credentials import DeferredRefreshableCredentials, RefreshableCredentials
from botocore.stub import Stubber

from beam_kinesis_sink.client import (
    ClientConfig,
    _AssumeRole,
    _session_with_credentials,
    redactor_for,
)

ACCESS_KEY = "ASIAENVIRONMENT00001"
SECRET_KEY = "env/Secret+Key/0123456789abcdefghijklmnopqrs"
TOKEN = "IQoJb3JpZ2luX2VjEnvironmentSessionToken/with+slashes=" + "x" * 300
UNUSED_ENDPOINT = "http://127.0.0.1:9"  # never called


@pytest.fixture
def environment_credentials(monkeypatch, tmp_path):
    """Credentials from the environment only: no profile or shared file."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_PROFILE", raising=False)


def _quoting_error(access_key, token):
    """What InvalidSignatureException says: the canonical request, token included."""
    return (
        "An error occurred (InvalidSignatureException) when calling the PutRecords operation: "
        "The request signature we calculated does not match the signature you provided. "
        "The Canonical String for this request should have been 'POST / content-type:"
        f"application/x-amz-json-1.1 host:kinesis.us-east-1.amazonaws.com x-amz-security-token:{token} "
        f"x-amz-target:Kinesis_20131202.PutRecords' Credential={access_key}/20260101/us-east-1/kinesis"
    )


def test_redactor_removes_environment_credentials(environment_credentials):
    config = ClientConfig(region_name="us-east-1", endpoint_url=UNUSED_ENDPOINT)
    assert config.secrets() == (None, None, None)  # nothing configured: all from the environment
    client = config.create_client()
    redact = redactor_for(client, config)
    message = _quoting_error(ACCESS_KEY, TOKEN) + f" secret={SECRET_KEY}"
    redacted = redact(message)
    for secret in (ACCESS_KEY, SECRET_KEY, TOKEN):
        assert secret not in redacted
    assert "***" in redacted and "InvalidSignatureException" in redacted
    # Also when the message was cut inside the token (clip), or URL-encoded.
    full = _quoting_error(ACCESS_KEY, TOKEN)
    cut = full[: full.index(TOKEN) + 60] + "..."
    assert TOKEN[:60] in cut and TOKEN not in cut
    assert TOKEN[:16] not in redact(cut)
    assert quote(TOKEN, safe="") not in redact(f"?X-Amz-Security-Token={quote(TOKEN, safe='')}")
    assert set(redact.secrets()) >= {ACCESS_KEY, SECRET_KEY, TOKEN}


def test_before_the_fix_config_secrets_alone_left_the_token_in_clear(environment_credentials):
    """What the sink redacted before: ClientConfig.secrets() only (kept as
    the reference of the bug; messages.redact still catches the key id)."""
    from beam_kinesis_sink.messages import redact

    config = ClientConfig(region_name="us-east-1")
    leaked = redact(_quoting_error(ACCESS_KEY, TOKEN), config.secrets())
    assert TOKEN in leaked


def test_redactor_also_removes_configured_secrets(environment_credentials):
    config = ClientConfig(region_name="us-east-1", endpoint_url=UNUSED_ENDPOINT,
                          aws_access_key_id="AKIACONFIGURED000001",
                          aws_secret_access_key="configured-secret-value",
                          aws_session_token="configured-session-token-value")
    redact = redactor_for(config.create_client(), config)
    text = redact("configured-secret-value and configured-session-token-value AKIACONFIGURED000001")
    assert "configured" not in text and "AKIA" not in text


class Refresher:
    """A refresh function issuing a new set each time; what STS would do."""

    def __init__(self, lifetime_seconds: float) -> None:
        self.lifetime = lifetime_seconds
        self.issued: list[dict] = []

    def __call__(self) -> dict:
        n = len(self.issued) + 1
        expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=self.lifetime)
        creds = {
            "access_key": f"ASIAREFRESHED{n:07d}",
            "secret_key": f"refreshed-secret-{n}-" + "s" * 30,
            "token": f"refreshed-token-{n}/" + "t" * 200,
            "expiry_time": expiry.isoformat(),
        }
        self.issued.append(creds)
        return creds


def test_redactor_follows_refreshed_credentials():
    # Every set expires within botocore's mandatory window (10 min): each
    # signing refreshes. That is what makes refreshes happen here.
    refresh = Refresher(lifetime_seconds=60)
    credentials = RefreshableCredentials.create_from_metadata(
        metadata=refresh(), refresh_using=refresh, method="test")
    client = _session_with_credentials(credentials, region_name="us-east-1").client(
        "kinesis", endpoint_url=UNUSED_ENDPOINT)
    assert client._request_signer._credentials is credentials  # the client signs with them
    redact = redactor_for(client, ClientConfig())
    first = refresh.issued[0]
    assert first["token"] not in redact(_quoting_error(first["access_key"], first["token"]))

    credentials.get_frozen_credentials()  # what signing the next request does: a refresh
    assert len(refresh.issued) == 2
    second = refresh.issued[1]
    redacted = redact(_quoting_error(second["access_key"], second["token"]) + second["secret_key"])
    for secret in (second["access_key"], second["secret_key"], second["token"]):
        assert secret not in redacted
    # The set seen before the refresh is still redacted (a message may quote it).
    assert first["token"] not in redact(first["token"])


def test_redactor_remembers_what_was_sent_before_a_refresh():
    """A request signed with set 1, a refresh to set 2 before its error is
    redacted: the before-send hook saw set 1 on the wire."""
    refresh = Refresher(lifetime_seconds=60)
    credentials = RefreshableCredentials.create_from_metadata(
        metadata=refresh(), refresh_using=refresh, method="test")
    client = _session_with_credentials(credentials, region_name="us-east-1").client(
        "kinesis", endpoint_url=UNUSED_ENDPOINT)
    redact = redactor_for(client, ClientConfig())  # has not read set 1 yet

    class Sent:  # the headers of a request as botocore sends it
        headers = {"X-Amz-Security-Token": "token-on-the-wire/" + "w" * 40,
                   "Authorization": "AWS4-HMAC-SHA256 Credential=ASIAONTHEWIRE0000001/20260101/"
                                    "us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=abc"}

    responses = client.meta.events.emit("before-send.kinesis.PutRecords", request=Sent())
    assert all(response is None for _, response in responses)  # the hook does not answer requests
    redacted = redact("token-on-the-wire/" + "w" * 40 + " ASIAONTHEWIRE0000001")
    assert "token-on-the-wire" not in redacted and "ASIAONTHEWIRE" not in redacted


def test_redactor_never_raises_nor_refreshes():
    class NotABotoClient:
        pass

    redact = redactor_for(NotABotoClient(), ClientConfig(aws_secret_access_key="only-this-one"))
    assert redact("x only-this-one y") == "x *** y"

    calls = []
    deferred = DeferredRefreshableCredentials(refresh_using=lambda: calls.append(1), method="test")
    client = _session_with_credentials(deferred, region_name="us-east-1").client(
        "kinesis", endpoint_url=UNUSED_ENDPOINT)
    assert redactor_for(client)("nothing to hide") == "nothing to hide"
    assert calls == []  # no credential fetch from a redaction


def test_assume_role_refresh_function_returns_botocore_metadata():
    import boto3

    sts = boto3.session.Session(aws_access_key_id="AKIABASE000000000001", aws_secret_access_key="b",
                                region_name="us-east-1").client("sts", endpoint_url=UNUSED_ENDPOINT)
    expiration = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    with Stubber(sts) as stub:
        stub.add_response(
            "assume_role",
            {"Credentials": {"AccessKeyId": "ASIAROLE000000000001", "SecretAccessKey": "s" * 40,
                             "SessionToken": "t" * 100, "Expiration": expiration}},
            {"RoleArn": "arn:aws:iam::000000000000:role/r", "RoleSessionName": "beam-kinesis-sink"},
        )
        metadata = _AssumeRole(sts, "arn:aws:iam::000000000000:role/r", "beam-kinesis-sink")()
    assert metadata == {"access_key": "ASIAROLE000000000001", "secret_key": "s" * 40,
                        "token": "t" * 100, "expiry_time": "2030-01-02T03:04:05+00:00"}
    credentials = RefreshableCredentials.create_from_metadata(metadata, lambda: metadata, "test")
    assert credentials.get_frozen_credentials().token == "t" * 100


def test_client_config_stays_a_small_picklable_value():
    config = ClientConfig(role_arn="arn:aws:iam::000000000000:role/r",
                          sts_endpoint_url="http://127.0.0.1:1", aws_secret_access_key="hidden")
    assert pickle.loads(pickle.dumps(config)) == config
    assert "hidden" not in repr(config) and "sts_endpoint_url='http://127.0.0.1:1'" in repr(config)


def test_clients_share_one_model_loader_but_not_their_credentials():
    first = ClientConfig(region_name="us-east-1", aws_access_key_id="AKIAFIRST0000000001",
                         aws_secret_access_key="first-secret").create_client()
    others = [ClientConfig(region_name="eu-west-1", aws_access_key_id=f"AKIAOTHER000000000{i}",
                           aws_secret_access_key=f"other-secret-{i}").create_client() for i in range(5)]
    from beam_kinesis_sink import client as client_module

    loader = client_module._loader
    assert loader is not None
    assert all(c._loader is loader for c in [first, *others])  # the models are read once
    assert len(loader.search_paths) <= len(set(loader.search_paths)) + 1  # no growth per client
    assert first._request_signer._credentials.access_key == "AKIAFIRST0000000001"
    assert [c._request_signer._credentials.access_key for c in others] == [
        f"AKIAOTHER000000000{i}" for i in range(5)]
    assert {c.meta.region_name for c in others} == {"eu-west-1"} and first.meta.region_name == "us-east-1"
