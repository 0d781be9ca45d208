"""What the fault front enforces and injects: :class:`FaultConfig`.

An immutable value: a running front swaps it whole (``FaultFront.configure``),
and it travels as JSON to a front in another process (``to_dict`` /
``from_dict``, the admin endpoint ``/_fault/config``).

Streams with a raised maximum record size (``max_record_size_kib``, what
``UpdateMaxRecordSize`` sets on the service) are a :class:`StreamSizes`, an
immutable and hashable mapping; what changes for them is in
:mod:`.record_size`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Optional, Union

from beam_kinesis_sink.client import stream_name_of

MIB = 1024 * 1024
KIB = 1024
#: the service's range of ``MaxRecordSizeInKiB`` (1 MiB to 10 MiB)
MIN_RECORD_SIZE_KIB = 1024
MAX_RECORD_SIZE_KIB = 10240

#: the rates that are shares, each in [0, 1]
_RATE_FIELDS = (
    "record_internal_failure_rate",
    "http_500_rate",
    "http_503_rate",
    "drop_connection_rate",
    "error_rate",
    "fail_after_forward_fraction",
)
_SET_FIELDS = ("deny_streams", "missing_streams", "fault_operations")


class StreamSizes(Mapping[str, int]):
    """Stream name -> ``MaxRecordSizeInKiB``: an immutable, hashable mapping.
    Streams given by ARN are kept by name; each size must be in the
    service's range (1024 to 10240 KiB)."""

    __slots__ = ("_sizes",)

    def __init__(self, sizes: Union[Mapping[str, int], Iterable[tuple[str, int]]] = ()) -> None:
        pairs = sizes.items() if isinstance(sizes, Mapping) else sizes
        checked: dict[str, int] = {}
        for stream, kib in pairs:
            if isinstance(kib, bool) or not isinstance(kib, int):
                raise ValueError(f"MaxRecordSizeInKiB of {stream!r} must be an int, got {kib!r}")
            if not MIN_RECORD_SIZE_KIB <= kib <= MAX_RECORD_SIZE_KIB:
                raise ValueError(
                    f"MaxRecordSizeInKiB of {stream!r} must be in "
                    f"[{MIN_RECORD_SIZE_KIB}, {MAX_RECORD_SIZE_KIB}], got {kib}"
                )
            checked[stream_name_of(str(stream))] = kib
        self._sizes = checked

    def __getitem__(self, stream: str) -> int:
        return self._sizes[stream]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sizes)

    def __len__(self) -> int:
        return len(self._sizes)

    def __hash__(self) -> int:
        return hash(frozenset(self._sizes.items()))

    def __repr__(self) -> str:
        return f"StreamSizes({self._sizes!r})"

    def with_size(self, stream: str, kib: int) -> StreamSizes:
        """A copy with ``stream`` (name or ARN) at ``kib``."""
        return StreamSizes({**self._sizes, stream_name_of(stream): kib})


