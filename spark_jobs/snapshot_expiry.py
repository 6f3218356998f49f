"""Snapshot expiry for the maintenance jobs, never past what a stream still reads.

Every stream commit is a snapshot, and every commit rewrites the table's
``metadata.json`` with all snapshots kept, so a table written every 2 s gathers ~1,800
snapshots an hour (~1.1 KB each: 2 MB of metadata) and each commit, and each
downstream refresh, reads and writes a file that grows until expiry runs. Compaction
(hourly) and retention (daily) both expire snapshots older than
``K2_SNAPSHOT_RETENTION_HOURS`` (default 1), so a table keeps one to two hours of
commits; time travel reaches that far back. Longer costs every stream batch: Iceberg
1.11 in the stream JVM reads a metadata file of 1,800 / 3,600 / 7,200 / 12,600
snapshots in 18 / 59 / 116 / 201 ms and writes it in 21 / 33 / 54 / 88 ms (median of
8, 2026-12-04). A cycle of the three streams does about fourteen such reads and seven
writes (Bronze's commit, Silver's read of Bronze and its commits, Gold's reads of
Silver and its MERGE): by that count 0.4-1.1 CPU-s per 2-s cycle with one to two
hours kept, but ~3.4 CPU-s, more than the machine's two cores, with the seven hours
the earlier default of 6 h came to before the next expiry.

Nothing a downstream stream has not read is expired (spark_jobs/holdback.py): snapshots
are expired only if older than the snapshot each reader's checkpoint (running or
stopped) stands at. What was kept back, and for which stream, is logged.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pyspark.sql import SparkSession

from k2.log import EventLog
from k2.settings import PlatformSettings
from k2.streams import checkpoint_dir, readers_of
from spark_jobs.holdback import (
    Hold,
    Snap,
    expire_before_ms,
    hold_for,
    initial_snapshots,
    reader_position,
)
from spark_jobs.maintenance import with_retries
from spark_jobs.tables import iceberg_table


def _count(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def table_holds(settings: PlatformSettings, namespace: str, table: str,
                log: EventLog) -> tuple[list[Hold], dict[int, tuple[str, int]]]:
    """Each downstream stream's claim on ``table``, from its checkpoint and the table's snapshots,
    and the readers' initial snapshots still in the table (id -> (stream, timestamp ms))."""
    readers = readers_of(table)
    if not readers:
        return [], {}
    from k2.catalog import catalog

    meta = catalog(settings).load_table(f"{namespace}.{table}").metadata  # fresh: not Spark's cached copy
    snaps = {s.snapshot_id: Snap(s.snapshot_id, s.sequence_number or 0, s.timestamp_ms,
                                 _count(s.summary.get("added-data-files")) if s.summary else None,
                                 _count(s.summary.get("total-data-files")) if s.summary else None)
             for s in meta.snapshots}
    holds, initial = [], {}
    for stream in readers:
        checkpoint = checkpoint_dir(stream, settings)
        initial |= {sid: (stream, snaps[sid].timestamp_ms) for sid in initial_snapshots(checkpoint) if sid in snaps}
        position = reader_position(stream, checkpoint)
        if position is None:
            continue  # never planned a batch: it will start from what the table holds then
        hold = hold_for(position, snaps)
        if hold is None and not snaps:
            continue  # an empty table: nothing to keep, and no snapshot to point at yet
        if hold is None:
            log.warning("checkpoint_snapshot_missing", table=f"{namespace}.{table}", stream=stream,
                        checkpoint=str(checkpoint),
                        detail="the checkpoint points at no snapshot of this table: it reads another "
                               "namespace, or its snapshot was expired already (its restart will fail: "
                               "see docs/runbook.md); nothing held back for it")
            continue
        log.info("holding_back", table=f"{namespace}.{table}", stream=stream, detail=hold.detail)
        holds.append(hold)
    return holds, initial


def sql_timestamp(ms: int) -> str:
    """An epoch-ms instant as a Spark SQL literal, to the millisecond (snapshot times are ms)."""
    return f"TIMESTAMP '{datetime.fromtimestamp(ms // 1000, UTC):%Y-%m-%d %H:%M:%S}.{ms % 1000:03d}+00:00'"


def expire(spark: SparkSession, settings: PlatformSettings, namespace: str, table: str, now: datetime,
           retention_hours: float, retain_last: int, log: EventLog, holds: list[Hold] | None = None,
           initial: dict[int, tuple[str, int]] | None = None, dry_run: bool = False) -> None:
    """Expire ``table``'s snapshots older than ``retention_hours`` before ``now``, keeping
    those its readers need (``holds``/``initial``: from :func:`table_holds`, read here when
    not given) and the last ``retain_last``. One log line says what was expired or kept."""
    short = f"{namespace}.{table}"
    if holds is None or initial is None:
        holds, initial = table_holds(settings, namespace, table, log)
    rule_ms = int((now - timedelta(hours=retention_hours)).timestamp() * 1000)
    older_ms = expire_before_ms(rule_ms, holds)
    if older_ms < rule_ms:
        held = min(holds, key=lambda h: h.keep_from_ms)
        log.info("snapshots_kept", table=short, kept_from=sql_timestamp(older_ms),
                 retention_from=sql_timestamp(rule_ms), stream=held.stream, detail=held.detail)
    for sid, (stream, ts) in sorted(initial.items()):
        if ts < older_ms:
            log.warning("initial_snapshot_expiring", table=short, snapshot_id=sid, stream=stream,
                        detail="the stream's checkpoint started at this snapshot: the stream resumes "
                               "fine on its processing-time trigger, but an availableNow run of this "
                               "checkpoint will fail (Iceberg plans those from the first snapshot)")
    if dry_run:
        return
    before, after = with_retries(lambda: _expire_snapshots(spark, f"{settings.catalog_name}.{short}", older_ms,
                                                           retain_last), f"{short} expire_snapshots", log)
    log.info("snapshots_expired", table=short, older_than=sql_timestamp(older_ms),
             snapshots_before=before, snapshots_after=after)  # after: the streams' commits meanwhile included


def _expire_snapshots(spark: SparkSession, table: str, older_ms: int, retain_last: int) -> tuple[int, int]:
    """Expire with Iceberg's table API in the driver, not the ``expire_snapshots`` procedure:
    the procedure's Spark action lists the files of every snapshot kept, in Spark jobs,
    even when nothing is due. On this 2-core machine, with ~1,300 snapshots a table, it
    took 15 s to expire nothing and 20 s to expire 1,036 snapshots (1.5-3.5 minutes a
    table beside the streams), where the table API took under 0.1 s and 2.2 s: it reads
    only what the expired snapshots changed (Iceberg's incremental cleanup, for a table
    with one branch, which the streams' tables are). Files no snapshot references any
    more are deleted either way. Returns the snapshot count before and after."""
    loaded = iceberg_table(spark, table)
    count = spark._jvm.org.apache.iceberg.relocated.com.google.common.collect.Iterables.size
    loaded.refresh()  # the catalog's copy, not one cached by an earlier step of the job
    before = count(loaded.snapshots())
    loaded.expireSnapshots().expireOlderThan(older_ms).retainLast(retain_last).commit()
    loaded.refresh()
    return before, count(loaded.snapshots())
