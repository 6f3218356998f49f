"""Bronze's report of offsets Kafka deleted before it read them: arithmetic, progress, ledger."""

from __future__ import annotations

import json

import pytest

from k2.config import load
from k2.log import events_named
from k2.settings import PlatformSettings
from k2.streams import LostRange, read_losses, read_progress
from spark_jobs.bronze_ingestion import (
    NOTHING_READ,
    batch_day,
    losses_from_progress,
    lost_ranges,
    planned_ranges,
)
from spark_jobs.streaming import ProgressReporter

T = "market.crypto.trades.binance"
K = "market.crypto.trades.kraken"


def _lost(ranges, seen):
    return [(r.topic, r.partition, r.first_offset, r.end_offset)
            for r in lost_ranges(ranges, seen, batch_id=7, now=1.0)]


def test_planned_ranges_in_topic_and_partition_order():
    start = {T: {"10": 0, "2": 100, "3": 5}, K: {"0": 7}}
    end = {T: {"10": 50, "2": 200, "3": 5}, K: {"0": 9}}
    assert planned_ranges(start, end) == ([(T, 2, 100, 200), (T, 10, 0, 50), (K, 0, 7, 9)], True)


def test_planned_ranges_without_a_start_are_incomplete_not_guessed():
    # Batch 0 / a new partition start at the earliest retained offset: nothing is missing.
    assert planned_ranges({T: {"0": 1}}, {T: {"0": 4, "1": 9}}) == ([(T, 0, 1, 4)], False)
    assert planned_ranges({}, {T: {"0": 4}}) == ([], False)


def test_nothing_lost_when_the_range_starts_where_it_was_planned():
    assert _lost([(T, 0, 10, 20)], {(T, 0): 10}) == []


def test_head_of_the_range_deleted():
    assert _lost([(T, 0, 10, 20)], {(T, 0): 15}) == [(T, 0, 10, 15)]


def test_whole_range_deleted_when_no_row_came():
    assert _lost([(T, 0, 10, 20), (T, 1, 4, 9)], {(T, 0): NOTHING_READ, (T, 1): 4}) == [(T, 0, 10, 20)]
    assert _lost([(T, 0, 10, 20)], {}) == [(T, 0, 10, 20)]


def test_first_offset_beyond_the_planned_end_counts_only_the_planned_range():
    # Kafka trimmed past the batch's end: this batch lost [start, end), the next one the rest.
    assert _lost([(T, 0, 10, 20)], {(T, 0): 25}) == [(T, 0, 10, 20)]


def test_lost_range_count_and_description():
    r = LostRange(T, 3, 10, 15)
    assert r.count == 5
    assert r.describe() == f"{T}[3] offsets 10..14 (5 records)"


def progress_json(batch: int, start, end, rows: int) -> dict:
    """A Kafka source's progress event as Spark 4.1 writes it (offsets as objects)."""
    return {
        "batchId": batch, "timestamp": "2026-01-31T00:00:00.000Z", "numInputRows": rows,
        "processedRowsPerSecond": 100.0,
        "sources": [{"description": f"KafkaV2[Subscribe[{T}]]", "startOffset": start, "endOffset": end,
                     "latestOffset": end, "numInputRows": rows}],
    }


class FakeBronze:
    """The first offsets a lookup in Bronze would find; records what it was asked."""

    def __init__(self, firsts: dict[tuple[str, int], int]):
        self.firsts = firsts
        self.asked: list[tuple[list, int]] = []

    def __call__(self, ranges, batch_id):
        self.asked.append((ranges, batch_id))
        return self.firsts


def test_a_complete_batch_costs_no_lookup():
    bronze = FakeBronze({})
    assert losses_from_progress(progress_json(3, {T: {"0": 10, "1": 10}}, {T: {"0": 20, "1": 15}}, 15),
                                bronze) == []
    assert bronze.asked == []


def test_a_short_batch_looks_up_its_ranges_and_reports_the_missing_heads():
    bronze = FakeBronze({(T, 0): 15, (T, 1): 10})
    lost = losses_from_progress(progress_json(3, {T: {"0": 10, "1": 10}}, {T: {"0": 20, "1": 20}}, 15), bronze)
    assert [(r.topic, r.partition, r.first_offset, r.end_offset, r.batch_id) for r in lost] == [(T, 0, 10, 15, 3)]
    assert bronze.asked == [([(T, 0, 10, 20), (T, 1, 10, 20)], 3)]


