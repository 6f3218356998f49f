"""Soak: an hour of steady traffic with maintenance on a short schedule; does anything grow?

Method: the simulator sends ``rate`` trades/s per exchange to the real workers, which
feed the real three streams (the platform's default trigger) on an isolated namespace.
Every ``maintenance_every`` seconds the soak runs what the maintenance DAGs run, on
that namespace: ``compaction.py`` (cold partitions, then manifests) and
``retention.py`` (with a short ``--snapshot-retention-hours``, so snapshot expiry is
exercised within the run). Every ``sample_every`` seconds it reads each table's
current metadata and prints one line: snapshots, live data files and metadata size
(the table's whole ``metadata/`` folder: metadata.json versions, manifest lists,
manifests). A stream that exits (a failed batch stops the query) is counted, its
last log line kept, and started again from its checkpoint, as the babysitter would.

Day-partitioned tables (Bronze, Silver, DLQ) are compacted only once their day is
over, so their live data files grow through the day by design; snapshots and
metadata are what expiry and manifest rewrites must keep flat.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from k2.contracts import STREAMS, all_tables


@dataclass(frozen=True)
class TableSample:
    """One table's size figures at ``t_s`` seconds into the soak."""

    t_s: float
    table: str
    snapshots: int
    data_files: int
    metadata_bytes: int


METRICS = ("snapshots", "data_files", "metadata_bytes")


def short_name(table: str) -> str:
    """``bronze_crypto_trades`` -> ``bronze``, ``silver_binance_trades`` -> ``silver_binance``."""
    return table.removesuffix("_crypto_trades").removesuffix("_trades")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}MB"


def sample_line(t_s: float, samples: list[TableSample], failures: int) -> str:
    """One printed line per sample: every table's figures and the failures so far."""
    minutes, seconds = divmod(int(t_s), 60)
    parts = [f"{short_name(s.table)} snap {s.snapshots} files {s.data_files} meta {_mb(s.metadata_bytes)}"
             for s in samples]
    return f"[soak] {minutes:3d}:{seconds:02d} | " + " | ".join(parts) + f" | failed {failures}"


def summarize(samples: list[TableSample]) -> dict[str, dict[str, dict[str, float]]]:
    """Per table and metric: first, last and max value, and growth per hour in each half.

    A metric kept flat by maintenance grows about as much in the second half as in
    the first or less; one growing without bound keeps growing at its first-half rate.
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    for table in dict.fromkeys(s.table for s in samples):
        series = sorted((s for s in samples if s.table == table), key=lambda s: s.t_s)
        first, last = series[0], series[-1]
        mid_t = (first.t_s + last.t_s) / 2
        mid = min(series, key=lambda s: abs(s.t_s - mid_t))
        out[table] = {}
        for metric in METRICS:
            def rate(a: TableSample, b: TableSample, m: str = metric) -> float:
                hours = (b.t_s - a.t_s) / 3600
                return (getattr(b, m) - getattr(a, m)) / hours if hours > 0 else 0.0

            # With fewer than three samples there are no two halves: both get the overall rate.
            halves = (rate(first, mid), rate(mid, last)) if len(series) >= 3 else (rate(first, last),) * 2
            out[table][metric] = {
                "first": getattr(first, metric), "last": getattr(last, metric),
                "max": max(getattr(s, metric) for s in series),
                "first_half_per_h": round(halves[0], 1),
                "second_half_per_h": round(halves[1], 1),
            }
    return out


def summary_lines(summary: dict, failures: list[dict], maintenance: list[dict]) -> list[str]:
    lines = []
    for table, metrics in summary.items():
        cells = []
        for metric, v in metrics.items():
            show = _mb if metric == "metadata_bytes" else (lambda n: f"{n:g}")
            cells.append(f"{metric} {show(v['first'])} -> {show(v['last'])} (max {show(v['max'])}; "
                         f"per h {show(v['first_half_per_h'])} then {show(v['second_half_per_h'])})")
        lines.append(f"[soak] {short_name(table)}: " + "; ".join(cells))
    failed_jobs = [m for m in maintenance if m["returncode"] != 0]
    lines.append(f"[soak] maintenance runs: {len(maintenance)}, failed: {len(failed_jobs)}")
    lines += [f"[soak]   FAILED {m['job']} at {m['t_s']:.0f}s: {m['last_line']}" for m in failed_jobs]
    lines.append(f"[soak] failed batches (stream exits): {len(failures)}")
    lines += [f"[soak]   {f['stream']} at {f['t_s']:.0f}s: {f['last_line']}" for f in failures]
    return lines


# -- reading the tables -------------------------------------------------------------

def _folder_bytes(folder: Path) -> int:
    total = 0
    for entry in os.scandir(folder):
        try:
            if entry.is_file(follow_symlinks=False):
                total += entry.stat().st_size
        except FileNotFoundError:  # an old metadata.json the stream just deleted on commit
            continue
    return total


def sample_table(table, name: str, t_s: float) -> TableSample:
    """Figures from the table's current metadata (a local ``file://`` warehouse)."""
    snapshot = table.current_snapshot()
    data_files = int(snapshot.summary.get("total-data-files") or 0) if snapshot else 0
    folder = Path(urlparse(table.metadata_location).path).parent  # file:/x and file:///x alike
    return TableSample(t_s=t_s, table=name, snapshots=len(table.metadata.snapshots),
                       data_files=data_files, metadata_bytes=_folder_bytes(folder))


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


