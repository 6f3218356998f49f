"""How the Bronze benchmark turns Spark progress into a sustained rate."""

from __future__ import annotations

from spark_jobs.bench import minute_rates


def _batch(rows: int, ms: int) -> dict:
    return {"numInputRows": rows, "durationMs": {"triggerExecution": ms}}


def test_minute_rates_cover_whole_minutes_and_drop_the_tail():
    batches = [_batch(1_000_000, 20_000)] * 3 + [_batch(600_000, 20_000)] * 3 + [_batch(5, 1_000)]
    assert minute_rates(batches) == [50_000.0, 30_000.0]


def test_minute_rates_of_a_short_run_is_empty():
    assert minute_rates([_batch(100, 5_000)]) == []
