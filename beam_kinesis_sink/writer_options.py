"""The writer engine's options: one frozen, picklable value per writer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from beam_kinesis_sink.aggregator import AggregationOptions
from beam_kinesis_sink.limits import Limits
from beam_kinesis_sink.rate_limit import RateLimitConfig
from beam_kinesis_sink.retry import RetryPolicy


@dataclass(frozen=True)
class WriterOptions:
    limits: Limits = Limits()
    retry: RetryPolicy = RetryPolicy()
    rate_limit: RateLimitConfig = RateLimitConfig()
    #: cap on records/s across all shards of this writer (None: no cap)
    max_records_per_second: Optional[float] = None
    max_in_flight: int = 8
    max_buffered_records: int = 20_000
    max_buffered_bytes: int = 64 * 1024 * 1024
    #: "dead_letter" (default) or "fail"
    on_fatal_error: str = "dead_letter"
    shard_map_refresh_seconds: float = 300.0
    #: never refresh the shard map more often than this
    shard_map_min_refresh_seconds: float = 5.0
    #: how long to wait for an in-flight call after the flush deadline
    in_flight_grace_seconds: float = 35.0
    #: records of one partition key reach the stream in the order they were added
    ordered: bool = False
    #: pack user records into KPL aggregated records (None: off)
    aggregation: Optional[AggregationOptions] = None
    #: read each stream's record limit (MaxRecordSizeInKiB) instead of ``limits.max_record_bytes``
    record_limit_from_stream: bool = False
    #: with ``record_limit_from_stream``: keep ``limits.max_request_bytes`` as given
    #: (else 5 MiB, or 10 MiB for a stream whose record limit was raised)
    request_limit_given: bool = False
    #: how PutRecords requests are built and answers read: "fast" (the sink's
    #: own codec, byte-identical to boto3's), "boto3" (boto3's put_records),
    #: or None (submitter.DEFAULT_CODEC: "fast")
    request_codec: Optional[str] = None

    def __post_init__(self) -> None:
        if self.on_fatal_error not in ("dead_letter", "fail"):
            raise ValueError(f"on_fatal_error must be 'dead_letter' or 'fail', got {self.on_fatal_error!r}")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        if self.max_buffered_records < self.limits.max_records_per_request:
            raise ValueError("max_buffered_records must hold at least one full request")
        if self.max_buffered_bytes < self.limits.max_request_bytes:
            raise ValueError(f"max_buffered_bytes ({self.max_buffered_bytes}) must hold at least one full "
                             f"request ({self.limits.max_request_bytes} bytes)")
        if self.max_records_per_second is not None and not self.max_records_per_second > 0:
            raise ValueError(f"max_records_per_second must be > 0 (or None: no cap), "
                             f"got {self.max_records_per_second!r}")
