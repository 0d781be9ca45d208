"""The part of the graph that the writing commands (migrate, replay) share:
``WriteToKinesis`` with its receipts counted, and dead letters counted and stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import apache_beam as beam

from beam_kinesis_sink import DeadLetter, WriteToKinesis
from beam_kinesis_sink.client import ClientConfig
from beam_kinesis_sink.dead_letter_io import WriteDeadLetters

from . import common, progress


@dataclass(frozen=True)
class WriteOptions:
    client_config: ClientConfig
    #: the cap of each worker (the job's cap divided among them), or None
    max_records_per_second: Optional[float] = None
    rate_limit: bool = True


def write_and_count(
    records: Any, stream: str, write: WriteOptions, config: progress.ProgressConfig
) -> Any:
    """``records`` (KinesisRecords) to ``stream``, each written one counted; the
    sink's dead letters are returned."""
    result = records | "WriteToKinesis" >> WriteToKinesis(
        stream,
        client_config=write.client_config,
        max_records_per_second=write.max_records_per_second,
        max_buffered_records=common.buffered_records_for(write.max_records_per_second),
        rate_limit=write.rate_limit,
    )
    _ = result.written | "CountWritten" >> beam.ParDo(progress.CountFn("written", config))
    return result.dead_letters


def count_and_store(dead_letters: Any, config: progress.ProgressConfig, file_prefix: str) -> None:
    """Dead letters counted (by error code), then written to files named
    ``file_prefix...`` (:func:`beam_kinesis_sink.dead_letter_io.file_prefix`)."""
    _ = (
        dead_letters
        | "CountDeadLetters" >> beam.ParDo(progress.CountFn("dead", config)).with_output_types(DeadLetter)
        | "WriteDeadLetters" >> WriteDeadLetters(file_prefix)
    )
