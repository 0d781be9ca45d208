"""Command-line Beam pipelines built on beam-kinesis-sink.

- ``beam-kinesis-migrate`` (``python -m beam_kinesis_sink.pipelines.migrate``):
  write Avro / JSON Lines files to a stream;
- ``beam-kinesis-inspect`` (``... .inspect_dead_letters``): summarise dead-letter files;
- ``beam-kinesis-replay`` (``... .replay_dead_letters``): write dead letters again.

Installed, this package is ``beam_kinesis_sink.pipelines``; in a checkout the
same files are also the top-level ``pipelines`` (``python -m pipelines.migrate``
from the repository root), which is why its modules import each other
relatively. The commands are documented in the README, section "Pipelines:
migrate history, inspect and replay dead letters".
"""
