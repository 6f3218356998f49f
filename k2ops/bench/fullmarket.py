"""The full-market benchmark: every venue's whole universe through the real pipeline.

Method: the exchange simulator runs as its own process (``k2 simulate --universe
binance=2000,kraken=1000,coinbase=500,bybit=500,okx=500 --total-rate 5000 --bursts ...``,
the venues' connection limits enforced) so its CPU is its own; the five real workers
capture every symbol (``K2_<EXCHANGE>_SYMBOLS=all``, sharded within the venues' limits;
an explicit list of the universe on workers without ``all``) into the real three streams
on an isolated namespace (:class:`~k2ops.pipeline.IsolatedPipeline`). Afterwards:

- trades lost = per venue, the trades the market published for each symbol between the
  first and the last one any connection was sent (trade ids are consecutive per
  symbol on the simulated tape, so that is ``last - first + 1``; the simulator keeps
  each symbol's span, ``/_sim/spans``) that Gold does not hold. At the end the market
  is paused, every connection drains and Gold catches up before the simulator stops,
  so a gap found late is still backfilled over its REST;
- end-to-end latency = Gold commit time - the trade's exchange time, p50/p99 over the
  steady state (after ``warmup``, outside bursts) and over the bursts (the simulator
  records when each starts and ends), read per data file from Iceberg's manifests;
- worker CPU (cores: CPU seconds / wall seconds) and RSS (max) per venue, sampled from
  the workers' processes; the simulator's CPU the same way;
- acknowledged trades/s per worker process for the new venues (coinbase, bybit, okx),
  each alone against the simulator's throughput mode (``workers.bench``) after the run.

Everything shares this machine's cores (the broker, Spark, the simulator, five
workers), so the figures are what this machine sustained.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

import psutil

from k2.polling import wait_until
from k2.settings import REPO_ROOT
from k2ops.stack import progress

TOTAL_RATE = 5000.0
BURST_FACTOR = 10.0


def default_universe() -> dict[str, int]:
    """Symbols per venue: each simulator protocol's ``full_market_symbols`` (about the
    venue's spot listing: 2,000 Binance, 1,000 Kraken, 500 each for the others)."""
    from workers.simulator.venues import protocol_classes

    return {name: protocol.full_market_symbols for name, protocol in protocol_classes().items()}
SAMPLE_S = 5.0


def default_bursts(seconds: float, warmup: float) -> str:
    """The burst schedule (``FACTOR:LENGTH:EVERY:FIRST``): 10x for a minute every ten
    minutes from minute five on a 30-minute run; on a shorter one, one burst (a third of
    the run at most) placed after the warm-up with steady time on both sides."""
    if seconds >= 1200:
        return f"{BURST_FACTOR:g}:60:600:300"
    length = min(60.0, seconds / 3)
    first = max(warmup, (seconds - length) / 2)
    return f"{BURST_FACTOR:g}:{length:g}:{max(seconds, 600):g}:{first:g}"


def burst_windows(events: list[dict]) -> list[tuple[float, float]]:
    """(start, end) epoch seconds of each burst, from the record's ``rate`` events; a burst
    still on at the end runs to infinity."""
    windows, start = [], None
    for e in events:
        if e.get("ev") != "rate":
            continue
        t = e["time_us"] / 1e6
        if e["multiplier"] > 1 and start is None:
            start = t
        elif e["multiplier"] <= 1 and start is not None:
            windows.append((start, t))
            start = None
    if start is not None:
        windows.append((start, float("inf")))
    return windows


def sent_spans(events: list[dict]) -> dict[tuple[str, str], tuple[int, int]]:
    """(exchange, symbol) -> (first, last) trade id any connection was sent."""
    return {(e["exchange"], e["symbol"]): (e["first_id"], e["last_id"]) for e in events if e.get("ev") == "sent_span"}


