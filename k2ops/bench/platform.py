"""End-to-end and Silver latency on the whole running platform (`make run`), over a long window.

Unlike ``k2ops.bench.latency`` (an isolated pipeline of its own), this measures the
platform as it runs: the streams started by Airflow's babysitter, the maintenance DAGs
on their schedules, the production ``market_data`` tables. The run brings the platform
up with `k2 up --simulator --simulator-rate <rate>` (k2ops/bench/platform_up.py: workers
running otherwise are restarted, and everything is left as found at the end), waits
until all three streams commit batches with rows, then lets it run ``seconds``.

Method:

- window  = [t0 + ``warmup``, t0 + ``seconds``]: t0 is when all three streams were
  flowing; the warm-up covers a restart of the workers at a new rate.
- catch-up: after the window, wait until Gold has committed past its end: an append
  snapshot at least 5 s after it, and rows of every exchange stamped at or after it
  (the streams read their sources in order, so every earlier trade is in Gold then).
- commit time of a row = the timestamp of the append snapshot that added its data file,
  read from that snapshot's own manifests (k2ops/bench/snapshots.py), so it stays right
  after compaction rewrote the files (``replace`` snapshots are skipped; Gold's
  insert-only MERGE commits ``append`` snapshots).
- end-to-end latency = Gold commit time − the trade's ``timestamp`` (the simulator
  stamps each trade with its send time), over Gold rows stamped in the window;
- Silver latency     = Silver commit time − the Bronze commit time of the same
  ``message_id`` (Bronze rows decoded from their Avro value), over Bronze commits in
  the window;
- p50/p99 over the window, and p99 per 10-minute slice of it: ``first_10min_p99_s``
  (the window's first 10 minutes), ``last_10min_p99_s`` (its last 10) and their ratio
  ``last_over_first`` (issue 17: within 20 %, i.e. at most 1.2). A window shorter than
  10 minutes has no such figure; one shorter than 20 minutes has overlapping ends.
- batch breakdown = per stream, the median time of each phase of a micro-batch that
  carried rows in the window (k2.streams progress, sampled every second); a stream
  restarted in the window shows as more than one pid.
- CPU budget = the cores each component used on average over the window (the three
  stream JVMs, Kafka, the registry, PostgreSQL, each Airflow component, the workers;
  k2ops/bench/cpu.py), and the whole machine's;
- context: the scheduled DAG runs (retention, compaction, completeness, data quality)
  that overlapped the run, from Airflow's REST API (best effort), and the load average
  at the window's start and end.

Progress goes to stderr once a minute: rows each layer committed so far, elapsed time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from k2ops.bench.common import BatchSampler, bronze_message_ids, percentile
from k2ops.bench.platform_up import say

SLICE_S = 600.0  # flatness is judged on 10-minute slices (issue 17)
MINUTE_S = 60.0  # and the p99 of each minute shows where a tail comes from (set against the DAG runs)
FLAT_WITHIN = 0.20  # the last slice's p99 at most 20 % above the first's
CATCH_UP_MARGIN_S = 5.0
PROGRESS_EVERY_S = 60.0
CPU_SAMPLE_EVERY_S = 5.0  # a process that exits loses at most this much of its CPU time


@dataclass(frozen=True)
class Window:
    """[start, end] in epoch seconds."""

    start: float
    end: float

    @classmethod
    def after_warmup(cls, t0: float, seconds: float, warmup: float) -> Window:
        if not 0 <= warmup < seconds:
            raise ValueError(f"warm-up {warmup:g} s must be shorter than the run ({seconds:g} s)")
        return cls(t0 + warmup, t0 + seconds)

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def __contains__(self, t: float) -> bool:
        return self.start <= t <= self.end

    def slices(self, length: float = SLICE_S) -> list[Window]:
        """Consecutive slices from the start; the last one is shorter when ``length``
        does not divide the window."""
        out, start = [], self.start
        while start < self.end:
            out.append(Window(start, min(start + length, self.end)))
            start += length
        return out

    def first(self, length: float = SLICE_S) -> Window:
        return Window(self.start, min(self.start + length, self.end))

    def last(self, length: float = SLICE_S) -> Window:
        return Window(max(self.end - length, self.start), self.end)


def epoch(ts: datetime) -> float:
    """Epoch seconds of a row's timestamp (Iceberg timestamptz reads as aware UTC; a naive
    one is UTC too, never the host's zone)."""
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()


def flatness(first_p99: float, last_p99: float) -> float | None:
    """last / first p99: 1.0 flat, above 1.2 degrading (None when first is 0)."""
    return round(last_p99 / first_p99, 3) if first_p99 > 0 else None


def _p(values: list[float], q: float) -> float | None:
    return round(percentile(values, q), 2) if values else None


