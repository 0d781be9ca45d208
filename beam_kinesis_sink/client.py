"""ClientConfig: how to build the boto3 Kinesis client, without holding one.

A ``ClientConfig`` is a small picklable value. The client itself is built in
the DoFn's ``setup`` on each worker and never pickled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union


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

    def secrets(self) -> tuple[Optional[str], ...]:
        """Values that must be redacted from any message."""
        return (self.aws_access_key_id, self.aws_secret_access_key, self.aws_session_token)

    def create_client(self) -> Any:
        """Build a boto3 Kinesis client with botocore's retries off: the sink
        owns the retry budget, and counts every attempt."""
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(
            profile_name=self.profile_name,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
            region_name=self.region_name,
        )
        if self.role_arn:
            sts = session.client("sts", region_name=self.region_name)
            creds = sts.assume_role(RoleArn=self.role_arn, RoleSessionName=self.role_session_name)[
                "Credentials"
            ]
            session = boto3.session.Session(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
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