def reported_losses(log_path: Path | None) -> dict[str, dict]:
    """Per venue, what the workers themselves reported in their log: trades given up
    (``backfill_failed`` with ``lost``), gaps still open when each process last saved
    its progress (``progress_saved``; the next start would backfill them), and the
    connections closed other than on purpose. A loss the run finds in Gold but no
    worker reported is a silent one."""
    from k2.log import parse_events

    out: dict[str, dict] = {}
    if log_path is None or not log_path.exists():
        return out
    open_gaps: dict[str, int] = {}
    for e in parse_events(log_path.read_text(errors="replace")):
        exchange = e.get("exchange") if isinstance(e, dict) else None
        if not isinstance(exchange, str):
            continue
        v = out.setdefault(exchange, {"reported_lost": 0, "backfills_failed": 0, "gaps_open_at_stop": 0,
                                      "connections_lost": 0})
        event = e.get("event")
        if event == "backfill_failed":
            v["backfills_failed"] += 1
            v["reported_lost"] += int(e.get("lost") or 0)
        elif event == "progress_saved":
            open_gaps[exchange] = int(e.get("open_gaps") or 0)
        elif event == "connection_closed" and e.get("reason") not in ("rotated", "shutdown"):
            v["connections_lost"] += 1
    for exchange, gaps in open_gaps.items():
        out[exchange]["gaps_open_at_stop"] = gaps
    return out


def losses(spans: dict[tuple[str, str], tuple[int, int]], found: dict[tuple[str, str], int],
           outside: dict[str, int], ids_of: Callable[[tuple[str, str]], set[int]]) -> dict[str, dict]:
    """Per venue: trades expected (every id of each symbol's span), found in Gold (distinct
    ids within the span), lost, up to five examples (``ids_of`` gives a symbol's ids in
    Gold, asked only for symbols with a loss), and Gold's ids outside any span."""
    out: dict[str, dict] = {}
    for key, (first, last) in sorted(spans.items()):
        exchange, symbol = key
        v = out.setdefault(exchange, {"expected": 0, "found": 0, "lost": 0, "examples": []})
        expected, got = last - first + 1, found.get(key, 0)
        v["expected"] += expected
        v["found"] += got
        if got < expected:
            v["lost"] += expected - got
            ids = ids_of(key)
            missing = (i for i in range(first, last + 1) if i not in ids)
            v["examples"] += [f"{symbol}:{i}" for _, i in zip(range(5 - len(v["examples"])), missing, strict=False)]
    for exchange, count in outside.items():
        if count:
            out.setdefault(exchange, {"expected": 0, "found": 0, "lost": 0, "examples": []})["outside_spans"] = count
    return out


def split_latencies(times_s, latencies_s, windows: list[tuple[float, float]], steady_from: float) -> dict:
    """p50/p99 of ``latencies_s`` (numpy arrays with ``times_s``, the trades' exchange
    times) in the steady state (from ``steady_from``, outside ``windows``) and in bursts."""
    import numpy as np

    in_burst = np.zeros(len(times_s), dtype=bool)
    for start, end in windows:
        in_burst |= (times_s >= start) & (times_s < end)
    steady = (~in_burst) & (times_s >= steady_from)
    out = {}
    for name, mask in (("steady", steady), ("burst", in_burst)):
        values = latencies_s[mask]
        out[name] = {"rows": int(mask.sum()),
                     "p50_s": round(nearest_rank(values, 50), 2) if len(values) else None,
                     "p99_s": round(nearest_rank(values, 99), 2) if len(values) else None}
    return out


def nearest_rank(values, q: float) -> float:
    """:func:`k2ops.bench.common.percentile` over a numpy array (no sorting of a list)."""
    import numpy as np

    k = min(len(values) - 1, max(0, round(q / 100 * len(values)) - 1))
    return float(np.partition(values, k)[k])


