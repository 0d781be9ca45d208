"""Pure greedy packing of one shard's records into PutRecords requests."""

from __future__ import annotations

from typing import Iterable, List, Optional, Sequence, Tuple

from beam_kinesis_sink.limits import Limits


def take_prefix(
    sizes: Iterable[int],
    limits: Limits,
    max_records: Optional[int] = None,
    max_bytes: Optional[int] = None,
) -> Tuple[int, int]:
    """How many records from the head of ``sizes`` fit in one request.

    Greedy: records are taken in order until the next one would break the
    record-count or byte limit of the request (or the optional, tighter
    ``max_records``/``max_bytes`` budget, used by rate limiting). Returns
    ``(count, bytes)``. The first record is always taken when it fits the
    request limits on its own, even over the byte budget, so a budget smaller
    than one record can never stall a shard.
    """
    record_cap = limits.max_records_per_request
    if max_records is not None:
        record_cap = max(1, min(record_cap, max_records))
    byte_cap = limits.max_request_bytes
    count = 0
    total = 0
    for size in sizes:
        if count >= record_cap:
            break
        if total + size > limits.max_request_bytes:
            break
        if count > 0 and max_bytes is not None and total + size > max_bytes:
            break
        if total + size > byte_cap:
            break
        count += 1
        total += size
    return count, total


def pack(sizes: Sequence[int], limits: Limits) -> Tuple[List[List[int]], List[int]]:
    """Pack records (given by size) into requests, in order.

    Returns ``(requests, rejected)``: each request is a list of indexes into
    ``sizes``; ``rejected`` holds the indexes of records over
    ``limits.max_record_bytes``, which no request may carry.
    """
    requests: List[List[int]] = []
    rejected: List[int] = []
    current: List[int] = []
    current_bytes = 0
    for index, size in enumerate(sizes):
        if size > limits.max_record_bytes:
            rejected.append(index)
            continue
        if current and (
            len(current) >= limits.max_records_per_request
            or current_bytes + size > limits.max_request_bytes
        ):
            requests.append(current)
            current, current_bytes = [], 0
        current.append(index)
        current_bytes += size
    if current:
        requests.append(current)
    return requests, rejected
