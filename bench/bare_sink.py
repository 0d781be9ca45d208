"""The bare hand-written sink ``vs_bare_loop`` compares the sink with: what
a careful engineer writes in an afternoon.

Per bundle, one list of entries per shard (the shard from the MD5 of the
partition key and the endpoint's shard map, read once in ``setup``); a
list that reaches 500 entries goes out at once with a synchronous boto3
``put_records``, and ``finish_bundle`` sends what is left. Failed entries
are sent again at once. botocore's parameter validation is off, as in the
sink. No receipts, no dead letters, no rate limiting, no retry budget.
"""

from __future__ import annotations

import bisect
import hashlib
from typing import Any, Dict, List, Optional

import apache_beam as beam

MAX_RECORDS_PER_CALL = 500


class BareSinkFn(beam.DoFn):
    def __init__(self, stream: str, endpoint_url: str, region_name: str = "us-east-1") -> None:
        super().__init__()
        self.stream = stream
        self.endpoint_url = endpoint_url
        self.region_name = region_name
        self._client: Any = None
        self._starts: List[int] = []
        self._shard_ids: List[str] = []
        self._pending: Dict[str, List[dict]] = {}

    def setup(self) -> None:
        import boto3
        from botocore.config import Config

        self._client = boto3.client(
            "kinesis", endpoint_url=self.endpoint_url, region_name=self.region_name,
            config=Config(parameter_validation=False, retries={"total_max_attempts": 1}),
        )
        shards = sorted(self._client.list_shards(StreamName=self.stream)["Shards"],
                        key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))
        self._starts = [int(s["HashKeyRange"]["StartingHashKey"]) for s in shards]
        self._shard_ids = [s["ShardId"] for s in shards]

    def start_bundle(self) -> None:
        self._pending = {shard_id: [] for shard_id in self._shard_ids}

    def process(self, element: Any) -> None:
        data, key = element[0], element[1]
        hash_key = int.from_bytes(hashlib.md5(key.encode("utf-8")).digest(), "big")
        shard_id = self._shard_ids[bisect.bisect_right(self._starts, hash_key) - 1]
        entries = self._pending[shard_id]
        entries.append({"Data": data, "PartitionKey": key})
        if len(entries) >= MAX_RECORDS_PER_CALL:
            self._send(entries)
            self._pending[shard_id] = []

    def finish_bundle(self) -> None:
        for entries in self._pending.values():
            if entries:
                self._send(entries)
        self._pending = {shard_id: [] for shard_id in self._shard_ids}

    def _send(self, entries: List[dict]) -> None:
        remaining: Optional[List[dict]] = entries
        while remaining:
            response = self._client.put_records(StreamName=self.stream, Records=remaining)
            if not response.get("FailedRecordCount"):
                return
            remaining = [e for e, r in zip(remaining, response["Records"]) if r.get("ErrorCode")]

    def teardown(self) -> None:
        self._client = None
