"""PutRecords and PutRecord through the fault front, once the request has
passed the limits and drawn no fault before forwarding.

A PutRecords goes in five steps (:class:`PutRecordsCall`): some records fail
on purpose (``InternalFailure``), some are over their shard's budget
(``ProvisionedThroughputExceededException``), the large records of a raised
stream are kept by the front (:mod:`.record_size`), the rest go upstream in
one PutRecords in their original order (a raised stream's in several of at
most 5 MiB), and the upstream's entries are merged back into their places
with ``FailedRecordCount`` recounted. When nothing was held back the
upstream's answer goes back byte for byte. A fault drawn for after
forwarding replaces the answer once the records are written.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any, Optional, Sequence

from beam_kinesis_sink.sharding import UNKNOWN_SHARD, ShardMap
from beam_kinesis_sink.testing.fault_front.exchange import Exchange
from beam_kinesis_sink.testing.fault_front.faults import Fault, draw_record_failures, fault_response
from beam_kinesis_sink.testing.fault_front.record_size import keep, kept_by_front, upstream_parts
from beam_kinesis_sink.testing.fault_front.throttling import shard_of
from beam_kinesis_sink.testing.fault_front.upstream import UpstreamAnswer, UpstreamUnreachable
from beam_kinesis_sink.testing.fault_front.validation import (
    INTERNAL_FAILURE_ENTRY,
    record_size,
    throttled_entry,
    throttled_error,
)
from beam_kinesis_sink.testing.fault_front.wire import Response, dumps, json_response, service_headers

Entry = dict[str, Any]


class PutRecordsCall:
    """One PutRecords on its way through the front."""

    def __init__(
        self,
        exchange: Exchange,
        request: dict[str, Any],
        stream: str,
        account: str,
        after_fault: Optional[Fault],
    ) -> None:
        self.exchange = exchange
        self.request = request
        self.records: list[dict[str, Any]] = request["Records"]
        self.stream = stream
        self.account = account
        self.after_fault = after_fault
        #: the answer's entries, in the records' places (None: not answered yet)
        self.entries: list[Optional[Entry]] = [None] * len(self.records)
        #: the shard the front expects each weighed record on
        self.shard_ids: dict[int, str] = {}

    def run(self, body: bytes) -> Optional[Response]:
        """The client's answer (None: drop the connection)."""
        candidates = self._fail_on_purpose()
        admitted = self._throttle(candidates)
        forwarded = self._keep_large(admitted)
        written = len(admitted) - len(forwarded)
        if not forwarded:
            return self._nothing_forwarded(written)
        forwarded_at = time.monotonic()
        parts = upstream_parts(self.exchange.cfg, self.stream, self.records, forwarded)
        for part in parts:
            response = self._forward(part, body)
            if response.status != 200:
                self.exchange.stats.add(upstream_error_responses=1)
                return self._after_fault(written) if self.after_fault else response
            answer = _parsed_answer(response, len(part))
            if answer is None:
                self.exchange.stats.add(merge_mismatches=1)
                return response
            written += self._merge(part, answer["Records"], forwarded_at)
        if self.after_fault:
            return self._after_fault(written)
        if len(parts) == 1 and len(forwarded) == len(self.records):
            return response  # nothing held back: the upstream's bytes, untouched
        return self._merged(answer, response.headers)

    # -- the steps, in order -----------------------------------------------------------

    def _fail_on_purpose(self) -> list[int]:
        """Give the drawn records an InternalFailure; returns the others' indexes."""
        failures = draw_record_failures(self.exchange.dice, self.exchange.cfg, len(self.records))
        for index, failed in enumerate(failures):
            if failed:
                self.entries[index] = dict(INTERNAL_FAILURE_ENTRY)
        return [index for index, failed in enumerate(failures) if not failed]

    def _throttle(self, candidates: list[int]) -> list[int]:
        """Weigh the candidates against their shards' buckets; the throttled
        get their entry, the admitted indexes are returned."""
        throttled_by_shard: Counter[str] = Counter()
        admitted = candidates
        if self.exchange.cfg.throttle and candidates:
            wanted = self._weigh(candidates, self.exchange.shard_map(self.stream))
            admitted, throttled = self.exchange.buckets.take(self.stream, wanted, self.exchange.cfg)
            for index in throttled:
                shard_id = self.shard_ids[index]
                throttled_by_shard[shard_id] += 1
                self.entries[index] = throttled_entry(shard_id, self.stream, self.account)
        failed = len(self.records) - len(candidates)
        if throttled_by_shard or failed:
            self.exchange.stats.held_back(throttled_by_shard, failed)
        return admitted

    def _weigh(self, candidates: list[int], shard_map: ShardMap) -> list[tuple[int, str, int]]:
        """``(index, shard_id, size)`` of each candidate."""
        wanted = []
        for index in candidates:
            shard_map = self._place(index, shard_map)
            wanted.append((index, self.shard_ids[index], record_size(self.records[index])))
        return wanted

    def _place(self, index: int, shard_map: ShardMap) -> ShardMap:
        """Note the shard the record goes to; returns the map, re-read if it had a gap."""
        record = self.records[index]
        shard = shard_of(shard_map, record)
        if shard is None:  # a gap in the map: the stream was resharded
            shard_map = self._reread_shards(shard_map)
            shard = shard_of(shard_map, record)
        self.shard_ids[index] = shard.shard_id if shard is not None else UNKNOWN_SHARD
        return shard_map

    def _keep_large(self, admitted: list[int]) -> list[int]:
        """Keep the large records of a raised stream at the front (their
        entries filled in); returns the indexes to forward."""
        cfg = self.exchange.cfg
        large = [index for index in admitted if kept_by_front(cfg, self.stream, self.records[index])]
        if not large:
            return admitted
        kept_at = time.monotonic()
        shard_map: Optional[ShardMap] = None
        by_shard: Counter[str] = Counter()
        for index in large:
            if index not in self.shard_ids:  # not weighed: throttling is off
                shard_map = self._place(index, shard_map or self.exchange.shard_map(self.stream))
            entry = keep(self.exchange, self.stream, self.shard_ids[index], self.records[index])
            self.entries[index] = entry
            by_shard[entry["ShardId"]] += 1
        nbytes = sum(record_size(self.records[index]) for index in large)
        self.exchange.stats.add(records_kept_large=len(large))
        self.exchange.stats.accepted(by_shard, nbytes, 0, kept_at, cfg.record_timeline)
        kept = set(large)
        return [index for index in admitted if index not in kept]

    def _reread_shards(self, stale: ShardMap) -> ShardMap:
        self.exchange.shard_maps.invalidate(self.stream)
        try:
            return self.exchange.shard_map(self.stream)
        except (UpstreamAnswer, UpstreamUnreachable):
            return stale

    def _forward(self, part: list[int], body: bytes) -> Response:
        """Send these records upstream (the client's own body when that is all of them)."""
        if len(part) != len(self.records):
            body = dumps({**self.request, "Records": [self.records[i] for i in part]})
        response = self.exchange.forward(body)
        self.exchange.stats.add(records_forwarded=len(part))
        return response

    def _merge(self, admitted: list[int], upstream_entries: list[Entry], forwarded_at: float) -> int:
        """Put the upstream's entries in their records' places and count what
        was written; returns how many records were."""
        by_shard: Counter[str] = Counter()
        nbytes = failed = 0
        resharded = False
        for index, entry in zip(admitted, upstream_entries):
            self.entries[index] = entry
            shard_id = entry.get("ShardId")
            if shard_id is None or entry.get("ErrorCode"):  # kinesis-mock sends nulls
                failed += 1
                continue
            by_shard[shard_id] += 1
            nbytes += record_size(self.records[index])
            resharded = resharded or self.shard_ids.get(index, shard_id) != shard_id
        if resharded:
            self.exchange.shard_maps.invalidate(self.stream)
        exchange = self.exchange
        exchange.stats.accepted(by_shard, nbytes, failed, forwarded_at, exchange.cfg.record_timeline)
        return sum(by_shard.values())

    def _after_fault(self, written: int) -> Optional[Response]:
        assert self.after_fault is not None
        return fault_response(self.after_fault, self.exchange.cfg, self.exchange.stats, written)

    def _nothing_forwarded(self, written: int) -> Optional[Response]:
        """Every record failed on purpose, was throttled or was kept by the
        front (``written`` of them): the front answers alone."""
        if self.after_fault:
            return self._after_fault(written)
        return self._merged({"EncryptionType": "NONE"}, service_headers())

    def _merged(self, answer: dict[str, Any], headers: Sequence[tuple[str, str]]) -> Response:
        """``answer`` (the upstream's, or an empty one) with every record's entry in place."""
        answer["Records"] = self.entries
        answer["FailedRecordCount"] = sum(1 for e in self.entries if e is None or e.get("ErrorCode"))
        return Response(200, "OK", headers, dumps(answer))


