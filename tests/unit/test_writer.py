"""The writer engine's bookkeeping, driven by a scripted fake client.

Retries, splitting, dead letters and back-pressure are checked here with
exact expectations; the integration tests check the same paths against real
servers behind the fault front.
"""

import random
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beam_kinesis_sink.advice import DEADLINE_ADVICE, GAVE_UP_ADVICE, GAVE_UP_DEFAULT
from beam_kinesis_sink.errors import FatalStreamError
from beam_kinesis_sink.limits import Limits
from beam_kinesis_sink.metrics import CountingMetrics
from beam_kinesis_sink.rate_limit import RateLimitConfig
from beam_kinesis_sink.records import DeadLetter, ErrorCode, KinesisRecord, WriteReceipt
from beam_kinesis_sink.retry import RetryPolicy
from beam_kinesis_sink.writer import KinesisWriter, WriterOptions
from tests.unit import test_classifier
from tests.unit.fakes import FakeKinesis, client_error, one_shard

FAST = RetryPolicy(max_attempts=5, max_elapsed_seconds=30, base_delay=0.001, max_delay=0.005)
NO_RATE = RateLimitConfig(enabled=False)


def options(**kw):
    base = dict(retry=FAST, rate_limit=NO_RATE, max_in_flight=4)
    base.update(kw)
    return WriterOptions(**base)


def records(n, prefix="k"):
    return [KinesisRecord(f"data-{i}".encode(), f"{prefix}{i}") for i in range(n)]


def run(writer, recs, timeout=30, chunk=None):
    """Add ``recs`` one by one (``chunk`` None) or ``chunk`` at a time through
    ``add_many`` (as the DoFn does), each with its index as its context."""
    if chunk is None:
        for i, r in enumerate(recs):
            writer.add(r, len(r.data) + len(r.partition_key), context=i)
    else:
        for start in range(0, len(recs), chunk):
            writer.add_many([(r, len(r.data) + len(r.partition_key), start + j, None, None, None)
                             for j, r in enumerate(recs[start:start + chunk])])
    writer.flush(timeout)
    outcomes = writer.take_outcomes()
    writer.close()
    return outcomes


def test_each_receipt_field_holds_its_own_value():
    """Receipts are built positionally (outcomes.py): every field, by name."""
    fake = FakeKinesis()
    recs = [KinesisRecord(f"data-{i}".encode(), f"key-{i}", str(i * 2**100)) for i in range(40)]
    writer = KinesisWriter(fake, "the-stream", options())
    for i, r in enumerate(recs):
        writer.add(r, len(r.data) + len(r.partition_key), context=i, element_timestamp_micros=1_000 + i)
    writer.flush(30)
    written, dead = split(writer.take_outcomes())
    writer.close()
    assert not dead and len(written) == 40
    sent = {r["PartitionKey"]: r for r in fake.written}
    sequences = set()
    for receipt, i in written:
        assert receipt.stream == "the-stream"
        assert receipt.partition_key == f"key-{i}"
        assert receipt.explicit_hash_key == str(i * 2**100)
        assert receipt.shard_id == fake._shard_of(sent[f"key-{i}"])
        assert receipt.sequence_number.isdigit()
        sequences.add(receipt.sequence_number)
        assert receipt.attempts == 1
        assert receipt.size_bytes == len(f"data-{i}") + len(f"key-{i}")
        assert receipt.element_timestamp_micros == 1_000 + i
        assert receipt.sub_sequence_number is None
    assert len(sequences) == 40


def split(outcomes):
    written = [(v, c) for v, c in outcomes if isinstance(v, WriteReceipt)]
    dead = [(v, c) for v, c in outcomes if isinstance(v, DeadLetter)]
    return written, dead


