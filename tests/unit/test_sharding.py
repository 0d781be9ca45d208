import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beam_kinesis_sink.sharding import Shard, ShardMap, hash_key_of
from tests.unit.fakes import four_shards


@settings(max_examples=300)
@given(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=256))
def test_hash_key_is_hashlibs_md5_of_the_utf8_key_for_any_key(key):
    assert hash_key_of(key) == int.from_bytes(hashlib.md5(key.encode("utf-8")).digest(), "big")


def test_hash_key_is_big_endian_md5_of_utf8_key():
    # Known vector: md5("a") = 0cc175b9c0f1b6a831c399e269772661
    assert hash_key_of("a") == 0x0CC175B9C0F1B6A831C399E269772661
    # Non-ASCII keys are hashed as UTF-8, not Latin-1.
    assert hash_key_of("é") == int.from_bytes(hashlib.md5("é".encode()).digest(), "big")
    assert hash_key_of("é") != int.from_bytes(hashlib.md5("é".encode("latin-1")).digest(), "big")


def test_explicit_hash_key_wins():
    assert hash_key_of("a", "42") == 42
    assert hash_key_of("a", str(2**128 - 1)) == 2**128 - 1


def test_lookup_uses_inclusive_ranges():
    m = ShardMap.from_list_shards(four_shards())
    step = 2**128 // 4
    assert m.shard_for(0).shard_id == "shardId-000000000000"
    assert m.shard_for(step - 1).shard_id == "shardId-000000000000"
    assert m.shard_for(step).shard_id == "shardId-000000000001"
    assert m.shard_for(2**128 - 1).shard_id == "shardId-000000000003"


def test_closed_shards_are_ignored():
    shards = four_shards()
    parent = {
        "ShardId": "shardId-parent",
        "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(2**128 - 1)},
        "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "9"},
    }
    m = ShardMap.from_list_shards([parent, *shards])
    assert len(m) == 4
    assert "shardId-parent" not in {s.shard_id for s in m.shards}


def test_overlapping_or_empty_maps_are_refused():
    with pytest.raises(ValueError):
        ShardMap([])
    with pytest.raises(ValueError):
        ShardMap([Shard("a", 0, 10), Shard("b", 5, 20)])


@given(st.integers(min_value=0, max_value=2**128 - 1), st.integers(min_value=1, max_value=40))
def test_every_hash_key_lands_in_the_shard_that_holds_it(hash_key, n):
    step = 2**128 // n
    shards = [Shard(f"s{i}", i * step, (i + 1) * step - 1 if i < n - 1 else 2**128 - 1) for i in range(n)]
    m = ShardMap(shards)
    assert m.shard_for(hash_key).holds(hash_key)
