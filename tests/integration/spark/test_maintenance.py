"""Retention, compaction and legacy cleanup, with the Gold stream running throughout.

Tables are seeded through pyiceberg (old and recent partitions, several small files
per cold partition); gold_aggregation runs on a 1 s trigger while retention deletes
Silver partitions under it and compaction rewrites Silver and Gold files, and must
still pick up Silver rows appended afterwards.

Every date comes from the ``clock_now`` fixture and reaches the jobs as ``--now``; the
cold Silver partition is two days old, so it is cold at any hour of the day
(``make test-clock`` runs this module at 00:05, 01:30 and 23:55 UTC).
"""

from __future__ import annotations

import os
import signal
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest

from k2.catalog import catalog
from k2.contracts import (
    BRONZE_TABLE,
    GOLD_TABLE,
    LEGACY_TABLES,
    SILVER_DLQ_TABLE,
    all_tables,
    silver_table,
)
from k2.log import events_named
from k2.polling import wait_until
from k2.settings import platform

from .jobs import Jobs
from .trades import message_id

pytestmark = [pytest.mark.integration, pytest.mark.clock]


def table(jobs: Jobs, name: str):
    return catalog(platform()).load_table(f"{jobs.namespace}.{name}")


def append(jobs: Jobs, name: str, rows: list[dict]) -> None:
    t = table(jobs, name)
    t.append(pa.Table.from_pylist(rows, schema=t.schema().as_arrow()))


def silver_row(n: int, when: datetime) -> dict:
    tid = str(n)
    return {"message_id": message_id("BINANCE", "BTCUSDT", tid), "trade_id": tid, "symbol": "BTCUSDT",
            "exchange": "BINANCE", "timestamp": when, "price": Decimal("100.5"), "quantity": Decimal("1"),
            "base_asset": "BTC", "quote_currency": "USDT", "side": "BUY", "ingestion_timestamp": when,
            "vendor_data": {"n": tid}, "exchange_date": when.date()}


def bronze_row(n: int, day: date) -> dict:
    ts = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    return {"key": b"k", "value": bytes([0, 0, 0, 0, n]), "topic": "t", "partition": 0, "offset": n,
            "kafka_timestamp": ts, "ingestion_timestamp": ts, "ingestion_date": day}


def dlq_row(n: int, when: datetime) -> dict:
    return {"key": None, "value": b"\x01", "topic": "t", "partition": 0, "offset": n, "kafka_timestamp": when,
            "schema_id": None, "error_type": "bad_magic_byte", "error_message": "test", "error_timestamp": when}


def data_files(t, where: str = "") -> int:
    return len(t.inspect.files().to_pylist()) if not where else \
        len([f for f in t.inspect.files().to_pylist() if where in str(f["partition"])])


@pytest.fixture(scope="module")
def seeded(jobs: Jobs, clock_now: datetime) -> dict[str, list]:
    jobs.run("bootstrap_tables")
    today = clock_now.date()
    # Cold means "ended at least --cold-after-hours (2 h) ago": at 01:30 yesterday is not
    # cold yet, the day before yesterday always is.
    old_day, cold_day = today - timedelta(days=40), today - timedelta(days=2)
    old_ts = datetime(old_day.year, old_day.month, old_day.day, 10, tzinfo=UTC)
    cold_ts = datetime(cold_day.year, cold_day.month, cold_day.day, 10, tzinfo=UTC)
    append(jobs, BRONZE_TABLE, [bronze_row(i, today - timedelta(days=10)) for i in range(3)])
    append(jobs, BRONZE_TABLE, [bronze_row(i, today) for i in range(3, 5)])
    old_silver = [silver_row(i, old_ts + timedelta(minutes=i)) for i in range(2)]
    append(jobs, silver_table("binance"), old_silver)
    recent = []
    for i in range(3):  # three small files in one cold Silver partition, same Gold hour
        rows = [silver_row(10 + 2 * i + j, cold_ts + timedelta(minutes=2 * i + j)) for j in range(2)]
        append(jobs, silver_table("binance"), rows)
        recent += rows
    append(jobs, SILVER_DLQ_TABLE, [dlq_row(0, old_ts), dlq_row(1, cold_ts)])
    gold_hour = datetime(old_day.year, old_day.month, old_day.day, 5, tzinfo=UTC)
    gold = []
    for i in range(3):  # three small files in one cold Gold hour, written out of order
        row = silver_row(500 + i, gold_hour + timedelta(minutes=30 - i))
        row.pop("exchange_date")
        row.update(exchange_date=gold_hour.date(), exchange_hour=gold_hour.hour)
        append(jobs, GOLD_TABLE, [row])
        gold.append(row)
    return {"old_silver": old_silver, "recent_silver": recent, "gold": gold, "cold_day": cold_day}


