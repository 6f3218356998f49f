"""Retention never removes Bronze rows or snapshots a stopped Silver has not read yet.

Bronze gets two old day partitions through pyiceberg (no Kafka needed): day -10, which
Silver reads before it stops, and day -9, appended while Silver is stopped. Both are
past Bronze's 7-day retention, and the snapshot window is 4 seconds (far shorter than
Silver's downtime), so without a hold-back retention would delete day -9 and expire the
snapshot Silver's checkpoint stands at, and Silver would fail or lose rows at restart.
With it: day -10 goes, day -9 and Silver's snapshots stay, and every Bronze row
reaches Silver.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from k2.catalog import catalog
from k2.contracts import BRONZE_TABLE, SILVER_DLQ_TABLE, silver_table
from k2.log import events_named
from k2.polling import wait_until
from k2.settings import platform

from .jobs import Jobs
from .trades import TradeProducer, trade

# Not a `clock` test: the snapshot window is seconds of real time, so dates follow the real clock.
pytestmark = pytest.mark.integration


def bronze_rows(jobs: Jobs, producer: TradeProducer, first: int, n: int, day: date) -> tuple[list[dict], set[str]]:
    topic = jobs.topics["binance"]
    ts_us = int(time.time() * 1_000_000) - 60_000_000  # trades a minute old: valid for Silver
    at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    rows, ids = [], set()
    for i in range(first, first + n):
        record = trade("binance", i, ts_us + i)
        ids.add(record["message_id"])
        rows.append({"key": record["symbol"].encode(), "value": producer.encode(topic, record), "topic": topic,
                     "partition": 0, "offset": i, "kafka_timestamp": at, "ingestion_timestamp": at,
                     "ingestion_date": day})
    return rows, ids


def append(jobs: Jobs, rows: list[dict]) -> None:
    t = catalog(platform()).load_table(f"{jobs.namespace}.{BRONZE_TABLE}")
    t.append(pa.Table.from_pylist(rows, schema=t.schema().as_arrow()))


def table_rows(jobs: Jobs, name: str) -> list[dict]:
    return catalog(platform()).load_table(f"{jobs.namespace}.{name}").scan().to_arrow().to_pylist()


def test_retention_keeps_what_a_stopped_silver_has_not_read(jobs: Jobs):
    s = platform()
    producer = TradeProducer(s.kafka_bootstrap, s.registry_url)
    jobs.run("bootstrap_tables")
    today = datetime.now(UTC).date()
    read_day, unread_day = today - timedelta(days=10), today - timedelta(days=9)

    read_rows, read_ids = bronze_rows(jobs, producer, 0, 4, read_day)
    append(jobs, read_rows[:2])
    append(jobs, read_rows[2:])
    jobs.run("silver_transformation", "--trigger", "availableNow")
    assert {r["message_id"] for r in table_rows(jobs, silver_table("binance"))} == read_ids

    # Silver is stopped; two more Bronze snapshots arrive in an older-than-retention day.
    unread_rows, unread_ids = bronze_rows(jobs, producer, 100, 6, unread_day)
    append(jobs, unread_rows[:3])
    append(jobs, unread_rows[3:])
    bronze_snapshots = [s.snapshot_id for s in catalog(platform()).load_table(f"{jobs.namespace}.{BRONZE_TABLE}").snapshots()]
    assert len(bronze_snapshots) == 4

    # The real "now" (the snapshot window is seconds of real time), and the cut-off it gives:
    # midnight may have passed since the seeding above, so the cut-off is not from `today`.
    now = datetime.now(UTC)
    retention = jobs.run("retention", "--tables", BRONZE_TABLE, "--now", now.isoformat(),
                         "--snapshot-retention-hours", f"{4 / 3600}", "--retain-last", "1")

    # The read day went; the unread day stayed, and the log says why.
    assert sorted(r["offset"] for r in table_rows(jobs, BRONZE_TABLE)) == list(range(100, 106))
    assert [(e["table"], e["rows"], e["before"]) for e in events_named(retention, "rows_deleted")] == [
        (f"{jobs.namespace}.{BRONZE_TABLE}", 4, str(unread_day))], retention
    kept = events_named(retention, "partitions_kept")
    assert [(e["first_day"], e["cutoff"], e["rows"], e["readers"]) for e in kept] == [
        (str(unread_day), str(now.date() - timedelta(days=7)), 6, "silver_transformation")], retention
    held = events_named(retention, "snapshots_kept")
    assert len(held) == 1 and "silver_transformation is at snapshot" in held[0]["detail"], retention
    # Silver's snapshot (the second append) and the later ones survive expiry; the first is gone.
    kept = {s.snapshot_id for s in catalog(platform()).load_table(f"{jobs.namespace}.{BRONZE_TABLE}").snapshots()}
    assert bronze_snapshots[0] not in kept and set(bronze_snapshots[1:]) <= kept

    # Restarted as it runs in production, on a processing-time trigger (an availableNow run
    # plans from the checkpoint's first snapshot, which retention expired: see holdback.py).
    silver = jobs.start("silver_transformation", "--trigger", "1 second")
    everything = sorted(read_ids | unread_ids)
    wait_until(lambda: sorted(r["message_id"] for r in table_rows(jobs, silver_table("binance"))) == everything
               or silver.poll() is not None, 300, "Silver to catch up after retention")
    assert silver.poll() is None, open(silver.log_path).read()[-3000:]  # type: ignore[attr-defined]
    driver = int((jobs.checkpoint_root / "silver_transformation" / "run.lock").read_text())
    os.kill(driver, signal.SIGTERM)
    assert silver.wait(120) == 0, open(silver.log_path).read()[-3000:]  # type: ignore[attr-defined]
    # Every Bronze row, once; nothing rejected.
    assert sorted(r["message_id"] for r in table_rows(jobs, silver_table("binance"))) == everything
    assert table_rows(jobs, SILVER_DLQ_TABLE) == []
