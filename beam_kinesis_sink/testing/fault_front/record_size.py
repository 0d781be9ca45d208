"""Streams with a raised maximum record size, through the fault front: a
local stand-in for the service's large records (up to 10 MiB).

On the service, ``UpdateMaxRecordSize`` (or ``CreateStream`` with
``MaxRecordSizeInKiB``) raises a stream's record limit from 1 MiB up to
10240 KiB, ``DescribeStreamSummary`` then tells
``StreamDescriptionSummary.MaxRecordSizeInKiB``, and a PutRecords to that
stream may carry up to 10 MiB. The local servers fall short of that:

- kinesalite 3.3.3 omits ``MaxRecordSizeInKiB``, answers
  ``UpdateMaxRecordSize`` with ``UnknownOperationException``, refuses a
  record over 1 MiB of data (``ValidationException``, the whole request) and
  any body over 7 MiB (HTTP 413; a 6 MiB record is 8 MiB in base64);
- kinesis-mock 0.6.2 implements ``UpdateMaxRecordSize`` and stores large
  records once the stream is raised, but checks data alone (not data +
  partition key) and refuses a record over the limit with a per-record
  ``InvalidArgumentException`` entry, where the service refuses the request.

So the front plays the service for the streams in
``FaultConfig.max_record_size_kib`` (stream name -> KiB):

- ``DescribeStreamSummary`` goes upstream and its answer gets
  ``MaxRecordSizeInKiB`` (other streams: untouched, no such field, as the
  local servers answer today);
- ``UpdateMaxRecordSize`` (by ``StreamARN``, or ``StreamName``) is answered
  by the front: the size checked (1024..10240, else ``ValidationException``),
  the stream's existence checked upstream, the front's config changed, then
  200 ``{}``; ``CreateStream`` with ``MaxRecordSizeInKiB`` is forwarded and,
  once created, the stream is raised at the front;
- PutRecords/PutRecord: the record limit is the stream's size (data +
  partition key), the request limit ``raised_max_request_bytes`` (10 MiB);
  a shard's byte bucket holds at least one record at the limit;
- a record with more than 1 MiB of data is kept by the front, not
  forwarded (``store_large_records``, on by default): it gets a service-like
  sequence number and the shard its hash key maps to, in its place among the
  other records' entries, and tests read it back with
  ``front.large_records(stream)`` (GetRecords on the upstream does not see
  it). The other records of the request go upstream as usual, in requests
  of at most 5 MiB each, and their entries are merged back in order.

With ``store_large_records=False`` the front forwards every record (and
``UpdateMaxRecordSize`` too), for an upstream that stores large records
itself: kinesis-mock, with the stream raised there as well.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Callable, Optional, Sequence

from beam_kinesis_sink.testing.fault_front.config import (
    MAX_RECORD_SIZE_KIB,
    MIB,
    MIN_RECORD_SIZE_KIB,
    FaultConfig,
)
from beam_kinesis_sink.testing.fault_front.exchange import Exchange
from beam_kinesis_sink.testing.fault_front.upstream import UpstreamAnswer
from beam_kinesis_sink.testing.fault_front.validation import (
    b64_len,
    invalid_value,
    null_value,
    record_size,
)
from beam_kinesis_sink.testing.fault_front.wire import Response, dumps, json_response

#: the upstream takes records with at most this much data (kinesalite 3.3.3
#: refuses more with a ValidationException, as the service does by default)
UPSTREAM_MAX_DATA_BYTES = MIB
#: the forwarded part of a raised stream's PutRecords goes upstream in
#: requests of at most this many data + partition key bytes (kinesalite
#: refuses bodies over 7 MiB with HTTP 413; 5 MiB of records is under that
#: in base64)
UPSTREAM_MAX_REQUEST_BYTES = 5 * MIB
#: the operations this module answers or amends
RECORD_SIZE_OPERATIONS = frozenset({"DescribeStreamSummary", "UpdateMaxRecordSize", "CreateStream"})
_FIELD = "MaxRecordSizeInKiB"
#: raise a stream at the front: ``FaultFront.set_max_record_size``
SetSize = Callable[[str, int], Any]


def wants_body(operation: str, cfg: FaultConfig, body: bytes) -> bool:
    """Whether the front must read this request's body for the raised streams."""
    if operation == "UpdateMaxRecordSize":
        return True
    if operation == "DescribeStreamSummary":
        return bool(cfg.max_record_size_kib)
    return operation == "CreateStream" and _FIELD.encode() in body


