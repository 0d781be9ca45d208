"""Dead-letter files read through, the same way by inspect and replay.

:class:`FileReading` reads one file to its end without raising, and says how
many dead letters it held and why reading stopped early, if it did: what is
unreadable, and how it is worded, is the same for both commands. Replay
reads every selected file through before its pipeline starts
(:func:`read_through`) and, with ``--replay-readable``, reads the readable
dead letters of the files that cannot be read through in the pipeline with
:class:`ReadReadable`.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional, Sequence

import apache_beam as beam

from beam_kinesis_sink import DeadLetter
from beam_kinesis_sink.dead_letter_io import NotADeadLetterError, check_file, read_file

from .selection import Selection


def dead_letters(count: int) -> str:
    return f"{count:,} dead letter{'' if count == 1 else 's'}"


class FileReading:
    """One dead-letter file read through, without raising for a bad file.

    Iterate it for the letters it holds; afterwards ``letters`` is how many
    were read and ``problem`` why reading stopped before the end (``None``
    when the file was read to its end). The problems:

    * ``not a readable Avro file: ...``: no Avro header (``it is empty (0
      bytes)`` for a 0-byte file), or the file cannot be opened;
    * ``not a dead-letter file: ...``: an Avro file of another schema, or of a
      dead-letter schema version this code does not read;
    * ``corrupt after N dead letters: ...``: a block that cannot be read, as in
      a truncated file; the N letters before it were read;
    * ``after N dead letters: ...``: a record that is not a dead letter.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.letters = 0
        self.problem: Optional[str] = None

    def __iter__(self) -> Iterator[DeadLetter]:
        self.letters, self.problem = 0, check_file(self.path)
        if self.problem:
            return
        try:
            for letter in read_file(self.path):
                self.letters += 1
                yield letter
        except NotADeadLetterError as exc:
            self.problem = f"after {dead_letters(self.letters)}: {exc}"
        except Exception as exc:
            self.problem = f"corrupt after {dead_letters(self.letters)}: {type(exc).__name__}: {exc}"

    def describe(self) -> str:
        """``PATH: problem (N dead letters readable)``."""
        return f"{self.path}: {self.problem} ({dead_letters(self.letters)} readable)"


@dataclass
class ReadThrough:
    """What reading every selected file through found."""

    #: the files read to their end
    whole: list[str] = field(default_factory=list)
    #: the files that could not be read through
    broken: list[FileReading] = field(default_factory=list)
    #: the dead letters read, in every file
    letters: int = 0
    #: how many of them have each error code
    codes: Counter = field(default_factory=Counter)
    #: how many of them the selection selects
    selected: int = 0
    #: the latest failure time of each error code
    latest: dict = field(default_factory=dict)

    def latest_failure(self, codes: Iterable[str] = ()) -> Optional[int]:
        """When the latest dead letter failed (of these codes; default all)."""
        wanted = set(codes)
        return max((at for code, at in self.latest.items() if not wanted or code in wanted), default=None)

    @property
    def readable_parts(self) -> list[tuple[str, int]]:
        """``(file, N)``: the first N dead letters of each broken file that has some."""
        return [(r.path, r.letters) for r in self.broken if r.letters]


def read_through(files: Sequence[str], chosen: Selection = Selection()) -> ReadThrough:
    """Read each file to its end (or to where it cannot be read), counting
    what ``chosen`` selects."""
    found = ReadThrough()
    for path in files:
        reading = FileReading(path)
        for letter in reading:
            found.letters += 1
            found.codes[letter.error_code] += 1
            code, at = letter.error_code, letter.failed_at_micros
            found.latest[code] = max(found.latest.get(code, at), at)
            if chosen.left_out_by(letter) is None:
                found.selected += 1
        if reading.problem:
            found.broken.append(reading)
        else:
            found.whole.append(path)
    return found


def read_readable(part: tuple[str, int]) -> Iterable[DeadLetter]:
    """The first N dead letters of a file, which :func:`read_through` found readable."""
    path, count = part
    reading = FileReading(path)
    letters = iter(reading)
    yield from itertools.islice(letters, count)
    letters.close()
    if reading.letters < count:
        raise OSError(
            f"{path}: {dead_letters(count)} were readable before the pipeline started, "
            f"{reading.letters:,} now: {reading.problem}"
        )


class ReadReadable(beam.PTransform):
    """The readable dead letters of files that cannot be read through: ``[(file, N), ...]``."""

    def __init__(self, parts: Sequence[tuple[str, int]], label: Optional[str] = None) -> None:
        super().__init__(label)
        self._parts = list(parts)

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (
            pbegin
            | "Files" >> beam.Create(self._parts)
            | "Read" >> beam.FlatMap(read_readable).with_output_types(DeadLetter)
        )