class Maintenance(threading.Thread):
    """Compaction then retention on the soak's namespace every ``every`` seconds."""

    def __init__(self, pipe, every: float, cold_after_hours: float, snapshot_hours: float,
                 clock: Callable[[], float]) -> None:
        super().__init__(daemon=True)
        self.pipe, self.every, self.clock = pipe, every, clock
        self.jobs = {
            "compaction": ["--namespace", pipe.namespace, "--cold-after-hours", f"{cold_after_hours:g}"],
            "retention": ["--namespace", pipe.namespace, "--snapshot-retention-hours", f"{snapshot_hours:g}"],
        }
        self.runs: list[dict] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(self.every):
            for job, args in self.jobs.items():
                if self.stop_event.is_set():  # the soak is over: do not start another job
                    return
                began = self.clock()
                result = self.pipe.spark_job(job, *args, timeout=1800)
                tail = (result.stdout + result.stderr).strip().splitlines()
                self.runs.append({"job": job, "t_s": began, "returncode": result.returncode,
                                  "elapsed_s": round(self.clock() - began, 1),
                                  "last_line": tail[-1][:300] if tail else ""})
                print(f"[soak] {job}: exit {result.returncode} in {self.runs[-1]['elapsed_s']}s",
                      flush=True)


def soak(workdir: Path, rate: float, seconds: float, sample_every: float, maintenance_every: float,
         cold_after_hours: float = 2.0, snapshot_hours: float = 0.25) -> dict:
    from k2.catalog import catalog
    from k2ops.pipeline import IsolatedPipeline
    from workers.simulator import SimulatorConfig, SimulatorThread

    pipe = IsolatedPipeline(workdir, f"soak{uuid.uuid4().hex[:6]}")  # the platform's default trigger
    sim, maintenance = None, None
    samples: list[TableSample] = []
    failures: list[dict] = []
    began = time.monotonic()

    def clock() -> float:
        return time.monotonic() - began

    def take_sample() -> None:
        cat = catalog(pipe.settings)
        now = [sample_table(cat.load_table(f"{pipe.namespace}.{t}"), t, clock()) for t in all_tables()]
        samples.extend(now)
        print(sample_line(clock(), now, len(failures)), flush=True)

    try:
        pipe.create_topics()
        pipe.bootstrap_tables()
        pipe.start_streams()
        sim = SimulatorThread(SimulatorConfig(rate=rate, seed=11))
        pipe.start_workers(sim.worker_env())
        began = time.monotonic()
        maintenance = Maintenance(pipe, maintenance_every, cold_after_hours, snapshot_hours, clock)
        maintenance.start()
        while True:
            for stream in STREAMS:
                proc = pipe.streams[stream]
                if proc.poll() is not None:
                    failures.append({"stream": stream, "t_s": round(clock(), 1), "exit": proc.returncode,
                                     "last_line": _last_line(pipe.workdir / f"{stream}.log")})
                    print(f"[soak] {stream} exited ({proc.returncode}); restarting it", flush=True)
                    pipe.start_stream(stream)
            take_sample()
            if clock() >= seconds:
                break
            time.sleep(min(sample_every, max(0.0, seconds - clock())))
        summary = summarize(samples)
        return {"rate_per_exchange": rate, "seconds": seconds, "namespace": pipe.namespace,
                "samples": [s.__dict__ for s in samples], "summary": summary,
                "failed_batches": failures, "maintenance": maintenance.runs}
    finally:
        if maintenance is not None:
            maintenance.stop_event.set()
            maintenance.join(1800)  # a job in flight finishes before its tables are dropped
        if sim is not None:
            sim.stop()
        pipe.cleanup()
