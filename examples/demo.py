"""The demo behind `make demo`.

Starts a real local Kinesis server (kinesalite, from npm), creates a stream
with 4 shards, writes sample orders through WriteToKinesis on the
DirectRunner (with a few invalid ones), reads the stream back and prints a
summary: records written per shard, dead letters by code with one example
each.
"""

from __future__ import annotations

import collections
import logging
import os
import sys
import tempfile
import time

# Beam logs "apitools not found ..." on the root logger at import (its GCP
# extras are not installed, nor needed here); keep the demo's output readable.
logging.getLogger().addFilter(lambda record: "apitools" not in record.getMessage())

import apache_beam as beam  # noqa: E402

from beam_kinesis_sink import ClientConfig, WriteToKinesis  # noqa: E402
from beam_kinesis_sink.testing.local_servers import start_kinesalite  # noqa: E402
from beam_kinesis_sink.testing.readback import read_all  # noqa: E402

STREAM = "orders"
N_ORDERS = 10_000


def sample_orders() -> list:
    orders = [
        {"order_id": i, "customer_id": f"customer-{i % 500:04d}", "amount_cents": (i * 37) % 10_000}
        for i in range(N_ORDERS)
    ]
    invalid = [
        {"order_id": -1, "amount_cents": 5},  # no customer_id
        {"order_id": -2, "customer_id": "", "amount_cents": 5},  # empty key
        {"order_id": -3, "customer_id": "c" * 300, "amount_cents": 5},  # key over 256 chars
        {"order_id": -4, "customer_id": "customer-0001", "blob": "x" * (1024 * 1024)},  # over 1 MiB
        {"order_id": -5, "customer_id": "customer-0002", "when": object()},  # not JSON
    ]
    return orders + invalid


class _Gather(beam.DoFn):
    """Append each dead letter to a file (the demo's pipeline runs in-process)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def process(self, letter):
        import json

        with open(self.path, "a", encoding="utf-8") as f:
            f.write(
                json.dumps(
                    {
                        "code": letter.error_code,
                        "message": letter.error_message,
                        "partition_key": letter.partition_key,
                        "preview": letter.element_preview
                        or (letter.data[:60].decode("utf-8", "replace") if letter.data else None),
                    }
                )
                + "\n"
            )


def main() -> int:
    started = time.monotonic()
    print("Starting kinesalite (a local Kinesis server from npm) ...", flush=True)
    with start_kinesalite() as server, tempfile.TemporaryDirectory() as tmp:
        server.create_stream(STREAM, shards=4)
        print(f"Created stream {STREAM!r} with 4 shards at {server.endpoint_url}", flush=True)
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "demo")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "demo")
        dead_path = os.path.join(tmp, "dead.jsonl")
        elements = sample_orders()
        print(f"Writing {len(elements)} elements ({N_ORDERS} orders + 5 invalid) on the DirectRunner ...",
              flush=True)
        t0 = time.monotonic()
        with beam.Pipeline() as p:
            result = (
                p
                | beam.Create(elements)
                | WriteToKinesis(
                    STREAM,
                    partition_key="customer_id",
                    client_config=ClientConfig(region_name="us-east-1", endpoint_url=server.endpoint_url),
                )
            )
            _ = result.dead_letters | beam.ParDo(_Gather(dead_path))
        pipeline_seconds = time.monotonic() - t0

        by_shard = read_all(server.client(), STREAM)
        total = sum(len(v) for v in by_shard.values())
        print()
        print(f"Read back from the stream: {total} records in {pipeline_seconds:.1f}s of pipeline time")
        print("  records written per shard:")
        for shard_id in sorted(by_shard):
            print(f"    {shard_id}  {len(by_shard[shard_id]):>6}")

        import json

        letters = []
        if os.path.exists(dead_path):
            with open(dead_path, encoding="utf-8") as f:
                letters = [json.loads(line) for line in f]
        by_code = collections.OrderedDict()
        for letter in sorted(letters, key=lambda d: d["code"]):
            by_code.setdefault(letter["code"], []).append(letter)
        print(f"  dead letters: {len(letters)}")
        for code, items in by_code.items():
            example = items[0]
            preview = (example["preview"] or "")[:60]
            print(f"    {code:<22} {len(items):>3}  e.g. {example['message']}")
            print(f"    {'':<22}      element: {preview}")
        ok = total == N_ORDERS and len(letters) == 5
        print()
        print(("OK" if ok else "UNEXPECTED") + f": {total} written, {len(letters)} dead-lettered, "
              f"{time.monotonic() - started:.1f}s in all")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