def test_maintenance_while_gold_streams(jobs: Jobs, seeded: dict[str, list], clock_now: datetime):
    all_ids = {r["message_id"] for r in seeded["old_silver"] + seeded["recent_silver"] + seeded["gold"]}

    def gold_ids() -> set[str]:
        return {r["message_id"] for r in table(jobs, GOLD_TABLE).scan().to_arrow().to_pylist()}

    gold = jobs.start("gold_aggregation", "--trigger", "1 second")
    # Gold takes one small MERGE per Silver append: several cold-hour files to compact.
    wait_until(lambda: gold_ids() == all_ids, 180, "Gold to hold the seeded Silver trades")

    now = ["--now", clock_now.isoformat()]
    retention = jobs.run("retention", *now)
    compaction = jobs.run("compaction", *now)
    assert gold.poll() is None, "gold_aggregation died during maintenance"

    later = [silver_row(100 + i, clock_now - timedelta(minutes=5)) for i in range(3)]
    append(jobs, silver_table("binance"), later)
    wait_until(lambda: gold_ids() == all_ids | {r["message_id"] for r in later}, 120,
               "Gold to pick up Silver rows appended after retention and compaction")

    # Graceful stop: SIGTERM to the Python driver (the lock holder) ends the query between batches.
    driver = int((jobs.checkpoint_root / "gold_aggregation" / "run.lock").read_text())
    os.kill(driver, signal.SIGTERM)
    assert gold.wait(90) == 0
    assert len(events_named(open(gold.log_path).read(), "stopped_cleanly")) == 1  # type: ignore[attr-defined]

    # Retention: partitions past 7 d (Bronze) / 30 d (Silver, DLQ) gone, the rest kept.
    bronze = table(jobs, BRONZE_TABLE).scan().to_arrow().to_pylist()
    assert sorted(r["offset"] for r in bronze) == [3, 4]
    silver = {r["message_id"] for r in table(jobs, silver_table("binance")).scan().to_arrow().to_pylist()}
    assert silver == {r["message_id"] for r in seeded["recent_silver"] + later}
    assert [r["offset"] for r in table(jobs, SILVER_DLQ_TABLE).scan().to_arrow().to_pylist()] == [1]
    assert {2, 3} <= {e["rows"] for e in events_named(retention, "rows_deleted")}, retention
    # Gold keeps everything (unlimited retention), each message_id once.
    ids = [r["message_id"] for r in table(jobs, GOLD_TABLE).scan().to_arrow().to_pylist()]
    assert len(ids) == len(set(ids)) and set(ids) == all_ids | {r["message_id"] for r in later}

    # Compaction: the cold day's three Silver files became one; Gold's cold hour too, sorted.
    cold_day = seeded["cold_day"].isoformat()
    silver_files = [f for f in table(jobs, silver_table("binance")).inspect.files().to_pylist()
                    if str(f["partition"]["exchange_date"]) == cold_day]
    assert len(silver_files) == 1, compaction
    assert [(e["rewritten_files"], e["added_files"]) for e in events_named(compaction, "files_rewritten")
            ].count((3, 1)) == 2, compaction
    gold_hour = seeded["gold"][0]["timestamp"]
    cold = table(jobs, GOLD_TABLE).scan(row_filter=f"timestamp >= '{gold_hour:%Y-%m-%dT%H:00:00+00:00}' "
                                        f"and timestamp < '{gold_hour + timedelta(hours=1):%Y-%m-%dT%H:00:00+00:00}'")
    assert len(list(cold.plan_files())) == 1
    # Sort strategy: the one file is in (timestamp, trade_id) order.
    ts = [r["timestamp"] for r in cold.to_arrow().to_pylist()]
    assert ts == sorted(ts) and len(ts) == 3


def test_legacy_cleanup_dry_run_then_purge(jobs: Jobs, seeded: dict[str, list]):
    cat = catalog(platform())
    schema = pa.schema([pa.field("id", pa.int64())])
    for name in LEGACY_TABLES:
        cat.create_table(f"{jobs.namespace}.{name}", schema=schema)
    dry = jobs.run("legacy_cleanup", "--dry-run")
    present = {t[1] for t in cat.list_tables(jobs.namespace)}
    assert set(LEGACY_TABLES) <= present
    assert {e["table"] for e in events_named(dry, "table_to_drop")} == {f"{jobs.namespace}.{t}" for t in LEGACY_TABLES}

    jobs.run("legacy_cleanup")
    present = {t[1] for t in cat.list_tables(jobs.namespace)}
    assert not set(LEGACY_TABLES) & present
    assert set(all_tables()) <= present
