import random

import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from beam_kinesis_sink.classifier import (
    Action,
    classify_exception,
    classify_record_error,
    classify_service_error,
)
from beam_kinesis_sink.messages import redact
from beam_kinesis_sink.records import ErrorCode
from beam_kinesis_sink.retry import Backoff, RetryPolicy
from tests.unit.fakes import client_error


@pytest.mark.parametrize(
    "code, status, action, throttled",
    [
        ("ProvisionedThroughputExceededException", 400, Action.RETRY, True),
        ("ThrottlingException", 400, Action.RETRY, True),
        ("KMSThrottlingException", 400, Action.RETRY, True),
        ("LimitExceededException", 400, Action.RETRY, True),
        ("InternalFailure", 500, Action.RETRY, False),
        ("ServiceUnavailable", 503, Action.RETRY, False),
        ("", 502, Action.RETRY, False),
        ("", 429, Action.RETRY, True),
        ("ValidationException", 400, Action.SPLIT, False),
        ("InvalidArgumentException", 400, Action.SPLIT, False),
        ("", 413, Action.SPLIT, False),
        ("ResourceNotFoundException", 400, Action.FATAL, False),
        ("AccessDeniedException", 400, Action.FATAL, False),
        ("KMSAccessDeniedException", 400, Action.FATAL, False),
        ("KMSDisabledException", 400, Action.FATAL, False),
        ("KMSInvalidStateException", 400, Action.FATAL, False),
        ("KMSNotFoundException", 400, Action.FATAL, False),
        ("KMSOptInRequired", 400, Action.FATAL, False),
        ("UnrecognizedClientException", 400, Action.FATAL, False),
        ("ExpiredTokenException", 400, Action.FATAL, False),
        # Negative cases: an unknown 4xx is not retried forever, and not fatal either.
        ("SomethingNew", 400, Action.DROP_RECORD, False),
        ("", 404, Action.DROP_RECORD, False),
        ("404", 404, Action.DROP_RECORD, False),
        ("SomethingNew", 500, Action.RETRY, False),
        ("SomethingNew", 0, Action.RETRY, False),
        ("KMSSomethingNew", 400, Action.DROP_RECORD, False),
    ],
)
def test_service_error_table(code, status, action, throttled):
    c = classify_service_error(code, "msg", status)
    assert c.action is action
    assert c.throttled is throttled
    assert c.error_code  # never empty


@pytest.mark.parametrize(
    "exc, action",
    [
        (client_error("ProvisionedThroughputExceededException"), Action.RETRY),
        (client_error("InternalFailure", status=500), Action.RETRY),
        (client_error("AccessDeniedException"), Action.FATAL),
        (client_error("ValidationException"), Action.SPLIT),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), Action.RETRY),
        (ConnectionClosedError(endpoint_url="http://127.0.0.1:1"), Action.RETRY),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), Action.RETRY),
        (ConnectionResetError("reset"), Action.RETRY),
        (NoCredentialsError(), Action.FATAL),
        (ValueError("a bug"), Action.FATAL),
    ],
)
def test_exception_table(exc, action):
    assert classify_exception(exc).action is action


@pytest.mark.parametrize(
    "code, action",
    [
        ("ProvisionedThroughputExceededException", Action.RETRY),
        ("InternalFailure", Action.RETRY),
        # kinesis-mock's per-record answer to an oversized record: retrying cannot help.
        ("InvalidArgumentException", Action.DROP_RECORD),
        ("ValidationException", Action.DROP_RECORD),
        ("KMSAccessDeniedException", Action.DROP_RECORD),
    ],
)
def test_record_error_table(code, action):
    assert classify_record_error(code, "m").action is action


