"""The benchmark DAG's steps: run a suite, and append comparable records to a JSONL file.

Results go to ``$K2_HOME/bench/airflow_runs.jsonl``, one JSON object per suite per run
(DAG run id, parameters, timing, exit code and the suite's own JSON results), so runs
can be compared with ``jq`` or pandas. The suites are the project's benchmark modules
(``workers.bench``, ``spark_jobs.bench``, the same ones ``make bench`` runs); the
``streams`` step measures the running streams from their published progress.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

from k2.errors import K2Error
from k2.settings import REPO_ROOT, PlatformSettings
from k2_airflow.report import log_summary

RESULTS_FILE = "airflow_runs.jsonl"


class SuiteMissing(K2Error, RuntimeError):
    """The benchmark module does not exist (yet)."""


def bench_dir(settings: PlatformSettings) -> Path:
    return settings.home_path / "bench"


def record(entry: dict, settings: PlatformSettings) -> Path:
    path = bench_dir(settings) / RESULTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
    return path


def _new_json_files(folder: Path, since: float) -> dict[str, object]:
    out: dict[str, object] = {}
    for path in sorted(folder.glob("*.json")):
        if path.stat().st_mtime >= since:
            try:
                out[path.name] = json.loads(path.read_text())
            except ValueError:
                continue
    return out


def run_suite(s: PlatformSettings, module: str, rate: int, duration_s: int, run_id: str) -> dict:
    """``python -m <module> --rate R --duration D``; its JSON results are kept with the run."""
    if importlib.util.find_spec(module) is None:
        raise SuiteMissing(f"benchmark module {module} does not exist; nothing to run")
    started = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", module, "--rate", str(rate), "--duration", str(duration_s)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=duration_s + 1800,
    )
    for line in (proc.stdout + proc.stderr).splitlines():
        print(line)  # the suite's own figures and method, in the task log
    entry = {
        "run_id": run_id, "suite": module, "rate": rate, "duration_s": duration_s,
        "started": started, "finished": time.time(), "exit_code": proc.returncode,
        "results": _new_json_files(bench_dir(s), started),
    }
    path = record(entry, s)
    log_summary(f"Benchmark {module}", [("suite", module, f"exit {proc.returncode}; recorded in {path}")])
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark {module} exited {proc.returncode}; see the log above")
    return entry


def stream_figures(s: PlatformSettings, run_id: str) -> dict:
    """Throughput and lag of each running stream, from its last published progress."""
    from k2.contracts import STREAMS
    from k2.streams import lock_holder, read_progress

    figures = {}
    for stream in STREAMS:
        progress = read_progress(stream, s)
        figures[stream] = {
            "running": lock_holder(stream, s) is not None,
            "rows_per_second": progress.rows_per_second if progress else None,
            "source_lag": progress.source_lag if progress else None,
            "last_batch": progress.batch_id if progress else None,
            "progress_age_s": round(progress.age_seconds(), 1) if progress else None,
        }
    entry = {"run_id": run_id, "suite": "streams", "at": time.time(), "results": figures}
    path = record(entry, s)
    log_summary("Stream figures", [
        ("stream", name, f"running={f['running']} rows/s={f['rows_per_second']} "
                         f"lag={f['source_lag']} age={f['progress_age_s']}s")
        for name, f in figures.items()
    ] + [("file", str(path), "appended")])
    return entry