def test_a_short_batch_without_a_head_gap_reports_nothing():
    # Fewer rows than offsets but no missing head (e.g. transaction markers): not a loss.
    bronze = FakeBronze({(T, 0): 10})
    assert losses_from_progress(progress_json(3, {T: {"0": 10}}, {T: {"0": 20}}, 9), bronze) == []


def test_first_batch_and_offsets_as_json_text():
    bronze = FakeBronze({})
    assert losses_from_progress(progress_json(0, None, json.dumps({T: {"0": 20}}), 20), bronze) == []
    assert bronze.asked == []


def test_batch_day_is_the_date_of_the_batch_timestamp(tmp_path):
    (tmp_path / "offsets").mkdir()
    # 2026-01-31T23:59:59.999Z: the offset log's batch timestamp, not the progress time.
    (tmp_path / "offsets" / "4").write_text('v1\n{"batchWatermarkMs":0,"batchTimestampMs":1769903999999}\n{}\n')
    assert batch_day(tmp_path, 4).isoformat() == "2026-01-31"


@pytest.fixture
def settings(tmp_path):
    return load(PlatformSettings, {"K2_HOME": str(tmp_path), "K2_CHECKPOINT_ROOT": str(tmp_path / "cp")})


def _check(firsts):
    return lambda raw: losses_from_progress(raw, FakeBronze(firsts))


def test_reporter_publishes_ledgers_and_logs_each_loss(settings, capsys):
    reporter = ProgressReporter("bronze_ingestion", find_losses=_check({(T, 0): 12}), settings=settings)
    reporter.batch(progress_json(4, {T: {"0": 10, "1": 30}}, {T: {"0": 20, "1": 40}}, 8))
    progress = read_progress("bronze_ingestion", settings)
    assert [(d["partition"], d["first_offset"], d["end_offset"]) for d in progress.data_loss] == [(0, 10, 12),
                                                                                                   (1, 30, 40)]
    assert (progress.lost_offsets_total, progress.lost_ranges_total) == (12, 2)
    out = capsys.readouterr().out
    # One line per batch, its figures as fields; then one per lost range.
    assert [(e["job"], e["batch_id"], e["rows_in"], e["rows_per_second"], e["lag"])
            for e in events_named(out, "batch")] == [("bronze_ingestion", 4, 8, 100, 0)]
    logged = events_named(out, "data_lost")
    assert [(e["level"], e["job"], e["batch_id"], e["topic"], e["partition"], e["first_offset"], e["last_offset"],
             e["records"]) for e in logged] == [("error", "bronze_ingestion", 4, T, 0, 10, 11, 2),
                                                ("error", "bronze_ingestion", 4, T, 1, 30, 39, 10)]
    assert "retention.ms" in logged[0]["action"]

    # A clean batch afterwards: no new range, but the totals stay visible.
    reporter.batch(progress_json(5, {T: {"0": 20}}, {T: {"0": 25}}, 5))
    progress = read_progress("bronze_ingestion", settings)
    assert progress.data_loss == [] and progress.lost_offsets_total == 12

    # A restarted stream starts from the ledger's totals.
    again = ProgressReporter("bronze_ingestion", find_losses=_check({(T, 0): 27}), settings=settings)
    again.batch(progress_json(6, {T: {"0": 25}}, {T: {"0": 30}}, 3))
    assert read_progress("bronze_ingestion", settings).lost_offsets_total == 14
    assert [(r.first_offset, r.end_offset, r.batch_id) for r in read_losses("bronze_ingestion", settings)] == [
        (10, 12, 4), (30, 40, 4), (25, 27, 6)]


def test_reporter_survives_a_failing_check(settings, capsys):
    def broken(raw: dict):
        raise ValueError("bad")

    reporter = ProgressReporter("bronze_ingestion", find_losses=broken, settings=settings)
    reporter.batch(progress_json(1, {T: {"0": 0}}, {T: {"0": 1}}, 0))
    assert read_progress("bronze_ingestion", settings).batch_id == 1
    (failed,) = events_named(capsys.readouterr().out, "data_loss_check_failed")
    assert (failed["level"], failed["batch_id"], failed["error"]) == ("error", 1, "ValueError('bad')")


def test_ledger_skips_a_torn_line(settings):
    from k2.streams import loss_file, record_losses

    record_losses("bronze_ingestion", [LostRange(T, 0, 1, 3)], settings)
    with open(loss_file("bronze_ingestion", settings), "a") as out:
        out.write('{"topic": "t", "parti')
    assert read_losses("bronze_ingestion", settings) == [LostRange(T, 0, 1, 3)]
