"""A fault-injecting front for a local Kinesis server.

The front is an HTTP server on loopback that sits between a client (boto3 with
``endpoint_url`` set to the front) and a real local Kinesis server (the
upstream: kinesalite or kinesis-mock). It forwards every request to the
upstream and every response back, unchanged, except that for ``PutRecords``
(and ``PutRecord``) it

- enforces the limits the emulators leave out, with the service's error
  shapes (HTTP 400, ``{"__type": ..., "message": ...}``): at most 500 records
  and 5 MiB (data + partition keys) per request (``InvalidArgumentException``
  for the size, ``ValidationException`` for the count), at most 1 MiB per
  record counting data plus partition key (``ValidationException``), a
  partition key of 1 to 256 characters (``ValidationException``), a valid
  explicit hash key; for a stream with a raised maximum record size
  (``max_record_size_kib``, or ``UpdateMaxRecordSize`` through the front) up
  to that size per record and 10 MiB per request, with
  ``MaxRecordSizeInKiB`` in its ``DescribeStreamSummary`` and the records
  over 1 MiB kept by the front (a stand-in: kinesalite cannot store them;
  read them with ``front.large_records(stream)``, see :mod:`.record_size`);
- throttles per shard with a token bucket (1,000 records/s and 1 MiB/s by
  default, capacity one second's worth): a record over the budget gets a
  ``ProvisionedThroughputExceededException`` entry and is not forwarded;
- injects faults at configurable rates, from ``random.Random(seed)``:
  per-record ``InternalFailure`` entries (not forwarded), whole-request HTTP
  500 ``InternalFailure`` and 503 ``ServiceUnavailable``, dropped connections
  (each either before forwarding, nothing written, or after forwarding,
  written but failed: ``fail_after_forward_fraction``), a custom whole-request
  error, added latency, ``AccessDeniedException`` and
  ``ResourceNotFoundException`` on demand.

Records that pass go upstream in one PutRecords, in their original order; the
front merges the upstream result entries back into the original positions and
recomputes ``FailedRecordCount``. When nothing was held back, the request and
the response bytes are passed through untouched.

Protocol: botocore speaks JSON 1.1 to Kinesis
(``Content-Type: application/x-amz-json-1.1``, ``X-Amz-Target:
Kinesis_20131202.PutRecords``, base64 ``Data``); its Kinesis model lists only
the ``json`` protocol. A body in another content type (for example the AWS
Java SDK's CBOR, ``application/x-amz-cbor-1.1``) is forwarded as is, with only
the whole-request faults applied, and counted in ``unparsed_requests``;
configure such a client to use JSON (Java SDK v1:
``com.amazonaws.sdk.disableCbor``; SDK v2: ``aws.cborEnabled=false``).

Use in-process::

    with FaultFront(kinesalite.endpoint_url, FaultConfig(seed=1)) as front:
        client = front.client()
        front.configure(record_internal_failure_rate=0.3)
        ...
        front.stats().records_internal_failure

or as its own process (so that it does not share a GIL with a pipeline)::

    python -m beam_kinesis_sink.testing.fault_front --upstream URL --port P \\
        --record-internal-failure-rate 0.1 --seed 7

with ``start_fault_front_process`` / ``RemoteFaultFront``.

The parts, one module each:

- :mod:`.config`: :class:`FaultConfig`, what the front enforces and injects;
- :mod:`.stats`: :class:`FrontStats`, the counts behind it, the timeline of
  accepted records and the rates read from it;
- :mod:`.validation`: the service's limits and error shapes;
- :mod:`.throttling`: shard maps and per-shard token buckets;
- :mod:`.faults`: seeded fault drawing and each fault's answer;
- :mod:`.upstream`: the connection to the real server;
- :mod:`.exchange`: one request's context;
- :mod:`.put_records`: PutRecords/PutRecord through the front, step by step;
- :mod:`.record_size`: streams with a raised record size (the stand-in for
  large records), and :mod:`.large_records`, where the front keeps them;
- :mod:`.proxy`: the HTTP server and handler, and the admin endpoints;
- :mod:`.wire`: HTTP responses and the JSON 1.1 bodies;
- :mod:`.front`: :class:`FaultFront`, in-process;
- :mod:`.remote`: :class:`RemoteFaultFront` and :func:`start_fault_front_process`;
- :mod:`.cli` (and ``__main__``): the command line.
"""

from beam_kinesis_sink.testing.fault_front.config import MIB, FaultConfig, StreamSizes
from beam_kinesis_sink.testing.fault_front.front import FaultFront
from beam_kinesis_sink.testing.fault_front.large_records import LargeRecord
from beam_kinesis_sink.testing.fault_front.proxy import ADMIN_PREFIX
from beam_kinesis_sink.testing.fault_front.remote import RemoteFaultFront, start_fault_front_process
from beam_kinesis_sink.testing.fault_front.stats import FrontStats, achieved_rates, peak_rates
from beam_kinesis_sink.testing.fault_front.wire import JSON_CONTENT_TYPE

__all__ = [
    "ADMIN_PREFIX",
    "JSON_CONTENT_TYPE",
    "MIB",
    "FaultConfig",
    "FaultFront",
    "FrontStats",
    "LargeRecord",
    "RemoteFaultFront",
    "StreamSizes",
    "achieved_rates",
    "peak_rates",
    "start_fault_front_process",
]
