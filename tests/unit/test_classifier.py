"""The classifier: PutRecords answers and exceptions → verdicts, as a table,
and a property over arbitrary JSON-shaped answers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beam_kinesis_sink.advice import FATAL_ADVICE
from beam_kinesis_sink.classifier import (
    FATAL_CODES,
    Verdict,
    classify_exception,
    classify_record_error,
    classify_service_error,
    judge_answer,
    judge_failure,
)
from beam_kinesis_sink.records import ErrorCode
from tests.unit.fakes import client_error

OK = {"SequenceNumber": "49", "ShardId": "shardId-000000000001"}
THROTTLED = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}
KMS = {"ErrorCode": "KMSAccessDeniedException", "ErrorMessage": "no key"}


@pytest.mark.parametrize(
    "answer, count, expected",
    [
        ({"Records": [OK, OK]}, 2,
         Verdict(written=((0, OK["ShardId"], "49"), (1, OK["ShardId"], "49")), feedback=0.0)),
        ({"Records": [OK, THROTTLED]}, 2,
         Verdict(written=((0, OK["ShardId"], "49"),),
                 retry=((1, "ProvisionedThroughputExceededException", "slow down"),),
                 throttled=1, feedback=0.5)),
        ({"Records": [KMS]}, 1, Verdict(dead=((0, "KMSAccessDeniedException",
                                              "no key: " + FATAL_ADVICE["KMSAccessDeniedException"]),),
                                        feedback=0.0)),
        ({"Records": [{"ErrorCode": "InternalFailure"}]}, 1,
         Verdict(retry=((0, "InternalFailure", ""),), feedback=0.0)),
    ],
)
def test_answers(answer, count, expected):
    assert judge_answer(answer, count, OK["ShardId"]) == expected


def test_a_receipt_on_another_shard_marks_the_map_stale_unless_the_batch_was_split():
    assert judge_answer({"Records": [OK]}, 1, "shardId-000000000000").map_stale
    assert not judge_answer({"Records": [OK]}, 1, "shardId-000000000000", split=True).map_stale
    assert not judge_answer({"Records": [OK]}, 1, OK["ShardId"]).map_stale


@pytest.mark.parametrize(
    "answer",
    [
        {"Records": [OK]},  # one entry for two records
        {"Records": None},
        {},
        None,
        {"Records": "nope"},
    ],
)
def test_answers_that_cannot_be_matched_by_index_retry_every_record(answer):
    verdict = judge_answer(answer, 2, OK["ShardId"])
    assert not verdict.written and not verdict.dead
    assert [(i, code) for i, code, _ in verdict.retry] == [(0, ErrorCode.INTERNAL_FAILURE),
                                                           (1, ErrorCode.INTERNAL_FAILURE)]


@pytest.mark.parametrize(
    "entry",
    [None, {}, {"ErrorCode": ""}, {"SequenceNumber": "", "ShardId": "s"}, {"SequenceNumber": "1"},
     {"SequenceNumber": 1, "ShardId": "s"}, {"ErrorCode": None, "ShardId": "s"}, [], "x"],
)
def test_an_entry_without_sequence_number_and_shard_is_never_a_receipt(entry):
    verdict = judge_answer({"Records": [entry]}, 1, OK["ShardId"])
    assert verdict.written == ()
    assert [(i, code) for i, code, _ in verdict.retry] == [(0, ErrorCode.INTERNAL_FAILURE)]


@pytest.mark.parametrize(
    "exc, retry_code, throttled, split, fatal",
    [
        (client_error("ProvisionedThroughputExceededException"), "ProvisionedThroughputExceededException",
         3, None, None),
        (client_error("ServiceUnavailable", status=503), "ServiceUnavailable", 0, None, None),
        (ConnectionResetError("reset"), ErrorCode.CONNECTION_ERROR, 0, None, None),
        (client_error("ValidationException"), None, 0, (range(0, 2), range(2, 3)), None),
        (client_error("ResourceNotFoundException", "gone"), None, 0, None,
         ("ResourceNotFoundException", "gone: " + FATAL_ADVICE["ResourceNotFoundException"])),
    ],
)
def test_failed_calls(exc, retry_code, throttled, split, fatal):
    verdict = judge_failure(exc, 3)
    assert verdict.call_failed
    assert {code for _, code, _ in verdict.retry} == ({retry_code} if retry_code else set())
    assert verdict.throttled == throttled
    assert verdict.split == split
    assert verdict.fatal == fatal
    assert len(verdict.dead) == (3 if fatal else 0)


def test_a_refused_single_record_is_dead_not_split():
    verdict = judge_failure(client_error("ValidationException", "bad"), 1)
    assert verdict.split is None and verdict.fatal is None
    assert verdict.dead == ((0, "ValidationException", "bad"),)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (st.lists(children, max_size=3)
                      | st.dictionaries(st.text(max_size=8), children, max_size=3)),
    max_leaves=8,
)
entries = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={
        "SequenceNumber": st.one_of(st.text(max_size=4), json_values),
        "ShardId": st.one_of(st.text(max_size=4), json_values),
        "ErrorCode": st.one_of(st.sampled_from(["", "InternalFailure", "KMSThrottlingException", "Weird",
                                                "ProvisionedThroughputExceededException"]), json_values),
        "ErrorMessage": json_values,
    }),
)
answers = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={"Records": st.one_of(st.lists(entries, max_size=6), json_values),
                                        "FailedRecordCount": json_values}),
)


@settings(max_examples=500, deadline=None)
@given(answer=answers, count=st.integers(1, 5))
def test_every_answer_gives_each_record_exactly_one_fate(answer, count):
    verdict = judge_answer(answer, count, "shardId-000000000000")
    fates = sorted([i for i, _, _ in verdict.written] + [i for i, _, _ in verdict.retry]
                   + [i for i, _, _ in verdict.dead])
    assert fates == list(range(count))
    entries_ = answer.get("Records") if isinstance(answer, dict) else None
    for index, shard_id, sequence in verdict.written:
        entry = entries_[index]
        assert not entry.get("ErrorCode")
        assert isinstance(sequence, str) and sequence == entry["SequenceNumber"]
        assert isinstance(shard_id, str) and shard_id == entry["ShardId"]
    for _, code, message in verdict.retry + verdict.dead:
        assert isinstance(code, str) and code and isinstance(message, str)
    assert 0.0 <= (verdict.feedback or 0.0) <= 1.0


def test_every_stream_level_code_says_what_to_do_after_the_services_own_words():
    assert set(FATAL_ADVICE) == FATAL_CODES
    for code in sorted(FATAL_CODES):
        for classified in (classify_service_error(code, "the service's words", 400),
                           classify_record_error(code, "the service's words")):
            assert classified.error_code == code
            assert classified.error_message == f"the service's words: {FATAL_ADVICE[code]}"
        assert classify_service_error(code, "", 400).error_message == FATAL_ADVICE[code]


def test_botocore_credential_and_region_errors_say_what_to_do():
    from botocore import exceptions as bx

    for exc in (bx.NoCredentialsError(), bx.PartialCredentialsError(provider="env", cred_var="AWS_SECRET"),
                bx.NoRegionError()):
        classified = classify_exception(exc)
        assert classified.error_code == type(exc).__name__
        assert classified.error_message == f"{exc}: {FATAL_ADVICE[type(exc).__name__]}"
