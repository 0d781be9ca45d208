"""Command-line Beam pipelines built on beam-kinesis-sink.

- ``python -m pipelines.migrate``: write Avro / JSON Lines files to a stream;
- ``python -m pipelines.inspect_dead_letters``: summarise dead-letter files;
- ``python -m pipelines.replay_dead_letters``: write dead letters again.

See ``docs/pipelines.md``.
"""
