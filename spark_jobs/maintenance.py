"""Shared pieces of the maintenance jobs: retention rules, options, commit retries.

Order per table (Iceberg's advice, see docs/platform-notes.md): compact -> rewrite
manifests -> expire snapshots -> remove orphans; one table at a time.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from k2.config import load, register, setting
from k2.contracts import (
    BRONZE_TABLE,
    EXCHANGES,
    GOLD_TABLE,
    SILVER_DLQ_TABLE,
    all_tables,
    silver_table,
)
from k2.log import EventLog, job_log

T = TypeVar("T")

# SPEC §3 retention; None = kept forever. Values are days.
RETENTION_DAYS: dict[str, int | None] = {
    BRONZE_TABLE: 7,
    **{silver_table(e.name): 30 for e in EXCHANGES},
    SILVER_DLQ_TABLE: 30,
    GOLD_TABLE: None,
}

# How each table's partition is expressed, so deletes and "cold" filters line up with
# partition boundaries (whole-partition deletes are metadata-only).
DAY_COLUMN = {
    BRONZE_TABLE: ("ingestion_date", "date"),
    **{silver_table(e.name): ("exchange_date", "date") for e in EXCHANGES},
    SILVER_DLQ_TABLE: ("error_timestamp", "timestamp"),
}

# Failures another writer's concurrent commit can cause; retried with backoff.
RETRYABLE = ("CommitFailedException", "ValidationException", "CommitStateUnknownException",
             "conflicting files", "Cannot commit")


RETAIN_LAST = 20  # snapshots always kept, however old


@register
@dataclass(frozen=True)
class SnapshotSettings:
    """How long the maintenance jobs keep a table's snapshots (a job's argument wins)."""

    snapshot_retention_hours: float = setting(
        "SNAPSHOT_RETENTION_HOURS", 1.0,
        "Snapshots older than this are expired by compaction (hourly) and retention (daily), "
        "except those a stream still reads; time travel reaches this far back. Each stream commit "
        "is a snapshot kept in every later commit's metadata, so longer means slower commits "
        "(spark_jobs/snapshot_expiry.py: an hour of them is ~2 MB of metadata a table).")


def add_snapshot_options(parser: argparse.ArgumentParser) -> None:
    default = load(SnapshotSettings).snapshot_retention_hours
    parser.add_argument("--snapshot-retention-hours", type=float, default=default,
                        help=f"expire snapshots older than this, except those a stream still reads "
                        f"(default K2_SNAPSHOT_RETENTION_HOURS, {default:g})")
    parser.add_argument("--retain-last", type=int, default=RETAIN_LAST,
                        help=f"always keep this many snapshots (default {RETAIN_LAST})")


def add_tables_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tables", help="comma-separated subset of tables, worked in data-flow order "
                        f"(default: all: {','.join(all_tables())})")


def parse_instant(text: str) -> datetime:
    """``--now``: an ISO-8601 instant; one without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--now {text!r} is not an ISO-8601 instant, e.g. 2026-01-31T00:05:00Z") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def add_now_option(parser: argparse.ArgumentParser) -> None:
    # Injected "now": every date a job derives (retention cut-offs, cold partitions, expiry
    # ages) comes from this one instant, so tests and replays do not depend on the clock.
    parser.add_argument("--now", type=parse_instant, default=None,
                        help="the UTC instant the job counts from, ISO-8601 (default: the current time)")


def job_now(value: datetime | None) -> datetime:
    return value if value is not None else datetime.now(UTC)


def selected_tables(parser: argparse.ArgumentParser, value: str | None) -> list[str]:
    """``--tables`` as a list in data-flow order; an unknown name is a usage error."""
    wanted = [t.strip() for t in value.split(",") if t.strip()] if value else all_tables()
    unknown = sorted(set(wanted) - set(all_tables()))
    if unknown:
        parser.error(f"--tables: unknown {unknown}; known: {all_tables()}")
    return [t for t in all_tables() if t in wanted]


def day_before_filter(table: str, day: date) -> str:
    """SQL predicate selecting whole partitions strictly before ``day`` (UTC)."""
    column, kind = DAY_COLUMN[table]
    if kind == "date":
        return f"{column} < DATE '{day.isoformat()}'"
    return f"{column} < TIMESTAMP '{day.isoformat()} 00:00:00+00:00'"


def hour_before_filter(moment: datetime) -> str:
    """Gold (partitioned by hours(timestamp)): whole hours strictly before ``moment``'s hour."""
    hour = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return f"`timestamp` < TIMESTAMP '{hour:%Y-%m-%d %H:%M:%S}+00:00'"


def retention_cutoff(table: str, today: date) -> date | None:
    days = RETENTION_DAYS[table]
    return None if days is None else today - timedelta(days=days)


def with_retries(action: Callable[[], T], what: str, log: EventLog,
                 attempts: int = 5, base_delay_s: float = 2.0) -> T:
    """Run ``action``; on a commit conflict wait (exponential backoff + jitter) and retry."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:  # noqa: BLE001 - py4j wraps Java exceptions; match by text
            text = str(exc)
            if attempt == attempts or not any(marker in text for marker in RETRYABLE):
                raise
            delay = base_delay_s * 2 ** (attempt - 1) * (0.5 + random.random())
            log.warning("commit_conflict", what=what, attempt=attempt, attempts=attempts,
                        retry_in_s=round(delay, 1), error=text.splitlines()[0][:200])
            time.sleep(delay)
    raise AssertionError("unreachable")


def each_table(job: str, tables: list[str], work: Callable[[Any, EventLog, str], None]) -> int:
    """``work(spark, log, table)`` for each of ``tables`` in order, in one Spark session (one
    start-up for the whole job), then a ``done`` line; the session stops whatever happens."""
    from spark_jobs.session import spark_session

    log = job_log(job)
    spark = spark_session(job)
    try:
        for table in tables:
            work(spark, log, table)
        log.info("done")
        return 0
    finally:
        spark.stop()
