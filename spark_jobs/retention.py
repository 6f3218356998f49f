"""Retention: drop partitions past SPEC §3's retention, expire snapshots, remove orphans.

Per table: ``DELETE`` whole day partitions older than the retention (Bronze 7 d,
Silver and DLQ 30 d, Gold never) - aligned to partition boundaries, so it is a
metadata-only delete snapshot the streams skip (streaming-skip-delete-snapshots);
then ``expire_snapshots`` older than ``--snapshot-retention-hours`` (default
``K2_SNAPSHOT_RETENTION_HOURS``, 1 h; compaction expires hourly too, see
spark_jobs/snapshot_expiry.py); then ``remove_orphan_files`` older
than ``--orphan-age-hours`` (default 72 h, so files of in-flight commits are safe).

Nothing a downstream stream has not read is removed (spark_jobs/holdback.py): on
Bronze and the Silver tables, the partition delete stops before the earliest day
holding a file Silver / Gold have not consumed, and snapshots are expired only if
older than the snapshot each reader's checkpoint (running or stopped) stands at. What
was kept back, and for which stream, is logged.

    spark-submit spark_jobs/retention.py [--namespace market_data] [--dry-run]
        [--tables bronze_crypto_trades,...] [--now 2026-01-31T02:00:00Z]
        [--snapshot-retention-hours 1] [--orphan-age-hours 72]
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta

from k2.log import EventLog
from spark_jobs.holdback import Hold, min_consumed_seq
from spark_jobs.maintenance import (
    DAY_COLUMN,
    add_now_option,
    add_snapshot_options,
    add_tables_option,
    day_before_filter,
    each_table,
    job_now,
    retention_cutoff,
    selected_tables,
    with_retries,
)
from spark_jobs.options import add_common, job_settings, table_id
from spark_jobs.snapshot_expiry import expire, table_holds

JOB = "retention"


def held_cutoff(spark, ident: str, short: str, table: str, cutoff: date, holds: list[Hold],
                log: EventLog) -> date:
    """The delete cutoff, moved back to the earliest partition with rows a reader has not read."""
    seq = min_consumed_seq(holds)
    if seq is None:
        return cutoff
    column = DAY_COLUMN[table][0]
    unread = spark.sql(
        f"SELECT min(data_file.partition.{column}) AS day, sum(data_file.record_count) AS n "
        f"FROM {ident}.entries WHERE status < 2 AND data_file.content = 0 "  # live data files
        f"AND sequence_number > {seq} AND data_file.partition.{column} < DATE '{cutoff.isoformat()}'").first()
    if unread is None or unread.day is None:
        return cutoff
    readers = ", ".join(sorted({h.stream for h in holds if h.consumed_seq == seq}))
    log.info("partitions_kept", table=short, first_day=str(unread.day), cutoff=str(cutoff), rows=unread.n,
             readers=readers, detail=f"past retention, but not yet read by {readers}; "
                                     f"deleting only before {unread.day}")
    return unread.day


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common(parser)
    parser.add_argument("--dry-run", action="store_true", help="report what would be deleted; change nothing")
    add_tables_option(parser)
    add_now_option(parser)
    add_snapshot_options(parser)
    parser.add_argument("--orphan-age-hours", type=float, default=72.0,
                        help="only remove orphan files older than this (default 72)")
    args = parser.parse_args(argv)
    tables = selected_tables(parser, args.tables)
    now = job_now(args.now)
    today = now.date()
    settings = job_settings(JOB)
    cat = settings.catalog_name

    def trim(spark, log: EventLog, table: str) -> None:
        ident = table_id(settings, table, args.namespace)
        short = f"{args.namespace}.{table}"
        holds, initial = table_holds(settings, args.namespace, table, log)
        cutoff = retention_cutoff(table, today)
        if cutoff is None:
            log.info("kept_forever", table=short, detail="no partition delete")
        else:
            cutoff = held_cutoff(spark, ident, short, table, cutoff, holds, log)
            where = day_before_filter(table, cutoff)
            doomed = spark.sql(f"SELECT count(*) AS n FROM {ident} WHERE {where}").first().n
            if args.dry_run or not doomed:
                log.info("rows_to_delete", table=short, rows=doomed, before=str(cutoff), dry_run=args.dry_run)
            else:
                with_retries(lambda i=ident, w=where: spark.sql(f"DELETE FROM {i} WHERE {w}"),
                             f"{short} delete", log)
                log.info("rows_deleted", table=short, rows=doomed, before=str(cutoff),
                         detail="whole partitions")
        expire(spark, settings, args.namespace, table, now, args.snapshot_retention_hours, args.retain_last, log,
               holds, initial, dry_run=args.dry_run)
        if args.dry_run:
            return
        orphan_cut = now - timedelta(hours=args.orphan_age_hours)
        orphans = spark.sql(
            f"CALL {cat}.system.remove_orphan_files(table => '{cat}.{short}', "
            f"older_than => TIMESTAMP '{orphan_cut:%Y-%m-%d %H:%M:%S}+00:00')").count()
        log.info("orphans_removed", table=short, files=orphans, older_than=f"{orphan_cut:%Y-%m-%d %H:%M}Z")

    return each_table(JOB, tables, trim)


if __name__ == "__main__":
    sys.exit(main())