class ProcessSampler(threading.Thread):
    """CPU seconds and max RSS of named processes (the workers, by venue, and the
    simulator) every ``SAMPLE_S``; a restarted worker adds its new process's CPU."""

    def __init__(self, find) -> None:  # noqa: ANN001 - callable returning {name: [psutil.Process]}
        super().__init__(daemon=True)
        self.find = find
        self.cpu: dict[str, dict[int, float]] = {}  # name -> pid -> CPU seconds last seen
        self.rss_max: dict[str, float] = {}
        self.stop_event = threading.Event()
        self.started = time.monotonic()

    def sample(self) -> None:
        for name, procs in self.find().items():
            rss = 0.0
            for p in procs:
                try:
                    t = p.cpu_times()
                    self.cpu.setdefault(name, {})[p.pid] = t.user + t.system
                    rss += p.memory_info().rss / 1e6
                except psutil.Error:
                    continue
            self.rss_max[name] = max(self.rss_max.get(name, 0.0), rss)

    def run(self) -> None:
        self.sample()
        self.baseline = {name: dict(pids) for name, pids in self.cpu.items()}
        self.started = time.monotonic()
        while not self.stop_event.wait(SAMPLE_S):
            self.sample()

    def summary(self) -> dict[str, dict]:
        elapsed = time.monotonic() - self.started
        out = {}
        for name, pids in self.cpu.items():
            base = getattr(self, "baseline", {}).get(name, {})
            used = sum(cpu - base.get(pid, 0.0) for pid, cpu in pids.items())
            out[name] = {"cpu_cores": round(used / elapsed, 3), "rss_mb_max": round(self.rss_max.get(name, 0.0), 1)}
        return out


def _worker_processes(supervisor: subprocess.Popen | None) -> dict[str, list[psutil.Process]]:
    from k2.exchanges import names

    out: dict[str, list[psutil.Process]] = {}
    if supervisor is None or supervisor.poll() is not None:
        return out
    try:
        children = psutil.Process(supervisor.pid).children(recursive=True)
    except psutil.Error:
        return out
    for child in children:
        try:
            cmd = child.cmdline()
        except psutil.Error:
            continue
        venue = next((n for n in names() if "workers.run" in cmd and n in cmd), None)
        if venue is not None:
            out.setdefault(venue, []).append(child)
    return out


def _takes_all() -> bool:
    """Whether this tree's workers read ``K2_<EXCHANGE>_SYMBOLS=all`` (full-market capture)."""
    from workers import settings

    return hasattr(settings, "ALL")


def _listing(port: int, venue: str) -> list[str]:
    """The venue's symbols as its simulated metadata lists them (workers without ``all``)."""
    from workers.exchanges import exchange_class

    cls = exchange_class(venue)
    url = cls.metadata_url(f"http://127.0.0.1:{port}", [])
    url = url.split("?symbols=")[0]  # Binance's worker names its symbols; the whole listing here
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - the local simulator
        return [p.symbol for p in cls.pairs_from_metadata(json.load(resp))]


def start_simulator(workdir: Path, universe: dict[str, int], total_rate: float, bursts: str,
                    seed: int = 7) -> tuple[subprocess.Popen, int, Path]:
    record = workdir / "simulator.jsonl"
    sizes = ",".join(f"{k}={v}" for k, v in universe.items())
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "simulate", "--port", "0", "--universe", sizes,
         "--total-rate", str(total_rate), "--bursts", bursts, "--record", str(record), "--record-spans-only",
         "--connect-limits", "--seed", str(seed)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=open(workdir / "simulator.log", "wb"), text=True,  # noqa: SIM115
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        raise RuntimeError(f"the simulator did not start; see {workdir / 'simulator.log'}")
    return proc, json.loads(line)["port"], record


say = partial(progress.say, source="k2 bench fullmarket")


def progress_line(elapsed: float, seconds: float, warmup: float, published: int, published_before: int,
                  interval: float, gold: int, load: float) -> str:
    """One stderr line a minute: where the run is, what the market published so far (and
    at what rate since the last line), what Gold holds, and the difference still on its way."""
    phase = "warm-up" if elapsed < warmup else "measuring"
    rate = (published - published_before) / interval if interval > 0 else 0.0
    return (f"{elapsed:.0f}/{seconds:.0f} s ({phase}): published {published:,} trades ({rate:,.0f}/s), "
            f"Gold holds {gold:,}, {max(published - gold, 0):,} on the way; load {load:.2f}")


def _run_with_progress(seconds: float, warmup: float, published: Callable[[], int], gold: Callable[[], int],
                       every: float = 60.0) -> None:
    """Let the market run ``seconds``, saying once every ``every`` seconds how far it is."""
    began = last = time.monotonic()
    before = 0
    while (left := began + seconds - time.monotonic()) > 0:
        time.sleep(min(every, left))
        now = time.monotonic()
        try:
            count = published()
            say(progress_line(now - began, seconds, warmup, count, before, now - last, gold(), os.getloadavg()[0]))
        except Exception as exc:  # noqa: BLE001 - a progress line must never end the run
            say(f"{now - began:.0f}/{seconds:.0f} s: no progress figures this time ({exc!r})")
            continue
        before, last = count, now


