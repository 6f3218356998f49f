"""How far a stream has committed, read from checkpoint files in Spark's format, and
what the reconciliation makes of it (k2/checkpoint.py, k2/reconcile.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from k2.checkpoint import committed_batch, committed_offsets, iceberg_positions, kafka_positions
from k2.reconcile import PartitionReport, Report, consumed_snapshot

META = '{"batchWatermarkMs":0,"batchTimestampMs":1764760000000,"conf":{"spark.sql.shuffle.partitions":"2"}}'


def write_batch(checkpoint: Path, batch: int, sources: list[str], committed: bool) -> None:
    (checkpoint / "offsets").mkdir(parents=True, exist_ok=True)
    (checkpoint / "commits").mkdir(parents=True, exist_ok=True)
    (checkpoint / "offsets" / str(batch)).write_text("\n".join(["v1", META, *sources]))
    if committed:
        (checkpoint / "commits" / str(batch)).write_text('v1\n{"nextBatchWatermarkMs":0}')


def test_the_newest_committed_batch_counts_not_a_planned_one(tmp_path):
    write_batch(tmp_path, 6, ['{"market.crypto.trades.binance.v3":{"0":100,"1":7}}'], committed=True)
    write_batch(tmp_path, 7, ['{"market.crypto.trades.binance.v3":{"0":130,"1":9}}'], committed=False)
    (tmp_path / "offsets" / ".7.crc").write_text("")  # Spark's checksum files are not batches

    assert committed_batch(tmp_path) == 6
    assert kafka_positions(committed_offsets(tmp_path)) == {
        ("market.crypto.trades.binance.v3", 0): 100, ("market.crypto.trades.binance.v3", 1): 7}


def test_no_checkpoint_or_no_commit_means_nothing_known(tmp_path):
    assert committed_offsets(tmp_path / "absent") is None
    write_batch(tmp_path, 0, ['{"t":{"0":5}}'], committed=False)
    assert committed_offsets(tmp_path) is None


def test_kafka_and_iceberg_entries_are_told_apart(tmp_path):
    snapshot = {"version": 1, "snapshot_id": 4417, "position": 2, "scan_all_files": False}
    write_batch(tmp_path, 3, [json.dumps(snapshot), '{"a":{"0":1,"2":40}}', "not json"], committed=True)

    entries = committed_offsets(tmp_path)
    assert entries[2] is None
    assert iceberg_positions(entries) == [snapshot]
    assert kafka_positions(entries) == {("a", 0): 1, ("a", 2): 40}


@dataclass
class FakeSummary:  # pyiceberg's Summary: a mapping of the snapshot's summary properties
    properties: dict

    def get(self, key: str) -> str | None:
        return self.properties.get(key)


@dataclass
class FakeSnapshot:
    snapshot_id: int
    parent_snapshot_id: int | None
    summary: FakeSummary


@dataclass
class FakeTable:
    snapshots: dict[int, FakeSnapshot] = field(default_factory=dict)

    def add(self, snapshot_id: int, parent: int | None, added: int, total: int) -> None:
        self.snapshots[snapshot_id] = FakeSnapshot(snapshot_id, parent, FakeSummary(
            {"added-data-files": str(added), "total-data-files": str(total)}))

    def snapshot_by_id(self, snapshot_id: int) -> FakeSnapshot | None:
        return self.snapshots.get(snapshot_id)


@pytest.fixture
def table() -> FakeTable:
    t = FakeTable()
    t.add(10, None, added=2, total=2)
    t.add(11, 10, added=3, total=5)
    return t


def test_a_snapshot_read_in_full_is_consumed(table):
    assert consumed_snapshot(table, {"snapshot_id": 11, "position": 3, "scan_all_files": False}) == 11


def test_a_snapshot_read_part_way_leaves_only_its_parent_consumed(table):
    assert consumed_snapshot(table, {"snapshot_id": 11, "position": 1, "scan_all_files": False}) == 10
    assert consumed_snapshot(table, {"snapshot_id": 10, "position": 0, "scan_all_files": False}) is None


def test_an_initial_full_scan_counts_only_when_finished(table):
    assert consumed_snapshot(table, {"snapshot_id": 11, "position": 5, "scan_all_files": True}) == 11
    assert consumed_snapshot(table, {"snapshot_id": 11, "position": 4, "scan_all_files": True}) is None


def test_another_tables_snapshot_is_refused(table):
    with pytest.raises(KeyError):
        consumed_snapshot(table, {"snapshot_id": 99, "position": 1, "scan_all_files": False})


def test_the_report_counts_in_flight_apart_from_missing():
    behind = PartitionReport("t", 0, 100, 110, bronze=8, silver=5, dlq=0, gold=5,
                             in_flight={"bronze_ingestion": 2, "silver_transformation": 3})
    lost = PartitionReport("t", 1, 0, 4, bronze=4, silver=4, gold=3, not_in_gold=[(3, "m-3")],
                           in_flight={"bronze_ingestion": 0})
    report = Report(datetime(2026, 12, 3, 10, tzinfo=UTC), datetime(2026, 12, 3, 11, tzinfo=UTC),
                    [behind, lost], unknown=["gold_aggregation"])

    assert (report.missing, report.in_flight) == (1, 5)
    lines = report.lines()
    assert lines[0].endswith("14 records in 2 partitions, 1 missing, 5 in flight (not checked yet)")
    assert lines[1].startswith("  gold_aggregation: no committed position")
    assert lines[2] == ("t[0] offsets 100..109: produced 10, bronze 8, silver 5 + silver_dlq 0, gold 5 trades, "
                        "2 not yet read by bronze_ingestion, 3 not yet read by silver_transformation: ok")
    assert lines[3] == "t[1] offsets 0..3: produced 4, bronze 4, silver 4 + silver_dlq 0, gold 3 trades"
    assert lines[4] == "  MISSING in gold: 1 record(s), e.g. offset 3 message_id m-3"
