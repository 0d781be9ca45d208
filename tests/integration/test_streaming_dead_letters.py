"""WriteDeadLetters on unbounded input (streaming, DirectRunner, kinesalite).

Beam's file sinks cannot take a streaming PCollection of dead letters: in
the global window Beam refuses the pipeline at construction (2.77:
"triggering_frequency must be set"; 2.62: "GroupByKey cannot be applied to
an unbounded PCollection with global windowing"), and in fixed windows
2.62 refuses it the same way and 2.77 fails at run time. So unbounded
input is written a file per bundle and window, with no GroupByKey. These
tests write a stream of good and bad elements over several watermark steps
and read every dead letter back, from the files, through the same code
``beam-kinesis-inspect`` and ``-replay`` use.
"""

from __future__ import annotations

import logging
import os
from collections import Counter

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream as EventStream
from apache_beam.transforms import window

from beam_kinesis_sink import WriteToKinesis
from beam_kinesis_sink.dead_letter_io import UNBOUNDED_NUM_SHARDS, WriteDeadLetters, read_file
from beam_kinesis_sink.dead_letter_writing import PARTIAL_SUFFIX
from pipelines.common import dead_letter_files
from tests.conftest import unique_stream
from tests.integration.helpers import client_config, collect, collected, read_stream

pytestmark = pytest.mark.integration

#: (event time in seconds, how many good, how many bad) per step of the watermark
STEPS = [(5, 30, 2), (65, 40, 3), (125, 10, 0), (185, 25, 4)]


def _events() -> EventStream:
    events = EventStream()
    for t, good, bad in STEPS:
        events = events.add_elements(
            [window.TimestampedValue({"u": f"u{t}-{i}", "t": t}, t) for i in range(good)]
            + [window.TimestampedValue({"t": t, "bad": k}, t) for k in range(bad)]  # no "u"
        ).advance_watermark_to(t + 30)
    return events.advance_watermark_to_infinity()


def _run(kinesalite, tmp_path, windowed: bool, **write_options) -> tuple:
    stream = unique_stream("stream-dl")
    kinesalite.create_stream(stream, shards=2)
    out = tmp_path / "dead-letters"
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with beam.Pipeline(options=options) as p:
        events = p | _events()
        if windowed:
            events = events | beam.WindowInto(window.FixedWindows(60))
        result = events | WriteToKinesis(stream, partition_key=lambda e: e["u"],
                                         client_config=client_config(kinesalite))
        names = result.dead_letters | WriteDeadLetters(f"{out}/", **write_options)
        collect(names, str(tmp_path / "names"), "CollectNames")
    return stream, out, collected(str(tmp_path / "names"))


@pytest.mark.parametrize("windowed", [False, True], ids=["global-window", "fixed-windows"])
def test_every_dead_letter_of_a_stream_reaches_a_file(kinesalite, tmp_path, windowed):
    stream, out, names = _run(kinesalite, tmp_path, windowed)

    files = dead_letter_files(str(out))  # what inspect and replay read
    letters = [(path, letter) for path in files for letter in read_file(path)]
    bad = Counter(t for t, _, n in STEPS for _ in range(n))
    assert Counter(letter.element_timestamp_micros // 1_000_000 for _, letter in letters) == bad
    # the key function raised KeyError
    assert {letter.error_code for _, letter in letters} == {"InvalidPartitionKey"}
    assert all(letter.stream == stream for _, letter in letters)
    # The good ones are in the stream, each once.
    stored = [r for records in read_stream(kinesalite, stream).values() for r in records]
    assert len(stored) == sum(good for _, good, _ in STEPS)

    # The output names exactly the files written, each once; nothing half-written is left.
    assert sorted(name for name, _, _ in names) == files
    assert [f for f in os.listdir(out) if f.endswith(PARTIAL_SUFFIX)] == []
    if windowed:
        # Each name is in the window of its letters, at the time of its latest letter.
        for name, timestamp_micros, window_repr in names:
            times = [letter.element_timestamp_micros for path, letter in letters if path == name]
            start = min(times) // 60_000_000 * 60
            assert window_repr == f"[{float(start)}, {float(start + 60)})"
            assert timestamp_micros == max(times)


def test_num_shards_on_unbounded_input_is_named_in_a_warning(kinesalite, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="beam_kinesis_sink.dead_letter_io"):
        _, out, _ = _run(kinesalite, tmp_path, False, num_shards=3)
    assert UNBOUNDED_NUM_SHARDS % 3 in caplog.messages
    assert sum(1 for path in dead_letter_files(str(out)) for _ in read_file(path)) == 9