def _parsed_answer(response: Response, expected: int) -> Optional[dict[str, Any]]:
    """The upstream's PutRecords answer, None unless it has ``expected`` entries."""
    try:
        answer = json.loads(response.body)
        entries = answer["Records"]
    except (ValueError, KeyError, TypeError):
        return None
    return answer if isinstance(entries, list) and len(entries) == expected else None


def put_record(
    exchange: Exchange,
    request: dict[str, Any],
    stream: str,
    account: str,
    body: bytes,
    after_fault: Optional[Fault],
) -> Optional[Response]:
    """One PutRecord: throttled as a whole, or forwarded as it came."""
    size = record_size(request)
    shard_id = None
    if exchange.cfg.throttle:
        shard_id = _admit_one(exchange, request, stream, account, size)
    if kept_by_front(exchange.cfg, stream, request):
        return _keep_one(exchange, request, stream, shard_id, size, after_fault)
    forwarded_at = time.monotonic()
    response = exchange.forward(body)
    exchange.stats.add(records_forwarded=1)
    written = _count_one(exchange, response, size, forwarded_at)
    if after_fault is not None:
        return fault_response(after_fault, exchange.cfg, exchange.stats, written)
    return response


def _admit_one(exchange: Exchange, request: dict[str, Any], stream: str, account: str, size: int) -> str:
    """Raise the service's throttling error if the record's shard has no
    budget; returns the shard's id."""
    shard_id = _shard_id_of(exchange, stream, request)
    _, throttled = exchange.buckets.take(stream, [(0, shard_id, size)], exchange.cfg)
    if throttled:
        exchange.stats.held_back({shard_id: 1}, 0)
        exchange.stats.add(requests_throttled=1)
        raise throttled_error(shard_id, stream, account)
    return shard_id


