"""ClientConfig: how to build the boto3 Kinesis client, without holding one.

A ``ClientConfig`` is a small picklable value. The client itself is built in
the DoFn's ``setup`` on each worker and never pickled.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union
from urllib.parse import quote

from beam_kinesis_sink.messages import redact


@dataclass(frozen=True)
class ClientConfig:
    """Where and how to reach Kinesis.

    With no arguments, boto3's default chain decides everything: the
    environment (``AWS_REGION``, ``AWS_ENDPOINT_URL_KINESIS``,
    ``AWS_ACCESS_KEY_ID``...), the shared config/profile, then the instance or
    task role. That is the recommended way on real clusters.

    ``aws_access_key_id`` / ``aws_secret_access_key`` / ``aws_session_token``
    are accepted for local testing, but note: they are pickled into the
    pipeline graph, and from there can reach job-server logs and UIs. Prefer
    the default chain, a profile or ``role_arn``. Secrets never appear in this
    object's ``repr``, nor in any log line, exception or dead letter of the sink.

    With ``role_arn``, the client's credentials come from STS AssumeRole
    (signed with the base credentials: the profile, or the default chain) and
    are refreshable: they are assumed again before they expire (botocore
    refreshes them when they have less than 15 minutes left, and blocks for
    it with less than 10), so a job outlives the role session's duration.
    """

    region_name: Optional[str] = None
    endpoint_url: Optional[str] = None
    profile_name: Optional[str] = None
    #: assume this role (STS AssumeRole) with the base credentials
    role_arn: Optional[str] = None
    role_session_name: str = "beam-kinesis-sink"
    #: TLS verification: True, False, or a path to a CA bundle
    verify: Union[bool, str, None] = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    #: HTTP connection pool size; at least the number of requests in flight
    max_pool_connections: int = 16
    #: skip botocore's client-side parameter validation (about 30% faster);
    #: safe because the sink validates every record itself
    skip_parameter_validation: bool = True
    aws_access_key_id: Optional[str] = field(default=None, repr=False)
    aws_secret_access_key: Optional[str] = field(default=None, repr=False)
    aws_session_token: Optional[str] = field(default=None, repr=False)
    #: STS endpoint for ``role_arn`` (default: boto3's, which also reads
    #: ``AWS_ENDPOINT_URL_STS``); e.g. a VPC endpoint, or a local stand-in in tests
    sts_endpoint_url: Optional[str] = None

    def __post_init__(self) -> None:
        # Refused here, at construction, with the option named: botocore
        # would refuse them only when a worker makes its client, and fail the job.
        from botocore.exceptions import InvalidRegionError
        from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url, validate_region_name

        for name in ("endpoint_url", "sts_endpoint_url"):
            url = getattr(self, name)
            if url is not None and not (is_valid_endpoint_url(url) or is_valid_ipv6_endpoint_url(url)):
                raise ValueError(f"{name} {redact(url)!r} is not a URL botocore can use: give a scheme and "
                                 "a host, e.g. https://kinesis.eu-west-1.amazonaws.com or http://localhost:4567")
        if self.region_name is not None:
            try:
                validate_region_name(self.region_name)
            except InvalidRegionError:
                raise ValueError(f"region_name {self.region_name!r} is not a region name, e.g. us-east-1 "
                                 "(or leave it out for boto3's chain: AWS_REGION, the profile...)") from None

    def secrets(self) -> tuple[Optional[str], ...]:
        """Values that must be redacted from any message."""
        return (self.aws_access_key_id, self.aws_secret_access_key, self.aws_session_token)

    def create_client(self) -> Any:
        """Build a boto3 Kinesis client with botocore's retries off: the sink
        owns the retry budget, and counts every attempt."""
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(
            botocore_session=_botocore_session(self.profile_name),
            profile_name=self.profile_name,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
            region_name=self.region_name,
        )
        if self.role_arn:
            session = _session_with_credentials(
                self._assumed_role_credentials(session),
                profile_name=self.profile_name,
                region_name=self.region_name or session.region_name,
            )
        config = Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_pool_connections=self.max_pool_connections,
            # total_max_attempts=1: botocore makes exactly one attempt (its
            # "max_attempts" would count retries, i.e. a hidden second try).
            retries={"mode": "standard", "total_max_attempts": 1},
            parameter_validation=not self.skip_parameter_validation,
        )
        kwargs: dict[str, Any] = {"config": config}
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        if self.verify is not None:
            kwargs["verify"] = self.verify
        return session.client("kinesis", **kwargs)

    def _assumed_role_credentials(self, base_session: Any) -> Any:
        """Refreshable credentials of ``role_arn``, assumed with the base
        session's credentials (which refresh themselves, if they can)."""
        from botocore.config import Config
        from botocore.credentials import RefreshableCredentials

        kwargs: dict[str, Any] = {
            "region_name": self.region_name,
            "config": Config(connect_timeout=self.connect_timeout, read_timeout=self.read_timeout),
        }
        if self.sts_endpoint_url:
            kwargs["endpoint_url"] = self.sts_endpoint_url
        assume = _AssumeRole(base_session.client("sts", **kwargs), self.role_arn or "",
                             self.role_session_name)
        # The first AssumeRole runs now, so a role that cannot be assumed fails
        # the client's creation (the DoFn's setup), as before.
        return RefreshableCredentials.create_from_metadata(
            metadata=assume(), refresh_using=assume, method="assume-role"
        )


