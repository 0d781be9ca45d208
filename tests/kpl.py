"""An independent decoder of KPL aggregated records, for tests only:
aws-kinesis-agg's deaggregation and its protobuf classes (never the sink's
own code)."""

from __future__ import annotations

import base64
import importlib
import sys
from typing import List, Optional, Tuple

MAGIC = b"\xf3\x89\x9a\xc2"


def _import_deaggregator():
    # aws_kinesis_agg.deaggregator puts its own folder and site-packages at the front of sys.path
    # (its generated messages_pb2 does a top-level "import config_pb2"); undo that for the session.
    saved = list(sys.path)
    try:
        return importlib.import_module("aws_kinesis_agg.deaggregator")
    finally:
        sys.path[:] = saved


deaggregator = _import_deaggregator()
AggregatedRecord = deaggregator.messages_pb2.AggregatedRecord


def deaggregate(blob: bytes, partition_key: str = "aggregate") -> List[dict]:
    """The user records of one Kinesis record's data, through aws-kinesis-agg
    (a record that is not aggregated comes back as itself)."""
    event = {"kinesis": {"kinesisSchemaVersion": "1.0", "sequenceNumber": "4959033827149025660855969253836",
                         "approximateArrivalTimestamp": 1.5e9, "partitionKey": partition_key,
                         "data": base64.b64encode(blob)}}
    return [r["kinesis"] for r in deaggregator.deaggregate_records([event])]


def user_records(blob: bytes, partition_key: str = "aggregate") -> List[Tuple[bytes, str, Optional[str]]]:
    """``(data, partition_key, explicit_hash_key)`` of each user record in ``blob``."""
    return [(base64.b64decode(r["data"]), r["partitionKey"], r.get("explicitHashKey"))
            for r in deaggregate(blob, partition_key)]


def is_aggregated(blob: bytes) -> bool:
    return blob[:4] == MAGIC
