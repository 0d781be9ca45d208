"""Writes the bench's records with aiokpl's ``Producer``, and says how long
it took and how many records it gave up on. Executed with the Python of
aiokpl's own virtual environment (``.cache/bench-venvs/aiokpl``):

    python run_aiokpl.py --endpoint URL --stream S --records N --out F

Its defaults, except aggregation, which is off: the front counts Kinesis
records, and the sink beside it does not aggregate (the ``aggregation`` key
measures that separately).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from runner_cli import main, records


async def write(args: argparse.Namespace) -> dict:
    from aiokpl import Config, Producer

    config = Config(region="us-east-1", endpoint_url=args.endpoint, aggregation_enabled=False,
                    aws_access_key_id="bench", aws_secret_access_key="bench")
    start = time.monotonic()
    outcomes = []
    async with Producer(config) as producer:
        for data, key in records(args.records, "aiokpl"):
            outcomes.append(await producer.put_record(stream=args.stream, partition_key=key, data=data))
        await producer.flush()
        results = [await outcome.wait() for outcome in outcomes]
    failures = Counter(r.attempts[-1].error_code if r.attempts else "?" for r in results if not r.success)
    return {"seconds": round(time.monotonic() - start, 2), "cpu_s": round(time.process_time(), 2),
            "records": args.records,
            "failed": sum(failures.values()), "failed_by_code": dict(failures),
            "attempts": sum(len(r.attempts) for r in results)}


if __name__ == "__main__":
    main(write)