class _AssumeRole:
    """The refresh function of assumed-role credentials: calls AssumeRole."""

    def __init__(self, sts: Any, role_arn: str, session_name: str) -> None:
        self._sts = sts
        self._role_arn = role_arn
        self._session_name = session_name

    def __call__(self) -> Dict[str, Any]:
        response = self._sts.assume_role(RoleArn=self._role_arn, RoleSessionName=self._session_name)
        creds = response["Credentials"]
        expiration = creds["Expiration"]
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": expiration.isoformat() if hasattr(expiration, "isoformat") else str(expiration),
        }


_loader_lock = threading.Lock()
_loader: Any = None


def _botocore_session(profile_name: Optional[str] = None) -> Any:
    """A new botocore session (its own credentials, profile and region), with
    the process's one data loader: the loader caches the models it has read,
    so a new client does not read and parse Kinesis' JSON models again (130
    to 300 ms per client here, in every DoFn's ``setup``)."""
    import botocore.session

    global _loader
    core = botocore.session.Session(profile=profile_name)
    with _loader_lock:
        if _loader is None:
            _loader = core.get_component("data_loader")
        core.register_component("data_loader", _loader)
        # boto3 appends its data path to the loader of each session it wraps:
        # drop the repeats, or the shared loader's list would grow per client.
        _loader.search_paths[:] = list(dict.fromkeys(_loader.search_paths))
    return core


def _session_with_credentials(credentials: Any, profile_name: Optional[str] = None,
                              region_name: Optional[str] = None) -> Any:
    """A boto3 session whose clients use ``credentials`` (a botocore
    ``Credentials`` object, refreshable or not); the rest (region, endpoints,
    CA bundle...) from the profile and the environment as usual."""
    import boto3
    from botocore.credentials import CredentialProvider

    class _Given(CredentialProvider):
        METHOD = "beam-kinesis-sink"
        CANONICAL_NAME = "custom-beam-kinesis-sink"

        def load(self) -> Any:
            return credentials

    core = _botocore_session(profile_name)
    core.get_component("credential_provider").providers.insert(0, _Given())
    return boto3.session.Session(botocore_session=core, region_name=region_name)


# ----------------------------------------------------------------- redaction
_AUTH_ACCESS_KEY_RE = re.compile(r"Credential=([^/,\s]+)/")
#: the shortest piece of a long secret that is redacted when a message was cut
#: inside it (``clip``: "...x-amz-security-token:IQoJb3JpZ2luX2Vj...")
_PARTIAL_MIN_CHARS = 16


def _current_credentials(client: Any) -> Tuple[Optional[str], ...]:
    """(access key, secret key, token) the client signs with now; () if they
    cannot be read. Reads botocore internals defensively, and never makes
    refreshable credentials refresh (no STS call from a redaction)."""
    try:
        credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
        if credentials is None:
            return ()
        if hasattr(credentials, "_frozen_credentials"):  # refreshable: the set in use
            frozen = credentials._frozen_credentials
        else:
            frozen = credentials.get_frozen_credentials()
        if frozen is None:  # deferred credentials not fetched yet: none used
            return ()
        return (frozen.access_key, frozen.secret_key, frozen.token)
    except Exception:
        return ()


