"""The soak bench's pure parts: one line per sample, the summary, reading a table's sizes."""

from __future__ import annotations

from types import SimpleNamespace

from k2ops.bench.soak import (
    TableSample,
    sample_line,
    sample_table,
    short_name,
    summarize,
    summary_lines,
)


def _s(t: float, table: str, snaps: int, files: int, meta: int) -> TableSample:
    return TableSample(t_s=t, table=table, snapshots=snaps, data_files=files, metadata_bytes=meta)


def test_short_names():
    assert short_name("bronze_crypto_trades") == "bronze"
    assert short_name("silver_binance_trades") == "silver_binance"
    assert short_name("silver_dlq") == "silver_dlq"
    assert short_name("gold_crypto_trades") == "gold"


def test_one_line_per_sample_with_every_table_and_the_failures():
    line = sample_line(125.7, [_s(125.7, "bronze_crypto_trades", 30, 90, 1_250_000),
                               _s(125.7, "gold_crypto_trades", 12, 4, 40_000)], failures=0)
    assert line == ("[soak]   2:05 | bronze snap 30 files 90 meta 1.2MB | "
                    "gold snap 12 files 4 meta 0.0MB | failed 0")


def test_summary_gives_first_last_max_and_growth_per_hour_in_each_half():
    # Bronze's snapshots level off once expiry runs; Gold's files keep growing.
    samples = [
        _s(0, "bronze_crypto_trades", 10, 10, 1000), _s(0, "gold_crypto_trades", 1, 1, 100),
        _s(900, "bronze_crypto_trades", 70, 40, 5000), _s(900, "gold_crypto_trades", 5, 11, 300),
        _s(1800, "bronze_crypto_trades", 70, 70, 4000), _s(1800, "gold_crypto_trades", 9, 21, 500),
    ]
    summary = summarize(samples)
    assert list(summary) == ["bronze_crypto_trades", "gold_crypto_trades"]
    assert summary["bronze_crypto_trades"]["snapshots"] == {
        "first": 10, "last": 70, "max": 70, "first_half_per_h": 240.0, "second_half_per_h": 0.0}
    assert summary["bronze_crypto_trades"]["metadata_bytes"] == {
        "first": 1000, "last": 4000, "max": 5000, "first_half_per_h": 16000.0, "second_half_per_h": -4000.0}
    assert summary["gold_crypto_trades"]["data_files"] == {
        "first": 1, "last": 21, "max": 21, "first_half_per_h": 40.0, "second_half_per_h": 40.0}


def test_summary_of_a_single_sample_has_no_growth():
    summary = summarize([_s(0, "silver_dlq", 3, 0, 10)])
    assert summary["silver_dlq"]["snapshots"] == {
        "first": 3, "last": 3, "max": 3, "first_half_per_h": 0.0, "second_half_per_h": 0.0}


def test_summary_lines_name_failed_batches_and_failed_maintenance():
    summary = summarize([_s(0, "silver_dlq", 3, 0, 2_000_000), _s(3600, "silver_dlq", 5, 1, 3_000_000)])
    failures = [{"stream": "silver_transformation", "t_s": 1200.0, "last_line": "FAILED: cast"}]
    maintenance = [{"job": "compaction", "t_s": 600.0, "returncode": 0, "last_line": "done"},
                   {"job": "retention", "t_s": 700.0, "returncode": 1, "last_line": "boom"}]
    lines = summary_lines(summary, failures, maintenance)
    assert lines[0] == ("[soak] silver_dlq: snapshots 3 -> 5 (max 5; per h 2 then 2); "
                        "data_files 0 -> 1 (max 1; per h 1 then 1); "
                        "metadata_bytes 2.0MB -> 3.0MB (max 3.0MB; per h 1.0MB then 1.0MB)")
    assert lines[1:] == [
        "[soak] maintenance runs: 2, failed: 1",
        "[soak]   FAILED retention at 700s: boom",
        "[soak] failed batches (stream exits): 1",
        "[soak]   silver_transformation at 1200s: FAILED: cast",
    ]


def test_sample_table_reads_snapshots_files_and_the_metadata_folder(tmp_path):
    meta = tmp_path / "metadata"
    meta.mkdir()
    (meta / "00001.metadata.json").write_bytes(b"x" * 300)
    (meta / "snap-1.avro").write_bytes(b"x" * 200)
    snapshot = SimpleNamespace(summary={"total-data-files": "7"})
    table = SimpleNamespace(
        current_snapshot=lambda: snapshot,
        metadata_location=f"file:{meta}/00001.metadata.json",  # as pyiceberg reports it
        metadata=SimpleNamespace(snapshots=[object(), object()]),
    )
    assert sample_table(table, "gold_crypto_trades", 5.0) == _s(5.0, "gold_crypto_trades", 2, 7, 500)
