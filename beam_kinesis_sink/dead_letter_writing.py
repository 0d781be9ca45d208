"""Writing dead-letter files: their names, the codec check, and the writer
for unbounded input (one file per bundle and window).

**Names.** :func:`file_prefix` turns a directory ``DIR/`` into
``DIR/dead-letters-<UTC time>-<token>``, a name no other pipeline uses:
pipelines that write to one directory (a re-run, a daily job) keep each
other's dead letters, where Beam's file sink would replace the files of the
same name (``dead-letters-00000-of-00001.avro``).

**Unbounded input.** Beam's file sinks finish their files after a
``GroupByKey``. On an unbounded PCollection in the global window that
``GroupByKey`` never fires (Beam refuses it at construction); in fixed
windows it holds every dead letter until the watermark passes the window's
end, and drops what comes later as late data. Neither suits dead letters,
which should be on disk soon after the failure, and all of them.
:class:`WriteBundleFilesFn` writes the dead letters of each bundle and window
to a file of their own, with no ``GroupByKey``, no trigger and no lateness:
it streams them through fastavro into a hidden temporary file beside the
final one (``.NAME.partial``) while the bundle runs, and renames it into
place when the bundle finishes. A file name never repeats:
``PREFIX-<UTC time>-<writer token>-<n>SUFFIX``. The files are Avro object
container files of the same schema as the bounded path's, read the same way.
If a bundle fails after its rename and the runner retries it, its dead
letters are written twice (at least once, never lost).
"""

from __future__ import annotations

import datetime
import io
import logging
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, BinaryIO, Dict, Iterator, Optional

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import BoundedWindow
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

#: the file name prefix inside a dead-letter directory, and the files' suffix
FILE_PREFIX = "dead-letters"
FILE_SUFFIX = ".avro"
#: the suffix of a file still being written (hidden: its name starts with a dot)
PARTIAL_SUFFIX = ".partial"

_LOG = logging.getLogger(__name__)


def is_directory(path_prefix: str) -> bool:
    return path_prefix.endswith("/") or path_prefix.endswith("\\")


def file_prefix(path_prefix: str) -> str:
    """Where one pipeline's files go: ``DIR/`` becomes
    ``DIR/dead-letters-<UTC time>-<token>`` (see above); any other prefix is
    kept as given."""
    if not is_directory(path_prefix):
        return path_prefix
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{path_prefix}{FILE_PREFIX}-{stamp}-{secrets.token_hex(3)}"


def check_codec(codec: str, schema: dict, sample: dict) -> None:
    """Refuse, at construction, an Avro codec fastavro cannot write here (an
    unknown name, or ``snappy``/``zstandard``/``lz4`` without their library):
    on the workers, every file would fail, after the records were written.
    ``sample``: a record of ``schema`` to write."""
    import fastavro
    from fastavro.write import Writer

    try:
        writer = Writer(io.BytesIO(), fastavro.parse_schema(schema), codec)
        writer.write(sample)
        writer.flush()
    except ValueError as exc:
        raise ValueError(f"WriteDeadLetters: the Avro codec {codec!r} cannot be written here ({exc}); "
                         "install what it needs, or use codec='deflate' (the default) or 'null'") from None


def partial_name(final_name: str) -> str:
    """The hidden temporary name a file is written under before its rename."""
    directory, base = FileSystems.split(final_name)
    hidden = "." + base + PARTIAL_SUFFIX
    return FileSystems.join(directory, hidden) if directory else hidden


@dataclass
class _OpenFile:
    name: str
    handle: BinaryIO
    writer: Any
    latest: Timestamp


class WriteBundleFilesFn(beam.DoFn):
    """Writes the Avro records it is given (dicts of ``schema``) to one file per
    bundle and window; outputs each file's name in its window, at the time of
    its latest record."""

    def __init__(self, path_prefix: str, schema: dict, codec: str, suffix: str) -> None:
        self._prefix = path_prefix
        self._schema = schema
        self._codec = codec
        self._suffix = suffix

    def setup(self) -> None:
        import fastavro

        self._parsed = fastavro.parse_schema(self._schema)
        self._token = uuid.uuid4().hex[:12]
        self._files_made = 0
        self._open: Dict[BoundedWindow, _OpenFile] = {}

    def start_bundle(self) -> None:
        self._abandon()

    def process(
        self, record: dict, window: Any = beam.DoFn.WindowParam, timestamp: Any = beam.DoFn.TimestampParam
    ) -> None:
        file = self._open.get(window)
        if file is None:
            file = self._open[window] = self._start_file(timestamp)
        file.writer.write(record)
        if timestamp > file.latest:
            file.latest = timestamp

    def finish_bundle(self) -> Iterator[WindowedValue]:
        # A file leaves _open once renamed: if a later one fails, the next
        # bundle (or teardown) removes what is left of the failed bundle.
        for window, file in list(self._open.items()):
            file.writer.flush()
            file.handle.close()
            FileSystems.rename([partial_name(file.name)], [file.name])
            del self._open[window]
            yield WindowedValue(file.name, file.latest, [window])

    def teardown(self) -> None:
        self._abandon()

    def _abandon(self) -> None:
        """Close and remove the .partial files of a bundle that failed (the
        runner retries it, and its letters are written again)."""
        for file in self._open.values():
            try:
                file.handle.close()
                FileSystems.delete([partial_name(file.name)])
            except Exception as exc:  # noqa: BLE001 - a leftover hidden file, not a lost letter
                _LOG.info("could not remove %s of a failed bundle: %s", partial_name(file.name), exc)
        self._open = {}

    def _start_file(self, timestamp: Timestamp) -> _OpenFile:
        from fastavro.write import Writer

        self._files_made += 1
        name = self._file_name(self._files_made)
        handle = FileSystems.create(partial_name(name), mime_type="application/x-avro")
        return _OpenFile(name, handle, Writer(handle, self._parsed, self._codec), timestamp)

    def _file_name(self, n: int, now: Optional[datetime.datetime] = None) -> str:
        now = now or datetime.datetime.now(datetime.timezone.utc)
        stamp = now.strftime("%Y%m%dT%H%M%S.%fZ")
        return f"{self._prefix}-{stamp}-{self._token}-{n:05d}{self._suffix}"
