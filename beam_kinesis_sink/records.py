"""The typed records that flow in and out of :class:`WriteToKinesis`.

``WriteReceipt`` and ``DeadLetter`` are ``NamedTuple`` types registered with
Beam's ``RowCoder``: they carry a Beam schema and cross runner and process
boundaries (Flink, Dataflow) without pickling.

The error codes a dead letter can carry are listed in :class:`ErrorCode`.
"""

from typing import NamedTuple, Optional

import apache_beam as beam


class KinesisRecord(NamedTuple):
    """A record ready to be written: elements of this type are written as they are."""

    data: bytes
    partition_key: str
    explicit_hash_key: Optional[str] = None


class WriteReceipt(NamedTuple):
    """One record that Kinesis accepted."""

    stream: str
    partition_key: str
    explicit_hash_key: Optional[str]
    shard_id: str
    sequence_number: str
    #: number of PutRecords attempts this record took (1 = first try)
    attempts: int
    #: data plus partition key, in bytes
    size_bytes: int
    #: the element's event timestamp, microseconds since the epoch
    element_timestamp_micros: Optional[int]
    #: with aggregation: the record's index inside its aggregated record (the
    #: KCL's sub-sequence number); None when it was sent on its own
    sub_sequence_number: Optional[int] = None


class DeadLetter(NamedTuple):
    """One element that was not written, and why.

    ``data`` is ``None`` when the element could not be serialised; then
    ``element_preview`` holds a short ``repr`` of the element.
    """

    stream: str
    data: Optional[bytes]
    partition_key: Optional[str]
    explicit_hash_key: Optional[str]
    error_code: str
    error_message: str
    #: PutRecords attempts made (0 = rejected before any request)
    attempts: int
    #: the shard the record was mapped to, when known
    shard_id: Optional[str]
    #: when the sink gave up on the record, microseconds since the epoch
    failed_at_micros: int
    #: the element's event timestamp, microseconds since the epoch
    element_timestamp_micros: Optional[int]
    #: a short repr of the element, when ``data`` is missing; or where it came from
    element_preview: Optional[str]


beam.coders.registry.register_coder(KinesisRecord, beam.coders.RowCoder)
beam.coders.registry.register_coder(WriteReceipt, beam.coders.RowCoder)
beam.coders.registry.register_coder(DeadLetter, beam.coders.RowCoder)


class ErrorCode:
    """Every ``DeadLetter.error_code`` this project produces, and nothing else.

    Service codes that mean the same thing are normalised to one of these
    (e.g. ``ThrottlingException`` → ``ProvisionedThroughputExceededException``,
    HTTP 503 → ``ServiceUnavailable``), with the original code kept in the
    message. The README's table of error codes lists the same set (a test
    checks it).
    """

    # Checked before any request (attempts == 0).
    SERIALIZATION_ERROR = "SerializationError"
    INVALID_PARTITION_KEY = "InvalidPartitionKey"
    INVALID_EXPLICIT_HASH_KEY = "InvalidExplicitHashKey"
    RECORD_TOO_LARGE = "RecordTooLarge"
    #: the ``stream`` function raised, or returned something that is not a stream name or ARN
    STREAM_SELECTION_ERROR = "StreamSelectionError"

    # Retried until the record's budget runs out.
    THROTTLED = "ProvisionedThroughputExceededException"
    KMS_THROTTLED = "KMSThrottlingException"
    INTERNAL_FAILURE = "InternalFailure"
    #: HTTP 502/503/504, or a request timeout, outlasted the retry budget
    SERVICE_UNAVAILABLE = "ServiceUnavailable"
    #: timeouts and dropped or refused connections outlasted the retry budget
    CONNECTION_ERROR = "ConnectionError"
    #: the stream was being updated (e.g. resharded) for the whole budget
    RESOURCE_IN_USE = "ResourceInUseException"

    # The service refused the record itself: not retried.
    VALIDATION = "ValidationException"
    INVALID_ARGUMENT = "InvalidArgumentException"
    SERIALIZATION_EXCEPTION = "SerializationException"

    # Stream-level: every record of this stream and identity would fail the
    # same way. Not retried; with on_fatal_error="fail", the pipeline fails.
    RESOURCE_NOT_FOUND = "ResourceNotFoundException"
    ACCESS_DENIED = "AccessDeniedException"
    KMS_ACCESS_DENIED = "KMSAccessDeniedException"
    KMS_DISABLED = "KMSDisabledException"
    KMS_INVALID_STATE = "KMSInvalidStateException"
    KMS_NOT_FOUND = "KMSNotFoundException"
    KMS_OPT_IN_REQUIRED = "KMSOptInRequired"
    UNRECOGNIZED_CLIENT = "UnrecognizedClientException"
    INVALID_SIGNATURE = "InvalidSignatureException"
    INCOMPLETE_SIGNATURE = "IncompleteSignature"
    MISSING_AUTHENTICATION_TOKEN = "MissingAuthenticationToken"
    EXPIRED_TOKEN = "ExpiredTokenException"
    INVALID_CLIENT_TOKEN_ID = "InvalidClientTokenId"
    SIGNATURE_DOES_NOT_MATCH = "SignatureDoesNotMatch"
    #: no credentials found by boto3's chain on the worker
    NO_CREDENTIALS = "NoCredentialsError"
    PARTIAL_CREDENTIALS = "PartialCredentialsError"
    NO_REGION = "NoRegionError"

    # The sink's own.
    #: finish_bundle's deadline passed before the record could be written
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    #: an error the sink does not know; the message holds the original code
    UNKNOWN = "UnknownError"

    # Codes of the pipelines in ``pipelines/``.
    MISSING_PARTITION_KEY = "MissingPartitionKey"
    MALFORMED_INPUT = "MalformedInput"
    UNREADABLE_INPUT = "UnreadableInput"

    PRE_REQUEST = frozenset(
        {SERIALIZATION_ERROR, INVALID_PARTITION_KEY, INVALID_EXPLICIT_HASH_KEY, RECORD_TOO_LARGE,
         STREAM_SELECTION_ERROR}
    )

    @classmethod
    def all(cls) -> frozenset:
        """Every code: the values of the class's upper-case str attributes."""
        return frozenset(v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str))
