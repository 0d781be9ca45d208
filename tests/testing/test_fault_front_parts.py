"""The fault front's parts on their own, without a server: shard maps read
through a ListShards callable, per-shard buckets, fault drawing, the
command line."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from beam_kinesis_sink.sharding import UNKNOWN_SHARD
from beam_kinesis_sink.testing.fault_front import FaultConfig
from beam_kinesis_sink.testing.fault_front.cli import config_of, parse_args
from beam_kinesis_sink.testing.fault_front.faults import DROP, HTTP_500, Dice, draw_request_fault
from beam_kinesis_sink.testing.fault_front.throttling import ShardBuckets, ShardMaps, shard_of
from beam_kinesis_sink.testing.fault_front.validation import Rejected, check_put_records, record_size

HALF = 2**127


def _shard(shard_id: str, start: int, end: int, closed: bool = False) -> dict[str, Any]:
    seq: dict[str, str] = {"StartingSequenceNumber": "1"}
    if closed:
        seq["EndingSequenceNumber"] = "2"
    return {
        "ShardId": shard_id,
        "HashKeyRange": {"StartingHashKey": str(start), "EndingHashKey": str(end)},
        "SequenceNumberRange": seq,
    }


class _Pages:
    """A ListShards callable answering in two pages."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        if "NextToken" not in request:
            return {"Shards": [_shard("s0", 0, 2**128 - 1, closed=True)], "NextToken": "t"}
        return {"Shards": [_shard("s1", 0, HALF - 1), _shard("s2", HALF, 2**128 - 1)]}


def test_shard_maps_follow_pages_keep_open_shards_and_cache() -> None:
    pages = _Pages()
    maps = ShardMaps()
    shard_map = maps.get("orders", pages, ttl_s=60)
    assert [s.shard_id for s in shard_map.shards] == ["s1", "s2"]
    assert pages.calls == [{"StreamName": "orders"}, {"NextToken": "t"}]
    assert maps.get("orders", pages, ttl_s=60) is shard_map
    maps.invalidate("orders")
    maps.get("orders", pages, ttl_s=60)
    assert len(pages.calls) == 4


def test_shard_of_sees_a_gap_as_a_reshard() -> None:
    maps = ShardMaps()
    two = {"Shards": [_shard("low", 0, 9), _shard("high", 20, 2**128 - 1)]}
    shard_map = maps.get("s", lambda **_: two, 60)
    assert shard_of(shard_map, {"PartitionKey": "k", "ExplicitHashKey": "5"}).shard_id == "low"
    assert shard_of(shard_map, {"PartitionKey": "k", "ExplicitHashKey": "15"}) is None
    nothing_open = maps.get("gone", lambda **_: {"Shards": [_shard("old", 0, 9, closed=True)]}, 60)
    assert [s.shard_id for s in nothing_open.shards] == [UNKNOWN_SHARD]


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_buckets_admit_a_burst_then_throttle_per_shard() -> None:
    cfg = FaultConfig(shard_records_per_second=10, shard_bytes_per_second=1000, burst_seconds=1)
    clock = _Clock()
    buckets = ShardBuckets(clock)
    wanted = [(i, "a" if i % 2 else "b", 10) for i in range(30)]
    admitted, throttled = buckets.take("s", wanted, cfg)
    assert Counter(wanted[i][1] for i in admitted) == {"a": 10, "b": 10}
    assert len(throttled) == 10
    clock.now += 0.5  # half a second refills half of each bucket
    admitted, _ = buckets.take("s", [(i, "a", 10) for i in range(10)], cfg)
    assert len(admitted) == 5
    # a new rate applies to the drained bucket without refilling it
    faster = cfg.replace(shard_records_per_second=40)
    assert buckets.take("s", [(0, "a", 1)], faster) == ([], [0])
    clock.now += 0.5
    admitted, _ = buckets.take("s", [(i, "a", 1) for i in range(50)], faster)
    assert len(admitted) == 20
    buckets.reset()
    admitted, _ = buckets.take("s", [(i, "a", 1) for i in range(50)], faster)
    assert len(admitted) == 40
    # bytes count too: a record bigger than what is left is throttled
    assert ShardBuckets(clock).take("s", [(0, "a", 600), (1, "a", 600)], cfg) == ([0], [1])


def test_request_faults_by_rate_and_seed() -> None:
    cfg = FaultConfig(http_500_rate=0.2, drop_connection_rate=0.3, fail_after_forward_fraction=0.5)
    dice = Dice(1)
    drawn = [draw_request_fault(dice, cfg) for _ in range(2000)]
    faults = [f for f in drawn if f is not None]
    kinds = Counter(f.kind for f in faults)
    assert 400 - 80 <= kinds[HTTP_500] <= 400 + 80 and 600 - 90 <= kinds[DROP] <= 600 + 90
    assert 500 - 90 <= sum(f.after for f in faults) <= 500 + 90
    again = Dice(1)
    assert [draw_request_fault(again, cfg) for _ in range(50)] == drawn[:50]  # same seed, same faults
    assert draw_request_fault(Dice(1), FaultConfig()) is None


def test_request_size_limit_counts_keys() -> None:
    cfg = FaultConfig(max_request_bytes=10)
    records = [{"Data": "YWFh", "PartitionKey": "kk"}, {"Data": "YWFh", "PartitionKey": "kkk"}]  # "aaa"
    assert [record_size(r) for r in records] == [5, 6]
    with pytest.raises(Rejected) as raised:
        check_put_records(records, cfg)
    assert (raised.value.reason, raised.value.code) == ("request_too_large", "InvalidArgumentException")
    check_put_records(records[:1], cfg)


def test_command_line_options_over_config_json() -> None:
    args = parse_args(
        [
            "--upstream",
            "http://127.0.0.1:1",
            "--config-json",
            '{"seed": 3, "http_500_rate": 0.5}',
            "--http-500-rate",
            "0.25",
            "--deny-streams",
            "a, b",
            "--throttle",
            "off",
        ]
    )
    config = config_of(args)
    assert (config.seed, config.http_500_rate, config.throttle) == (3, 0.25, False)
    assert config.deny_streams == frozenset({"a", "b"})