def control(port: int, action: str) -> dict:
    """One GET of the simulator's control channel (``workers.simulator.control``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim/{action}", timeout=60) as resp:  # noqa: S310 - local
        return json.load(resp)


def simulator_stats(port: int) -> dict:
    return control(port, "stats")


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> bool:
    """``wait_until`` that answers False on a timeout (the report then says what is missing)."""
    try:
        wait_until(condition, timeout, what, interval=5)
    except TimeoutError:
        return False
    return True


def _default(name: str) -> object:
    """A worker setting's documented default (workers/settings.py)."""
    import dataclasses

    from workers.settings import CommonWorkerSettings

    return next(f.metadata["default"] for f in dataclasses.fields(CommonWorkerSettings) if f.name == name)


def worker_env(port: int, universe: dict[str, int]) -> dict[str, str]:
    from workers.simulator.venues import protocol_classes

    takes_all = _takes_all()
    env: dict[str, str] = {
        "K2_WORKERS_REFRESH_SYMBOLS": "true",  # base/quote of the universe: from the metadata
        # The production watchdog, not the isolated pipeline's 3 s for tests: a burst on a
        # busy machine delays a connection's next frame by seconds without anything wrong.
        "K2_WORKERS_WATCHDOG_S": str(_default("watchdog_s")),
    }
    for name, protocol in protocol_classes().items():
        up = name.upper()
        env[f"K2_{up}_URLS"] = protocol.ws_url("127.0.0.1", port)
        if (rest := protocol.rest_url("127.0.0.1", port)) is not None:
            env[f"K2_{up}_REST_URL"] = rest
        if name in universe:
            env[f"K2_{up}_SYMBOLS"] = "all" if takes_all else ",".join(_listing(port, name))
    return env


def gold_rows(pipe) -> int:  # noqa: ANN001 - IsolatedPipeline
    """Gold's row count from its current snapshot's summary (no data file read)."""
    from k2.contracts import GOLD_TABLE

    snapshot = pipe.table(GOLD_TABLE).current_snapshot()
    return int(snapshot.summary["total-records"]) if snapshot is not None and snapshot.summary else 0


def gold_found(pipe, spans: dict[tuple[str, str], tuple[int, int]]):  # noqa: ANN001, ANN201 - IsolatedPipeline
    """What Gold holds against ``spans``, computed in Arrow (tens of millions of rows on a
    30-minute run): distinct ids within each symbol's span, ids outside any span per
    venue, and a function giving one symbol's ids (for the examples of a loss)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from k2.contracts import GOLD_TABLE

    raw = pipe.table(GOLD_TABLE).scan(selected_fields=("exchange", "symbol", "trade_id")).to_arrow()
    rows = pa.table({"exchange": pc.utf8_lower(raw["exchange"]), "symbol": raw["symbol"],
                     "tid": pc.cast(raw["trade_id"], pa.int64())}).group_by(["exchange", "symbol", "tid"]).aggregate([])
    keys = sorted(spans)
    span_table = pa.table({"exchange": [k[0] for k in keys], "symbol": [k[1] for k in keys],
                           "first": [spans[k][0] for k in keys], "last": [spans[k][1] for k in keys]})
    joined = rows.join(span_table, ["exchange", "symbol"], join_type="left outer")
    inside = pc.fill_null(pc.and_(pc.greater_equal(joined["tid"], joined["first"]),
                                  pc.less_equal(joined["tid"], joined["last"])), False)
    per_symbol = joined.filter(inside).group_by(["exchange", "symbol"]).aggregate([("tid", "count")])
    found = {(e, sym): n for e, sym, n in zip(*(per_symbol[c].to_pylist() for c in ("exchange", "symbol", "tid_count")),
                                               strict=True)}
    per_venue = joined.filter(pc.invert(inside)).group_by(["exchange"]).aggregate([("tid", "count")])
    outside = dict(zip(per_venue["exchange"].to_pylist(), per_venue["tid_count"].to_pylist(), strict=True))

    def ids_of(key: tuple[str, str]) -> set[int]:
        match = pc.and_(pc.equal(rows["exchange"], key[0]), pc.equal(rows["symbol"], key[1]))
        return set(rows.filter(match)["tid"].to_pylist())

    return found, outside, ids_of


def gold_latencies(pipe):  # noqa: ANN001, ANN201 - IsolatedPipeline -> (times_s, latencies_s)
    """Each Gold row's exchange time (s) and its end-to-end latency (commit time - that)."""
    import numpy as np
    import pyarrow.parquet as pq

    from k2.contracts import GOLD_TABLE

    table = pipe.table(GOLD_TABLE)
    committed = {s.snapshot_id: s.timestamp_ms for s in table.metadata.snapshots}
    times, lats = [], []
    for entry in table.inspect.entries().to_pylist():
        if entry["status"] == 2:  # deleted
            continue
        data = pq.read_table(entry["data_file"]["file_path"].removeprefix("file://"), columns=["timestamp"])
        ts = data.column("timestamp").cast("int64").to_numpy() / 1e6  # µs since the epoch
        times.append(ts)
        lats.append(committed[entry["snapshot_id"]] / 1000 - ts)
    if not times:
        return np.array([]), np.array([])
    return np.concatenate(times), np.concatenate(lats)


