"""Construction-time behaviour of WriteToKinesis (no I/O)."""

import pickle
import re

import apache_beam as beam
import pytest
from apache_beam.transforms import window
from apache_beam.transforms.window import GlobalWindow, IntervalWindow
from apache_beam.utils.timestamp import MAX_TIMESTAMP, MIN_TIMESTAMP, Timestamp
from apache_beam.utils.windowed_value import PaneInfo, PaneInfoTiming, WindowedValue
from hypothesis import given, settings
from hypothesis import strategies as st

from beam_kinesis_sink import ClientConfig, DeadLetter, WriteReceipt, WriteToKinesis, WriteToKinesisResult
from beam_kinesis_sink.write_fn import _WriteFn


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
        {"ordered": True, "batching": "stateful"},
        {"max_record_bytes": 10 * 1024 * 1024 + 1},
        {"max_request_bytes": 10 * 1024 * 1024 + 1},
        {"max_record_bytes": "big"},
        {"aggregation": True, "max_aggregate_bytes": 100},
    ],
)
def test_bad_options_fail_at_construction(kwargs):
    with pytest.raises(ValueError):
        WriteToKinesis("s", **kwargs)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"max_records_per_request": 501}, ValueError, r"above the PutRecords limit \(500 records\)"),
        ({"max_retry_seconds": 0}, ValueError, "max_retry_seconds .* must be > 0"),
        ({"max_retry_seconds": float("nan")}, ValueError, "max_retry_seconds .* must be > 0"),
        ({"max_attempts": 1.5}, ValueError, "max_attempts must be an int >= 1"),
        ({"max_attempts": True}, ValueError, "max_attempts must be an int >= 1"),
        ({"base_backoff_seconds": float("nan")}, ValueError, "backoff delays must be >= 0"),
        ({"max_records_per_second": 0}, ValueError, "max_records_per_second must be > 0"),
        ({"max_buffered_bytes": 1024}, ValueError, "max_buffered_bytes .* at least one full request"),
        ({"flush_timeout_seconds": -1}, ValueError, "flush_timeout_seconds must be a number of seconds > 0"),
        ({"flush_timeout_seconds": float("inf")}, ValueError, "flush_timeout_seconds must be"),
        ({"max_buffering_seconds": 0}, ValueError, "max_buffering_seconds must be a number of seconds > 0"),
        ({"serializer": "json"}, TypeError, "serializer must be a function element -> bytes"),
    ],
)
def test_options_that_would_fail_every_record_are_refused_at_construction(kwargs, error, message):
    # Each was taken before, and met at run time with nothing naming the
    # option: dead letters (no time budget, no flush time, a str for a
    # serializer), nothing sent (a rate cap of 0), requests the service
    # refuses (501 records), one record per call (a buffer under a request).
    with pytest.raises(error, match=message):
        WriteToKinesis("s", partition_key=lambda e: "k", **kwargs)


def test_a_record_limit_above_the_request_limit_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match=r"max_request_bytes \(5242880\) must be >= max_record_bytes"):
        WriteToKinesis("s", max_record_bytes=6 * 1024 * 1024, max_request_bytes=5 * 1024 * 1024)


@pytest.mark.parametrize("stream", ["", "has space", "x" * 129, "arn:aws:s3:::bucket", 42])
def test_a_stream_that_is_neither_a_name_nor_an_arn_is_refused(stream):
    forms = r"stream must be a stream name \(1 to 128 of a-z, A-Z, 0-9, _ \. -\) or a stream ARN"
    with pytest.raises(ValueError, match=forms):
        WriteToKinesis(stream)


def test_limits_follow_the_record_limit():
    MiB = 1024 * 1024
    auto = WriteToKinesis("s").settings
    assert auto.writer.record_limit_from_stream and not auto.writer.request_limit_given
    assert auto.converter.limits.max_record_bytes == 10 * MiB  # the stream's own limit is checked later
    assert (auto.writer.limits.max_record_bytes, auto.writer.limits.max_request_bytes) == (MiB, 5 * MiB)
    raised = WriteToKinesis("s", max_record_bytes=2 * MiB).settings
    assert not raised.writer.record_limit_from_stream
    assert (raised.converter.limits.max_record_bytes, raised.writer.limits.max_request_bytes) == (2 * MiB,
                                                                                                 10 * MiB)
    plain = WriteToKinesis("s", max_record_bytes=MiB).settings
    assert plain.writer.limits.max_request_bytes == 5 * MiB


