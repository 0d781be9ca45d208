"""What the peer runners share: their command line, and the bench's records.

Standard library only: the runners run in the peers' own virtual
environments, with this folder first on ``sys.path``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Iterator, Tuple


def records(n: int, run: str) -> Iterator[Tuple[bytes, str]]:
    """The bench's own records (bench/workload.py is standard library only)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.workload import small_records

    return small_records(n, run)


def main(write: Callable[[argparse.Namespace], Awaitable[Dict[str, Any]]]) -> None:
    """``--endpoint URL --stream S --records N --out F``: run ``write`` and
    write the figures it returns to ``F`` as JSON."""
    parser = argparse.ArgumentParser()
    for name in ("--endpoint", "--stream", "--out"):
        parser.add_argument(name, required=True)
    parser.add_argument("--records", type=int, required=True)
    args = parser.parse_args()
    Path(args.out).write_text(json.dumps(asyncio.run(write(args))))
