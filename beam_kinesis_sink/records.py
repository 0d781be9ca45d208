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
    """Every ``DeadLetter.error_code`` this project produces.

    Codes checked before any request (``attempts == 0``):
    """

    SERIALIZATION_ERROR = "SerializationError"
    INVALID_PARTITION_KEY = "InvalidPartitionKey"
    INVALID_EXPLICIT_HASH_KEY = "InvalidExplicitHashKey"
    RECORD_TOO_LARGE = "RecordTooLarge"

    # Codes returned by Kinesis, per record or for the whole request.
    THROTTLED = "ProvisionedThroughputExceededException"
    INTERNAL_FAILURE = "InternalFailure"
    RESOURCE_NOT_FOUND = "ResourceNotFoundException"
    ACCESS_DENIED = "AccessDeniedException"
    VALIDATION = "ValidationException"
    INVALID_ARGUMENT = "InvalidArgumentException"
    # KMS* codes are passed through as the service names them.

    # Codes of the sink itself.
    #: a retryable error (5xx, timeout, dropped connection) outlasted the retry budget
    SERVICE_UNAVAILABLE = "ServiceUnavailable"
    CONNECTION_ERROR = "ConnectionError"
    #: finish_bundle's deadline passed before the record could be written
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    #: an error the sink does not know; the message holds the service's code
    UNKNOWN = "UnknownError"

    # Codes of the pipelines in ``pipelines/``.
    MISSING_PARTITION_KEY = "MissingPartitionKey"
    MALFORMED_INPUT = "MalformedInput"
    UNREADABLE_INPUT = "UnreadableInput"

    PRE_REQUEST = frozenset(
        {SERIALIZATION_ERROR, INVALID_PARTITION_KEY, INVALID_EXPLICIT_HASH_KEY, RECORD_TOO_LARGE}
    )
