"""``request_efficiency``: how close the sink packs requests to the fewest
possible, for records of mixed sizes (10 B to 900 KB, log-uniform) written
with ``WriteToKinesis`` on the DirectRunner to the fast loopback endpoint
(``rate_limit=False``, so that only the packing decides the requests).

The fewest possible PutRecords calls, per shard, is at least
``max(ceil(records / 500), ceil(bytes / 5 MiB))``: each call carries at
most 500 records and 5 MiB (data plus partition keys). The true optimum
(a bin packing) can be a little higher, so the ratio slightly favours the
sink's rivals, never the sink; ``raw.first_fit_decreasing_calls`` is a
packing of the same records that exists, so the optimum lies between the
two. The endpoint counts the calls, and the records and bytes each shard
received.

The bound is loose by up to one call per shard (its rounding up), so a
small run cannot tell packing from rounding: at 3,000 records the bound
is 46 calls, and one shard needed 11.996 calls' worth of bytes (12 calls
only if filled to 99.97%). A full run writes 12,000 records (about 185
calls), where a call of rounding per shard is about 2% in all.
"""

from __future__ import annotations

import bisect
import math
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping

import apache_beam as beam

from beam_kinesis_sink import ClientConfig, KinesisRecord, WriteToKinesis
from beam_kinesis_sink.sharding import hash_key_of
from bench.endpoint import LoopbackEndpoint
from bench.endpoint_server import even_starts
from bench.results import GOALS, Entry, entry, ratio
from bench.sizes import Sizes
from bench.workload import MIXED_MAX_BYTES, MIXED_MIN_BYTES, mixed_size_records, record_bytes

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024
STREAM = "bench-efficiency"


def lower_bound(by_shard: Mapping[str, Mapping[str, int]]) -> int:
    """The fewest calls that can carry what each shard received."""
    return sum(
        max(math.ceil(s["records"] / MAX_RECORDS_PER_CALL), math.ceil(s["bytes"] / MAX_BYTES_PER_CALL))
        for s in by_shard.values() if s["records"]
    )


def sizes_by_shard(n: int, shards: int) -> Dict[int, List[int]]:
    """The mixed workload's record sizes, on the shards of the endpoint's even map."""
    starts = even_starts(shards)
    placed: Dict[int, List[int]] = {i: [] for i in range(shards)}
    for data, key in mixed_size_records(n):
        placed[bisect.bisect_right(starts, hash_key_of(key)) - 1].append(record_bytes(data, key))
    return placed


def first_fit_decreasing(sizes: List[int]) -> int:
    """Calls a first-fit-decreasing packing of one shard's records needs: a
    packing that exists, so the optimum lies between the lower bound and it."""
    calls: List[List[int]] = []  # [records, bytes] per call
    for size in sorted(sizes, reverse=True):
        for call in calls:
            if call[0] < MAX_RECORDS_PER_CALL and call[1] + size <= MAX_BYTES_PER_CALL:
                call[0] += 1
                call[1] += size
                break
        else:
            calls.append([1, size])
    return len(calls)


def generate(_seed: int, n: int) -> Iterator[KinesisRecord]:
    for data, key in mixed_size_records(n):
        yield KinesisRecord(data, key)


def measure_request_efficiency(endpoint: LoopbackEndpoint, sizes: Sizes,
                               log: Callable[[str], None]) -> Dict[str, Entry]:
    n = sizes.efficiency_records
    endpoint.configure(latency_ms=0.0, throttle_records_per_second=0.0)
    config = ClientConfig(region_name="us-east-1", endpoint_url=endpoint.endpoint_url)
    start = time.monotonic()
    with beam.Pipeline() as p:
        _ = (p | beam.Create([0]) | beam.FlatMap(generate, n)
             | WriteToKinesis(STREAM, client_config=config, rate_limit=False))
    seconds = time.monotonic() - start
    stats = endpoint.stats()
    bound = lower_bound(stats.by_shard)
    placed = sizes_by_shard(n, len(stats.by_shard))
    packed = sum(first_fit_decreasing(sizes) for sizes in placed.values())
    log(f"    {n} mixed records, {stats.bytes / 2**20:.0f} MiB: {stats.put_records_calls} calls, "
        f"lower bound {bound}, first-fit decreasing {packed} ({seconds:.1f} s)")
    raw: Dict[str, Any] = {
        "value_is": "PutRecords calls ÷ lower bound (Σ per shard max(⌈records/500⌉, ⌈bytes/5 MiB⌉))",
        "baseline_is": "the lower bound, calls",
        "records": n, "record_bytes_min": MIXED_MIN_BYTES, "record_bytes_max": MIXED_MAX_BYTES,
        "put_records_calls": stats.put_records_calls, "records_received": stats.records,
        "bytes_received": stats.bytes, "bytes_sent_expected": sum(sum(v) for v in placed.values()),
        "first_fit_decreasing_calls": packed,
        "by_shard": stats.by_shard, "seconds": round(seconds, 2),
    }
    value = ratio(stats.put_records_calls, bound)
    return {"request_efficiency": entry(value, bound, raw, GOALS["request_efficiency"])}
