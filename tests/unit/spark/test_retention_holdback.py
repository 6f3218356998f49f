"""Retention's hold-back for downstream readers: checkpoint positions and what they keep."""

from __future__ import annotations

import json
from pathlib import Path

from spark_jobs.holdback import (
    NOTHING_CONSUMED,
    Hold,
    ReaderPosition,
    Snap,
    expire_before_ms,
    hold_for,
    initial_snapshots,
    min_consumed_seq,
    reader_position,
)
from spark_jobs.snapshot_expiry import sql_timestamp

SNAPS = {
    11: Snap(11, 1, 1_000, added_files=2, total_files=2),
    12: Snap(12, 2, 2_000, added_files=3, total_files=5),
    13: Snap(13, 3, 3_000, added_files=1, total_files=6),
}


def write_batch(checkpoint: Path, batch: int, entries: list[dict], committed: bool) -> None:
    (checkpoint / "offsets").mkdir(parents=True, exist_ok=True)
    (checkpoint / "commits").mkdir(parents=True, exist_ok=True)
    lines = ["v1", json.dumps({"batchWatermarkMs": 0, "batchTimestampMs": 1}), *map(json.dumps, entries)]
    (checkpoint / "offsets" / str(batch)).write_text("\n".join(lines) + "\n")
    if committed:
        (checkpoint / "commits" / str(batch)).write_text("v1\n{}\n")


def entry(snapshot: int, position: int, scan_all: bool = False) -> dict:
    return {"version": 1, "snapshot_id": snapshot, "position": position, "scan_all_files": scan_all}


def test_position_is_the_newest_committed_batch_not_the_planned_one(tmp_path):
    write_batch(tmp_path, 0, [entry(11, 2, True)], committed=True)
    write_batch(tmp_path, 1, [entry(12, 3)], committed=True)
    write_batch(tmp_path, 2, [entry(13, 1)], committed=False)  # planned, would be replayed
    assert reader_position("silver_transformation", tmp_path) == ReaderPosition(
        "silver_transformation", 1, (entry(12, 3),))


def test_no_offsets_means_nothing_to_keep(tmp_path):
    assert reader_position("silver_transformation", tmp_path) is None
    (tmp_path / "offsets").mkdir()
    assert reader_position("silver_transformation", tmp_path) is None


def test_first_batch_planned_but_not_committed_consumed_nothing(tmp_path):
    write_batch(tmp_path, 0, [entry(12, 5, True)], committed=False)
    position = reader_position("silver_transformation", tmp_path)
    assert position == ReaderPosition("silver_transformation", None, (entry(12, 5, True),))
    hold = hold_for(position, SNAPS)
    assert (hold.snapshot_id, hold.keep_from_ms, hold.consumed_seq) == (12, 2_000, NOTHING_CONSUMED)


def test_fully_read_snapshot_keeps_it_and_later_ones_and_only_later_files():
    hold = hold_for(ReaderPosition("silver_transformation", 4, (entry(12, 3),)), SNAPS)
    assert (hold.keep_from_ms, hold.consumed_seq) == (2_000, 2)
    assert "silver_transformation is at snapshot 12 (sequence 2); batch 4 read all its files" == hold.detail


def test_partly_read_snapshot_counts_its_files_as_unread():
    hold = hold_for(ReaderPosition("silver_transformation", 4, (entry(12, 1),)), SNAPS)
    assert (hold.keep_from_ms, hold.consumed_seq) == (2_000, 1)


def test_initial_scan_counts_only_when_complete():
    done = hold_for(ReaderPosition("silver_transformation", 0, (entry(12, 5, True),)), SNAPS)
    part = hold_for(ReaderPosition("silver_transformation", 0, (entry(12, 4, True),)), SNAPS)
    assert (done.consumed_seq, part.consumed_seq) == (2, NOTHING_CONSUMED)


def test_gold_entry_for_another_table_is_ignored_and_its_own_is_used():
    # Gold reads two Silver tables: one offsets line each; only this table's snapshot counts.
    other_tables_snapshot = 999
    hold = hold_for(ReaderPosition("gold_aggregation", 7, (entry(other_tables_snapshot, 4), entry(13, 1))), SNAPS)
    assert (hold.stream, hold.snapshot_id, hold.consumed_seq) == ("gold_aggregation", 13, 3)


def test_reader_whose_snapshot_is_gone_claims_nothing():
    assert hold_for(ReaderPosition("silver_transformation", 3, (entry(42, 1),)), SNAPS) is None


def test_expiry_and_delete_follow_the_slowest_reader():
    holds = [Hold("gold_aggregation", 13, 3_000, 3, ""), Hold("gold_aggregation", 12, 2_000, 1, "")]
    assert expire_before_ms(10_000, holds) == 2_000
    assert expire_before_ms(1_500, holds) == 1_500  # the rule already keeps more
    assert expire_before_ms(10_000, []) == 10_000
    assert min_consumed_seq(holds) == 1
    assert min_consumed_seq([]) is None


def test_sql_timestamp_keeps_milliseconds():
    assert sql_timestamp(1_769_903_999_999) == "TIMESTAMP '2026-01-31 23:59:59.999+00:00'"
    assert sql_timestamp(5) == "TIMESTAMP '1970-01-01 00:00:00.005+00:00'"


def test_initial_snapshots_of_every_source(tmp_path):
    for source, snapshot in (("0", 11), ("1", 12)):
        folder = tmp_path / "sources" / source / "offsets"
        folder.mkdir(parents=True)
        (folder / "0").write_text(json.dumps(entry(snapshot, 0)))
    assert initial_snapshots(tmp_path) == {11, 12}
    assert initial_snapshots(tmp_path / "missing") == set()
