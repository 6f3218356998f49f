"""`k2 streams status` shows data a stream lost, from its ledger, long after the batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from k2.config import load
from k2.settings import PlatformSettings
from k2.streams import LostRange, StreamProgress, record_losses, write_progress

K2 = str(Path(sys.executable).parent / "k2")
T = "market.crypto.trades.binance"


def _status(tmp_path: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
    env.update({"K2_HOME": str(tmp_path), "K2_CHECKPOINT_ROOT": str(tmp_path / "cp")})
    result = subprocess.run([K2, "streams", "status", *args], env=env, capture_output=True, text=True,
                            timeout=60, check=True)
    return result.stdout


def test_status_lists_lost_ranges_with_totals(tmp_path):
    settings = load(PlatformSettings, {"K2_HOME": str(tmp_path), "K2_CHECKPOINT_ROOT": str(tmp_path / "cp")})
    # The progress of a later, clean batch: the loss must still show.
    write_progress(StreamProgress("bronze_ingestion", 9, "2026-01-31T00:00:00Z", 5, 1.0, 0, 1), settings)
    record_losses("bronze_ingestion", [LostRange(T, 0, 10, 15, 4, 0.0), LostRange(T, 1, 30, 40, 4, 0.0)],
                  settings)

    text = _status(tmp_path)
    bronze = text[text.index("bronze_ingestion"):text.index("silver_transformation")]
    assert "DATA LOST: 15 offsets in 2 range(s) deleted by Kafka before the stream read them" in bronze
    assert f"{T}[0] offsets 10..14 (5 records), batch 4, found 1970-01-01 00:00:00Z" in bronze
    assert f"{T}[1] offsets 30..39 (10 records)" in bronze
    assert "DATA LOST" not in text[text.index("silver_transformation"):]

    records = {r["stream"]: r for r in json.loads(_status(tmp_path, "--json"))}
    assert records["bronze_ingestion"]["data_lost"]["offsets"] == 15
    assert [(d["partition"], d["first_offset"], d["end_offset"])
            for d in records["bronze_ingestion"]["data_lost"]["ranges"]] == [(0, 10, 15), (1, 30, 40)]
    assert records["gold_aggregation"]["data_lost"]["ranges"] == []


def test_status_shows_where_the_last_batch_spent_its_time(tmp_path):
    settings = load(PlatformSettings, {"K2_HOME": str(tmp_path), "K2_CHECKPOINT_ROOT": str(tmp_path / "cp")})
    progress = StreamProgress("gold_aggregation", 7, "2026-01-31T00:00:05Z", 90, 30.0, None, 1)
    progress.breakdown = {"trigger_wait": 1.5, "source_offsets": 0.25, "sink": 2.0, "read": 0.5,
                          "merge gold": 1.25, "commit_log": 0.1, "total": 3.0}
    write_progress(progress, settings)

    text = _status(tmp_path)
    gold = text[text.index("gold_aggregation"):]
    assert ("time of that batch: trigger_wait 1.50 s, source_offsets 0.25 s, sink 2.00 s "
            "[read 0.50, merge gold 1.25], commit_log 0.10 s, total 3.00 s") in gold
    assert json.loads(_status(tmp_path, "--json"))[2]["progress"]["breakdown"]["merge gold"] == 1.25


def test_status_gives_a_running_streams_metrics_url(tmp_path):
    from k2.streams import hold_run_lock

    settings = load(PlatformSettings, {"K2_HOME": str(tmp_path), "K2_CHECKPOINT_ROOT": str(tmp_path / "cp")})
    lock = hold_run_lock("silver_transformation", settings)  # stands in for the running stream
    try:
        text = _status(tmp_path)
    finally:
        lock.close()
    silver = text[text.index("silver_transformation"):text.index("gold_aggregation")]
    assert "metrics: http://127.0.0.1:9112/metrics" in silver
    assert "metrics:" not in text[text.index("gold_aggregation"):]  # stopped: nothing serves it
    urls = {r["stream"]: r["metrics_url"] for r in json.loads(_status(tmp_path, "--json"))}
    assert urls["bronze_ingestion"] == "http://127.0.0.1:9111/metrics"
