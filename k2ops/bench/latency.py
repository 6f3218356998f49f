"""End-to-end and Silver latency, and worker memory, measured on a live isolated pipeline.

Method: the simulator sends trades at a fixed rate to the real workers, which feed the
real three streams on an isolated namespace. Afterwards, for every row, Iceberg
metadata tells which snapshot (commit) added the data file holding it:

- end-to-end latency = Gold commit time − the trade's exchange timestamp
  (the simulator stamps each trade with its send time);
- Silver latency     = Silver commit time − the Bronze commit time of the same record
  (Bronze rows are matched by decoding their Avro bytes for ``message_id``);
- worker memory      = RSS of each worker process, sampled every 5 s;
- batch breakdown    = per stream, the median time of each phase of a micro-batch that
  carried rows (trigger wait, Spark's phases, the stream's own: see
  spark_jobs/batch_timing.py), sampled from its progress every second;
- gap to Gold        = for each trade the stream left out (the simulator drops
  ``drop_rate`` of them at random, per exchange), its Gold commit time − the time the
  gap opened: the exchange time of the next trade of its symbol that the stream did
  send (the one that reveals the gap to the worker, which then backfills over REST).
  The two latencies above are over the trades the stream sent.

Percentiles are given twice: over every trade, and over the steady state, the trades
sent after the first ``warmup`` seconds (the first micro-batches of freshly started
streams JIT-compile their code and start Python workers; a running platform has
long paid for that).
"""

from __future__ import annotations

import bisect
import statistics
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq

from k2.contracts import BRONZE_TABLE, EXCHANGES, GOLD_TABLE, STREAMS, silver_table
from k2.polling import wait_until
from k2ops.bench.common import BatchSampler, bronze_message_ids, percentile
from k2ops.bench.cpu import CpuMeter
from k2ops.pipeline import IsolatedPipeline


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


class RssSampler(threading.Thread):
    """RSS (MB) of the workers' processes every ``interval`` seconds, and the CPU each
    stream (its JVM and Python driver) used meanwhile (``stream_cores``)."""

    def __init__(self, pipe: IsolatedPipeline, interval: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.pipe, self.interval = pipe, interval
        self.samples: list[tuple[float, float]] = []  # (seconds since start, max RSS MB)
        self.stop_event = threading.Event()
        self.meter = CpuMeter(pipe.settings)
        self.elapsed_s = 0.0

    def stream_cores(self) -> dict[str, float]:
        cores = self.meter.cores(self.elapsed_s)
        return {stream: cores.get(stream, 0.0) for stream in STREAMS}

    def run(self) -> None:
        start = time.monotonic()
        self.meter.reset()
        while not self.stop_event.wait(self.interval):
            self.meter.tick()
            self.elapsed_s = time.monotonic() - start
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


def gap_openings(record: list[dict]) -> dict[str, tuple[str, float]]:
    """message_id of each trade the stream left out -> (exchange, when its gap opened, s),
    from the simulator's record alone: the time of the next trade of the symbol that was
    sent. A trade left out after the last one sent has no opening (no gap revealed it)."""
    from k2.contracts import exchange
    from workers.normalize import message_id

    published = {(e["exchange"], e["symbol"], int(e["trade_id"])): e["time_us"] / 1e6
                 for e in record if e.get("ev") == "published"}
    sent: dict[tuple[str, str], list[int]] = {}
    for e in record:
        if e.get("ev") == "trade":
            sent.setdefault((e["exchange"], e["symbol"]), []).append(int(e["trade_id"]))
    for ids in sent.values():
        ids.sort()
    out: dict[str, tuple[str, float]] = {}
    for e in record:
        if e.get("ev") != "dropped":
            continue
        ids, tid = sent.get((e["exchange"], e["symbol"]), []), int(e["trade_id"])
        later = ids[bisect.bisect_right(ids, tid)] if ids and tid < ids[-1] else None
        if later is not None:
            key = message_id(exchange(e["exchange"]).enum_symbol, e["symbol"], str(tid))
            out[key] = (e["exchange"], published[(e["exchange"], e["symbol"], later)])
    return out


def measure(workdir: Path, rate: float, seconds: float, warmup: float = 30.0, drop_rate: float = 0.005) -> dict:
    from workers.simulator import SimulatorConfig, SimulatorThread, read_record

    pipe = IsolatedPipeline(workdir, f"bench{uuid.uuid4().hex[:6]}", trigger="2 seconds")
    sim = None
    try:
        pipe.create_topics()
        pipe.bootstrap_tables()
        pipe.start_streams()
        record = workdir / "simulator.jsonl"
        sim = SimulatorThread(SimulatorConfig(rate=rate, seed=3, record=str(record),
                                              drop_rates={e.name: drop_rate for e in EXCHANGES}))
        steady_from = time.time() + warmup  # trades stamped after this are the steady state
        pipe.start_workers(sim.worker_env())
        sampler, batches = RssSampler(pipe), BatchSampler(pipe.settings)
        sampler.start()
        batches.start()
        time.sleep(seconds)
        sim.stop()
        sim = None
        pipe.stop_workers()
        sampler.stop_event.set()
        batches.stop_event.set()
        sent_approx = int(rate * seconds * 2 * 0.9)
        wait_until(lambda: pipe.gold().num_rows >= sent_approx, 600, "Gold to catch up", interval=5)
        time.sleep(15)  # let the last micro-batches commit

        gold = rows_with_commit_time(pipe.table(GOLD_TABLE), ["message_id", "timestamp"])
        openings = gap_openings(read_record(record))
        gap_fill: dict[str, list[float]] = {}
        e2e, e2e_steady = [], []
        for r in gold:
            if r["message_id"] in openings:
                exchange, opened = openings[r["message_id"]]
                gap_fill.setdefault(exchange, []).append(r["_commit_ms"] / 1000 - opened)
                continue
            sent = r["timestamp"].timestamp()
            e2e.append(r["_commit_ms"] / 1000 - sent)
            if sent >= steady_from:
                e2e_steady.append(e2e[-1])
        bronze = bronze_message_ids(rows_with_commit_time(pipe.table(BRONZE_TABLE), ["value"]))
        silver_lat, silver_steady = [], []
        for exchange in (e.name for e in EXCHANGES):
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
            "stream_cores": sampler.stream_cores(),
            "worker_rss_max_mb": round(max(rss), 1) if rss else None,
            "worker_rss_first_mb": round(rss[0], 1) if rss else None,
            "worker_rss_last_mb": round(rss[-1], 1) if rss else None,
            "worker_rss_mean_mb": round(statistics.mean(rss), 1) if rss else None,
            "batch_breakdown": batches.summary(),
            "drop_rate": drop_rate,
            "gap_to_gold": {ex: {"trades": len(v), "left_out": sum(1 for e, _ in openings.values() if e == ex),
                                 "p50_s": round(percentile(v, 50), 2), "p99_s": round(percentile(v, 99), 2)}
                            for ex, v in sorted(gap_fill.items())},
        }
    finally:
        if sim is not None:
            sim.stop()
        pipe.cleanup()
