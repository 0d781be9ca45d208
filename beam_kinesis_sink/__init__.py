"""beam-kinesis-sink: a Python-native Apache Beam sink for Amazon Kinesis Data Streams.

    from beam_kinesis_sink import WriteToKinesis, ClientConfig
    result = elements | WriteToKinesis("orders", partition_key=lambda e: e["user_id"])
    result.written       # PCollection[WriteReceipt]
    result.dead_letters  # PCollection[DeadLetter]

The public names are imported on first use, so that the package's tools that
need no Beam (``beam_kinesis_sink.testing``'s servers and fault front) start
without importing Apache Beam.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from beam_kinesis_sink._version import __version__ as __version__

if TYPE_CHECKING:
    from beam_kinesis_sink.client import ClientConfig
    from beam_kinesis_sink.records import DeadLetter, ErrorCode, KinesisRecord, WriteReceipt
    from beam_kinesis_sink.transform import WriteToKinesis, WriteToKinesisResult

_EXPORTS = {
    "WriteToKinesis": "transform",
    "WriteToKinesisResult": "transform",
    "ClientConfig": "client",
    "KinesisRecord": "records",
    "WriteReceipt": "records",
    "DeadLetter": "records",
    "ErrorCode": "records",
}

__all__ = [
    "WriteToKinesis",
    "WriteToKinesisResult",
    "ClientConfig",
    "KinesisRecord",
    "WriteReceipt",
    "DeadLetter",
    "ErrorCode",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_EXPORTS))
