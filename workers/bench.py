"""Worker throughput benchmark: simulator -> worker process -> Kafka acknowledged.

Runs the simulator flat out (``rate=0``: as fast as the worker reads, TCP pushes
back) in this process, one worker as a subprocess writing to throw-away topics on
the real local Kafka and registry, and reads the worker's own ``/metrics``:

* trades/s = Kafka-acknowledged deliveries per second over the measured window,
* CPU per 1,000 trades/s = worker CPU seconds per second / (trades/s / 1000),
* RSS of the worker (max and last sample).

Everything shares this machine's cores with the simulator and the broker (and
whatever else runs), so the acknowledged rate is what this machine sustained; the
projection per free core divides it by the worker's measured CPU use.

    python -m workers.bench --exchange binance --exchange kraken --duration 60
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import psutil

from k2.exchanges import names
from k2.settings import PlatformSettings, load_platform
from workers.simulator import SimulatorConfig, SimulatorThread

REPO = Path(__file__).resolve().parent.parent
_DELIVERED = re.compile(r'^k2_worker_delivered_total\{exchange="\w+"\} ([0-9.e+]+)$', re.M)


def delivered(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        match = _DELIVERED.search(resp.read().decode())
    return float(match.group(1)) if match else 0.0


def bench_one(
    plat: PlatformSettings, exchange: str, duration_s: float, warmup_s: float, batch: int, port: int, rate: float = 0.0,
    symbols: int = 0,
) -> dict:
    """One worker against the simulator's throughput mode (only ``exchange`` served, as
    fast as the worker reads unless ``rate``); ``symbols``: a generated universe of that
    many (with ``all``, if the worker takes it) instead of two symbols."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    sim = SimulatorThread(SimulatorConfig.throughput(exchange, symbols, rate=rate, batch=batch, seed=1))
    env = dict(os.environ)
    env.update(sim.worker_env())  # its URLs, REST URLs (gap backfill) and symbols
    env.update({
        # A generated universe is known only from the simulator's metadata.
        "K2_WORKERS_REFRESH_SYMBOLS": "true" if symbols else "false", "K2_WORKERS_TOPIC_PREFIX": prefix,
        f"K2_{exchange.upper()}_METRICS_PORT": str(port), "K2_WORKERS_SUMMARY_INTERVAL_S": "10",
        # Throw-away progress files, like the topics.
        "K2_WORKERS_STATE_DIR": (state_dir := tempfile.mkdtemp(prefix="k2-bench-state-")),
    })
    log_path = Path(tempfile.gettempdir()) / f"k2-bench-{exchange}-{port}.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen([sys.executable, "-m", "workers.run", exchange], cwd=REPO, env=env, stderr=log)
    try:
        proc = psutil.Process(worker.pid)
        deadline = time.monotonic() + 30
        while True:
            try:
                delivered(port)
                break
            except OSError:
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker did not start; see {log_path}") from None
                time.sleep(0.2)
        time.sleep(warmup_s)
        t0, d0, c0 = time.monotonic(), delivered(port), proc.cpu_times()
        s0 = sim.call(sim.sim.stats)["cpu_s"]
        rss_start = proc.memory_info().rss
        rss_max, next_minute, rss_by_minute = rss_start, t0 + 60, []
        while time.monotonic() - t0 < duration_s:
            time.sleep(1.0)
            rss = proc.memory_info().rss
            rss_max = max(rss_max, rss)
            if time.monotonic() >= next_minute:  # a soak's memory curve, one sample a minute
                rss_by_minute.append(round(rss / 1e6, 1))
                next_minute += 60
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited with {worker.returncode} during the run; see {log_path}")
        t1, d1, c1 = time.monotonic(), delivered(port), proc.cpu_times()
        s1 = sim.call(sim.sim.stats)["cpu_s"]
        elapsed = t1 - t0
        rate = (d1 - d0) / elapsed
        cores = ((c1.user - c0.user) + (c1.system - c0.system)) / elapsed
        return {
            "exchange": exchange,
            "trades_per_s": round(rate),
            "worker_cpu_cores": round(cores, 3),
            "cpu_core_seconds_per_1000_trades_per_s": round(cores / (rate / 1000), 4) if rate else None,
            # what one fully available core would sustain at the measured cost per trade
            "projected_trades_per_s_per_core": round(rate / cores) if cores else None,
            "rss_mb_start": round(rss_start / 1e6, 1),
            "rss_mb_max": round(rss_max / 1e6, 1),
            "rss_mb_last": round(proc.memory_info().rss / 1e6, 1),
            "duration_s": round(elapsed, 1),
            "delivered": int(d1 - d0),
            "batch": batch,  # most trades per message, on venues that batch them
            "simulator_rate": rate or "unlimited",
            "rss_mb_by_minute": rss_by_minute,
            # The simulator's own CPU (its loop thread): near 1.0 it, not the worker, is the limit.
            "simulator_cpu_cores": round((s1 - s0) / elapsed, 3),
            "symbols": symbols or 2,
        }
    finally:
        worker.terminate()
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
        sim.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
        _cleanup(plat, prefix)


def _cleanup(plat: PlatformSettings, prefix: str) -> None:
    from k2.kafka_admin import admin_client
    from k2.kafka_client import client_config
    from k2.schema_registry import registry_client

    admin = admin_client(client_config(plat, admin=True))
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if topics:
        for f in admin.delete_topics(topics).values():
            try:
                f.result(30)
            except Exception:  # noqa: BLE001 - best effort
                pass
    client = registry_client(plat.registry_url)
    for subject in client.get_subjects():
        if subject.startswith(prefix):
            for permanent in (False, True):
                try:
                    client.delete_subject(subject, permanent=permanent)
                except Exception:  # noqa: BLE001 - best effort
                    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workers.bench",
        description="Measure simulator -> worker -> Kafka-acknowledged throughput per worker process "
        "(trades/s, CPU per 1,000 trades/s, RSS). Needs the local Kafka and registry (`k2 stack up`). "
        "Writes to throw-away topics and deletes them afterwards.",
    )
    parser.add_argument("--exchange", action="append", choices=names(),
                        help="exchange to benchmark (repeatable; default all)")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds per exchange (default %(default)s)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring (default %(default)s)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="simulator trades/s per exchange; 0 = as fast as the worker reads (default). "
                        "A fixed rate with a long --duration is a memory soak")
    parser.add_argument("--batch", type=int, default=10,
                        help="trades per message, on venues that batch them (default %(default)s)")
    parser.add_argument("--symbols", type=int, default=0,
                        help="a generated universe of this many symbols (default: the venue's first two)")
    parser.add_argument("--metrics-port", type=int, default=19109, help="worker metrics port used to count acks")
    parser.add_argument("--json", action="store_true", help="print one JSON object per exchange only")
    args = parser.parse_args(argv)
    plat = load_platform()
    for exchange in args.exchange or names():
        result = bench_one(plat, exchange, args.duration, args.warmup, args.batch, args.metrics_port, args.rate,
                           args.symbols)
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            print(
                f"{exchange:8s} {result['trades_per_s']:>8,} trades/s acked | worker CPU "
                f"{result['worker_cpu_cores']:.2f} cores = {result['cpu_core_seconds_per_1000_trades_per_s']} "
                f"core-s per 1,000 trades/s (~{result['projected_trades_per_s_per_core']:,} trades/s per "
                f"free core) | RSS start {result['rss_mb_start']} MB, max {result['rss_mb_max']} MB, "
                f"last {result['rss_mb_last']} MB | simulator CPU {result['simulator_cpu_cores']:.2f} cores "
                f"| {result['duration_s']} s",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
