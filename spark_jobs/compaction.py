"""Compaction: rewrite small files of cold partitions, then manifests, then expire snapshots.

Only partitions no stream writes to any more are rewritten (days before today for
the day-partitioned tables, hours older than ``--cold-after-hours`` for Gold), so
compaction never races a streaming append or Gold's MERGE on the same partition.
Gold is rewritten with the ``sort`` strategy in its table order (timestamp,
trade_id), which keeps one-hour range queries reading few, ordered files. Replace
snapshots are skipped by streaming readers automatically. Commits that conflict with
a stream's are retried.

Then snapshots older than ``--snapshot-retention-hours`` are expired, except those a
stream still reads (spark_jobs/snapshot_expiry.py): the streams commit every few
seconds, and every commit rewrites metadata holding all snapshots kept, so expiry runs
hourly here rather than daily with retention, keeping commits as fast in the 23rd hour
as in the first.

    spark-submit spark_jobs/compaction.py [--namespace market_data] [--cold-after-hours 2] [--now ISO-8601]
        [--tables gold_crypto_trades,...] [--min-input-files 2] [--snapshot-retention-hours 1]
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta

from k2.contracts import GOLD_TABLE
from k2.log import EventLog
from spark_jobs.maintenance import (
    add_now_option,
    add_snapshot_options,
    add_tables_option,
    day_before_filter,
    each_table,
    hour_before_filter,
    job_now,
    selected_tables,
    with_retries,
)
from spark_jobs.options import add_common, job_settings
from spark_jobs.snapshot_expiry import expire

JOB = "compaction"


def cold_filter(table: str, now: datetime, cold_after_hours: float) -> str:
    cold_before = now - timedelta(hours=cold_after_hours)
    if table == GOLD_TABLE:
        return hour_before_filter(cold_before)
    return day_before_filter(table, cold_before.date())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common(parser)
    parser.add_argument("--cold-after-hours", type=float, default=2.0,
                        help="a partition is cold once it ended this long ago (default 2)")
    add_tables_option(parser)
    add_now_option(parser)
    parser.add_argument("--min-input-files", type=int, default=2,
                        help="rewrite a file group only if it has at least this many files")
    parser.add_argument("--attempts", type=int, default=5, help="tries per commit on conflicts")
    add_snapshot_options(parser)
    args = parser.parse_args(argv)
    tables = selected_tables(parser, args.tables)
    settings = job_settings(JOB)
    cat = settings.catalog_name
    now = job_now(args.now)

    def compact(spark, log: EventLog, table: str) -> None:
        short = f"{args.namespace}.{table}"
        where = cold_filter(table, now, args.cold_after_hours).replace("'", "\\'")
        strategy = ", strategy => 'sort'" if table == GOLD_TABLE else ""
        sql = (f"CALL {cat}.system.rewrite_data_files(table => '{cat}.{short}'{strategy}, where => '{where}', "
               f"options => map('min-input-files', '{args.min_input_files}', "
               "'partial-progress.enabled', 'true'))")
        log.info("rewrite_started", table=short, where=cold_filter(table, now, args.cold_after_hours))
        r = with_retries(lambda q=sql: spark.sql(q).first(), f"{short} rewrite_data_files", log,
                         attempts=args.attempts)
        log.info("files_rewritten", table=short, rewritten_files=r.rewritten_data_files_count,
                 added_files=r.added_data_files_count, rewritten_bytes=r.rewritten_bytes_count)
        m = with_retries(lambda s=short: spark.sql(
            f"CALL {cat}.system.rewrite_manifests(table => '{cat}.{s}')").first(),
            f"{short} rewrite_manifests", log, attempts=args.attempts)
        log.info("manifests_rewritten", table=short, rewritten_manifests=m.rewritten_manifests_count,
                 added_manifests=m.added_manifests_count)
        expire(spark, settings, args.namespace, table, now, args.snapshot_retention_hours, args.retain_last, log)

    return each_table(JOB, tables, compact)


if __name__ == "__main__":
    sys.exit(main())