def measure(workdir: Path, seconds: float = 1800, warmup: float = 60, universe: dict[str, int] | None = None,
            total_rate: float = TOTAL_RATE, throughput_s: float = 30) -> dict:
    from k2ops.pipeline import IsolatedPipeline
    from workers.simulator import read_record

    universe = universe or default_universe()
    bursts = default_bursts(seconds, warmup)
    pipe = IsolatedPipeline(workdir, f"fm{uuid.uuid4().hex[:6]}", trigger="2 seconds")
    sim: subprocess.Popen | None = None
    try:
        pipe.create_topics()
        pipe.bootstrap_tables()
        pipe.start_streams()
        sim, port, record = start_simulator(workdir, universe, total_rate, bursts)
        steady_from = time.time() + warmup
        pipe.start_workers({}, **worker_env(port, universe))
        sim_proc = psutil.Process(sim.pid)
        sampler = ProcessSampler(lambda: {**_worker_processes(pipe.workers), "simulator": [sim_proc]})
        sampler.start()
        began = time.monotonic()
        _run_with_progress(seconds, warmup, lambda: sum(simulator_stats(port)["published"].values()),
                           lambda: gold_rows(pipe))
        control(port, "pause")  # the market stops trading; connections and REST go on
        stats = simulator_stats(port)
        sampler.stop_event.set()
        cpu = sampler.summary()
        elapsed = time.monotonic() - began
        # Everything sent reaches the workers, and Gold holds it, while the simulator still
        # answers REST (a gap found now is backfilled); only then does it stop.
        say("market paused: waiting for the simulator's connections to drain, then for Gold to hold every trade")
        drained = _wait(lambda: sum(simulator_stats(port)["unsent_bytes"].values()) == 0, 300,
                        "the simulator's connections to drain")
        spans = {(ex, sym): (first, last) for ex, sym, first, last in control(port, "spans")["spans"]}
        expected = sum(last - first + 1 for first, last in spans.values())
        caught_up = _wait(lambda: gold_rows(pipe) >= expected, max(900, seconds / 2),
                          "Gold to hold every trade sent")
        sim.send_signal(signal.SIGTERM)
        sim.wait(60)
        sim = None
        pipe.stop_workers()
        events = read_record(record, skip=("published", "trade"))  # a line per trade: not needed here
        spans = sent_spans(events) or spans  # the record's final word (nothing is sent while paused)
        time.sleep(10 if caught_up else 0)  # the last micro-batches
        lost = losses(spans, *gold_found(pipe, spans))
        for exchange, reported in reported_losses(pipe.workers_log).items():
            lost.setdefault(exchange, {"expected": 0, "found": 0, "lost": 0, "examples": []}).update(reported)
        times, lats = gold_latencies(pipe)
        windows = burst_windows(events)
        limits = [e for e in events if e.get("ev") == "limit"]
        result = {
            "seconds": round(elapsed, 1), "warmup_s": warmup, "universe": universe, "total_rate": total_rate,
            "bursts": bursts, "burst_windows": len(windows),
            "published": stats["published"], "published_per_s": round(sum(stats["published"].values()) / elapsed, 1),
            # What the rate asked for but the simulator's loop, behind, skipped (0: it kept up).
            "simulator_behind": stats.get("behind", {}),
            "trades_lost": sum(v["lost"] for v in lost.values()), "by_venue": lost,
            "latency": split_latencies(times, lats, windows, steady_from),
            "workers": {k: v for k, v in cpu.items() if k != "simulator"}, "simulator": cpu.get("simulator"),
            "limit_violations": len(limits), "limit_examples": limits[:5],
            "worker_symbols": "all" if _takes_all() else "explicit lists of the universe",
            "drained": drained, "gold_caught_up": caught_up,
        }
    finally:
        if sim is not None:
            sim.terminate()
        pipe.cleanup()
    # Alone, after the pipeline is gone: each worker process's ceiling, not the shared run's.
    result["throughput"] = [throughput(v, throughput_s, i) for i, v in enumerate(universe)] \
        if throughput_s > 0 else []
    return result