def test_everything_is_written_once_with_receipts_and_shard_order():
    fake = FakeKinesis()
    metrics = CountingMetrics()
    recs = records(2000)
    # The limiter on (far above this rate): one call per shard in flight, so
    # a shard's records land in input order (two, with it off, may cross).
    paced = RateLimitConfig(records_per_second=1e7, bytes_per_second=1e10)
    outcomes = run(KinesisWriter(fake, "s", options(rate_limit=paced), metrics=metrics), recs)
    written, dead = split(outcomes)
    assert not dead
    assert sorted(c for _, c in written) == list(range(2000))
    assert len(fake.written) == 2000
    # Per shard, records arrive in input order.
    by_shard = {}
    for r in fake.written:
        by_shard.setdefault(fake._shard_of(r), []).append(int(r["PartitionKey"][1:]))
    assert len(by_shard) == 4
    for keys in by_shard.values():
        assert keys == sorted(keys)
    # Each request holds one shard's records only, and at most 500.
    for call in fake.calls:
        assert len(call) <= 500
        assert len({fake._shard_of(r) for r in call}) == 1
    assert metrics.counters["records_written"] == 2000
    assert metrics.counters["put_records_calls"] == len(fake.calls)
    receipt = written[0][0]
    assert receipt.shard_id.startswith("shardId-") and receipt.sequence_number
    assert receipt.attempts == 1


def test_written_items_are_filled_again_and_keep_nothing_of_their_record():
    fake = FakeKinesis()
    writer = KinesisWriter(fake, "s", options(max_buffered_records=600))
    recs = records(2000)
    outcomes = run(writer, recs)
    assert sorted(c for _, c in outcomes) == list(range(2000))
    assert all(v.partition_key == recs[c].partition_key for v, c in outcomes)
    spare = writer.buffers._spare
    assert 0 < len(spare) <= 600  # kept, up to the bound
    assert all(i.data is None and i.context is None and i.partition_key is None for i in spare)
    spare_ids, before = {id(i) for i in spare}, len(spare)
    queue = writer.buffers.add(("s", "shardId-000000000000"), KinesisRecord(b"new", "n"), 4, 7, context="c")
    *_, item = queue.items()
    assert id(item) in spare_ids and len(spare) == before - 1  # a spare one, filled as a new one is
    assert (item.data, item.partition_key, item.context, item.attempts, item.first_attempt,
            item.not_before, item.last_code, item.members) == (b"new", "n", "c", 0, None, 0.0, "", None)


def test_only_failed_entries_are_retried_in_order():
    def script(call, recs):
        if call == 0:
            return [("InternalFailure" if i % 3 == 0 else None) for i in range(len(recs))]
        return [None] * len(recs)

    fake = FakeKinesis(script, shards=one_shard())
    metrics = CountingMetrics()
    recs = records(30)
    outcomes = run(KinesisWriter(fake, "s", options(), metrics=metrics), recs)
    written, dead = split(outcomes)
    assert not dead and len(written) == 30
    assert len(fake.calls) == 2
    retried = [r["PartitionKey"] for r in fake.calls[1]]
    assert retried == [f"k{i}" for i in range(0, 30, 3)]
    assert metrics.counters["records_retried"] == 10
    attempts = {v.partition_key: v.attempts for v, _ in written}
    assert attempts["k0"] == 2 and attempts["k1"] == 1


def test_retry_budget_exhausted_goes_to_dead_letters_with_last_error():
    fake = FakeKinesis(lambda call, recs: ["ProvisionedThroughputExceededException"] * len(recs))
    metrics = CountingMetrics()
    outcomes = run(KinesisWriter(fake, "s", options(), metrics=metrics), records(10))
    written, dead = split(outcomes)
    assert not written and len(dead) == 10
    letter = dead[0][0]
    assert letter.error_code == "ProvisionedThroughputExceededException"
    assert letter.attempts == FAST.max_attempts
    assert letter.data.startswith(b"data-") and letter.partition_key.startswith("k")
    assert "gave up after 5 attempts" in letter.error_message
    assert letter.error_message.endswith(": " + GAVE_UP_ADVICE[ErrorCode.THROTTLED])  # what to do
    assert metrics.counters["records_throttled"] == 10 * FAST.max_attempts
    assert metrics.counters["dead_letters_ProvisionedThroughputExceededException"] == 10


def test_a_record_whose_budget_ran_out_on_a_failing_service_says_what_to_do():
    unavailable = client_error("ServiceUnavailable", status=503)
    fake = FakeKinesis(lambda call, recs: (_ for _ in ()).throw(unavailable))
    outcomes = run(KinesisWriter(fake, "s", options()), records(10))
    written, dead = split(outcomes)
    assert not written and len(dead) == 10 and len(fake.calls) >= FAST.max_attempts  # the fault fired
    assert {v.error_code for v, _ in dead} == {ErrorCode.SERVICE_UNAVAILABLE}
    messages = [v.error_message for v, _ in dead]
    assert all(f"gave up after {FAST.max_attempts} attempts" in message
               and message.endswith("s): " + GAVE_UP_DEFAULT) for message in messages), messages[0]


