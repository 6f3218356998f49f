"""`k2 bench --only query`: wall time of `k2 query` as a user runs it, process start included.

A throw-away namespace gets a Gold-shaped table (hour-partitioned like Gold, see
spark_jobs/tables.py) holding the last ``hours`` hours of trades of four symbols, appended
in ``batch_minutes`` batches as the stream commits them (so each hour has several small
files, as before compaction). Then each command runs as its own process (the venv's
``k2`` console script), reading the last hour of one symbol:

- **cold**: before each run the bytecode cache is gone (the run gets an empty
  ``PYTHONPYCACHEPREFIX``, so every module is compiled from source) and the table's files
  (data, manifests, metadata) are dropped from the OS page cache
  (``posix_fadvise(DONTNEED)``, file by file: the only cache drop that needs no root and
  leaves the rest of the machine alone). The Python sources and shared libraries of the
  venv and PostgreSQL's own caches stay as they are.
- **warm**: the same command again straight after, bytecode cached, files in the page cache.

Each figure is the median and the max over ``runs`` runs, in ms.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from k2.contracts import GOLD_TABLE
from k2.exchanges import VENUES
from k2.settings import REPO_ROOT, PlatformSettings

COLD = ("no bytecode cache (an empty PYTHONPYCACHEPREFIX) and the table's files dropped from the OS "
        "page cache (posix_fadvise DONTNEED on each); the venv's sources and libraries and PostgreSQL's "
        "caches stay warm")
WARM = "the same command again straight after: bytecode cached, the table's files in the page cache"

# Two symbols on each of the first two registered venues, spelled with the venue's
# separator: (enum symbol, symbol, base asset). The figure queries the first of them.
SYMBOLS = tuple((v.enum_symbol, f"{base}{v.symbol_separator}USD", base)
                for v in VENUES[:2] for base in ("BTC", "ETH"))
COMMANDS = {kind: ["query", kind, "--exchange", VENUES[0].name, "--symbol", SYMBOLS[0][1], "--last", "1h"]
            for kind in ("trades", "bars")}


def gold_batch(start: datetime, seconds: int, rate: float, first_id: int):
    """``seconds`` of trades from ``start`` at ``rate`` trades/s for each of :data:`SYMBOLS`, in
    Gold's columns (what the query reads)."""
    import pyarrow as pa

    step = timedelta(seconds=1 / rate)
    n = int(seconds * rate)
    cols: dict[str, list] = {k: [] for k in ("message_id", "trade_id", "symbol", "exchange", "timestamp",
                                             "price", "quantity", "base_asset", "quote_currency", "side")}
    from decimal import Decimal

    for ex, symbol, base in SYMBOLS:
        for i in range(n):
            tid = first_id + i
            cols["message_id"].append(f"{ex}:{symbol}:{tid}")
            cols["trade_id"].append(str(tid))
            cols["symbol"].append(symbol)
            cols["exchange"].append(ex)
            cols["timestamp"].append(start + i * step)
            cols["price"].append(Decimal(60000 + (tid % 1000)) / 10 if base == "BTC" else Decimal(3000 + tid % 100))
            cols["quantity"].append(Decimal(tid % 97 + 1) / 1000)
            cols["base_asset"].append(base)
            cols["quote_currency"].append("USD")
            cols["side"].append("BUY" if tid % 2 else "SELL")
    return pa.table(cols, schema=gold_schema())