def _shard_id_of(exchange: Exchange, stream: str, record: dict[str, Any]) -> str:
    shard = shard_of(exchange.shard_map(stream), record)
    return shard.shard_id if shard is not None else UNKNOWN_SHARD


def _keep_one(
    exchange: Exchange,
    request: dict[str, Any],
    stream: str,
    shard_id: Optional[str],
    size: int,
    after_fault: Optional[Fault],
) -> Optional[Response]:
    """A large PutRecord of a raised stream, kept by the front."""
    kept_at = time.monotonic()
    entry = keep(exchange, stream, shard_id or _shard_id_of(exchange, stream, request), request)
    exchange.stats.add(records_kept_large=1)
    exchange.stats.accepted({entry["ShardId"]: 1}, size, 0, kept_at, exchange.cfg.record_timeline)
    if after_fault is not None:
        return fault_response(after_fault, exchange.cfg, exchange.stats, 1)
    return json_response(200, {**entry, "EncryptionType": "NONE"})


def _count_one(exchange: Exchange, response: Response, size: int, forwarded_at: float) -> int:
    """Count what the upstream did with one PutRecord; returns 1 if it wrote it."""
    if response.status != 200:
        exchange.stats.add(upstream_error_responses=1)
        return 0
    try:
        shard_id = json.loads(response.body)["ShardId"]
    except (ValueError, KeyError, TypeError):
        exchange.stats.add(merge_mismatches=1)
        return 0
    exchange.stats.accepted({shard_id: 1}, size, 0, forwarded_at, exchange.cfg.record_timeline)
    return 1
