"""A micro-batch's time, split into Spark's phases, the stream's own and the trigger wait."""

from __future__ import annotations

from spark_jobs.batch_timing import BatchTimings, batch_end_ms, breakdown
from tests.fake_clock import FakeClock

PROGRESS = {  # the parts of a Spark 4 StreamingQueryProgress JSON the breakdown reads
    "batchId": 12, "timestamp": "2026-03-01T09:00:10.000Z",
    "durationMs": {"latestOffset": 120, "walCommit": 80, "queryPlanning": 40, "getBatch": 5,
                   "addBatch": 2100, "commitOffsets": 60, "triggerExecution": 2450},
}
PREVIOUS_END_MS = 1772355607_500  # 2026-03-01T09:00:07.500Z


def test_spark_phases_the_streams_own_and_the_wait_for_the_trigger():
    got = breakdown(PROGRESS, PREVIOUS_END_MS, {"decode_validate": 0.7, "commit silver_binance_trades": 1.2})
    assert got == {"trigger_wait": 2.5, "source_offsets": 0.12, "offset_log": 0.08, "planning": 0.04,
                   "source_read": 0.005, "sink": 2.1, "commit_log": 0.06, "decode_validate": 0.7, "commit silver_binance_trades": 1.2,
                   "other": 0.2, "total": 2.45}
    assert list(got)[:6] == ["trigger_wait", "source_offsets", "offset_log", "planning", "source_read", "sink"]


def test_the_first_batch_of_a_process_has_no_trigger_wait_and_missing_phases_are_left_out():
    got = breakdown({"timestamp": "2026-03-01T09:00:10Z", "durationMs": {"triggerExecution": 900}}, None, {})
    assert got == {"total": 0.9}
    assert breakdown({}, PREVIOUS_END_MS, {}) == {}


def test_a_batch_ends_at_its_trigger_time_plus_its_execution():
    assert batch_end_ms(PROGRESS) == 1772355610_000 + 2450
    assert batch_end_ms({"timestamp": "garbage", "durationMs": {"triggerExecution": 1}}) is None


def test_phases_add_up_per_batch_and_are_taken_once():
    clock = FakeClock()
    timings = BatchTimings(clock)
    for took in (0.25, 0.5):
        with timings.phase(3, "count_hint"):
            clock.advance(took)
        clock.advance(10)  # time between phases is no phase's
    with timings.phase(4, "merge gold"):
        pass
    taken = timings.take(3)
    assert taken == {"count_hint": 0.75}
    assert timings.take(3) == {} and list(timings.take(4)) == ["merge gold"]


def test_phases_of_batches_never_reported_do_not_pile_up():
    timings = BatchTimings()
    for batch in range(100):
        with timings.phase(batch, "read"):
            pass
    assert timings.take(50) == {} and timings.take(95) != {}