@pytest.mark.parametrize(
    "exc",
    [client_error("ServiceUnavailable", status=503), client_error("InternalFailure", status=500),
     ConnectionResetError("dropped")],
)
def test_whole_request_transient_errors_are_retried(exc):
    calls = []

    def script(call, recs):
        calls.append(call)
        if call < 2:
            raise exc
        return [None] * len(recs)

    fake = FakeKinesis(script, shards=one_shard())
    metrics = CountingMetrics()
    outcomes = run(KinesisWriter(fake, "s", options(), metrics=metrics), records(20))
    written, dead = split(outcomes)
    assert len(written) == 20 and not dead
    assert metrics.counters["put_records_failed_calls"] == 2  # the fault fired twice
    assert {v.attempts for v, _ in written} == {3}


def test_validation_error_splits_until_the_bad_record_is_alone():
    poison = "k13"

    def script(call, recs):
        if any(r["PartitionKey"] == poison for r in recs):
            raise client_error("ValidationException", "1 validation error detected")
        return [None] * len(recs)

    fake = FakeKinesis(script, shards=one_shard())
    outcomes = run(KinesisWriter(fake, "s", options()), records(40))
    written, dead = split(outcomes)
    assert [v.partition_key for v, _ in dead] == [poison]
    assert dead[0][0].error_code == "ValidationException"
    assert len(written) == 39
    assert len(fake.calls) > 2  # it really split
    assert all(len(c) <= 40 for c in fake.calls)


def test_fatal_errors_go_to_dead_letters_by_default():
    fake = FakeKinesis(lambda call, recs: (_ for _ in ()).throw(
        client_error("AccessDeniedException", "User: arn:aws:iam::1:user/x is not authorized")))
    metrics = CountingMetrics()
    outcomes = run(KinesisWriter(fake, "s", options(), metrics=metrics), records(50))
    written, dead = split(outcomes)
    assert not written and len(dead) == 50
    assert {v.error_code for v, _ in dead} == {"AccessDeniedException"}
    assert {v.attempts for v, _ in dead} == {1}  # not retried
    assert metrics.counters["dead_letters_AccessDeniedException"] == 50


def test_fatal_errors_fail_when_asked_and_hide_secrets():
    secret = "SECRETSECRETSECRETSECRET1234"
    fake = FakeKinesis(lambda call, recs: (_ for _ in ()).throw(
        client_error("AccessDeniedException", f"denied for {secret} and AKIAABCDEFGHIJKLMNOP")))
    writer = KinesisWriter(fake, "s", options(on_fatal_error="fail"), secrets=(secret,))
    with pytest.raises(FatalStreamError) as info:
        run(writer, records(5))
    assert "AccessDeniedException" in str(info.value)
    assert secret not in str(info.value) and "AKIAABCDEFGHIJKLMNOP" not in str(info.value)


def test_missing_stream_at_list_shards_still_dead_letters_every_record():
    fake = FakeKinesis(lambda call, recs: (_ for _ in ()).throw(
        client_error("ResourceNotFoundException", "Stream s not found")))
    fake.shards = client_error("ResourceNotFoundException", "Stream s not found")
    outcomes = run(KinesisWriter(fake, "s", options()), records(7))
    written, dead = split(outcomes)
    assert not written and len(dead) == 7
    assert {v.error_code for v, _ in dead} == {"ResourceNotFoundException"}


@pytest.mark.parametrize("chunk", [None, 64, 3000])
def test_back_pressure_bounds_the_buffer(chunk):
    gate = threading.Event()

    def slow(call, recs):
        gate.wait(0.01)
        return [None] * len(recs)

    fake = FakeKinesis(slow)
    writer = KinesisWriter(fake, "s", options(max_buffered_records=1000, max_in_flight=2,
                                              limits=Limits(max_records_per_request=100)))
    outcomes = run(writer, records(20_000), chunk=chunk)
    assert len(split(outcomes)[0]) == 20_000
    # The bound plus at most one record that triggered the wait, however
    # many records one add_many takes.
    assert writer.buffers.peak_records <= 1001


