"""Which data files each commit of a table added, and when: rows with their commit time.

A row's commit time is the timestamp of the snapshot that *added* its data file. The
table's current manifests do not say that once maintenance has run: compaction
rewrites files under a ``replace`` snapshot (new files, new snapshot id, old rows),
and a manifest rewrite turns ADDED entries into EXISTING ones. Each snapshot's own
manifest list does not change, though: the entries a snapshot added are the ones with
status ADDED and its snapshot id, in the manifests it wrote (``added_snapshot_id``).
So this walks the snapshots committed in a time range, keeps the ``append`` ones (the
streams' commits, Gold's insert-only MERGE included; ``replace``, ``overwrite`` and
``delete`` carry no new rows) and reads, from each, only what it added.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

APPEND = "append"
ADDED = 1  # ManifestEntryStatus.ADDED
DATA = 0  # ManifestContent.DATA


@dataclass(frozen=True)
class AddedFile:
    path: str
    commit_ms: int  # the adding snapshot's timestamp
    snapshot_id: int
    records: int


@dataclass
class Walk:
    """The files appended in a time range, and the snapshots left out by operation."""

    files: list[AddedFile] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # operation -> snapshots not read


def operation(snapshot) -> str:
    summary = snapshot.summary
    op = getattr(summary, "operation", None) if summary is not None else None
    return str(getattr(op, "value", op) or "unknown")


def added_files(snapshots: Iterable, io, since_ms: int, until_ms: int | None = None) -> Walk:
    """Data files added by the append snapshots committed in [since_ms, until_ms]
    (``until_ms`` None: up to now), oldest commit first."""
    walk = Walk()
    chosen = [s for s in snapshots
              if s.timestamp_ms >= since_ms and (until_ms is None or s.timestamp_ms <= until_ms)]
    for snap in sorted(chosen, key=lambda s: (s.timestamp_ms, s.snapshot_id)):
        op = operation(snap)
        if op != APPEND:
            walk.skipped[op] += 1
            continue
        for manifest in snap.manifests(io):
            # Manifests written by earlier commits hold no entry this one added.
            if manifest.added_snapshot_id != snap.snapshot_id or int(manifest.content) != DATA:
                continue
            for entry in manifest.fetch_manifest_entry(io, discard_deleted=True):
                if int(entry.status) == ADDED and entry.snapshot_id == snap.snapshot_id:
                    walk.files.append(AddedFile(entry.data_file.file_path, snap.timestamp_ms,
                                                snap.snapshot_id, entry.data_file.record_count))
    return walk


def read_rows(table, files: Iterable[AddedFile], columns: list[str]) -> tuple[list[dict], int]:
    """``columns`` of every row of ``files`` plus ``_commit_ms``; and how many files were
    gone (deleted by retention after an expiry: their rows cannot be measured)."""
    import pyarrow.parquet as pq

    rows: list[dict] = []
    missing = 0
    for f in files:
        try:
            with table.io.new_input(f.path).open() as stream:
                data = pq.read_table(stream, columns=columns)
        except FileNotFoundError:
            missing += 1
            continue
        for row in data.to_pylist():
            row["_commit_ms"] = f.commit_ms
            rows.append(row)
    return rows, missing


def appended_records(snapshots: Iterable, since_ms: int) -> tuple[int, int]:
    """(records, commits) the append snapshots since ``since_ms`` added, from their
    summaries alone (no manifest read): the cheap count the progress lines print."""
    records = commits = 0
    for snap in snapshots:
        if snap.timestamp_ms >= since_ms and operation(snap) == APPEND:
            commits += 1
            records += int(snap.summary.get("added-records") or 0)
    return records, commits