@dataclass(frozen=True)
class FaultConfig:
    """What the front enforces and injects. Immutable: change a running
    front's config with ``FaultFront.configure(**changes)`` (thread-safe)."""

    # -- service limits (PutRecords/PutRecord), whole request rejected
    max_records_per_request: int = 500
    max_request_bytes: int = 5 * MIB  # data + partition keys (UTF-8)
    max_record_bytes: int = 1 * MIB  # data + partition key (UTF-8)
    max_partition_key_chars: int = 256
    enforce_limits: bool = True

    # -- streams with a raised maximum record size (see :mod:`.record_size`)
    #: stream name (or ARN) -> MaxRecordSizeInKiB, 1024..10240; for these the
    #: record limit is that size, the request limit ``raised_max_request_bytes``,
    #: DescribeStreamSummary shows ``MaxRecordSizeInKiB``; UpdateMaxRecordSize
    #: and CreateStream(MaxRecordSizeInKiB=...) through the front add to it
    max_record_size_kib: Mapping[str, int] = StreamSizes()
    raised_max_request_bytes: int = 10 * MIB
    #: records of a raised stream with more than 1 MiB of data are kept by the
    #: front (kinesalite refuses them); False: forward them (an upstream that
    #: takes them, e.g. kinesis-mock with the stream raised there too)
    store_large_records: bool = True

    # -- per-shard throttling (token bucket; capacity = rate * burst_seconds)
    throttle: bool = True
    shard_records_per_second: float = 1000.0
    shard_bytes_per_second: float = float(MIB)
    burst_seconds: float = 1.0

    # -- per-record injected InternalFailure (the record is not forwarded)
    record_internal_failure_rate: float = 0.0

    # -- whole-request faults, one draw per request in ``fault_operations``
    http_500_rate: float = 0.0
    http_503_rate: float = 0.0
    drop_connection_rate: float = 0.0
    #: share of the 500/503/dropped-connection faults that happen *after* the
    #: request was forwarded (written upstream, yet the client sees a failure:
    #: the cause of duplicates); the rest happen before, nothing written
    fail_after_forward_fraction: float = 0.0
    http_500_error_code: str = "InternalFailure"
    http_503_error_code: str = "ServiceUnavailable"
    #: a custom whole-request error (before forwarding), e.g. a KMS error or
    #: a whole-request ProvisionedThroughputExceededException
    error_rate: float = 0.0
    error_status: int = 400
    error_code: str = "KMSThrottlingException"
    error_message: str = "Rate exceeded for KMS."

    # -- latency added before handling each request in ``fault_operations``
    #: uniform in [latency_min_s, latency_max_s] (equal: fixed)
    latency_min_s: float = 0.0
    latency_max_s: float = 0.0

    # -- access
    #: AccessDeniedException for every request in ``fault_operations``
    deny_access: bool = False
    #: AccessDeniedException for these streams (names) only
    deny_streams: frozenset[str] = frozenset()
    #: ResourceNotFoundException for any request naming these streams
    missing_streams: frozenset[str] = frozenset()

    #: operations that get the whole-request faults, latency and deny_access
    fault_operations: frozenset[str] = frozenset({"PutRecords", "PutRecord"})

    # -- other
    #: seed of the front's ``random.Random``; setting it via configure() reseeds
    seed: Optional[int] = None
    #: account named in error messages when the request gave a stream name
    account_id: str = "000000000000"
    region: str = "us-east-1"
    #: rewrite ``StreamARN`` to ``StreamName`` before forwarding (kinesalite
    #: 3.3.3 knows only names; kinesis-mock knows both)
    arn_to_name: bool = True
    #: how long the front trusts its copy of a stream's shards (ListShards)
    shard_map_ttl_s: float = 5.0
    #: keep (time.monotonic(), n) per shard for every accepted batch
    record_timeline: bool = True

    def __post_init__(self) -> None:
        for name in _RATE_FIELDS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        total = self.http_500_rate + self.http_503_rate + self.drop_connection_rate + self.error_rate
        if total > 1.0 + 1e-9:
            raise ValueError(f"the whole-request fault rates add up to {total} > 1")
        if self.latency_max_s < self.latency_min_s:
            raise ValueError("latency_max_s must be >= latency_min_s")
        for name in _SET_FIELDS:
            value = getattr(self, name)
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, frozenset):
                object.__setattr__(self, name, frozenset(value))
        if not isinstance(self.max_record_size_kib, StreamSizes):
            object.__setattr__(self, "max_record_size_kib", StreamSizes(self.max_record_size_kib))

    @property
    def any_request_fault(self) -> bool:
        """Whether a whole-request fault can be drawn at all."""
        return bool(self.http_500_rate or self.http_503_rate or self.drop_connection_rate or self.error_rate)

    # -- per stream ------------------------------------------------------------------------

    def raised_kib(self, stream: Optional[str]) -> Optional[int]:
        """The stream's ``MaxRecordSizeInKiB`` if it is raised (in
        ``max_record_size_kib``), else None."""
        return self.max_record_size_kib.get(stream_name_of(stream)) if stream else None

    def record_limit(self, stream: Optional[str]) -> int:
        """Data + partition key bytes one record of ``stream`` may have."""
        kib = self.raised_kib(stream)
        return self.max_record_bytes if kib is None else kib * KIB

    def request_limit(self, stream: Optional[str]) -> int:
        """Data + partition key bytes one PutRecords to ``stream`` may have."""
        if self.raised_kib(stream) is None:
            return self.max_request_bytes
        return max(self.max_request_bytes, self.raised_max_request_bytes)

    def shard_bytes_capacity(self, stream: str) -> float:
        """A shard's byte bucket: one second's worth (``burst_seconds``), and
        on a raised stream at least one record at the limit (the service
        bursts over 1 MiB/s to take a large record, then refills)."""
        capacity = self.shard_bytes_per_second * self.burst_seconds
        if self.raised_kib(stream) is None:
            return capacity
        return max(capacity, float(self.record_limit(stream)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: the sets become sorted lists, the mappings dicts."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, frozenset):
                value = sorted(value)
            elif isinstance(value, StreamSizes):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultConfig:
        return cls().replace(**data)

    def replace(self, **changes: Any) -> FaultConfig:
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise TypeError(f"unknown FaultConfig fields: {sorted(unknown)}")
        return dataclasses.replace(self, **changes)