def test_let_calls_run_hands_over_the_gil_only_while_calls_are_in_flight():
    release = threading.Event()

    def held(call, recs):
        release.wait(5)
        return [None] * len(recs)

    slept = []
    writer = KinesisWriter(FakeKinesis(held), "s", options(limits=Limits(max_records_per_request=1)),
                           sleep=slept.append)
    writer.let_calls_run()
    assert slept == []  # nothing in flight: no sleep, not even of zero seconds
    for record in records(10):
        writer.add(record, len(record.data) + len(record.partition_key))
    assert len(writer._submitter) >= 1  # a full request went out, and its call is held
    writer.let_calls_run()
    assert slept == [0]
    release.set()
    writer.flush(10)
    assert writer.buffered_records == 0


def test_flush_deadline_dead_letters_what_is_left_and_returns():
    release = threading.Event()

    def hang(call, recs):
        release.wait(5)
        return [None] * len(recs)

    fake = FakeKinesis(hang)
    writer = KinesisWriter(fake, "s", options(in_flight_grace_seconds=0.2))
    start = time.monotonic()
    outcomes = run(writer, records(3000), timeout=0.3)
    elapsed = time.monotonic() - start
    release.set()
    written, dead = split(outcomes)
    assert elapsed < 3
    assert len(written) + len(dead) == 3000
    assert dead and {v.error_code for v, _ in dead} == {ErrorCode.DEADLINE_EXCEEDED}
    never_sent = [v for v, _ in dead if v.error_message.startswith("not written before the flush deadline")]
    assert never_sent and all(v.error_message.endswith(": " + DEADLINE_ADVICE) for v in never_sent)


def test_receipt_on_an_unexpected_shard_refreshes_the_map():
    fake = FakeKinesis()
    writer = KinesisWriter(fake, "s", options(shard_map_min_refresh_seconds=0))
    # The client believes in one shard; the server has four.
    fake_shards = fake.shards
    fake.shards = one_shard()
    writer.locate(KinesisRecord(b"x", "k"))  # loads the map: one shard
    fake.shards = fake_shards
    before = fake.list_shards_calls
    run(writer, records(100))
    assert fake.list_shards_calls > before
    assert len(writer.shard_map) == 4


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 1500),
    record_fail=st.floats(0, 0.6),
    call_fail=st.floats(0, 0.4),
    chunk=st.sampled_from([None, 1, 7, 64, 500]),
)
def test_no_record_is_lost_or_doubled_under_random_faults(seed, n, record_fail, call_fail, chunk):
    rng = random.Random(seed)
    lock = threading.Lock()

    def script(call, recs):
        with lock:
            if rng.random() < call_fail:
                raise client_error(rng.choice(["ServiceUnavailable", "InternalFailure"]), status=503)
            return [
                (rng.choice(["InternalFailure", "ProvisionedThroughputExceededException"])
                 if rng.random() < record_fail else None)
                for _ in recs
            ]

    fake = FakeKinesis(script)
    writer = KinesisWriter(fake, "s", options(), rand=random.Random(seed).random)
    recs = records(n)
    outcomes = run(writer, recs, chunk=chunk)
    written, dead = split(outcomes)
    contexts = sorted(c for _, c in outcomes)
    assert contexts == list(range(n))  # every record exactly one outcome
    assert len(fake.written) == len(written)  # each receipt is one write, none twice
    assert {r["PartitionKey"] for r in fake.written} == {v.partition_key for v, _ in written}
    # Each outcome is its own record's (items are filled again once written).
    for v, c in outcomes:
        assert v.partition_key == recs[c].partition_key
        if isinstance(v, WriteReceipt):
            assert v.size_bytes == len(recs[c].data) + len(recs[c].partition_key)
        else:
            assert v.data == recs[c].data
    assert all(r["Data"] == f"data-{r['PartitionKey'][1:]}".encode() for r in fake.written)
    for v, _ in dead:
        assert v.error_code in ("InternalFailure", "ProvisionedThroughputExceededException",
                                "ServiceUnavailable")
        assert v.attempts == FAST.max_attempts
    assert writer.buffered_records == 0


