"""A scripted fake Kinesis client for unit tests of the writer's bookkeeping.

Never used in integration tests: those talk to real local servers.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, List, Optional

from botocore.exceptions import ClientError

Script = Callable[[int, List[dict]], Any]


def client_error(code: str, message: str = "", status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutRecords",
    )


def four_shards() -> List[dict]:
    step = 2**128 // 4
    shards = []
    for i in range(4):
        end = (i + 1) * step - 1 if i < 3 else 2**128 - 1
        shards.append(
            {
                "ShardId": f"shardId-{i:012d}",
                "HashKeyRange": {"StartingHashKey": str(i * step), "EndingHashKey": str(end)},
                "SequenceNumberRange": {"StartingSequenceNumber": "1"},
            }
        )
    return shards


def one_shard() -> List[dict]:
    return [
        {
            "ShardId": "shardId-000000000000",
            "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(2**128 - 1)},
            "SequenceNumberRange": {"StartingSequenceNumber": "1"},
        }
    ]


class FakeKinesis:
    """Answers PutRecords through ``script(call_index, records)``.

    The script returns a list of per-record error codes (None = success), or
    raises. Every call is recorded.
    """

    def __init__(self, script: Optional[Script] = None, shards: Optional[List[dict]] = None) -> None:
        self.script = script or (lambda i, records: [None] * len(records))
        self.shards = shards if shards is not None else four_shards()
        self.calls: List[List[dict]] = []
        self.list_shards_calls = 0
        self.written: List[dict] = []
        self._lock = threading.Lock()
        self._seq = 0

    def list_shards(self, **kwargs: Any) -> dict:
        self.list_shards_calls += 1
        if isinstance(self.shards, Exception):
            raise self.shards
        return {"Shards": list(self.shards)}

    def _shard_of(self, record: dict) -> str:
        from beam_kinesis_sink.sharding import ShardMap, hash_key_of

        m = ShardMap.from_list_shards(self.shards)
        return m.shard_for(hash_key_of(record["PartitionKey"], record.get("ExplicitHashKey"))).shard_id

    def put_records(self, Records: List[dict], **kwargs: Any) -> dict:  # noqa: N803 - boto3's name
        with self._lock:
            index = len(self.calls)
            self.calls.append(list(Records))
        codes = self.script(index, Records)
        entries = []
        failed = 0
        for record, code in zip(Records, codes):
            if code is None:
                with self._lock:
                    self._seq += 1
                    seq = self._seq
                    self.written.append(record)
                entries.append({"SequenceNumber": str(seq), "ShardId": self._shard_of(record)})
            else:
                failed += 1
                entries.append({"ErrorCode": code, "ErrorMessage": f"{code} injected"})
        return {"FailedRecordCount": failed, "Records": entries}
