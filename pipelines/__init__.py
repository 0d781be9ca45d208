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

import logging as _logging


class _BeamGcpNoise(_logging.Filter):
    """Drops the one warning Beam's io package logs when it is imported
    without its GCP extras ("apitools not found, and bigquery client
    libraries are not available..."): nothing these commands use, and it
    would be the first line of every command's output."""

    def filter(self, record: _logging.LogRecord) -> bool:
        return not str(record.msg).startswith("apitools not found")


def _import_beam_quietly() -> None:
    """Import Beam's io package with that warning dropped; a no-op once Beam
    is imported (by the user's own program, say)."""
    root = _logging.getLogger()
    noise = _BeamGcpNoise()
    root.addFilter(noise)
    try:
        import apache_beam.io  # noqa: F401
    finally:
        root.removeFilter(noise)


_import_beam_quietly()
