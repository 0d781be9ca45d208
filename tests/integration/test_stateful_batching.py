"""``batching="stateful"`` on the Python DirectRunner, in batch.

``GroupIntoBatches`` always declares a processing-time timer, so Beam's
DirectRunner runs such a pipeline on its bundle-based runner, not the
FnApiRunner. There the sink writes every record and every outcome comes out
(collected here to files, with no shuffle after the sink). But a
``GroupByKey`` after ``GroupIntoBatches`` fails with a bare AssertionError
once a batch is released by the end-of-window timer (apache/beam#28716, a
Beam bug: a plain ``GroupIntoBatches`` followed by ``Count`` fails the same
way), and ``assert_that``, ``Count`` and ``CombinePerKey`` are such a
``GroupByKey``: that case is a strict xfail here, to flip when Beam fixes it.
The sink warns at construction on the DirectRunner (the message names the
bug and ``batching="bundle"``).
"""

from __future__ import annotations

import logging

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import window

from beam_kinesis_sink import DeadLetter, WriteReceipt, WriteToKinesis
from beam_kinesis_sink.sharding import hash_key_of
from tests.conftest import unique_stream
from tests.integration.helpers import check_placement, client_config, collect, collected, read_stream

pytestmark = pytest.mark.integration

GOOD = 2_203  # about 550 per shard and window: a full batch each, and one the window's end releases
BAD = 3


def elements():
    out = [window.TimestampedValue({"u": f"u{i}", "i": i}, i % 20) for i in range(GOOD)]
    for k in range(BAD):
        out.insert(10 + 400 * k, window.TimestampedValue({"i": -k}, 1))  # no "u": a dead letter
    return out


def test_every_record_is_written_and_every_outcome_comes_out(kinesalite, tmp_path):
    stream = unique_stream("stateful-batch")
    kinesalite.create_stream(stream, shards=2)
    with beam.Pipeline() as p:
        result = (p | beam.Create(elements()) | beam.WindowInto(window.FixedWindows(10))
                  | WriteToKinesis(stream, partition_key=lambda e: e["u"],
                                   client_config=client_config(kinesalite), batching="stateful"))
        collect(result.written, str(tmp_path / "written"), "CollectWritten")
        collect(result.dead_letters, str(tmp_path / "dead"), "CollectDead")
    written, dead = collected(str(tmp_path / "written")), collected(str(tmp_path / "dead"))
    assert len(written) == GOOD and all(type(r) is WriteReceipt for r, _, _ in written)
    assert len({(r.shard_id, r.sequence_number) for r, _, _ in written}) == GOOD
    # Each receipt in its element's window (the batch's time, inside it).
    per_window = {}
    for _, _, w in written:
        per_window[w] = per_window.get(w, 0) + 1
    first = sum(1 for i in range(GOOD) if i % 20 < 10)
    assert per_window == {"[0.0, 10.0)": first, "[10.0, 20.0)": GOOD - first}
    assert all(isinstance(d, DeadLetter) for d, _, _ in dead)
    assert sorted((d.error_code, w) for d, _, w in dead) == [("InvalidPartitionKey", "[0.0, 10.0)")] * BAD
    stored = read_stream(kinesalite, stream)
    assert check_placement(kinesalite, stream, stored, lambda r: hash_key_of(r["partition_key"])) == GOOD


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="Beam's DirectRunner: a GroupByKey after GroupIntoBatches fails once a batch is "
                   "released by the end-of-window timer (apache/beam#28716)")
def test_a_group_by_key_after_the_sink_on_the_direct_runner(kinesalite):
    stream = unique_stream("stateful-gbk")
    kinesalite.create_stream(stream, shards=2)
    with beam.Pipeline() as p:
        result = (p | beam.Create([{"u": f"u{i}"} for i in range(10)])
                  | WriteToKinesis(stream, partition_key=lambda e: e["u"],
                                   client_config=client_config(kinesalite), batching="stateful"))
        count = result.written | beam.combiners.Count.Globally()
        assert_that(count, equal_to([10]))


def test_the_sink_warns_of_it_on_the_direct_runner(caplog):
    caplog.set_level(logging.WARNING, logger="beam_kinesis_sink")
    p = beam.Pipeline()
    _ = p | beam.Create([b"x"]) | WriteToKinesis("s", partition_key=lambda e: "k", batching="stateful")
    _ = p | "Bundle" >> beam.Create([b"y"]) | "Default" >> WriteToKinesis("s", partition_key=lambda e: "k")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # the stateful one; the default batching="bundle" is not affected
    assert "apache/beam#28716" in warnings[0] and 'batching="bundle"' in warnings[0]
