"""Outcomes reach a windowed aggregation downstream (streaming, DirectRunner).

An outcome emitted behind the watermark of its window would be dropped there
as late data, and a dead letter dropped downstream is data lost. Bundle mode
emits each outcome at its element's own time, before the watermark passes
it. Stateful mode emits them at the batch's time, inside the window; on
Flink every one is counted (tests/flink/test_flink_windows.py), but Beam
Python's DirectRunner drops what GroupIntoBatches' end-of-window timer emits
(it holds no watermark for it; apache/beam#21071), so that case is a strict
xfail here: it will flip when Beam fixes it.
"""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream as EventStream
from apache_beam.transforms import window

from beam_kinesis_sink import WriteToKinesis
from tests.conftest import unique_stream
from tests.integration.helpers import client_config, collect, collected, read_stream

pytestmark = pytest.mark.integration

GOOD = 25
BAD = 20


def counted_per_window(kinesalite, tmp_path, batching):
    stream = unique_stream("windows")
    kinesalite.create_stream(stream, shards=2)
    events = (
        EventStream()
        .add_elements([window.TimestampedValue({"u": f"u{i}", "i": i}, 1 + i / 10) for i in range(GOOD)])
        .add_elements([window.TimestampedValue({"i": -k}, 2 + k / 10) for k in range(BAD)])  # no "u"
        .advance_watermark_to(15)
        .add_elements([window.TimestampedValue({"u": "next", "i": 99}, 16)])
        .advance_watermark_to_infinity()
    )
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with beam.Pipeline(options=options) as p:
        result = (p | events | beam.WindowInto(window.FixedWindows(10))
                  | WriteToKinesis(stream, partition_key=lambda e: e["u"],
                                   client_config=client_config(kinesalite), batching=batching,
                                   max_buffering_seconds=0.5))
        for name in ("written", "dead_letters"):
            counts = (getattr(result, name) | f"Key{name}" >> beam.Map(lambda _: ("n", 1))
                      | f"Count{name}" >> beam.CombinePerKey(sum))
            collect(counts, str(tmp_path / name), f"Collect{name}")
    return {name: sorted((count, w) for (_, count), _, w in collected(str(tmp_path / name)))
            for name in ("written", "dead_letters")}


def test_bundle_mode_outcomes_are_all_counted_by_a_windowed_aggregation(kinesalite, tmp_path):
    counts = counted_per_window(kinesalite, tmp_path, "bundle")
    assert counts["written"] == [(1, "[10.0, 20.0)"), (GOOD, "[0.0, 10.0)")]
    assert counts["dead_letters"] == [(BAD, "[0.0, 10.0)")]


@pytest.mark.xfail(strict=True, reason="DirectRunner drops GroupIntoBatches' end-of-window timer output "
                   "(apache/beam#21071); counted on Flink (tests/flink/test_flink_windows.py)")
def test_stateful_mode_outcomes_are_all_counted_on_the_direct_runner(kinesalite, tmp_path):
    counts = counted_per_window(kinesalite, tmp_path, "stateful")
    assert counts["written"] == [(1, "[10.0, 20.0)"), (GOOD, "[0.0, 10.0)")]


class _TwoWindows(window.NonMergingWindowFn):
    """Every element in two overlapping windows (a custom WindowFn: the sink
    refuses only SlidingWindows, by type)."""

    def assign(self, context):
        return [window.IntervalWindow(0, 100), window.IntervalWindow(50, 150)]

    def get_window_coder(self):
        return beam.coders.coders.IntervalWindowCoder()


def test_an_element_in_two_windows_is_written_once_and_its_outcome_lands_once_in_each(kinesalite, tmp_path):
    # Beam repeats the windows of what process emits once per window of the
    # element it is processing, in place (an element's windows are a list,
    # shared with its context): outcomes emitted while an element in two
    # windows was processed doubled the windows of every element sharing
    # that context, again at each such emission. A few bad elements among
    # the good ones: their dead letters are made while elements still come.
    good, bad = 1_500, 3
    stream = unique_stream("two-windows")
    kinesalite.create_stream(stream, shards=1)
    elements = [{"u": f"u{i}", "i": i} for i in range(good)]
    for k in range(bad):
        elements.insert(100 + 500 * k, {"i": -k})  # no "u": a dead letter
    with beam.Pipeline() as p:
        result = (p | beam.Create(elements) | beam.Map(lambda e: window.TimestampedValue(e, 60))
                  | beam.WindowInto(_TwoWindows())
                  | WriteToKinesis(stream, partition_key=lambda e: e["u"],
                                   client_config=client_config(kinesalite)))
        for name in ("written", "dead_letters"):
            counts = (getattr(result, name) | f"Key{name}" >> beam.Map(lambda _: ("n", 1))
                      | f"Count{name}" >> beam.CombinePerKey(sum))
            collect(counts, str(tmp_path / name), f"Collect{name}")
    counts = {name: sorted((count, w) for (_, count), _, w in collected(str(tmp_path / name)))
              for name in ("written", "dead_letters")}
    assert counts["written"] == [(good, "[0.0, 100.0)"), (good, "[50.0, 150.0)")]
    assert counts["dead_letters"] == [(bad, "[0.0, 100.0)"), (bad, "[50.0, 150.0)")]
    stored = [r for records in read_stream(kinesalite, stream).values() for r in records]
    assert len(stored) == good  # each record written once, not once per window
