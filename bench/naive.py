"""The baseline the sink is measured against: a plain boto3 loop that sends
500-record requests and re-sends the failed entries at once, until none fail.
This is what most hand-written producers do."""

from __future__ import annotations

from typing import Any, Iterable, List, Tuple


def naive_put(client: Any, stream: str, records: Iterable[Tuple[bytes, str]]) -> dict:
    attempts = 0
    calls = 0
    batch: List[dict] = []

    def send(entries: List[dict]) -> None:
        nonlocal attempts, calls
        while entries:
            calls += 1
            attempts += len(entries)
            response = client.put_records(StreamName=stream, Records=entries)
            if not response.get("FailedRecordCount"):
                return
            entries = [e for e, r in zip(entries, response["Records"]) if r.get("ErrorCode")]

    for data, key in records:
        batch.append({"Data": data, "PartitionKey": key})
        if len(batch) == 500:
            send(batch)
            batch = []
    if batch:
        send(batch)
    return {"attempts": attempts, "calls": calls}
