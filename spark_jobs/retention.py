"""Retention: drop partitions past SPEC §3's retention, expire snapshots, remove orphans.

Per table: ``DELETE`` whole day partitions older than the retention (Bronze 7 d,
Silver and DLQ 30 d, Gold never) - aligned to partition boundaries, so it is a
metadata-only delete snapshot the streams skip (streaming-skip-delete-snapshots);
then ``expire_snapshots`` older than ``--snapshot-retention-hours`` (default 72 h:
it must exceed the longest time a stream reading the table may be down, or its
checkpoint would point at an expired snapshot); then ``remove_orphan_files`` older
than ``--orphan-age-hours`` (default 72 h, so files of in-flight commits are safe).

    spark-submit spark_jobs/retention.py [--namespace market_data] [--dry-run]
        [--tables bronze_crypto_trades,...] [--now 2026-01-31T02:00:00Z]
        [--snapshot-retention-hours 72] [--orphan-age-hours 72]
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta

from k2.settings import platform
from spark_jobs.maintenance import (
    add_now_option,
    add_tables_option,
    day_before_filter,
    job_now,
    retention_cutoff,
    say,
    selected_tables,
    with_retries,
)
from spark_jobs.options import add_common, table_id

JOB = "retention"


def log(message: str) -> None:
    say(JOB, message)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common(parser)
    parser.add_argument("--dry-run", action="store_true", help="report what would be deleted; change nothing")
    add_tables_option(parser)
    add_now_option(parser)
    parser.add_argument("--snapshot-retention-hours", type=float, default=72.0,
                        help="expire snapshots older than this (default 72; > longest stream downtime)")
    parser.add_argument("--retain-last", type=int, default=20, help="always keep this many snapshots")
    parser.add_argument("--orphan-age-hours", type=float, default=72.0,
                        help="only remove orphan files older than this (default 72)")
    args = parser.parse_args(argv)
    tables = selected_tables(parser, args.tables)
    now = job_now(args.now)
    today = now.date()

    from spark_jobs.session import spark_session

    spark = spark_session(JOB)
    cat = platform().catalog_name
    try:
        for table in tables:
            ident = table_id(table, args.namespace)
            short = f"{args.namespace}.{table}"
            cutoff = retention_cutoff(table, today)
            if cutoff is None:
                log(f"{short}: kept forever, no partition delete")
            else:
                where = day_before_filter(table, cutoff)
                doomed = spark.sql(f"SELECT count(*) AS n FROM {ident} WHERE {where}").first().n
                if args.dry_run or not doomed:
                    log(f"{short}: {doomed} rows before {cutoff} {'would be' if args.dry_run else 'to be'} deleted")
                else:
                    with_retries(lambda i=ident, w=where: spark.sql(f"DELETE FROM {i} WHERE {w}"),
                                 f"{short} delete", log)
                    log(f"{short}: deleted {doomed} rows before {cutoff} (whole partitions)")
            if args.dry_run:
                continue
            older = now - timedelta(hours=args.snapshot_retention_hours)
            expired = with_retries(lambda s=short, o=older: spark.sql(
                f"CALL {cat}.system.expire_snapshots(table => '{cat}.{s}', "
                f"older_than => TIMESTAMP '{o:%Y-%m-%d %H:%M:%S}+00:00', retain_last => {args.retain_last})"
            ).first(), f"{short} expire_snapshots", log)
            log(f"{short}: expire_snapshots older than {older:%Y-%m-%d %H:%M}Z -> "
                f"{expired.asDict() if expired else {}}")
            orphan_cut = now - timedelta(hours=args.orphan_age_hours)
            orphans = spark.sql(
                f"CALL {cat}.system.remove_orphan_files(table => '{cat}.{short}', "
                f"older_than => TIMESTAMP '{orphan_cut:%Y-%m-%d %H:%M:%S}+00:00')").count()
            log(f"{short}: removed {orphans} orphan files older than {orphan_cut:%Y-%m-%d %H:%M}Z")
        log("done")
        return 0
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