def latency_figures(samples: Iterable[tuple[float, float]], window: Window, slice_s: float = SLICE_S) -> dict:
    """p50/p99 of the samples in ``window`` and p99 per slice; a sample is (when, latency
    s), ``when`` placing it in the window (a trade's timestamp, a Bronze commit)."""
    inside = [(t, v) for t, v in samples if t in window]

    def values(w: Window) -> list[float]:
        # Half-open slices, so a sample on a boundary counts once; the window's end is its own.
        return [v for t, v in inside if w.start <= t < w.end or t == w.end == window.end]

    out: dict = {"rows": len(inside), "p50_s": _p([v for _, v in inside], 50),
                 "p99_s": _p([v for _, v in inside], 99), "slice_s": slice_s,
                 "slices": [{"from_s": round(w.start - window.start), "seconds": round(w.seconds),
                             "rows": len(values(w)), "p50_s": _p(values(w), 50), "p99_s": _p(values(w), 99)}
                            for w in window.slices(slice_s)],
                 "p99_per_minute_s": [_p(values(w), 99) for w in window.slices(MINUTE_S)],
                 "first_10min_p99_s": None, "last_10min_p99_s": None, "last_over_first": None, "flat": None,
                 "ends_overlap": window.seconds < 2 * slice_s}
    if window.seconds >= slice_s:  # shorter, "first" and "last" would be the same trades
        first, last = _p(values(window.first(slice_s)), 99), _p(values(window.last(slice_s)), 99)
        ratio = flatness(first, last) if first is not None and last is not None else None
        out.update(first_10min_p99_s=first, last_10min_p99_s=last, last_over_first=ratio,
                   flat=None if ratio is None else ratio <= 1 + FLAT_WITHIN)
    return out


def overlapping_runs(runs: Iterable[dict], start: float, end: float, now: float | None = None) -> list[dict]:
    """The Airflow DAG runs (``dag_id``, ``dag_run_id``, ``state``, ISO ``start_date`` and
    ``end_date``) that ran during [start, end], times relative to ``start`` (s); a run
    not finished yet runs until ``now``, one never started is left out."""
    now = time.time() if now is None else now

    def parse(text: str | None) -> float | None:
        return epoch(datetime.fromisoformat(text)) if text else None

    out = []
    for run in runs:
        began, ended = parse(run.get("start_date")), parse(run.get("end_date"))
        if began is None or began > end or (ended if ended is not None else now) < start:
            continue
        out.append({"dag_id": run["dag_id"], "run_id": run.get("dag_run_id"), "state": run.get("state"),
                    "start_s": round(began - start, 1),
                    "end_s": round(ended - start, 1) if ended is not None else None})
    return sorted(out, key=lambda r: r["start_s"])


# -- the live parts -------------------------------------------------------------------

def _table(s, name: str):
    from k2.catalog import catalog
    from k2.contracts import NAMESPACE

    return catalog(s).load_table(f"{NAMESPACE}.{name}")


def _layers() -> dict[str, list[str]]:
    from k2.contracts import BRONZE_TABLE, EXCHANGES, GOLD_TABLE, silver_table

    return {"bronze": [BRONZE_TABLE], "silver": [silver_table(e.name) for e in EXCHANGES], "gold": [GOLD_TABLE]}


def _streams_running(s) -> list[str]:
    from k2.contracts import STREAMS
    from k2.streams import lock_holder

    return [st for st in STREAMS if lock_holder(st, s) is not None]


def wait_flowing(s, since: float, timeout: float) -> None:
    """Until each stream has committed a batch with rows published after ``since``."""
    from k2.contracts import STREAMS
    from k2.polling import wait_until
    from k2.streams import read_progress

    flowing: set[str] = set()
    next_say = [time.monotonic()]

    def probe() -> bool:
        for st in STREAMS:
            p = read_progress(st, s)
            if p is not None and p.updated_at >= since and p.rows_in > 0:
                flowing.add(st)
        if time.monotonic() >= next_say[0]:
            next_say[0] += 30
            say(f"waiting for the streams to commit rows: flowing {', '.join(sorted(flowing)) or 'none'}; "
                f"running {', '.join(_streams_running(s)) or 'none'} ({time.time() - since:.0f} s)")
        return flowing == set(STREAMS)

    wait_until(probe, timeout, "the three streams to commit batches with rows", interval=2)


