"""The command line of the fault front::

    python -m beam_kinesis_sink.testing.fault_front --upstream URL [--port P] \\
        [--config-json '{...}'] [--<any FaultConfig field> VALUE ...]

Every :class:`FaultConfig` field is an option (``record_internal_failure_rate``
is ``--record-internal-failure-rate``; sets are comma-separated, the record
sizes ``--max-record-size-kib NAME=KIB,NAME=KIB``). The front
prints ``READY <endpoint url>`` once it serves, and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import threading
from typing import Any, Optional, Sequence

from beam_kinesis_sink.testing.fault_front.config import FaultConfig, StreamSizes
from beam_kinesis_sink.testing.fault_front.front import FaultFront
from beam_kinesis_sink.testing.processes import LOOPBACK


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m beam_kinesis_sink.testing.fault_front",
        description="Fault-injecting front for a local Kinesis server.",
    )
    parser.add_argument("--upstream", required=True, help="upstream Kinesis URL, e.g. http://127.0.0.1:4567")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=0, help="0: pick a free port (printed)")
    parser.add_argument("--config-json", default=None, help="FaultConfig fields as a JSON object")
    defaults = FaultConfig()
    for f in dataclasses.fields(FaultConfig):
        option = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if isinstance(default, bool):
            parser.add_argument(option, dest=f.name, default=None, type=_parse_bool, metavar="BOOL")
        elif isinstance(default, frozenset):
            parser.add_argument(option, dest=f.name, default=None, help="comma-separated")
        elif isinstance(default, StreamSizes):
            parser.add_argument(option, dest=f.name, default=None, type=_parse_sizes, metavar="NAME=KIB,...")
        elif f.name == "seed":
            parser.add_argument(option, dest=f.name, default=None, type=int)
        else:
            parser.add_argument(option, dest=f.name, default=None, type=type(default))
    return parser.parse_args(argv)


def _parse_sizes(text: str) -> StreamSizes:
    """``a=10240,b=2048`` (stream name or ARN = MaxRecordSizeInKiB)."""
    pairs = []
    for item in text.split(","):
        if not item.strip():
            continue
        stream, sep, kib = item.strip().rpartition("=")
        if not sep or not stream:
            raise argparse.ArgumentTypeError(f"not NAME=KIB: {item!r}")
        try:
            pairs.append((stream, int(kib)))
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"not NAME=KIB: {item!r}") from error
    try:
        return StreamSizes(pairs)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def config_of(args: argparse.Namespace) -> FaultConfig:
    """``--config-json``, then the single-field options over it."""
    config = FaultConfig.from_dict(json.loads(args.config_json)) if args.config_json else FaultConfig()
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(FaultConfig):
        value = getattr(args, f.name)
        if value is None:
            continue
        if isinstance(getattr(config, f.name), frozenset):
            value = frozenset(v.strip() for v in value.split(",") if v.strip())
        changes[f.name] = value
    return config.replace(**changes)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    front = FaultFront(args.upstream, config_of(args), host=args.host, port=args.port)

    def _stop(signum: int, frame: Any) -> None:
        threading.Thread(target=front.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"READY {front.endpoint_url}", flush=True)
    front.serve_forever()
    front.stop()
    return 0