def gold_schema():
    """Gold's columns that the query reads (spark_jobs/tables.py has them all)."""
    import pyarrow as pa

    return pa.schema([
        ("message_id", pa.string()), ("trade_id", pa.string()), ("symbol", pa.string()),
        ("exchange", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC")),
        ("price", pa.decimal128(18, 8)), ("quantity", pa.decimal128(18, 8)),
        ("base_asset", pa.string()), ("quote_currency", pa.string()), ("side", pa.string()),
    ])


@contextmanager
def seeded_gold(s: PlatformSettings, hours: int, rate: float, batch_minutes: int) -> Iterator[tuple[str, str]]:
    """A namespace holding a Gold-shaped table with the last ``hours`` hours of trades; yields
    (namespace, the table's location), then drops both."""
    from pyiceberg.transforms import HourTransform

    from k2.catalog import catalog

    cat = catalog(s)
    namespace = f"k2_bench_query_{uuid.uuid4().hex[:8]}"
    cat.create_namespace(namespace)
    ident = f"{namespace}.{GOLD_TABLE}"
    try:
        table = cat.create_table(ident, schema=gold_schema())
        with table.update_spec() as spec:
            spec.add_field("timestamp", HourTransform(), "timestamp_hour")
        end = datetime.now(UTC).replace(second=0, microsecond=0)
        start = end - timedelta(hours=hours)
        batch = timedelta(minutes=batch_minutes)
        t, first_id = start, 1
        while t < end:
            seconds = int((min(t + batch, end) - t).total_seconds())
            table.append(gold_batch(t, seconds, rate, first_id))
            first_id += int(seconds * rate)
            t += batch
        yield namespace, table.location()
    finally:
        if cat.table_exists(ident):
            cat.purge_table(ident)
        cat.drop_namespace(namespace)
        if not s.warehouse_on_s3:  # purge deletes the files, not the folders
            import shutil

            shutil.rmtree(Path(s.warehouse.removeprefix("file://"), namespace), ignore_errors=True)


def k2_command() -> list[str]:
    """The `k2` console script of this interpreter's venv, as a user runs it."""
    script = Path(sys.executable).parent / "k2"
    return [str(script)] if script.exists() else [sys.executable, "-m", "k2ops.cli"]


def drop_page_cache(root: Path) -> int:
    """Ask the kernel to drop every file under ``root`` from the page cache; the files asked for."""
    count = 0
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
            count += 1
    return count


def _timed(argv: list[str], env: dict) -> tuple[float, float, str]:
    """Wall ms, CPU ms (user + system: on a loaded machine the wall time is mostly waiting for
    a core) and the last line the command printed on stderr."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, timeout=300)
    elapsed = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-800:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed * 1000, cpu * 1000, proc.stderr.strip().splitlines()[-1]


def _figures(ms: list[float], cpu_ms: list[float]) -> dict:
    return {"median_ms": round(statistics.median(ms)), "max_ms": round(max(ms)), "runs": len(ms),
            "cpu_median_ms": round(statistics.median(cpu_ms))}


def measure(s: PlatformSettings, runs: int = 5, hours: int = 6, rate: float = 10, batch_minutes: int = 10) -> dict:
    """Cold and warm wall times (ms) of each of :data:`COMMANDS` over a seeded table (module doc)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    result: dict = {"cold": COLD, "warm": WARM, "runs": runs, "hours": hours, "rate_per_symbol": rate,
                    "load_avg_start": list(os.getloadavg())}
    with seeded_gold(s, hours, rate, batch_minutes) as (namespace, location), \
            tempfile.TemporaryDirectory(prefix="k2-bench-pyc-") as pyc:
        folder = Path(location.removeprefix("file://")) if not s.warehouse_on_s3 else None
        for name, args in COMMANDS.items():
            argv = [*k2_command(), *args, "--namespace", namespace]
            cold, warm, cold_cpu, warm_cpu = [], [], [], []
            for i in range(runs):
                if folder is not None:
                    drop_page_cache(folder)
                wall, cpu, said = _timed(argv, {**env, "PYTHONPYCACHEPREFIX": str(Path(pyc, f"cold-{name}-{i}"))})
                cold.append(wall)
                cold_cpu.append(cpu)
                wall, cpu, said = _timed(argv, {**env, "PYTHONPYCACHEPREFIX": str(Path(pyc, "warm"))})
                warm.append(wall)
                warm_cpu.append(cpu)
            result[name] = {"command": "k2 " + " ".join(args), "cold": _figures(cold, cold_cpu),
                            "warm": _figures(warm, warm_cpu),
                            "cold_ms": [round(x) for x in cold], "warm_ms": [round(x) for x in warm],
                            "last_output": said}
    result["load_avg_end"] = list(os.getloadavg())
    return result


def summary_lines(run: dict) -> list[tuple[str, str]]:
    """(figure, measured) rows for the bench report."""
    rows = []
    for name in COMMANDS:
        f = run[name]
        rows.append((f"`{f['command']}` wall time, process start included ({run['hours']} h of Gold, "
                     f"{run['rate_per_symbol']:g} trades/s per symbol)",
                     f"cold median {f['cold']['median_ms']} ms, max {f['cold']['max_ms']} ms; warm median "
                     f"{f['warm']['median_ms']} ms, max {f['warm']['max_ms']} ms (over {f['cold']['runs']} runs each); "
                     f"CPU median cold {f['cold']['cpu_median_ms']} ms, warm {f['warm']['cpu_median_ms']} ms; "
                     f"load average {run['load_avg_start'][0]:.1f} → {run['load_avg_end'][0]:.1f} on "
                     f"{os.cpu_count()} cores"))
    return rows


def main() -> int:
    """`python -m k2ops.bench.query [--runs N]`: the figures as one JSON line (what `k2 bench` reads)."""
    import argparse
    import json

    from k2.settings import platform

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hours", type=int, default=6)
    parser.add_argument("--rate", type=float, default=10, help="trades/s per symbol")
    args = parser.parse_args()
    run = measure(platform(), args.runs, args.hours, args.rate)
    print(json.dumps({"bench": "query", **run}))
    for figure, measured in summary_lines(run):
        print(f"{figure}: {measured}", file=sys.stderr)
    print(f"cold: {COLD}\nwarm: {WARM}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
