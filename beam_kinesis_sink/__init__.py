"""beam-kinesis-sink: a Python-native Apache Beam sink for Amazon Kinesis Data Streams.

    from beam_kinesis_sink import WriteToKinesis, ClientConfig
    result = elements | WriteToKinesis("orders", partition_key=lambda e: e["user_id"])
    result.written       # PCollection[WriteReceipt]
    result.dead_letters  # PCollection[DeadLetter]
"""

from beam_kinesis_sink.client import ClientConfig
from beam_kinesis_sink.records import DeadLetter, ErrorCode, KinesisRecord, WriteReceipt
from beam_kinesis_sink.transform import WriteToKinesis, WriteToKinesisResult

__all__ = [
    "WriteToKinesis",
    "WriteToKinesisResult",
    "ClientConfig",
    "KinesisRecord",
    "WriteReceipt",
    "DeadLetter",
    "ErrorCode",
]

__version__ = "0.1.0"