def answer(
    operation: str,
    exchange: Exchange,
    request: dict[str, Any],
    stream: Optional[str],
    body: bytes,
    set_size: SetSize,
) -> Optional[Response]:
    """The front's answer to one of :data:`RECORD_SIZE_OPERATIONS`; None:
    nothing to do here, pass the request through."""
    if operation == "UpdateMaxRecordSize":
        return update_max_record_size(exchange, request, stream, body, set_size)
    if stream is None:
        return None
    if operation == "DescribeStreamSummary":
        return describe_stream_summary(exchange, stream, body)
    if operation == "CreateStream" and _FIELD in request:
        return create_stream(exchange, request, stream, body, set_size)
    return None


def describe_stream_summary(exchange: Exchange, stream: str, body: bytes) -> Optional[Response]:
    """The upstream's summary with ``MaxRecordSizeInKiB`` for a raised stream."""
    kib = exchange.cfg.raised_kib(stream)
    if kib is None:
        return None
    response = _upstream_ok(exchange.forward(body))
    try:
        summary = json.loads(response.body)
        summary["StreamDescriptionSummary"][_FIELD] = kib
    except (ValueError, KeyError, TypeError):
        exchange.stats.add(merge_mismatches=1)
        return response
    return Response(response.status, response.reason, response.headers, dumps(summary))


def update_max_record_size(
    exchange: Exchange, request: dict[str, Any], stream: Optional[str], body: bytes, set_size: SetSize
) -> Response:
    """Check the size and the stream, raise the stream at the front, answer 200 ``{}``."""
    kib = check_size_kib(request.get(_FIELD), "maxRecordSizeInKiB")
    if stream is None:
        raise null_value("stream_arn_missing", "streamARN")
    _upstream_ok(exchange.call("DescribeStreamSummary", {"StreamName": stream}))
    if not exchange.cfg.store_large_records:
        _upstream_ok(exchange.forward(body))  # the upstream stores large records itself
    set_size(stream, kib)
    return json_response(200, {})


def create_stream(
    exchange: Exchange, request: dict[str, Any], stream: str, body: bytes, set_size: SetSize
) -> Response:
    """Forward a CreateStream with ``MaxRecordSizeInKiB`` (kinesalite ignores
    the field, kinesis-mock honours it); once created, raise the stream."""
    kib = check_size_kib(request[_FIELD], "maxRecordSizeInKiB")
    response = _upstream_ok(exchange.forward(body))
    set_size(stream, kib)
    return response


def check_size_kib(value: Any, where: str) -> int:
    """A valid ``MaxRecordSizeInKiB``, or the service's ValidationException."""
    if value is None:
        raise null_value("max_record_size_missing", where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_value("max_record_size", value, where, "Member must be an integer")
    if value < MIN_RECORD_SIZE_KIB:
        constraint = f"Member must have value greater than or equal to {MIN_RECORD_SIZE_KIB}"
        raise invalid_value("max_record_size", value, where, constraint)
    if value > MAX_RECORD_SIZE_KIB:
        constraint = f"Member must have value less than or equal to {MAX_RECORD_SIZE_KIB}"
        raise invalid_value("max_record_size", value, where, constraint)
    return value


def _upstream_ok(response: Response) -> Response:
    """``response`` if 200, else raise it to the client as it came."""
    if response.status != 200:
        raise UpstreamAnswer(response)
    return response


# -- PutRecords/PutRecord ------------------------------------------------------------------


def kept_by_front(cfg: FaultConfig, stream: str, record: dict[str, Any]) -> bool:
    """Whether the front keeps this record itself instead of forwarding it."""
    return (
        cfg.store_large_records
        and cfg.raised_kib(stream) is not None
        and b64_len(str(record.get("Data", ""))) > UPSTREAM_MAX_DATA_BYTES
    )


def keep(exchange: Exchange, stream: str, shard_id: str, record: dict[str, Any]) -> dict[str, str]:
    """Store one record at the front; returns its PutRecords entry."""
    data = base64.b64decode(record["Data"])
    kept = exchange.large.add(stream, shard_id, str(record["PartitionKey"]), data)
    return {"SequenceNumber": kept.sequence_number, "ShardId": kept.shard_id}


def upstream_parts(
    cfg: FaultConfig, stream: str, records: Sequence[dict[str, Any]], indexes: list[int]
) -> list[list[int]]:
    """``indexes`` in consecutive runs that the upstream takes in one
    PutRecords each: a raised stream's request may be over the upstream's 5
    MiB (and over kinesalite's 7 MiB body); other requests go whole."""
    if cfg.raised_kib(stream) is None:
        return [indexes]
    parts: list[list[int]] = [[]]
    size = 0
    for index in indexes:
        nbytes = record_size(records[index])
        if parts[-1] and size + nbytes > UPSTREAM_MAX_REQUEST_BYTES:
            parts.append([])
            size = 0
        parts[-1].append(index)
        size += nbytes
    return parts
