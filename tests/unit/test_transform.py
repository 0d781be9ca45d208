"""Construction-time behaviour of WriteToKinesis (no I/O)."""

import pickle

import apache_beam as beam
import pytest
from apache_beam.transforms import window

from beam_kinesis_sink import ClientConfig, DeadLetter, WriteReceipt, WriteToKinesis, WriteToKinesisResult


def test_result_is_a_fixed_class_with_schema_types():
    p = beam.Pipeline()
    result = p | beam.Create([b"x"]) | WriteToKinesis("s", partition_key=lambda e: "k")
    assert isinstance(result, WriteToKinesisResult)
    assert result.written.element_type is WriteReceipt
    assert result.dead_letters.element_type is DeadLetter
    assert isinstance(beam.coders.registry.get_coder(WriteReceipt), beam.coders.RowCoder)
    assert isinstance(beam.coders.registry.get_coder(DeadLetter), beam.coders.RowCoder)


def test_sliding_windows_are_refused_with_a_clear_message():
    p = beam.Pipeline()
    sliding = p | beam.Create([b"x"]) | beam.WindowInto(window.SlidingWindows(60, 10))
    with pytest.raises(ValueError, match="once per window"):
        _ = sliding | WriteToKinesis("s", partition_key=lambda e: "k")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batching": "sometimes"},
        {"on_fatal_error": "ignore"},
        {"max_records_per_request": 0},
        {"max_request_bytes": 10, "max_record_bytes": 20},
        {"max_in_flight": 0},
    ],
)
def test_bad_options_fail_at_construction(kwargs):
    with pytest.raises(ValueError):
        WriteToKinesis("s", **kwargs)


def test_transform_pickles_without_a_client_and_without_secrets_in_repr():
    config = ClientConfig(aws_access_key_id="AKIAEXAMPLEEXAMPLE12", aws_secret_access_key="s3cr3t-v4lue")
    sink = WriteToKinesis("s", partition_key="k", client_config=config)
    restored = pickle.loads(pickle.dumps(sink.settings))
    assert restored.client_config == config
    assert "s3cr3t-v4lue" not in repr(config) and "AKIAEXAMPLEEXAMPLE12" not in repr(config)


@pytest.mark.parametrize("row_type", [WriteReceipt, DeadLetter])
def test_row_schemas_have_portable_field_types(row_type):
    """Every field maps to a real schema type, not a Python-only pickled one
    (``from __future__ import annotations`` in records.py once made them all
    ``pythonsdk_any``, which Flink's Java side cannot decode)."""
    from apache_beam.typehints.schemas import named_tuple_to_schema

    schema = named_tuple_to_schema(row_type)
    assert [f.name for f in schema.fields] == list(row_type._fields)
    for f in schema.fields:
        assert f.type.WhichOneof("type_info") == "atomic_type", (f.name, f.type)


def test_sharded_record_schema_is_portable():
    from apache_beam.typehints.schemas import named_tuple_to_schema

    from beam_kinesis_sink.write_fn import ShardedRecord

    for f in named_tuple_to_schema(ShardedRecord).fields:
        assert f.type.WhichOneof("type_info") == "atomic_type", (f.name, f.type)


def test_display_data_names_the_stream_and_options_but_no_credential():
    from apache_beam.transforms.display import DisplayData

    secret = "SECRET-KEY-abcdefghijklmnop"
    transform = WriteToKinesis(
        "orders", partition_key=lambda e: "k", max_attempts=7, batching="stateful",
        client_config=ClientConfig(region_name="eu-west-1", aws_access_key_id="AKIAABCDEFGHIJKLMNOP",
                                   aws_secret_access_key=secret, aws_session_token="TOKEN-xyz-123456"),
    )
    items = {item.key: item.value for item in DisplayData.create_from(transform).items}
    assert items["stream"] == "orders"
    assert items["max_attempts"] == 7 and items["batching"] == "stateful"
    assert items["region_name"] == "eu-west-1"
    text = repr(items)
    assert secret not in text and "AKIAABCDEFGHIJKLMNOP" not in text and "TOKEN-xyz" not in text


def test_buffered_records_do_not_hold_their_elements():
    # The context of a buffered record lives until its outcome; the buffer
    # bound counts records, so the (maybe much bigger) element must not stay.
    from apache_beam.transforms.window import GlobalWindow
    from apache_beam.utils.windowed_value import WindowedValue

    from beam_kinesis_sink import write_fn
    from beam_kinesis_sink.testing.processes import free_port
    from beam_kinesis_sink.write_fn import _WriteFn

    config = ClientConfig(region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{free_port()}",
                          aws_access_key_id="x", aws_secret_access_key="y", connect_timeout=0.5)
    fn = _WriteFn(WriteToKinesis("s", partition_key="k", client_config=config).settings)
    fn.setup()
    try:
        element = {"k": "a", "blob": "x" * 1000}
        windowed = WindowedValue(element, 0, (GlobalWindow(),))
        if write_fn._WINDOWED_VALUE_PARAM is not None:
            list(fn.process(element, windowed))
        else:  # an older Beam: the three parameters
            list(fn.process(element, windowed.timestamp, GlobalWindow(), windowed.pane_info))
        items = [item for queue in fn._writer.buffers.queues() for item in queue._items]
        assert len(items) == 1
        assert items[0].context.value is None and items[0].context.windows == (GlobalWindow(),)
    finally:
        fn.teardown()
