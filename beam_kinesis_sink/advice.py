"""What a dead letter tells its reader to do, by error code: the one home of
that advice. Pure text. The classifier adds it to stream-level errors, the
retry planner and the writer to records whose budget or deadline ran out.
"""

from __future__ import annotations

from beam_kinesis_sink.records import ErrorCode

E = ErrorCode

_BAD_SIGNATURE = "the signature was refused: check the workers' clock, and "
_CHECK_CREDENTIALS = ("check the credentials the workers use (their environment, profile, or instance "
                      "or task role; or ClientConfig(profile_name=..., role_arn=...))")

#: What to do about each stream-level code, added to its message: the on-call
#: engineer reads it in the dead letter, the log line and FatalStreamError.
FATAL_ADVICE = {
    E.RESOURCE_NOT_FOUND: ("check the stream's name or ARN, the region (ClientConfig(region_name=...)) and "
                           "the account of the workers' credentials, or create the stream"),
    E.ACCESS_DENIED: ("grant the workers' identity kinesis:PutRecords, kinesis:ListShards and "
                      "kinesis:DescribeStreamSummary on the stream"),
    E.KMS_ACCESS_DENIED: "grant the workers' identity kms:GenerateDataKey on the stream's KMS key",
    E.KMS_DISABLED: "enable the stream's KMS key, or give the stream another key",
    E.KMS_INVALID_STATE: ("the stream's KMS key cannot be used in its state (pending deletion or "
                          "import?): restore it, or give the stream another key"),
    E.KMS_NOT_FOUND: "the stream's KMS key does not exist: give the stream another key",
    E.KMS_OPT_IN_REQUIRED: "the account must subscribe to AWS KMS",
    E.UNRECOGNIZED_CLIENT: "AWS does not know the access key id: " + _CHECK_CREDENTIALS,
    E.INVALID_CLIENT_TOKEN_ID: "AWS does not know the access key id: " + _CHECK_CREDENTIALS,
    E.INVALID_SIGNATURE: _BAD_SIGNATURE + _CHECK_CREDENTIALS,
    E.SIGNATURE_DOES_NOT_MATCH: _BAD_SIGNATURE + _CHECK_CREDENTIALS,
    E.INCOMPLETE_SIGNATURE: "the request was not fully signed: " + _CHECK_CREDENTIALS,
    E.MISSING_AUTHENTICATION_TOKEN: "the request was not signed: " + _CHECK_CREDENTIALS,
    E.EXPIRED_TOKEN: ("the session credentials expired: use ClientConfig(role_arn=...), whose credentials "
                      "the sink refreshes, or a profile or role whose credentials refresh"),
    E.NO_CREDENTIALS: ("the workers found no AWS credentials: give them some (environment variables, "
                       "a profile, or an instance or task role; ClientConfig(profile_name=...) picks "
                       "a profile)"),
    E.PARTIAL_CREDENTIALS: "the workers found half of the AWS credentials: " + _CHECK_CREDENTIALS,
    E.NO_REGION: "pass ClientConfig(region_name=...), or set AWS_REGION on the workers",
}


def advised(code: str, message: str) -> str:
    """``message`` and, for a stream-level code, what to do about it."""
    advice = FATAL_ADVICE.get(code)
    if advice is None:
        return message
    return f"{message}: {advice}" if message else advice


_MORE_TIME = "or give each record more time (max_attempts, max_retry_seconds)"

#: What to do about a record whose retry budget ran out, by its last error.
GAVE_UP_ADVICE = {
    E.THROTTLED: ("the shards had no room for it: add shards, or lower the rate "
                  "(max_records_per_second), " + _MORE_TIME + "; then replay it"),
    E.KMS_THROTTLED: ("the stream's KMS key took no more requests: raise the account's KMS request "
                      "quota, or lower the rate (max_records_per_second), " + _MORE_TIME
                      + "; then replay it"),
}
#: ... and by default (the service or the network kept failing)
GAVE_UP_DEFAULT = "replay it once the service answers again, " + _MORE_TIME

#: What to do about a record the flush deadline caught before its first answer.
DEADLINE_ADVICE = ("raise flush_timeout_seconds, or give the sink more throughput (shards, rate), "
                   "then replay it")


def gave_up(code: str) -> str:
    """What to do about a record given up on with ``code`` as its last error."""
    return GAVE_UP_ADVICE.get(code, GAVE_UP_DEFAULT)