@pytest.mark.parametrize(
    "code, status, reported, named",
    [
        # botocore names a bare HTTP error by its status: reported as a documented code.
        ("500", 500, ErrorCode.INTERNAL_FAILURE, "HTTP 500"),
        ("502", 502, ErrorCode.SERVICE_UNAVAILABLE, "HTTP 502"),
        ("503", 503, ErrorCode.SERVICE_UNAVAILABLE, "HTTP 503"),
        ("", 504, ErrorCode.SERVICE_UNAVAILABLE, "HTTP 504"),
        ("429", 429, ErrorCode.THROTTLED, "HTTP 429"),
        ("413", 413, ErrorCode.INVALID_ARGUMENT, "HTTP 413"),
        # Aliases become the documented code; the message keeps the original.
        ("ThrottlingException", 400, ErrorCode.THROTTLED, "ThrottlingException"),
        ("InternalServerError", 500, ErrorCode.INTERNAL_FAILURE, "InternalServerError"),
        ("ServiceUnavailableException", 503, ErrorCode.SERVICE_UNAVAILABLE, "ServiceUnavailableException"),
        ("KMSThrottlingException", 400, ErrorCode.KMS_THROTTLED, "msg"),
        # An unknown code is UnknownError, naming the code.
        ("SomethingNew", 400, ErrorCode.UNKNOWN, "SomethingNew"),
        ("SomethingNew", 503, ErrorCode.UNKNOWN, "SomethingNew"),
    ],
)
def test_service_codes_are_normalised_to_documented_ones(code, status, reported, named):
    c = classify_service_error(code, "msg", status)
    assert c.error_code == reported
    assert named in c.error_message and "msg" in c.error_message


def test_an_unknown_per_record_code_is_retried_as_unknown_error():
    c = classify_record_error("BrandNewError", "details")
    assert (c.action, c.error_code) == (Action.RETRY, ErrorCode.UNKNOWN)
    assert c.error_message == "BrandNewError: details"


@settings(max_examples=300)
@given(code=st.text(max_size=30) | st.sampled_from(sorted(ErrorCode.all())), status=st.integers(0, 600))
def test_every_classification_is_a_documented_code(code, status):
    assert classify_service_error(code, "m", status).error_code in ErrorCode.all()
    assert classify_record_error(code, "m").error_code in ErrorCode.all()


def test_backoff_is_full_jitter_and_capped():
    policy = RetryPolicy(base_delay=0.1, max_delay=2.0)
    top = Backoff(policy, rand=lambda: 1.0)
    assert [round(top.delay(a), 3) for a in range(1, 8)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    bottom = Backoff(policy, rand=lambda: 0.0)
    assert bottom.delay(5) == 0.0
    rng = random.Random(7)
    jittered = Backoff(policy, rand=rng.random)
    delays = [jittered.delay(4) for _ in range(200)]
    assert all(0 <= d <= 0.8 for d in delays)
    assert len(set(delays)) > 150  # really random, not a constant


def test_retry_budget():
    policy = RetryPolicy(max_attempts=3, max_elapsed_seconds=10)
    assert policy.may_retry(1, 0)
    assert policy.may_retry(2, 9.9)
    assert not policy.may_retry(3, 0)
    assert not policy.may_retry(1, 10)


def test_redact_removes_credentials():
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    text = (
        f"Could not connect to https://user:{secret}@kinesis.local/ key AKIAIOSFODNN7EXAMPLE "
        f"secret {secret}"
    )
    out = redact(text, [secret])
    assert secret not in out
    assert "AKIAIOSFODNN7EXAMPLE" not in out
    assert "user:" not in out
    assert "kinesis.local" in out  # the useful part stays


def test_previews_and_descriptions_never_raise_and_are_valid_unicode():
    from beam_kinesis_sink.messages import describe, preview

    class BadStr(Exception):
        def __str__(self):
            raise RuntimeError("no")

    class SurrogateRepr:
        def __repr__(self):
            return "obj-\udcff"

    assert describe(BadStr()) == "BadStr: <str() failed>"
    assert describe(ValueError("x\ud800y")) == "ValueError: x\\ud800y"
    assert preview(SurrogateRepr()) == "obj-\\udcff"
    for text in (describe(ValueError("x\ud800")), preview(SurrogateRepr())):
        text.encode("utf-8")