def progress_line(elapsed: float, seconds: float, warmup: float, counts: dict[str, tuple[int, int]],
                  streams: int, load: float) -> str:
    """One stderr line a minute: where the run is and what each layer committed since t0
    (a layer's first minutes include the backlog its stream found on start)."""
    from k2.contracts import STREAMS

    phase = "warm-up" if elapsed < warmup else "measuring"
    layers = ", ".join(f"{layer} +{rows:,} rows in {commits} commits" for layer, (rows, commits) in counts.items())
    return (f"{elapsed:.0f}/{seconds:.0f} s ({phase}): {layers}; streams running {streams}/{len(STREAMS)}; "
            f"load {load:.2f}")


def _counts(s, since_ms: int) -> dict[str, tuple[int, int]]:
    from k2ops.bench.snapshots import appended_records

    out = {}
    for layer, tables in _layers().items():
        rows = commits = 0
        for name in tables:
            r, c = appended_records(_table(s, name).metadata.snapshots, since_ms)
            rows, commits = rows + r, commits + c
        out[layer] = (rows, commits)
    return out


def watch(s, t0: float, seconds: float, warmup: float):
    """Sleep through the run, one progress line a minute and a CPU sample every few seconds;
    returns the load average at the end of the warm-up (the window's start) and the
    :class:`~k2ops.bench.cpu.CpuMeter` counting from then."""
    from k2ops.bench.cpu import CpuMeter

    end, start = t0 + seconds, t0 + warmup
    load_start, measuring = os.getloadavg(), warmup == 0
    meter = CpuMeter(s)
    next_line, next_sample = t0 + PROGRESS_EVERY_S, time.time() + CPU_SAMPLE_EVERY_S
    while (now := time.time()) < end:
        time.sleep(max(0.0, min(next_line, next_sample, end, end if measuring else start) - now))
        now = time.time()
        if now >= next_sample:
            meter.tick()
            next_sample = now + CPU_SAMPLE_EVERY_S
        if not measuring and now >= start:
            measuring, load_start = True, os.getloadavg()
            meter.reset()
            say(f"warm-up over: measuring from now on (load {load_start[0]:.2f})")
        if now < next_line and now < end:
            continue
        next_line += PROGRESS_EVERY_S
        try:
            counts = _counts(s, int(t0 * 1000))
        except Exception as exc:  # noqa: BLE001 - a progress line must not end the run
            say(f"{now - t0:.0f}/{seconds:.0f} s: tables unreadable just now ({exc!r})")
            continue
        say(progress_line(now - t0, seconds, warmup, counts, len(_streams_running(s)), os.getloadavg()[0]))
    meter.tick()
    return load_start, meter


def gold_past(table, end: float, margin_s: float = CATCH_UP_MARGIN_S) -> bool:
    """Gold committed past ``end``: an append snapshot ``margin_s`` after it, and rows of
    every exchange stamped at or after it."""
    from k2.contracts import EXCHANGES
    from k2ops.bench.snapshots import APPEND, added_files, operation, read_rows

    snaps = table.metadata.snapshots
    end_ms = int(end * 1000)
    if not any(operation(x) == APPEND and x.timestamp_ms >= end_ms + margin_s * 1000 for x in snaps):
        return False
    rows, _ = read_rows(table, added_files(snaps, table.io, since_ms=end_ms).files, ["exchange", "timestamp"])
    latest: dict[str, float] = {}
    for r in rows:
        latest[r["exchange"]] = max(latest.get(r["exchange"], 0.0), epoch(r["timestamp"]))
    return all(latest.get(e.enum_symbol, 0.0) >= end for e in EXCHANGES)


def analyse(s, window: Window, slice_s: float = SLICE_S) -> dict:
    """The figures, from the tables' snapshots (see the module doc)."""
    from k2.contracts import BRONZE_TABLE, GOLD_TABLE
    from k2ops.bench.snapshots import added_files, read_rows

    start_ms, end_ms = int(window.start * 1000), int(window.end * 1000)
    walks: dict[str, dict] = {}
    missing = 0

    def rows_of(name: str, columns: list[str], until_ms: int | None = None) -> list[dict]:
        nonlocal missing
        table = _table(s, name)
        walk = added_files(table.metadata.snapshots, table.io, since_ms=start_ms, until_ms=until_ms)
        rows, gone = read_rows(table, walk.files, columns)
        missing += gone
        walks[name] = {"append_commits": len({f.snapshot_id for f in walk.files}), "files": len(walk.files),
                       "skipped_snapshots": dict(walk.skipped)}
        return rows

    e2e = [(epoch(r["timestamp"]), r["_commit_ms"] / 1000 - epoch(r["timestamp"]))
           for r in rows_of(GOLD_TABLE, ["timestamp"])]
    # Bronze commits in the window only: they place each Silver sample in it.
    bronze = bronze_message_ids(rows_of(BRONZE_TABLE, ["value"], until_ms=end_ms))
    silver_commit: dict[str, int] = {}
    for name in _layers()["silver"]:
        for r in rows_of(name, ["message_id"]):
            mid = r["message_id"]
            silver_commit[mid] = min(silver_commit.get(mid, r["_commit_ms"]), r["_commit_ms"])
    silver = [(ms / 1000, (silver_commit[mid] - ms) / 1000) for mid, ms in bronze.items() if mid in silver_commit]
    return {"e2e": latency_figures(e2e, window, slice_s), "silver": latency_figures(silver, window, slice_s),
            "bronze_records": len(bronze), "silver_unmatched": len(bronze) - len(silver),
            "tables": walks, "missing_files": missing}


