"""Pure parts of the maintenance jobs and Gold's partition-bounded MERGE predicate."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest

from k2.contracts import BRONZE_TABLE, GOLD_TABLE, SILVER_DLQ_TABLE, all_tables, silver_table
from k2.exchanges import names
from k2.log import events_named, job_log
from spark_jobs.compaction import cold_filter
from spark_jobs.gold_aggregation import MAX_LISTED_RANGES, hour_predicate, minute_predicate
from spark_jobs.maintenance import RETENTION_DAYS, day_before_filter, retention_cutoff, with_retries


def test_every_table_has_a_retention_rule_matching_the_spec():
    assert set(RETENTION_DAYS) == set(all_tables())
    assert RETENTION_DAYS[BRONZE_TABLE] == 7
    assert RETENTION_DAYS[silver_table("binance")] == RETENTION_DAYS[SILVER_DLQ_TABLE] == 30
    assert RETENTION_DAYS[GOLD_TABLE] is None


def test_retention_filters_align_to_partitions():
    today = date(2026, 3, 10)
    assert retention_cutoff(BRONZE_TABLE, today) == date(2026, 3, 3)
    assert retention_cutoff(GOLD_TABLE, today) is None
    assert day_before_filter(BRONZE_TABLE, date(2026, 3, 3)) == "ingestion_date < DATE '2026-03-03'"
    assert day_before_filter(SILVER_DLQ_TABLE, date(2026, 2, 8)) == \
        "error_timestamp < TIMESTAMP '2026-02-08 00:00:00+00:00'"


def test_cold_filters():
    now = datetime(2026, 3, 10, 14, 35, tzinfo=UTC)
    assert cold_filter(GOLD_TABLE, now, 2) == "`timestamp` < TIMESTAMP '2026-03-10 12:00:00+00:00'"
    assert cold_filter(silver_table("kraken"), now, 2) == "exchange_date < DATE '2026-03-10'"


def test_hour_predicate_lists_hours_then_falls_back_to_a_range():
    h = datetime(2026, 3, 10, 5, tzinfo=UTC)
    one = hour_predicate([h])
    assert one == ("((t.`timestamp` >= TIMESTAMP '2026-03-10 05:00:00+00:00' AND "
                   "t.`timestamp` < TIMESTAMP '2026-03-10 06:00:00+00:00'))")
    # every other hour: nothing to merge, so one range each up to the cap, then min..max
    spread = [h.replace(day=1 + (2 * i) // 24, hour=(2 * i) % 24) for i in range(MAX_LISTED_RANGES + 1)]
    assert hour_predicate(spread[:MAX_LISTED_RANGES]).count(" OR ") == MAX_LISTED_RANGES - 1
    many = hour_predicate(spread)
    assert " OR " not in many and "2026-03-01 00:00:00" in many and "2026-03-05 01:00:00" in many


def test_minute_predicate_merges_adjacent_minutes():
    m = datetime(2026, 3, 10, 5, 58, tzinfo=UTC)
    got = minute_predicate([m, m.replace(minute=59), m.replace(hour=6, minute=0), m.replace(hour=6, minute=7), m])
    assert got == ("((t.`timestamp` >= TIMESTAMP '2026-03-10 05:58:00+00:00' AND "
                   "t.`timestamp` < TIMESTAMP '2026-03-10 06:01:00+00:00') OR "
                   "(t.`timestamp` >= TIMESTAMP '2026-03-10 06:07:00+00:00' AND "
                   "t.`timestamp` < TIMESTAMP '2026-03-10 06:08:00+00:00'))")


def test_minute_predicate_of_a_deep_backfill_bounds_by_hours():
    start = datetime(2026, 3, 10, 0, 0, tzinfo=UTC)
    every_other_minute = [start.replace(hour=i // 30, minute=(2 * i) % 60) for i in range(MAX_LISTED_RANGES + 2)]
    got = minute_predicate(every_other_minute)
    assert got == ("((t.`timestamp` >= TIMESTAMP '2026-03-10 00:00:00+00:00' AND "
                   "t.`timestamp` < TIMESTAMP '2026-03-10 02:00:00+00:00'))")


def test_with_retries_retries_conflicts_only():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("org.apache.iceberg.exceptions.CommitFailedException: conflict")
        return "ok"

    out = io.StringIO()
    assert with_retries(flaky, "t", log=job_log("compaction", out), base_delay_s=0.001) == "ok"
    assert len(calls) == 3
    conflicts = events_named(out.getvalue(), "commit_conflict")
    assert [(e["level"], e["job"], e["what"], e["attempt"]) for e in conflicts] == [
        ("warning", "compaction", "t", 1), ("warning", "compaction", "t", 2)]
    with pytest.raises(ValueError):
        with_retries(lambda: (_ for _ in ()).throw(ValueError("bad sql")), "t", log=job_log("compaction", out),
                     base_delay_s=0.001)
    assert len(events_named(out.getvalue(), "commit_conflict")) == 2  # not retried


def test_tables_option_keeps_data_flow_order_and_rejects_unknown_names(capsys):
    import argparse

    from spark_jobs.maintenance import add_tables_option, selected_tables

    parser = argparse.ArgumentParser(prog="retention")
    add_tables_option(parser)
    assert selected_tables(parser, "gold_crypto_trades, bronze_crypto_trades") == [
        "bronze_crypto_trades", "gold_crypto_trades"]
    assert selected_tables(parser, None)[0] == "bronze_crypto_trades"
    assert len(selected_tables(parser, None)) == 3 + len(names())  # bronze, a silver per venue, dlq, gold
    with pytest.raises(SystemExit):
        selected_tables(parser, "bronze_crypto_trades,gold_trades")
    assert "--tables: unknown ['gold_trades']" in capsys.readouterr().err
