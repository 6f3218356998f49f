"""`k2 bench`: every figure of SPEC §8 in one run, with its method, as JSON and markdown.

Each benchmark runs against the real local stack on throw-away topics and namespaces,
except the platform run, which measures the running platform's own tables:

| figure | benchmark |
|---|---|
| worker throughput, CPU, RSS | `python -m workers.bench` (simulator → worker → Kafka acked) |
| Bronze sustained msg/s | `spark_jobs/bench.py bronze` (pre-produced topic drained by bronze_ingestion; slowest whole minute) |
| `k2 query` of one hour, cold and warm | `python -m k2ops.bench.query` (each run a new process, as a user runs it; see that module for what cold means) |
| Gold 1-hour query p50/p99 | `spark_jobs/bench.py gold-query` (≥10M rows; pyiceberg+DuckDB and Spark SQL) |
| recovery after kill -9 | `python -m spark_jobs.bench recovery` (restart → first committed batch) |
| Silver and end-to-end latency, worker memory, gap to Gold | `k2ops.bench.latency` (live isolated pipeline; the stream leaves out 0.5 % of trades, backfilled over REST) |
| soak: snapshots, data files, metadata size over an hour | `k2ops.bench.soak` (live isolated pipeline, maintenance every 10 min); only with `--only soak` |
| Silver and end-to-end latency on the whole platform, and their flatness over 10-minute slices | `k2ops.bench.platform` (`k2 up --simulator --simulator-rate R`: Airflow's streams and maintenance DAGs, the `market_data` tables; left as found afterwards); only with `--only platform` |
| full market: trades lost, worker CPU/RSS per venue, e2e latency steady and in bursts, acked trades/s of the new venues' workers | `k2ops.bench.fullmarket` (simulator process with 4,500 symbols at 5,000 trades/s and 10x one-minute bursts, five workers with `K2_<EXCHANGE>_SYMBOLS=all`, isolated pipeline; 30 min, `--seconds` to shorten) |

Results go to ``$K2_HOME/bench/<UTC time>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from k2.jobs import job_path
from k2.log import parse_events
from k2.settings import REPO_ROOT, PlatformSettings, fresh_platform
from k2.streams import describe_breakdown
from k2ops.cli.commands import add_command

TARGETS = {  # SPEC §8, "ours"
    "worker_trades_per_s": ">= 50,000 trades/s per process",
    "bronze_msgs_per_s": ">= 50,000 msg/s sustained",
    "silver_p99_s": "< 8 s (on the whole platform: see below)",
    "e2e_p99_s": "< 15 s steady (on the whole platform: see below)",
    "gold_query_p99_ms": "< 200 ms on >= 10M rows",
    "recovery_s": "< 20 s, no loss, no duplicates",
    "cli_query_ms": "< 1,000 ms warm, process start included (issue 15)",
    "worker_rss_mb": "flat, < 200 MB per worker",
    "gap_to_gold": "every trade left out reaches Gold (no SPEC target for the time)",
    # Issue 17, on the whole platform after warm-up:
    "platform_silver_p99_s": "< 8 s (issue 17)",
    "platform_e2e_p99_s": "< 15 s (issue 17)",
    "platform_flatness": "last 10 min p99 within 20 % of the first 10 min's (<= 1.2; issue 17)",
    # Issue 14, the full-market benchmark: in k2ops.bench.fullmarket.summary_lines.
}


def _run(name: str, argv: list[str], env: dict, timeout: float) -> tuple[list[dict], float, str]:
    print(f"[k2 bench] {name}: {' '.join(argv[-6:])}", file=sys.stderr, flush=True)
    began = time.monotonic()
    proc = subprocess.run(argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    elapsed = time.monotonic() - began
    results = parse_events(proc.stdout)  # each benchmark prints its figures as JSON lines
    error = "" if proc.returncode == 0 else (proc.stderr or proc.stdout)[-1500:]
    print(f"[k2 bench] {name}: {'ok' if not error else 'FAILED'} in {elapsed:.0f}s", file=sys.stderr)
    return results, elapsed, error


def run_all(args: argparse.Namespace) -> dict:
    from k2ops.stack.airflow import environment
    from k2ops.stack.spark import spark_submit

    s = fresh_platform()
    env = environment(s)
    py = sys.executable
    spark_bench = str(job_path("bench"))
    report: dict = {"started": datetime.now(UTC).isoformat(), "machine": _machine(), "results": {},
                    "errors": {}}
    plan = {
        "workers": [py, "-m", "workers.bench", "--duration", str(args.worker_seconds), "--json"],
        "bronze": [spark_submit(), spark_bench, "bronze", "--messages", str(args.bronze_messages)],
        "gold_query": [spark_submit(), spark_bench, "gold-query", "--rows", str(args.gold_rows),
                       "--queries", str(args.queries)],
        "recovery": [py, "-m", "spark_jobs.bench", "recovery", "--restarts", str(args.restarts)],
        "query": [py, "-m", "k2ops.bench.query", "--runs", str(args.query_runs)],
    }
    for name, argv in plan.items():
        if args.only and name not in args.only:
            continue
        results, elapsed, error = _run(name, argv, env, timeout=3600)
        report["results"][name] = {"runs": results, "elapsed_s": round(elapsed, 1),
                                   "command": " ".join(argv)}
        if error:
            report["errors"][name] = error
    if not args.only or "latency" in args.only:
        from k2ops.bench.latency import measure

        print("[k2 bench] latency: live isolated pipeline", file=sys.stderr, flush=True)
        try:
            with tempfile.TemporaryDirectory(prefix="k2-bench-") as tmp:
                warmup = 30 if args.warmup is None else args.warmup
                report["results"]["latency"] = {"runs": [measure(Path(tmp), args.rate or 50,
                                                                 args.seconds or 120, warmup)],
                                                "command": "k2ops.bench.latency.measure"}
        except Exception as exc:  # noqa: BLE001 - one failed figure must not lose the others
            report["errors"]["latency"] = repr(exc)
    if not args.only or "fullmarket" in args.only:
        _fullmarket(args, report)
    if args.only and "soak" in args.only:  # an hour by default: never part of a plain `make bench`
        _soak(args, report)
    if args.only and "platform" in args.only:  # takes the whole platform: never in a plain `make bench`
        _platform(args, report)
    report["finished"] = datetime.now(UTC).isoformat()
    return report


def _soak(args: argparse.Namespace, report: dict) -> None:
    from k2ops.bench.soak import soak, summary_lines

    seconds = args.seconds or 3600
    print(f"[k2 bench] soak: {seconds:g} s at {args.rate or 200:g} trades/s per exchange, maintenance "
          f"every {args.maintenance_every:g} s", file=sys.stderr, flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="k2-soak-") as tmp:
            run = soak(Path(tmp), args.rate or 200, seconds, args.sample_every, args.maintenance_every)
    except Exception as exc:  # noqa: BLE001 - report what broke, as for the other figures
        import traceback

        report["errors"]["soak"] = "".join(traceback.format_exception(exc)[-3:])
        return
    report["results"]["soak"] = {"runs": [run], "command": "k2ops.bench.soak.soak"}
    for line in summary_lines(run["summary"], run["failed_batches"], run["maintenance"]):
        print(line, file=sys.stderr, flush=True)
    failed_jobs = [m for m in run["maintenance"] if m["returncode"] != 0]
    if run["failed_batches"] or failed_jobs:
        report["errors"]["soak"] = (f"{len(run['failed_batches'])} failed batches, "
                                    f"{len(failed_jobs)} failed maintenance runs")


def _bench_dir() -> Path:
    """``$K2_HOME/bench``: reports, and the logs of a run that went wrong."""
    out = Path(fresh_platform().home) / "bench"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _fullmarket(args: argparse.Namespace, report: dict) -> None:
    from k2ops.bench.fullmarket import measure, summary_lines

    seconds = args.seconds or 1800
    warmup = 60 if args.warmup is None else args.warmup
    print(f"[k2 bench] fullmarket: {seconds:g} s of a full simulated market through the isolated pipeline, "
          f"then each new venue's worker alone for {min(args.worker_seconds, 60):g} s", file=sys.stderr, flush=True)
    # The run's logs (workers, streams, simulator) are what explains a loss: kept when
    # anything went wrong, removed after a clean run (a 30-minute record is large).
    workdir = Path(tempfile.mkdtemp(prefix="k2-fullmarket-", dir=_bench_dir()))
    try:
        run = measure(workdir, seconds, warmup, throughput_s=min(args.worker_seconds, 60))
    except Exception as exc:  # noqa: BLE001 - report what broke, as for the other figures
        import traceback

        report["errors"]["fullmarket"] = "".join(traceback.format_exception(exc)[-3:]) + f" (logs kept in {workdir})"
        return
    if run["trades_lost"] or run["limit_violations"]:
        run["logs"] = str(workdir)
        print(f"[k2 bench] fullmarket: logs of the run kept in {workdir}", file=sys.stderr, flush=True)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    report["results"]["fullmarket"] = {"runs": [run], "command": "k2ops.bench.fullmarket.measure"}
    for figure, measured, _ in summary_lines(run):
        print(f"[k2 bench] fullmarket: {figure}: {measured}", file=sys.stderr, flush=True)
    if run["trades_lost"]:
        report["errors"]["fullmarket"] = f"{run['trades_lost']} trades lost (published, not in Gold)"


def _platform(args: argparse.Namespace, report: dict) -> None:
    from k2ops.bench.platform import measure

    rate, seconds = args.rate or 50, args.seconds or 600
    warmup = 60 if args.warmup is None else args.warmup
    print(f"[k2 bench] platform: {seconds:g} s at {rate:g} trades/s per exchange on the whole platform, "
          f"the first {warmup:g} s left out (warm-up)", file=sys.stderr, flush=True)
    try:
        run = measure(rate, seconds, warmup)
    except Exception as exc:  # noqa: BLE001 - report what broke, as for the other figures
        import traceback

        report["errors"]["platform"] = "".join(traceback.format_exception(exc)[-3:])
        return
    report["results"]["platform"] = {"runs": [run], "command": "k2ops.bench.platform.measure"}


def _machine() -> dict:
    import os
    import platform

    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "load_1m": round(os.getloadavg()[0], 2)}


def _first(report: dict, name: str) -> list[dict]:
    return report["results"].get(name, {}).get("runs", [])


def _fields(run: dict) -> str:
    """``key value, ...`` with numbers rounded for reading (the JSON keeps them whole)."""
    def fmt(v: object) -> str:
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}"
        if isinstance(v, int):
            return f"{v:,}"
        if isinstance(v, list):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        return str(v)

    return ", ".join(f"{k} {fmt(v)}" for k, v in run.items() if k != "bench")


def summary_rows(report: dict) -> list[tuple[str, str, str]]:
    """(figure, measured, target) rows of the markdown summary."""
    rows = []
    for run in _first(report, "workers"):
        name = run.get("exchange", "?")
        rows.append((f"worker throughput ({name})",
                     f"{run['trades_per_s']:,} trades/s acked at {run['worker_cpu_cores']} cores "
                     f"({run['cpu_core_seconds_per_1000_trades_per_s']} core-s per 1,000 trades/s, "
                     f"~{run['projected_trades_per_s_per_core']:,}/s projected on a free core), "
                     f"RSS max {run['rss_mb_max']} MB", TARGETS["worker_trades_per_s"]))
    for run in _first(report, "bronze"):
        rows.append(("Bronze ingest", _fields(run),
                     TARGETS["bronze_msgs_per_s"]))
    for run in _first(report, "gold_query"):
        rows.append(("Gold 1-hour range query", _fields(run),
                     TARGETS["gold_query_p99_ms"]))
    for run in _first(report, "query"):
        from k2ops.bench.query import COLD, WARM, summary_lines

        rows += [(figure, measured, TARGETS["cli_query_ms"]) for figure, measured in summary_lines(run)]
        rows.append(("`k2 query`: what cold and warm mean", f"cold: {COLD}; warm: {WARM}", ""))
    for run in _first(report, "recovery"):
        rows.append(("recovery after kill -9", _fields(run),
                     TARGETS["recovery_s"]))
    for run in _first(report, "soak"):
        for table, metrics in run["summary"].items():
            rows.append((f"soak {table} ({run['seconds']:g} s at {run['rate_per_exchange']:g}/s per exchange)",
                         ", ".join(f"{m} {v['first']:,} -> {v['last']:,} (max {v['max']:,})"
                                   for m, v in metrics.items()),
                         "flat snapshots and metadata; zero failed batches"))
        rows.append(("soak failed batches", str(len(run["failed_batches"])), "0"))
    for run in _first(report, "latency"):
        steady = (f"after the first {run.get('warmup_s', 0):g} s" if run.get("steady_rows") else "")
        rows.append(("Silver latency (Bronze commit → Silver commit)",
                     f"p50 {run['silver_p50_s']} s, p99 {run['silver_p99_s']} s over all {run['silver_rows']} rows"
                     + (f"; {steady}: p50 {run['steady_silver_p50_s']} s, p99 {run['steady_silver_p99_s']} s"
                        if steady else ""), TARGETS["silver_p99_s"]))
        rows.append(("end-to-end latency (exchange event → Gold commit)",
                     f"p50 {run['e2e_p50_s']} s, p99 {run['e2e_p99_s']} s over all {run['gold_rows']} rows"
                     + (f"; {steady} ({run['steady_rows']} rows): p50 {run['steady_e2e_p50_s']} s, "
                        f"p99 {run['steady_e2e_p99_s']} s" if steady else ""), TARGETS["e2e_p99_s"]))
        for stream, timing in run.get("batch_breakdown", {}).items():
            rows.append((f"{stream}: median batch ({timing['batches']} batches with rows)",
                         describe_breakdown(timing["median_s"]), "where the fixed cost goes (issue 17)"))
        for exchange, fill in run.get("gap_to_gold", {}).items():
            rows.append((f"gap to Gold ({exchange}: stream leaves out {run['drop_rate']:.1%} of trades)",
                         f"p50 {fill['p50_s']} s, p99 {fill['p99_s']} s over {fill['trades']} of "
                         f"{fill['left_out']} trades left out", TARGETS["gap_to_gold"]))
        rows.append(("worker RSS during the run",
                     f"first {run['worker_rss_first_mb']} MB, last {run['worker_rss_last_mb']} MB, "
                     f"max {run['worker_rss_max_mb']} MB over {run['seconds']} s", TARGETS["worker_rss_mb"]))
        if run.get("stream_cores"):
            rows.append(("CPU of each stream (JVM + Python driver) while trades flowed",
                         ", ".join(f"{stream} {cores:.2f}" for stream, cores in run["stream_cores"].items())
                         + f" cores (sum {sum(run['stream_cores'].values()):.2f} of the machine's {os.cpu_count()})",
                         "the fixed cost per batch (issue 17)"))
    rows += _platform_rows(report)
    for run in _first(report, "fullmarket"):
        from k2ops.bench.fullmarket import summary_lines as fullmarket_lines

        rows += fullmarket_lines(run)
    return rows


def _platform_rows(report: dict) -> list[tuple[str, str, str]]:
    rows = []
    for run in _first(report, "platform"):
        where = (f"whole platform, {run['window']['seconds']:g} s after a {run['warmup_s']:g} s warm-up "
                 f"at {run['rate_per_exchange']:g} trades/s per exchange")
        for name, title, target in (("silver", "Silver latency (Bronze commit → Silver commit)", "platform_silver_p99_s"),
                                    ("e2e", "end-to-end latency (exchange event → Gold commit)", "platform_e2e_p99_s")):
            f = run[name]
            rows.append((f"{title}, {where}",
                         f"p50 {f['p50_s']} s, p99 {f['p99_s']} s over {f['rows']:,} rows; p99 per 10 min: "
                         + ", ".join(f"{s['p99_s']}" for s in f["slices"]) + " s; p99 per minute: "
                         + ", ".join("-" if v is None else f"{v}" for v in f.get("p99_per_minute_s", [])) + " s",
                         TARGETS[target]))
        flat = []
        for name in ("silver", "e2e"):
            f = run[name]

            def p99(key: str, f: dict = f) -> str:
                return "no rows" if f[key] is None else f"{f[key]} s"

            if run["window"]["seconds"] < f["slice_s"]:
                flat.append(f"{name}: none (window under 10 min)")
            else:
                flat.append(f"{name}: first 10 min p99 {p99('first_10min_p99_s')}, last {p99('last_10min_p99_s')}"
                            + (f", x{f['last_over_first']}" if f["last_over_first"] is not None else "")
                            + (" (the two overlap)" if f["ends_overlap"] else ""))
        rows.append(("latency flatness on the whole platform", "; ".join(flat), TARGETS["platform_flatness"]))
        for stream, timing in run.get("batch_breakdown", {}).items():
            restarts = len(run.get("stream_pids", {}).get(stream, [])) - 1
            rows.append((f"{stream} on the platform: median batch ({timing['batches']} batches with rows"
                         + (f", restarted {restarts}x" if restarts > 0 else "") + ")",
                         describe_breakdown(timing["median_s"]), "where the fixed cost goes (issue 17)"))
        dag_runs = run.get("dag_runs")
        if isinstance(dag_runs, list):
            ran = ", ".join(f"{r['dag_id']} ({r['state']}, from {r['start_s']:g} s)" for r in dag_runs) or "none"
        else:
            ran = str(dag_runs)
        cores = run.get("cpu_cores") or {}
        if cores:
            rows.append(("platform run: CPU cores used on average in the window (2-core machine)",
                         ", ".join(f"{k} {v:g}" for k, v in sorted(cores.items(), key=lambda kv: -kv[1])),
                         "the streams' CPU budget next to the rest (issue 17)"))
        rows.append(("platform run: scheduled DAG runs (s from the window's start), load average",
                     f"{ran}; load {run['load_avg_start'][0]} → {run['load_avg_end'][0]}",
                     "context (maintenance must not break flatness)"))
    return rows


def markdown(report: dict) -> str:
    lines = [f"# K2 benchmark, {report['started']}", "",
             f"Machine: {report['machine']['cpus']} CPUs, load {report['machine']['load_1m']} at start.", "",
             "| figure | measured | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in summary_rows(report)]
    lines += ["", "## Methods", "", __doc__.split("\n\n", 1)[1].strip(), ""]
    if report["errors"]:
        lines += ["## Failed benchmarks", ""]
        lines += [f"- **{k}**: `{v.strip().splitlines()[-1] if v.strip() else v}`" for k, v in report["errors"].items()]
    return "\n".join(lines) + "\n"


# How much each benchmark measures: (option, type, default, help). None: the run's own
# default, which differs between latency, soak and platform runs.
SIZES: tuple[tuple[str, type, float | None, str], ...] = (
    ("--worker-seconds", float, 60, "measured seconds per exchange"),
    ("--bronze-messages", int, 33_000_000, "records Bronze ingests (default 33M: 10 minutes of traffic at "
     "55K msg/s; a drain lasting 10 minutes takes ~180M here)"),
    ("--gold-rows", int, 10_000_000, "Gold rows for the query benchmark"),
    ("--queries", int, 30, "timed 1-hour queries per engine"),
    ("--restarts", int, 3, "kill -9/restart cycles"),
    ("--query-runs", int, 5, "`k2 query` runs, cold and warm, per command"),
    ("--rate", float, None, "latency, soak and platform runs: trades/s per exchange (default 50; soak 200)"),
    ("--seconds", float, None, "latency, soak, platform and fullmarket runs: seconds of trading, warm-up included "
     "(default 120; soak 3600; platform 600; fullmarket 1800)"),
    ("--sample-every", float, 60, "soak: seconds between two samples of every table (default 60)"),
    ("--maintenance-every", float, 600, "soak: seconds between compaction + retention runs (default 600)"),
    ("--warmup", float, None, "latency, platform and fullmarket runs: first seconds left out of the steady-state "
     "percentiles (default 30; platform and fullmarket 60)"),
)


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "bench", _main, "measure every SPEC §8 figure; JSON + markdown report", __doc__, raw=True)
    p.add_argument("--only", nargs="+",
                   choices=["workers", "bronze", "gold_query", "query", "recovery", "latency", "soak", "platform",
                            "fullmarket"],
                   help="run only these benchmarks (soak and platform run only when named here)")
    for flag, kind, default, text in SIZES:
        p.add_argument(flag, type=kind, default=default, help=text)


def _stack_down(s: PlatformSettings) -> list[str]:
    """The stack services the benchmarks need that do not answer (the platform run starts
    the whole platform itself)."""
    from k2ops.stack.process import port_in_use

    needed = {"postgres": s.pg_port, "kafka": s.kafka_port, "registry": s.registry_port}
    return [name for name, port in needed.items() if not port_in_use(s.bind_host, port)]


def _main(args: argparse.Namespace) -> int:
    down = [] if args.only and set(args.only) <= {"platform"} else _stack_down(fresh_platform())
    if down:
        print(f"k2 bench: the local stack is not running ({', '.join(down)} down). Start it with "
              "`k2 stack up postgres kafka registry spark`, or run `make bench`, which starts it and "
              "stops it afterwards.", file=sys.stderr)
        return 2
    report = run_all(args)
    out_dir = _bench_dir()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out_dir / f"{stamp}.json").write_text(json.dumps(report, indent=2, default=str))
    text = markdown(report)
    (out_dir / f"{stamp}.md").write_text(text)
    print(text)
    print(f"[k2 bench] wrote {out_dir / stamp}.json and .md", file=sys.stderr)
    return 1 if report["errors"] else 0
