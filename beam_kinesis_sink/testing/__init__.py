"""Test your own pipeline against a local Kinesis, with throttling and faults.

A supported kit (see docs/testing.md); nothing here is imported by the sink
itself.

- :mod:`beam_kinesis_sink.testing.local_servers`: start kinesalite or
  kinesis-mock (npm packages; Node.js 20+) on 127.0.0.1 as subprocesses,
  create streams, make boto3 clients for them.
- :mod:`beam_kinesis_sink.testing.npm_packages`: where those npm packages
  are found, or installed into the user cache on first use.
- :mod:`beam_kinesis_sink.testing.fault_front`: an HTTP front that enforces
  the service limits the emulators leave out (request/record sizes, per-shard
  throttling) and injects faults (per-record InternalFailure, HTTP 500/503,
  dropped connections, latency, access denied, missing streams); in-process
  or as its own process.
- :mod:`beam_kinesis_sink.testing.readback`: read every record of a stream.
- :mod:`beam_kinesis_sink.testing.processes`: process groups, free ports and
  who listens where, for every server the kit (or the Flink scripts) start.

Each name below can be imported from here as well as from its module.
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported lazily: reading a stream back needs neither the front nor the servers.
_EXPORTS = {
    "FaultConfig": "fault_front",
    "FaultFront": "fault_front",
    "FrontStats": "fault_front",
    "RemoteFaultFront": "fault_front",
    "start_fault_front_process": "fault_front",
    "achieved_rates": "fault_front",
    "peak_rates": "fault_front",
    "LocalKinesis": "local_servers",
    "LocalServerError": "local_servers",
    "start_kinesalite": "local_servers",
    "start_kinesis_mock": "local_servers",
    "PortTakenError": "local_servers",
    "make_client": "local_servers",
    "create_stream": "local_servers",
    "wait_active": "local_servers",
    "ShardRange": "readback",
    "read_all": "readback",
    "read_all_flat": "readback",
    "shard_ranges": "readback",
    "shard_for": "readback",
    "read_shard": "readback",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = sorted(_EXPORTS)