def _redact_cut(text: str, secret: str) -> str:
    """Redact what is left of a long ``secret`` that was cut (a prefix of at
    least ``_PARTIAL_MIN_CHARS`` characters)."""
    if len(secret) < 2 * _PARTIAL_MIN_CHARS:
        return text
    head = secret[:_PARTIAL_MIN_CHARS]
    start = text.find(head)
    while start >= 0:
        end = start + _PARTIAL_MIN_CHARS
        while end < len(text) and end - start < len(secret) and text[end] == secret[end - start]:
            end += 1
        text = text[:start] + "***" + text[end:]
        start = text.find(head, start + 3)
    return text


class CredentialRedactor:
    """``Callable[[str], str]``: removes from a message the credentials the
    client actually uses, whatever resolved them (``ClientConfig``, the
    environment, a profile, an instance role, ``role_arn``), read at
    redaction time since they may refresh; plus ``ClientConfig.secrets()``,
    access-key ids, URL user-info (:func:`beam_kinesis_sink.messages.redact`).

    It also remembers the last ``history`` sets it saw, and the access key
    and session token of every request the client sends (a ``before-send``
    hook), so a message quoting a request signed just before a refresh is
    redacted too. Thread-safe. Build it with :func:`redactor_for`.
    """

    def __init__(self, client: Any, config: Optional[ClientConfig] = None, history: int = 8) -> None:
        self._client = client
        self._configured = tuple(s for s in (config.secrets() if config else ()) if s)
        self._history = max(1, history)
        self._seen: List[str] = []  # most recent last
        self._lock = threading.Lock()
        try:
            client.meta.events.register("before-send", self._on_send)
        except Exception:  # not a botocore client (a fake): read-time credentials only
            pass

    def _remember(self, values: Tuple[Optional[str], ...]) -> None:
        fresh = [v for v in values if v and isinstance(v, str)]
        if not fresh:
            return
        with self._lock:
            for value in fresh:
                if value in self._seen:
                    self._seen.remove(value)
                self._seen.append(value)
            del self._seen[: max(0, len(self._seen) - 3 * self._history)]

    def _on_send(self, request: Any = None, **_: Any) -> None:
        """before-send hook: remember what went on the wire; returns None (a
        value would replace the HTTP response)."""
        try:
            headers = request.headers
            token = headers.get("X-Amz-Security-Token")
            match = _AUTH_ACCESS_KEY_RE.search(str(headers.get("Authorization") or ""))
            values = tuple(v.decode() if isinstance(v, bytes) else v
                           for v in (match.group(1) if match else None, token))
            self._remember(values)
        except Exception:
            pass
        return None

    def secrets(self) -> Tuple[str, ...]:
        """Every value this redactor removes now (longest first)."""
        self._remember(_current_credentials(self._client))
        with self._lock:
            values = set(self._seen)
        values.update(self._configured)
        variants = set(values)
        for value in values:
            variants.add(quote(value, safe=""))  # as in a query string
        return tuple(sorted((v for v in variants if len(v) >= 4), key=len, reverse=True))

    def __call__(self, text: str) -> str:
        secrets = self.secrets()
        text = redact(text, secrets)
        for secret in secrets:
            text = _redact_cut(text, secret)
        return text


def redactor_for(client: Any, config: Optional[ClientConfig] = None) -> CredentialRedactor:
    """The redactor of ``client`` (built by ``config.create_client()``): a
    callable ``text -> text`` that removes the credentials the client uses,
    as they are at redaction time, and ``config.secrets()``."""
    return CredentialRedactor(client, config)


def stream_arguments(stream: str) -> dict[str, str]:
    """``StreamARN`` when given an ARN, else ``StreamName``."""
    if stream.startswith("arn:"):
        return {"StreamARN": stream}
    return {"StreamName": stream}


def stream_name_of(stream: str) -> str:
    """The stream's name, from a name or an ARN (``arn:aws:kinesis:R:A:stream/NAME``)."""
    if stream.startswith("arn:") and "/" in stream:
        return stream.rsplit("/", 1)[1]
    return stream