class _AnswerScript:
    """A client whose PutRecords answers are drawn by Hypothesis (any JSON shape)."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = 0
        self.lock = threading.Lock()

    def list_shards(self, **kwargs):
        return {"Shards": one_shard()}

    def put_records(self, Records, **kwargs):  # noqa: N803 - boto3's name
        with self.lock:
            answer = self.answers[self.calls % len(self.answers)]
            self.calls += 1
        return answer


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers=st.lists(test_classifier.answers, min_size=1, max_size=8), n=st.integers(1, 40))
def test_no_answer_crashes_the_writer_or_writes_a_receipt_without_a_sequence_number(answers, n):
    client = _AnswerScript(answers)
    outcomes = run(KinesisWriter(client, "s", options(retry=RetryPolicy(max_attempts=3, base_delay=0))),
                   records(n))
    assert sorted(c for _, c in outcomes) == list(range(n))  # every record exactly one outcome
    for value, _ in outcomes:
        if isinstance(value, WriteReceipt):
            assert isinstance(value.sequence_number, str) and value.sequence_number
            assert isinstance(value.shard_id, str) and value.shard_id
        else:
            assert value.error_code and 1 <= value.attempts <= 3


class _SimulatedTime:
    """An injected clock that moves only when the engine sleeps."""

    def __init__(self):
        self.now = 0.0

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def _outage_run(rate_limit):
    """Connection refused from the start (ListShards and every PutRecords):
    simulated seconds until every record has its dead letter."""
    time_ = _SimulatedTime()
    fake = FakeKinesis(lambda call, recs: (_ for _ in ()).throw(ConnectionRefusedError("refused")))
    fake.shards = ConnectionRefusedError("refused")
    metrics = CountingMetrics()
    writer = KinesisWriter(fake, "s", WriterOptions(rate_limit=rate_limit, max_in_flight=4),
                           metrics=metrics, clock=time_.clock, sleep=time_.sleep,
                           rand=random.Random(7).random)
    outcomes = run(writer, records(4000), timeout=None)
    written, dead = split(outcomes)
    assert not written and len(dead) == 4000
    assert {v.error_code for v, _ in dead} == {ErrorCode.CONNECTION_ERROR}
    assert metrics.counters["put_records_failed_calls"] == len(fake.calls) > 0  # the fault fired
    return time_.now, len(fake.calls)


def test_an_outage_drains_as_fast_with_the_limiter_as_without():
    # Calls that fail as a whole return the tokens they took: the limiter must
    # not turn an outage's retries into minutes of waiting for tokens.
    limited, limited_calls = _outage_run(RateLimitConfig())
    unlimited, unlimited_calls = _outage_run(NO_RATE)
    assert unlimited > 0
    assert limited <= 2 * unlimited, (limited, unlimited)
    assert limited_calls >= 4000 * 20 // 500  # every record used its whole budget of attempts


def test_a_shard_key_from_an_older_map_is_located_again():
    fake = FakeKinesis()  # four shards
    writer = KinesisWriter(fake, "s", options())
    record = KinesisRecord(b"x", "k1")
    hash_key, shard_id = writer.locate(record)
    assert shard_id.startswith("shardId-")
    writer.add(record, 3, context="known", hash_key=hash_key, shard_id=shard_id)
    writer.add(record, 3, context="stale", hash_key=hash_key, shard_id="shardId-999999999999")
    outcomes = run(writer, [])
    assert sorted(c for _, c in outcomes) == ["known", "stale"]
    assert {v.shard_id for v, _ in outcomes} == {shard_id}  # both went to the shard that holds the key
    assert len(fake.calls) == 1 and fake.list_shards_calls == 1


def test_at_the_flush_deadline_a_failing_record_keeps_its_own_error():
    # Connection refused on every call, and a deadline shorter than the retry
    # budget: the records end with the real cause, not DeadlineExceeded.
    fake = FakeKinesis(lambda call, recs: (_ for _ in ()).throw(ConnectionRefusedError("refused")))
    slow_retries = RetryPolicy(max_attempts=1000, max_elapsed_seconds=600, base_delay=0.05, max_delay=0.05)
    writer = KinesisWriter(fake, "s", options(retry=slow_retries))
    outcomes = run(writer, records(50), timeout=0.5)
    written, dead = split(outcomes)
    assert not written and len(dead) == 50
    assert len(fake.calls) >= 2  # the fault fired, and retries ran until the deadline
    assert {v.error_code for v, _ in dead} == {ErrorCode.CONNECTION_ERROR}
    assert all("when the flush deadline passed" in v.error_message and v.attempts >= 1 for v, _ in dead)
    assert all(v.error_message.endswith("passed): " + DEADLINE_ADVICE) for v, _ in dead)
