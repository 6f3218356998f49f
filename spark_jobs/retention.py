"""Retention: drop partitions past SPEC §3's retention, expire snapshots, remove orphans.

Per table: ``DELETE`` whole day partitions older than the retention (Bronze 7 d,
Silver and DLQ 30 d, Gold never) - aligned to partition boundaries, so it is a
metadata-only delete snapshot the streams skip (streaming-skip-delete-snapshots);
then ``expire_snapshots`` older than ``--snapshot-retention-hours`` (default 72 h:
it must exceed the longest time a stream reading the table may be down, or its
checkpoint would point at an expired snapshot); then ``remove_orphan_files`` older
than ``--orphan-age-hours`` (default 72 h, so files of in-flight commits are safe).

Nothing a downstream stream has not read is removed (spark_jobs/holdback.py): on
Bronze and the Silver tables, the partition delete stops before the earliest day
holding a file Silver / Gold have not consumed, and snapshots are expired only if
older than the snapshot each reader's checkpoint (running or stopped) stands at. What
was kept back, and for which stream, is logged.

    spark-submit spark_jobs/retention.py [--namespace market_data] [--dry-run]
        [--tables bronze_crypto_trades,...] [--now 2026-01-31T02:00:00Z]
        [--snapshot-retention-hours 72] [--orphan-age-hours 72]
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, timedelta

from k2.settings import platform
from k2.streams import checkpoint_dir, readers_of
from spark_jobs.holdback import (
    Hold,
    Snap,
    expire_before_ms,
    hold_for,
    initial_snapshots,
    min_consumed_seq,
    reader_position,
)
from spark_jobs.maintenance import (
    DAY_COLUMN,
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


def _count(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def table_holds(namespace: str, table: str) -> tuple[list[Hold], dict[int, tuple[str, int]]]:
    """Each downstream stream's claim on ``table``, from its checkpoint and the table's snapshots,
    and the readers' initial snapshots still in the table (id -> (stream, timestamp ms))."""
    readers = readers_of(table)
    if not readers:
        return [], {}
    from k2.catalog import catalog

    meta = catalog().load_table(f"{namespace}.{table}").metadata  # fresh: not Spark's cached copy
    snaps = {s.snapshot_id: Snap(s.snapshot_id, s.sequence_number or 0, s.timestamp_ms,
                                 _count(s.summary.get("added-data-files")) if s.summary else None,
                                 _count(s.summary.get("total-data-files")) if s.summary else None)
             for s in meta.snapshots}
    holds, initial = [], {}
    for stream in readers:
        checkpoint = checkpoint_dir(stream)
        initial |= {sid: (stream, snaps[sid].timestamp_ms) for sid in initial_snapshots(checkpoint) if sid in snaps}
        position = reader_position(stream, checkpoint)
        if position is None:
            continue  # never planned a batch: it will start from what the table holds then
        hold = hold_for(position, snaps)
        if hold is None and not snaps:
            continue  # an empty table: nothing to keep, and no snapshot to point at yet
        if hold is None:
            log(f"{namespace}.{table}: WARNING {stream}'s checkpoint {checkpoint} points at no snapshot "
                "of this table: it reads another namespace, or its snapshot was expired already "
                "(its restart will fail: see docs/runbook.md); nothing held back for it")
            continue
        log(f"{namespace}.{table}: holding back for {hold.detail}")
        holds.append(hold)
    return holds, initial


def held_cutoff(spark, ident: str, short: str, table: str, cutoff: date, holds: list[Hold]) -> date:
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
    log(f"{short}: KEPT partitions {unread.day} to {cutoff} (past retention): {unread.n} rows there "
        f"are not yet read by {readers}; deleting only before {unread.day}")
    return unread.day


def sql_timestamp(ms: int) -> str:
    """An epoch-ms instant as a Spark SQL literal, to the millisecond (snapshot times are ms)."""
    return f"TIMESTAMP '{datetime.fromtimestamp(ms // 1000, UTC):%Y-%m-%d %H:%M:%S}.{ms % 1000:03d}+00:00'"


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
            holds, initial = table_holds(args.namespace, table)
            cutoff = retention_cutoff(table, today)
            if cutoff is None:
                log(f"{short}: kept forever, no partition delete")
            else:
                cutoff = held_cutoff(spark, ident, short, table, cutoff, holds)
                where = day_before_filter(table, cutoff)
                doomed = spark.sql(f"SELECT count(*) AS n FROM {ident} WHERE {where}").first().n
                if args.dry_run or not doomed:
                    log(f"{short}: {doomed} rows before {cutoff} {'would be' if args.dry_run else 'to be'} deleted")
                else:
                    with_retries(lambda i=ident, w=where: spark.sql(f"DELETE FROM {i} WHERE {w}"),
                                 f"{short} delete", log)
                    log(f"{short}: deleted {doomed} rows before {cutoff} (whole partitions)")
            rule_ms = int((now - timedelta(hours=args.snapshot_retention_hours)).timestamp() * 1000)
            older_ms = expire_before_ms(rule_ms, holds)
            if older_ms < rule_ms:
                held = min(holds, key=lambda h: h.keep_from_ms)
                log(f"{short}: KEPT snapshots from {sql_timestamp(older_ms)} on, not only those after "
                    f"{sql_timestamp(rule_ms)}: {held.detail}")
            for sid, (stream, ts) in sorted(initial.items()):
                if ts < older_ms:
                    log(f"{short}: WARNING expiring snapshot {sid}, where {stream}'s checkpoint started: "
                        "the stream resumes fine on its processing-time trigger, but an availableNow run "
                        "of this checkpoint will fail (Iceberg plans those from the first snapshot)")
            if args.dry_run:
                continue
            expired = with_retries(lambda s=short, o=older_ms: spark.sql(
                f"CALL {cat}.system.expire_snapshots(table => '{cat}.{s}', "
                f"older_than => {sql_timestamp(o)}, retain_last => {args.retain_last})"
            ).first(), f"{short} expire_snapshots", log)
            log(f"{short}: expire_snapshots older than {sql_timestamp(older_ms)} -> "
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
