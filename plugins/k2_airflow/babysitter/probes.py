"""Observing a stream: its lock, progress, checkpoint, and whether its source moved on.

Sources per stream: bronze reads Kafka (compare the end offsets with the offsets of the
checkpoint's newest batch); silver reads Bronze and gold reads the Silver tables
(compare each table's newest *append* snapshot with the snapshot the checkpoint
reached; delete and replace snapshots from retention and compaction are not new data).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from k2 import contracts
from k2.settings import PlatformSettings
from k2.streams import (
    LostRange,
    checkpoint_dir,
    lock_file,
    lock_holder,
    read_losses,
    read_progress,
    source_tables,
    stream_dir,
)
from k2_airflow.babysitter.decision import Observation

STATE_FILE = "babysitter.json"  # beside progress.json: the babysitter's last trigger time
LOSS_STATE_FILE = "babysitter-loss.json"  # how many loss-ledger ranges it has reported
LOSS_DETAIL_RANGES = 5  # ranges named in the log line; the rest are summed
NEW_DATA_OPERATIONS = {"append"}


def pid_alive(pid: int | None) -> bool:
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def latest_offsets_entries(checkpoint: Path) -> list[dict]:
    """Source offsets of the newest planned batch (``offsets/<n>``: v1, metadata, sources)."""
    offsets = checkpoint / "offsets"
    batches = sorted((int(p.name) for p in offsets.glob("*") if p.name.isdigit()), reverse=True)
    for batch in batches:
        try:
            lines = (offsets / str(batch)).read_text().splitlines()[2:]
        except OSError:
            continue
        entries = []
        for line in lines:
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                entries.append(value)
        return entries
    return []


def kafka_new_data(entries: list[dict], end_offsets: dict[str, dict[int, int]]) -> tuple[bool, str]:
    """Whether any partition's end offset is beyond what the checkpoint planned."""
    done: dict[str, dict[str, int]] = {}
    for entry in entries:
        for topic, parts in entry.items():
            if isinstance(parts, dict):
                done.setdefault(topic, {}).update({str(p): int(o) for p, o in parts.items()})
    behind = 0
    for topic, parts in end_offsets.items():
        for part, end in parts.items():
            behind += max(0, int(end) - done.get(topic, {}).get(str(part), 0))
    return behind > 0, f"{behind} Kafka messages beyond the checkpoint"


def iceberg_new_data(entries: list[dict], tables: dict[str, list[tuple[int, int, str]]],
                     fallback_since_ms: float | None) -> tuple[bool, str]:
    """``tables``: name -> [(snapshot_id, timestamp_ms, operation)].

    New data = an append snapshot newer than the newest snapshot the checkpoint reached
    on that table (or, if it reached none that still exists, newer than the stream's
    last progress).
    """
    reached = {int(e["snapshot_id"]) for e in entries if "snapshot_id" in e}
    newer = []
    for name, snapshots in tables.items():
        by_id = {sid: ts for sid, ts, _ in snapshots}
        done_ts = max((by_id[s] for s in reached if s in by_id), default=None)
        since = done_ts if done_ts is not None else fallback_since_ms
        appends = [ts for _, ts, op in snapshots if op in NEW_DATA_OPERATIONS]
        if appends and (since is None or max(appends) > since):
            newer.append(name)
    if newer:
        return True, "new append snapshots on " + ", ".join(newer)
    return False, "no append snapshot newer than the checkpoint on " + ", ".join(tables)


def _snapshots(settings: PlatformSettings, table: str) -> list[tuple[int, int, str]]:
    from k2.catalog import catalog

    meta = catalog(settings).load_table(contracts.qualified(table)).metadata
    return [(s.snapshot_id, s.timestamp_ms, snapshot_operation(s.summary)) for s in meta.snapshots]


EMPTY_APPEND = "empty append"