def throughput(venue: str, seconds: float, index: int) -> dict:
    """``workers.bench`` for one venue: simulator -> worker -> Kafka acknowledged trades/s."""
    from k2.settings import load_platform
    from workers.bench import bench_one

    try:
        return bench_one(load_platform(), venue, seconds, 5.0, 10, 19109 + index)
    except Exception as exc:  # noqa: BLE001 - one venue's failure must not lose the others
        return {"exchange": venue, "error": repr(exc)}


def summary_lines(run: dict) -> list[tuple[str, str, str]]:
    """(figure, measured, target) rows for the report."""
    where = (f"full market ({', '.join(f'{k} {v:,}' for k, v in run['universe'].items())} symbols), "
             f"{run['seconds']:g} s at {run['total_rate']:g} trades/s with bursts {run['bursts']}")
    rows = [(f"trades lost, {where}",
             f"{run['trades_lost']:,} of {sum(v['expected'] for v in run['by_venue'].values()):,} sent ("
             + ", ".join(f"{k} {v['lost']:,}/{v['expected']:,}" for k, v in run["by_venue"].items())
             + f"); published {run['published_per_s']:,} trades/s on average ("
               f"{sum(run.get('simulator_behind', {}).values()):,} skipped by the simulator falling behind); workers took "
               f"{run['worker_symbols']}; venue limits hit {run['limit_violations']}x", "0")]
    # A loss no worker reported (not given up, no gap open at stop) is a silent one.
    rows.append(("losses the workers reported (log)", "; ".join(
        f"{k}: {v.get('reported_lost', 0):,} given up, {v.get('gaps_open_at_stop', 0)} gaps open at stop, "
        f"{v.get('connections_lost', 0)} connections lost" for k, v in run["by_venue"].items()),
        "every lost trade reported"))
    lat = run["latency"]
    for name, target in (("steady", "(no target: context)"), ("burst", "p99 < 30 s during bursts")):
        f = lat[name]
        rows.append((f"end-to-end latency, full market, {name}",
                     f"p50 {f['p50_s']} s, p99 {f['p99_s']} s over {f['rows']:,} trades", target))
    for venue, f in sorted(run["workers"].items()):
        rows.append((f"full market: {venue} worker", f"CPU {f['cpu_cores']} cores, RSS max {f['rss_mb_max']} MB",
                     "context"))
    if run.get("simulator"):
        rows.append(("full market: the simulator itself",
                     f"CPU {run['simulator']['cpu_cores']} cores, RSS max {run['simulator']['rss_mb_max']} MB",
                     "well under one core (not the bottleneck)"))
    for t in run.get("throughput", []):
        measured = (t["error"] if "error" in t else
                    f"{t['trades_per_s']:,} trades/s acked at {t['worker_cpu_cores']} worker cores "
                    f"(simulator {t['simulator_cpu_cores']} cores), {t['duration_s']} s")
        rows.append((f"simulator -> Kafka acked, {t['exchange']} worker alone", measured, ">= 50,000 trades/s per process"))
    return rows
