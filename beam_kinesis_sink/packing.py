"""Pure greedy packing of one shard's records into PutRecords requests."""

from __future__ import annotations

from typing import Iterable, List, Optional, Tuple

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


def fitting(sizes: Iterable[Optional[int]], max_records: int, max_bytes: int) -> List[int]:
    """The positions in ``sizes`` of records that fill what a request has
    left (``max_records`` more records, ``max_bytes`` more bytes): first
    fit, in order, skipping any record too big for what is left (and any
    ``None``: a record that may not go now). Used to fill the gap a prefix
    leaves when its next record did not fit: records of many sizes then
    pack far closer to the byte limit."""
    chosen: List[int] = []
    if max_records <= 0:
        return chosen
    for position, size in enumerate(sizes):
        if size is not None and size <= max_bytes:
            chosen.append(position)
            max_bytes -= size
            if len(chosen) >= max_records:
                break
    return chosen
