"""One client request as the fault front handles it (:class:`Exchange`):
the config read once when it arrived, the parts of the front it uses, and
its way upstream (the client's request, or another call the front makes on
its behalf); plus where a request names its stream (:func:`stream_of`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from beam_kinesis_sink.client import stream_name_of
from beam_kinesis_sink.sharding import ShardMap
from beam_kinesis_sink.testing.fault_front.config import FaultConfig
from beam_kinesis_sink.testing.fault_front.faults import Dice
from beam_kinesis_sink.testing.fault_front.large_records import LargeRecordStore
from beam_kinesis_sink.testing.fault_front.stats import StatsRecorder
from beam_kinesis_sink.testing.fault_front.throttling import ShardBuckets, ShardMaps
from beam_kinesis_sink.testing.fault_front.upstream import Upstream, forward_headers
from beam_kinesis_sink.testing.fault_front.wire import Response, dumps

TARGET_PREFIX = "Kinesis_20131202."


@dataclass
class Exchange:
    """What handling one request needs; ``cfg`` stays the same throughout,
    whatever ``configure()`` does meanwhile."""

    cfg: FaultConfig
    stats: StatsRecorder
    dice: Dice
    buckets: ShardBuckets
    shard_maps: ShardMaps
    #: the records of raised streams the front keeps itself
    large: LargeRecordStore
    upstream: Upstream
    method: str
    path: str
    #: the client's request headers
    headers: Mapping[str, str]

    def forward(self, body: bytes) -> Response:
        """Send ``body`` upstream with the client's method, path and headers."""
        return self.upstream.request(self.method, self.path, body, forward_headers(self.headers, body))

    def call(self, operation: str, request: Mapping[str, Any]) -> Response:
        """Another Kinesis call upstream (e.g. ``DescribeStreamSummary``), with
        the client's other headers."""
        headers = {k: v for k, v in self.headers.items() if k.lower() != "x-amz-target"}
        headers["X-Amz-Target"] = TARGET_PREFIX + operation
        body = dumps(request)
        return self.upstream.request("POST", "/", body, forward_headers(headers, body))

    def shard_map(self, stream: str) -> ShardMap:
        """The stream's open shards (cached for ``cfg.shard_map_ttl_s``)."""
        return self.shard_maps.get(stream, self.upstream.list_page(self.headers), self.cfg.shard_map_ttl_s)


def stream_of(request: Optional[Mapping[str, Any]]) -> tuple[Optional[str], Optional[str]]:
    """(stream name, account from the ARN or None) of a parsed request."""
    if request is None:
        return None, None
    name = request.get("StreamName")
    arn = request.get("StreamARN")
    account = None
    if isinstance(arn, str) and arn.startswith("arn:"):
        parts = arn.split(":", 5)
        if len(parts) == 6:
            account = parts[4] or None
            name = name or stream_name_of(arn)
    return (name if isinstance(name, str) else None), account
