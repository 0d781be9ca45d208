"""Writes the bench's records with async-kinesis's ``Producer``, and says how
long it took. Executed with the Python of async-kinesis's own virtual
environment (``.cache/bench-venvs/async-kinesis``), not the project's:

    python run_async_kinesis.py --endpoint URL --stream S --records N --out F

Its defaults, except: records go as the bench's bytes (a processor that
neither aggregates nor serializes), and the shards are read with
ListShards (``use_list_shards=True``; kinesalite's DescribeStream works too).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from runner_cli import main, records


async def write(args: argparse.Namespace) -> dict:
    from kinesis import Producer
    from kinesis.aggregators import SimpleAggregator
    from kinesis.processors import Processor
    from kinesis.serializers import Serializer

    class RawBytes(Serializer):
        def serialize(self, item: Any) -> bytes:
            return item

    class BytesProcessor(Processor, SimpleAggregator, RawBytes):
        pass

    start = time.monotonic()
    async with Producer(stream_name=args.stream, endpoint_url=args.endpoint, region_name="us-east-1",
                        processor=BytesProcessor(), use_list_shards=True) as producer:
        for data, key in records(args.records, "async-kinesis"):
            await producer.put(data, partition_key=key)
    return {"seconds": round(time.monotonic() - start, 2), "cpu_s": round(time.process_time(), 2),
            "records": args.records,
            "throughput_exceeded_responses": producer.throughput_exceeded_count}


if __name__ == "__main__":
    main(write)
