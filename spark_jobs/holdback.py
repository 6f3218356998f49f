"""What retention must keep for the streams that read a table (SPEC §6b).

Silver reads Bronze and Gold reads the Silver tables as Iceberg streams. A reader's
checkpoint records, per batch, the snapshot it has read up to (``offsets/<n>``:
``snapshot_id``, ``position`` = files of that snapshot read, ``scan_all_files``); a
batch counts as consumed once ``commits/<n>`` exists. Whether the reader runs or is
stopped, retention must keep:

- that snapshot and every later one (expiring it makes the reader fail at restart,
  and expiry deletes the files of later appends it has not read yet): snapshots are
  expired only if older than the reader's snapshot;
- every partition holding a file the reader has not consumed, i.e. a live file whose
  data sequence number is above the reader's snapshot's (compaction output inherits
  the sequence number its rewrite started from, so it is held too when it could
  contain unconsumed rows): the partition delete stops before the earliest such day.

Not covered: a reader run with ``availableNow``. Iceberg's ``prepareForTriggerAvailableNow``
plans from the query's *initial* offset (``sources/<i>/offsets/0``), not from the
committed one, so such a run needs every snapshot since the checkpoint was created;
keeping those would stop expiry for good. Retention warns when it expires a reader's
initial snapshot (:func:`initial_snapshots`); the streams run on processing-time
triggers, which restart from the committed offset.

Everything here is pure except the two functions that read the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from k2.checkpoint import batches, committed_batch, iceberg_positions, parse_entries, source_offsets

NOTHING_CONSUMED = -1  # consumed_seq of a reader that has not committed a batch


@dataclass(frozen=True)
class Snap:
    """The parts of an Iceberg snapshot the hold-back needs."""

    snapshot_id: int
    sequence_number: int
    timestamp_ms: int
    added_files: int | None  # summary added-data-files
    total_files: int | None  # summary total-data-files


@dataclass(frozen=True)
class ReaderPosition:
    stream: str
    batch_id: int | None  # newest committed batch; None: a batch planned, none committed
    entries: tuple[dict, ...]  # its source offsets, one per source table


@dataclass(frozen=True)
class Hold:
    """One reader's claim on one table."""

    stream: str
    snapshot_id: int
    keep_from_ms: int  # snapshots at or after this instant stay
    consumed_seq: int  # live files with a data sequence number above this are unread
    detail: str


def reader_position(stream: str, checkpoint: Path) -> ReaderPosition | None:
    """The reader's newest committed position; None when it has not planned a batch yet
    (it will start from whatever the table holds then: nothing to keep for it)."""
    planned = batches(checkpoint / "offsets")
    if not planned:
        return None
    committed = committed_batch(checkpoint)
    if committed is not None:
        return ReaderPosition(stream, committed, _entries(checkpoint / "offsets" / str(committed)))
    # Batch 0 planned, not committed: its end names the snapshot it reads from scratch.
    return ReaderPosition(stream, None, _entries(checkpoint / "offsets" / str(planned[0])))


def _entries(offsets_file: Path) -> tuple[dict, ...]:
    return tuple(iceberg_positions(source_offsets(offsets_file)))


def initial_snapshots(checkpoint: Path) -> set[int]:
    """The snapshots the reader's sources started from (what ``availableNow`` runs plan from)."""
    found = set()
    for first in (checkpoint / "sources").glob("*/offsets/0"):
        try:
            found.update(int(e["snapshot_id"]) for e in iceberg_positions(parse_entries(first.read_text().splitlines())))
        except OSError:
            continue
    return found


def hold_for(reader: ReaderPosition, snapshots: dict[int, Snap]) -> Hold | None:
    """The reader's claim on the table whose snapshots are given; None if it has no
    position in this table (it reads another table, or its snapshot no longer exists)."""
    for entry in reader.entries:
        snap = snapshots.get(int(entry["snapshot_id"]))
        if snap is None:
            continue
        position = int(entry.get("position", 0))
        scan_all = bool(entry.get("scan_all_files", False))
        if reader.batch_id is None:
            consumed, how = NOTHING_CONSUMED, "has not committed its first batch"
        elif scan_all:
            # An initial full scan: consumed all of the snapshot's table, or count nothing.
            full = snap.total_files is not None and position >= snap.total_files
            consumed = snap.sequence_number if full else NOTHING_CONSUMED
            how = f"batch {reader.batch_id} {'read' if full else 'is part way through'} its initial scan"
        else:
            full = snap.added_files is not None and position >= snap.added_files
            consumed = snap.sequence_number if full else snap.sequence_number - 1
            how = f"batch {reader.batch_id} read {'all' if full else f'{position} of'} its files"
        return Hold(reader.stream, snap.snapshot_id, snap.timestamp_ms, consumed,
                    f"{reader.stream} is at snapshot {snap.snapshot_id} (sequence {snap.sequence_number}); {how}")
    return None


def expire_before_ms(rule_ms: int, holds: list[Hold]) -> int:
    """Expire snapshots older than this: the rule's instant, or the oldest reader's snapshot."""
    return min([rule_ms, *(h.keep_from_ms for h in holds)])


def min_consumed_seq(holds: list[Hold]) -> int | None:
    """Live files above this sequence number are unread by some reader; None: no reader."""
    return min((h.consumed_seq for h in holds), default=None)