def snapshot_operation(summary) -> str:
    """The snapshot's operation, with an append that added no rows told apart as
    ``empty append``: a stream's first batch on an empty source commits one, and a
    downstream stream that never reads it is idle, not stalled."""
    if summary is None:
        return ""
    operation = str(getattr(summary.operation, "value", summary.operation))
    if operation == "append" and str(summary.get("added-records", "")) == "0":
        return EMPTY_APPEND
    return operation


def source_new_data(stream: str, settings: PlatformSettings,
                    progress_updated_at: float | None) -> tuple[bool | None, str]:
    entries = latest_offsets_entries(checkpoint_dir(stream, settings))
    try:
        if stream == "bronze_ingestion":
            from k2.kafka_admin import end_offsets
            from k2.kafka_client import client_config

            return kafka_new_data(entries, end_offsets(client_config(settings), contracts.trade_topics()))
        tables = {t: _snapshots(settings, t) for t in source_tables(stream)}
        since = progress_updated_at * 1000 if progress_updated_at else None
        return iceberg_new_data(entries, tables, since)
    except Exception as exc:  # an unreachable source must not be mistaken for "no data"
        return None, f"source check failed: {exc}"


def read_state(stream: str, settings: PlatformSettings) -> dict:
    try:
        return json.loads((stream_dir(stream, settings) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def write_state(stream: str, settings: PlatformSettings, **state) -> None:
    path = stream_dir(stream, settings) / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**state, "at": time.time()}))


def unreported_losses(stream: str, settings: PlatformSettings,
                      ledger: list[LostRange] | None = None) -> list[LostRange]:
    """Ranges of the stream's loss ledger that no babysitter run has reported yet."""
    ledger = read_losses(stream, settings) if ledger is None else ledger
    try:
        reported = int(json.loads((stream_dir(stream, settings) / LOSS_STATE_FILE).read_text())["ranges"])
    except (OSError, ValueError, KeyError, TypeError):
        reported = 0
    # A ledger shorter than what was reported was reset by hand: all of it is news.
    return ledger[reported:] if reported <= len(ledger) else ledger


def mark_losses_reported(stream: str, settings: PlatformSettings, ranges: int) -> None:
    """Record that the first ``ranges`` ledger ranges were reported (the count observed, so
    a range the stream appends meanwhile is still news for the next run)."""
    path = stream_dir(stream, settings) / LOSS_STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"ranges": ranges, "at": time.time()}))


def describe_losses(ranges: list[LostRange]) -> str:
    named = [r.describe() for r in ranges[:LOSS_DETAIL_RANGES]]
    rest = ranges[LOSS_DETAIL_RANGES:]
    if rest:
        named.append(f"and {len(rest)} more range(s), {sum(r.count for r in rest)} records")
    return "; ".join(named)


def observe(stream: str, settings: PlatformSettings, runner_active_runs: int,
            now: float | None = None) -> Observation:
    now = now or time.time()
    pid = lock_holder(stream, settings)
    progress = read_progress(stream, settings)
    try:
        running_since = now - lock_file(stream, settings).stat().st_mtime if pid else None
    except OSError:
        running_since = None
    alive = pid_alive(pid)
    new_data, detail = (None, "not checked")
    if alive:
        new_data, detail = source_new_data(stream, settings, progress.updated_at if progress else None)
    last = read_state(stream, settings).get("at")
    checkpoint = checkpoint_dir(stream, settings)
    ledger = read_losses(stream, settings)
    lost = unreported_losses(stream, settings, ledger)
    return Observation(
        stream=stream,
        holder_pid=pid,
        holder_alive=alive,
        progress_age_s=progress.age_seconds(now) if progress else None,
        running_since_s=running_since,
        source_has_new_data=new_data,
        source_detail=detail,
        runner_active_runs=runner_active_runs,
        last_trigger_age_s=(now - last) if last else None,
        # The query writes checkpoint/metadata at its first start, before any batch.
        has_checkpoint=(checkpoint / "metadata").exists(),
        new_lost_ranges=len(lost),
        new_lost_offsets=sum(r.count for r in lost),
        loss_detail=describe_losses(lost),
        loss_ledger_size=len(ledger),
    )
