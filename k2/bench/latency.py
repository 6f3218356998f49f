"""End-to-end and Silver latency, and worker memory, measured on a live isolated pipeline.

Method: the simulator sends trades at a fixed rate to the real workers, which feed the
real three streams on an isolated namespace. Afterwards, for every row, Iceberg
metadata tells which snapshot (commit) added the data file holding it:

- end-to-end latency = Gold commit time − the trade's exchange timestamp
  (the simulator stamps each trade with its send time);
- Silver latency     = Silver commit time − the Bronze commit time of the same record
  (Bronze rows are matched by decoding their Avro bytes for ``message_id``);
- worker memory      = RSS of each worker process, sampled every 5 s.

Percentiles are given twice: over every trade, and over the steady state, the trades
sent after the first ``warmup`` seconds (the first micro-batches of freshly started
streams JIT-compile their code and start Python workers; a running platform has
long paid for that).
"""

from __future__ import annotations

import io
import statistics
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq

from k2.contracts import BRONZE_TABLE, GOLD_TABLE, silver_table
from k2.pipeline import IsolatedPipeline, wait_for


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _local(path: str) -> str:
    return path.removeprefix("file://")


def rows_with_commit_time(table, columns: list[str]) -> list[dict]:
    """Every live row's ``columns`` plus ``_commit_ms``: when its data file was committed."""
    committed = {s.snapshot_id: s.timestamp_ms for s in table.metadata.snapshots}
    out = []
    for entry in table.inspect.entries().to_pylist():
        if entry["status"] == 2:  # deleted
            continue
        commit_ms = committed[entry["snapshot_id"]]
        data = pq.read_table(_local(entry["data_file"]["file_path"]), columns=columns)
        for row in data.to_pylist():
            row["_commit_ms"] = commit_ms
            out.append(row)
    return out


def _bronze_message_ids(rows: list[dict]) -> dict[str, int]:
    """message_id -> Bronze commit ms, decoding each record's Avro body with fastavro."""
    import json

    import fastavro

    from k2.contracts import trade_schema_text

    schema = fastavro.parse_schema(json.loads(trade_schema_text()))
    out: dict[str, int] = {}
    for row in rows:
        value = row["value"]
        if not value or len(value) < 6 or value[0] != 0:
            continue
        try:
            record = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema)
        except Exception:  # noqa: BLE001 - invalid records are Silver's DLQ, not latency
            continue
        out.setdefault(record["message_id"], row["_commit_ms"])
    return out


class RssSampler(threading.Thread):
    """RSS (MB) of the workers' processes every ``interval`` seconds."""

    def __init__(self, pipe: IsolatedPipeline, interval: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.pipe, self.interval = pipe, interval
        self.samples: list[tuple[float, float]] = []  # (seconds since start, max RSS MB)
        self.stop_event = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self.stop_event.wait(self.interval):
            if self.pipe.workers is None:
                continue
            children = subprocess.run(["pgrep", "-P", str(self.pipe.workers.pid)],
                                      capture_output=True, text=True).stdout.split()
            rss = []
            for pid in children:
                status = Path(f"/proc/{pid}/status")
                if status.exists():
                    for line in status.read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            rss.append(int(line.split()[1]) / 1024)
            if rss:
                self.samples.append((time.monotonic() - start, max(rss)))


def measure(workdir: Path, rate: float, seconds: float, warmup: float = 30.0) -> dict:
    from workers.simulator import SimulatorConfig, SimulatorThread

    pipe = IsolatedPipeline(workdir, f"bench{uuid.uuid4().hex[:6]}", trigger="2 seconds")
    sim = None
    try:
        pipe.create_topics()
        pipe.bootstrap_tables()
        pipe.start_streams()
        sim = SimulatorThread(SimulatorConfig(rate=rate, seed=3))
        steady_from = time.time() + warmup  # trades stamped after this are the steady state
        pipe.start_workers(sim.urls())
        sampler = RssSampler(pipe)
        sampler.start()
        time.sleep(seconds)
        sim.stop()
        sim = None
        pipe.stop_workers()
        sampler.stop_event.set()
        sent_approx = int(rate * seconds * 2 * 0.9)
        wait_for(lambda: pipe.gold().num_rows >= sent_approx, 600, "Gold to catch up", interval=5)
        time.sleep(15)  # let the last micro-batches commit

        gold = rows_with_commit_time(pipe.table(GOLD_TABLE), ["message_id", "timestamp"])
        e2e, e2e_steady = [], []
        for r in gold:
            sent = r["timestamp"].timestamp()
            e2e.append(r["_commit_ms"] / 1000 - sent)
            if sent >= steady_from:
                e2e_steady.append(e2e[-1])
        bronze = _bronze_message_ids(rows_with_commit_time(pipe.table(BRONZE_TABLE), ["value"]))
        silver_lat, silver_steady = [], []
        for exchange in ("binance", "kraken"):
            for r in rows_with_commit_time(pipe.table(silver_table(exchange)), ["message_id"]):
                if r["message_id"] in bronze:
                    silver_lat.append((r["_commit_ms"] - bronze[r["message_id"]]) / 1000)
                    if bronze[r["message_id"]] / 1000 >= steady_from:
                        silver_steady.append(silver_lat[-1])
        rss = [mb for _, mb in sampler.samples]
        return {
            "rate_per_exchange": rate, "seconds": seconds, "gold_rows": len(gold),
            "e2e_p50_s": round(percentile(e2e, 50), 2), "e2e_p99_s": round(percentile(e2e, 99), 2),
            "silver_p50_s": round(percentile(silver_lat, 50), 2),
            "silver_p99_s": round(percentile(silver_lat, 99), 2),
            "silver_rows": len(silver_lat),
            "warmup_s": warmup,
            "steady_e2e_p50_s": round(percentile(e2e_steady, 50), 2) if e2e_steady else None,
            "steady_e2e_p99_s": round(percentile(e2e_steady, 99), 2) if e2e_steady else None,
            "steady_silver_p50_s": round(percentile(silver_steady, 50), 2) if silver_steady else None,
            "steady_silver_p99_s": round(percentile(silver_steady, 99), 2) if silver_steady else None,
            "steady_rows": len(e2e_steady),
            "worker_rss_max_mb": round(max(rss), 1) if rss else None,
            "worker_rss_first_mb": round(rss[0], 1) if rss else None,
            "worker_rss_last_mb": round(rss[-1], 1) if rss else None,
            "worker_rss_mean_mb": round(statistics.mean(rss), 1) if rss else None,
        }
    finally:
        if sim is not None:
            sim.stop()
        pipe.cleanup()