def test_a_stream_function_is_shown_by_name_and_chooses_per_element():
    from apache_beam.transforms.display import DisplayData

    def route(e):
        return "orders-" + e["region"]

    transform = WriteToKinesis(route, partition_key="id", ordered=True, aggregation=True)
    items = {item.key: item.value for item in DisplayData.create_from(transform).items}
    assert "route" in items["stream"] and items["ordered"] is True and items["aggregation"] is True
    choose = transform.settings.stream
    assert choose({"region": "eu"}) == ("orders-eu", None)
    stream, problem = choose({})
    assert stream is None and "KeyError" in problem
    stream, problem = choose({"region": "not valid!"})
    assert stream is None and "which is not a stream name (1 to 128" in problem


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
                                   aws_secret_access_key=secret, aws_session_token="TOKEN-xyz-123456",
                                   endpoint_url="https://proxy-user:proxy-pass-42@kinesis.internal:8443/"),
    )
    items = {item.key: item.value for item in DisplayData.create_from(transform).items}
    assert items["endpoint_url"] == "https://***@kinesis.internal:8443/"
    assert items["stream"] == "orders"
    assert items["max_attempts"] == 7 and items["batching"] == "stateful"
    assert items["region_name"] == "eu-west-1"
    text = repr(items)
    assert secret not in text and "AKIAABCDEFGHIJKLMNOP" not in text and "TOKEN-xyz" not in text
    assert "proxy-pass-42" not in text and "proxy-user" not in text


def test_buffered_records_do_not_hold_their_elements():
    # The context of a buffered record lives until its outcome; the buffer
    # bound counts records, so the (maybe much bigger) element must not
    # stay. process keeps at most a chunk of elements before it converts
    # and buffers them.
    from apache_beam.transforms.window import GlobalWindow
    from apache_beam.utils.windowed_value import WindowedValue

    from beam_kinesis_sink.testing.processes import free_port
    from beam_kinesis_sink.write_fn import _WriteFn

    config = ClientConfig(region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{free_port()}",
                          aws_access_key_id="x", aws_secret_access_key="y", connect_timeout=0.5)
    fn = _WriteFn(WriteToKinesis("s", partition_key="k", client_config=config).settings)
    fn.setup()
    try:
        fn.start_bundle()
        for i in range(fn.CHUNK):
            element = {"k": f"a{i}", "blob": "x" * 1000}
            windowed = WindowedValue(element, 0, (GlobalWindow(),))
            assert len(fn._pending) == i  # kept, not yet converted
            list(fn.process(element, windowed))
        assert fn._pending == []
        items = [item for queue in fn._writer.buffers.queues() for item in queue._items]
        assert len(items) == fn.CHUNK
        assert all(item.context.value is None and item.context.windows == (GlobalWindow(),)
                   for item in items)
    finally:
        fn.teardown()


_PANES = [(True, True, PaneInfoTiming.ON_TIME, 0, 0), (False, False, PaneInfoTiming.LATE, 2, 1)]
_PANE_OBJECTS = [PaneInfo(*pane) for pane in _PANES]
_WINDOWS = [(GlobalWindow(),), (IntervalWindow(0, 10),), (IntervalWindow(0, 10), IntervalWindow(5, 15))]


_MICROS = [0, 7, -3, 2**40, MIN_TIMESTAMP.micros, MAX_TIMESTAMP.micros]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_MICROS), st.integers(0, len(_WINDOWS) - 1),
                          st.integers(0, len(_PANES) - 1), st.booleans()), min_size=1, max_size=30))