def dag_runs(s, start: float, end: float) -> list[dict]:
    """The scheduled DAGs' runs that overlapped [start, end] (Airflow REST API)."""
    from k2ops.airflow_api import AirflowApi
    from k2ops.platform import SCHEDULED_DAGS
    from k2ops.stack import airflow

    api = AirflowApi(s, airflow.password(s))
    runs = []
    for dag_id in SCHEDULED_DAGS:
        runs += [{"dag_id": dag_id, **r} for r in api.recent_runs(dag_id)]
    return overlapping_runs(runs, start, end)


def measure(rate: float = 50, seconds: float = 600, warmup: float = 60, ready_timeout: float = 900,
            catch_up_timeout: float = 600) -> dict:
    """The whole run (see the module doc): bring the platform up at ``rate`` trades/s per
    exchange, wait ``ready_timeout`` at most for the streams, run ``seconds`` (the first
    ``warmup`` left out), wait ``catch_up_timeout`` at most for Gold, read the figures, and
    leave the platform as found, also when something failed."""
    from k2.polling import wait_until
    from k2.settings import fresh_platform
    from k2ops.bench import platform_up

    Window.after_warmup(0, seconds, warmup)  # bad arguments fail before touching the platform
    s = fresh_platform()
    found = platform_up.observe(s)
    began = time.time()
    try:
        s = platform_up.bring_up(s, found, rate)
        up_s = time.time() - began
        wait_flowing(s, since=time.time(), timeout=ready_timeout)
        t0 = time.time()
        window = Window.after_warmup(t0, seconds, warmup)
        say(f"streams flowing after {t0 - began:.0f} s; measuring {window.seconds:.0f} s after a "
            f"{warmup:g} s warm-up, until {datetime.fromtimestamp(window.end, UTC):%H:%M:%S} UTC")
        sampler = BatchSampler(s, since=window.start)
        sampler.start()
        load_start, meter = watch(s, t0, seconds, warmup)
        cpu_cores = meter.cores(window.seconds)
        sampler.stop_event.set()
        load_end = os.getloadavg()
        say(f"window over; waiting for Gold to commit past its end (at most {catch_up_timeout:.0f} s)")
        gold = _layers()["gold"][0]
        wait_until(lambda: gold_past(_table(s, gold), window.end), catch_up_timeout,
                   "Gold to commit past the window", interval=5)
        say("Gold caught up; reading the commits of the window")
        figures = analyse(s, window)
        try:
            maintenance: list[dict] | str = dag_runs(s, t0, window.end)
        except Exception as exc:  # noqa: BLE001 - context, best effort
            maintenance = f"unavailable: {exc!r}"
        run = {"rate_per_exchange": rate, "seconds": seconds, "warmup_s": warmup,
               "window": {"start": datetime.fromtimestamp(window.start, UTC).isoformat(),
                          "end": datetime.fromtimestamp(window.end, UTC).isoformat(),
                          "seconds": round(window.seconds, 1)},
               "expected_rows_approx": int(rate * 2 * window.seconds),
               **figures,
               "batch_breakdown": sampler.summary(),
               "stream_pids": {st: sorted(p) for st, p in sampler.pids.items()},
               "dag_runs": maintenance,
               "cpu_cores": cpu_cores,
               "load_avg_start": [round(x, 2) for x in load_start],
               "load_avg_end": [round(x, 2) for x in load_end],
               "platform_found": found.describe(), "bring_up_s": round(up_s, 1),
               "flowing_after_s": round(t0 - began, 1)}
        for name in ("e2e", "silver"):
            f = run[name]
            say(f"{name}: p50 {f['p50_s']} s, p99 {f['p99_s']} s over {f['rows']:,} rows; 10-min p99 "
                f"first {f['first_10min_p99_s']} s, last {f['last_10min_p99_s']} s (x{f['last_over_first']})")
        return run
    finally:
        try:
            platform_up.restore(s, found, rate)
        except Exception as exc:  # noqa: BLE001 - never hide the run's own error behind this one
            say(f"could not restore the platform as found ({exc!r}); `k2 stack status` shows what runs")

