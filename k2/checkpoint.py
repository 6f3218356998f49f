"""Reading a Structured Streaming checkpoint: where a stream has committed up to.

Spark writes, per micro-batch ``n``, ``offsets/<n>`` (the batch's end offsets: a version
line, the batch's metadata, then one line per source) before it runs the batch, and
``commits/<n>`` once the batch is done. So the newest ``n`` in both is what the stream
has consumed for good; a planned batch without a commit may run again after a crash.

A source line is JSON: Kafka's ``{"<topic>": {"<partition>": <next offset>}}``, Iceberg's
``{"snapshot_id": ..., "position": <files of that snapshot read>, "scan_all_files": ...}``.
Retention (spark_jobs/holdback.py) and the reconciliation (k2/reconcile.py) read them.
"""

from __future__ import annotations

import json
from pathlib import Path


def batches(folder: Path) -> list[int]:
    """The batch ids with a file in ``folder`` (``offsets/`` or ``commits/``), oldest first."""
    return sorted(int(p.name) for p in folder.glob("[0-9]*") if p.name.isdigit()) if folder.exists() else []


def source_offsets(offsets_file: Path) -> list[object]:
    """One entry per source of the batch, in the query's source order (None: unreadable)."""
    return parse_entries(offsets_file.read_text().splitlines()[2:])  # after the version, the metadata


def parse_entries(lines: list[str]) -> list[object]:
    """Each line's JSON value, None for a line that is not JSON (e.g. a version line)."""
    out: list[object] = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append(None)
    return out


def committed_batch(checkpoint: Path) -> int | None:
    """The newest batch the stream has both planned and committed; None: none yet."""
    planned = set(batches(checkpoint / "offsets"))
    committed = [b for b in batches(checkpoint / "commits") if b in planned]
    return committed[-1] if committed else None


def committed_offsets(checkpoint: Path) -> list[object] | None:
    """The end offsets of the newest committed batch, one per source; None when the
    stream has committed nothing (or the folder is not a checkpoint)."""
    batch = committed_batch(checkpoint)
    if batch is None:
        return None
    try:
        return source_offsets(checkpoint / "offsets" / str(batch))
    except OSError:  # removed under us (a checkpoint reset): nothing known
        return None


def kafka_positions(entries: list[object]) -> dict[tuple[str, int], int]:
    """(topic, partition) -> next offset to read, from a batch's Kafka source entries."""
    out: dict[tuple[str, int], int] = {}
    for entry in entries:
        if not isinstance(entry, dict) or "snapshot_id" in entry:
            continue
        for topic, partitions in entry.items():
            if isinstance(partitions, dict):
                out.update({(topic, int(p)): int(o) for p, o in partitions.items()
                            if str(p).lstrip("-").isdigit() and isinstance(o, int)})
    return out


def iceberg_positions(entries: list[object]) -> list[dict]:
    """A batch's Iceberg source entries (``snapshot_id``, ``position``, ``scan_all_files``)."""
    return [e for e in entries if isinstance(e, dict) and "snapshot_id" in e]