def test_each_record_keeps_its_elements_timestamp_windows_and_pane(elements):
    # Contexts are shared between elements with the same timestamp, windows
    # and pane (one object less per buffered record): never between others.
    config = ClientConfig(region_name="x")
    fn = _WriteFn(WriteToKinesis("s", partition_key="k", client_config=config).settings)
    previous = None
    for micros, w, p, copy in elements:
        # equal, or the very objects
        windows = tuple(_WINDOWS[w]) if copy else _WINDOWS[w]
        pane = PaneInfo(*_PANES[p]) if copy else _PANE_OBJECTS[p]
        windowed = WindowedValue({"k": "a"}, Timestamp(micros=micros), windows, pane)
        context, event_time = fn._context_of(windowed)
        assert context.value is None
        # Beam's MIN and MAX timestamps mean "no event time"
        assert event_time == (None if micros in (MIN_TIMESTAMP.micros, MAX_TIMESTAMP.micros) else micros)
        assert (context.timestamp, context.windows, context.pane_info) == (
            windowed.timestamp, windowed.windows, windowed.pane_info)
        if previous is not None:
            same = (previous[0].timestamp, previous[0].windows, previous[0].pane_info) == (
                windowed.timestamp, windowed.windows, windowed.pane_info)
            assert (context is previous[1]) == same
        previous = (windowed, context)


@settings(max_examples=200, deadline=None, database=None)
@given(st.one_of(st.none(), st.integers(), st.text(), st.binary(), st.lists(st.text()),
                 st.from_regex(r"[a-zA-Z0-9_.-]{1,128}", fullmatch=True)))
def test_a_stream_function_never_raises_whatever_it_returns(value):
    from beam_kinesis_sink.stream_routes import StreamChoice

    stream, problem = StreamChoice(lambda e: value)(None)
    assert (stream is None) != (problem is None)
    if stream is not None:
        assert stream == value and isinstance(stream, str)
    else:
        assert isinstance(problem, str) and problem.encode("utf-8")  # valid text for a dead letter


def test_the_request_codec_is_the_sinks_own_unless_boto3_is_asked_for():
    import boto3
    from botocore.config import Config

    from beam_kinesis_sink import submitter
    from beam_kinesis_sink.submitter import Submitter

    client = boto3.client("kinesis", region_name="us-east-1", aws_access_key_id="a",
                          aws_secret_access_key="b", config=Config(parameter_validation=False))
    fast = Submitter(client, 1, WriteToKinesis("s").settings.writer.request_codec)
    plain = Submitter(client, 1, WriteToKinesis("s", request_codec="boto3").settings.writer.request_codec)
    try:
        assert (fast.codec, plain.codec) == (submitter.DEFAULT_CODEC, "boto3")
        if submitter.DEFAULT_CODEC == "fast":
            # a real client: the fast path
            assert fast._direct is not None and fast._direct.fast, fast._direct
        assert plain._direct is None
    finally:
        fast.close()
        plain.close()
    with pytest.raises(ValueError, match="request_codec"):
        WriteToKinesis("s", request_codec="json")


@pytest.mark.parametrize("kwargs, message", [
    ({"endpoint_url": "notaurl"}, "endpoint_url 'notaurl' is not a URL botocore can use"),
    ({"endpoint_url": "http://user:pw-9@:1"}, "endpoint_url 'http://***@:1' is not a URL"),  # redacted
    ({"sts_endpoint_url": "localhost:4566"}, "sts_endpoint_url 'localhost:4566' is not a URL"),
    ({"region_name": "bad_region!"}, "region_name 'bad_region!' is not a region name, e.g. us-east-1"),
])
def test_a_client_config_botocore_would_refuse_on_the_workers_is_refused_at_construction(kwargs, message):
    # Each one was taken, then failed the job when a worker made its client.
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        ClientConfig(**kwargs)
    assert "pw-9" not in str(raised.value)


def test_a_client_config_takes_what_botocore_takes():
    for config in (ClientConfig(), ClientConfig(region_name="eu-west-1", endpoint_url="http://127.0.0.1:4567"),
                   ClientConfig(endpoint_url="http://[::1]:4567/"), ClientConfig(region_name="local"),
                   ClientConfig(endpoint_url="https://user:pw@kinesis.internal:8443/")):
        assert config.create_client().meta.service_model.service_name == "kinesis"
