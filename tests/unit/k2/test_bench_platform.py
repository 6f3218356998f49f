"""The platform latency run's pure parts: the window and its 10-minute slices, the
flatness ratio, which data files a commit added, the DAG runs in the window, what the
run leaves running afterwards, and its rows in the markdown summary."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pyiceberg.table.snapshots import Operation

from k2.polling import wait_until
from k2ops.bench.platform import Window, flatness, latency_figures, overlapping_runs, progress_line
from k2ops.bench.platform_up import Found, restore_plan
from k2ops.bench.snapshots import added_files, appended_records
from k2ops.stack.workers import WorkersMode, mode_of

T0 = 1_800_000_000.0  # any epoch second


# -- window and slices ---------------------------------------------------------------

def test_the_window_starts_after_the_warmup_and_ends_with_the_run():
    w = Window.after_warmup(T0, seconds=3600, warmup=60)
    assert (w.start, w.end, w.seconds) == (T0 + 60, T0 + 3600, 3540)
    assert T0 + 60 in w and T0 + 3600 in w
    assert T0 + 59.9 not in w and T0 + 3600.1 not in w


@pytest.mark.parametrize("warmup", [600, 601, -1])
def test_a_warmup_as_long_as_the_run_is_refused(warmup):
    with pytest.raises(ValueError):
        Window.after_warmup(T0, seconds=600, warmup=warmup)


def test_slices_are_ten_minutes_from_the_start_and_the_last_one_is_what_is_left():
    w = Window(T0, T0 + 3540)
    spans = [(s.start - T0, s.seconds) for s in w.slices()]
    assert spans == [(0, 600), (600, 600), (1200, 600), (1800, 600), (2400, 600), (3000, 540)]
    assert (w.first().start, w.first().end) == (T0, T0 + 600)
    assert (w.last().start, w.last().end) == (T0 + 2940, T0 + 3540)


def test_flatness_is_last_over_first():
    assert flatness(10.0, 11.5) == 1.15
    assert flatness(8.0, 4.0) == 0.5
    assert flatness(0.0, 3.0) is None


# -- figures over the window ---------------------------------------------------------

def _spread(start: float, seconds: float, values: list[float]) -> list[tuple[float, float]]:
    """The values as samples evenly spread over [start, start + seconds)."""
    step = seconds / len(values)
    return [(start + i * step, v) for i, v in enumerate(values)]


def test_figures_give_p99_per_slice_and_compare_the_last_ten_minutes_with_the_first():
    w = Window(T0, T0 + 1800)  # three slices
    first = _spread(T0, 600, [float(v) for v in range(1, 101)])  # p99 (nearest rank) = 99
    middle = _spread(T0 + 600, 600, [5.0] * 100)
    last = _spread(T0 + 1200, 600, [float(v) for v in range(2, 202, 2)])  # p99 = 198
    outside = [(T0 - 1, 1000.0), (T0 + 1801, 1000.0)]  # warm-up and catch-up: not counted
    f = latency_figures(first + middle + last + outside, w)
    assert f["rows"] == 300
    assert [s["p99_s"] for s in f["slices"]] == [99.0, 5.0, 198.0]
    assert [s["rows"] for s in f["slices"]] == [100, 100, 100]
    # Minute by minute: 10 values a minute (one every 6 s) in each slice.
    assert f["p99_per_minute_s"] == [10.0 * (m + 1) for m in range(10)] + [5.0] * 10 + [
        20.0 * (m + 1) for m in range(10)]
    assert (f["first_10min_p99_s"], f["last_10min_p99_s"]) == (99.0, 198.0)
    assert f["last_over_first"] == 2.0 and f["flat"] is False
    assert f["ends_overlap"] is False
    assert f["p99_s"] == 194.0  # the 297th of 300 values, 4th from the top: 200, 198, 196, 194


def test_a_flat_run_is_within_twenty_percent():
    w = Window(T0, T0 + 1200)
    samples = _spread(T0, 600, [10.0] * 99 + [12.0]) + _spread(T0 + 600, 600, [10.0] * 99 + [13.0])
    f = latency_figures(samples, w)
    assert (f["first_10min_p99_s"], f["last_10min_p99_s"]) == (10.0, 10.0)
    assert f["flat"] is True


def test_a_window_under_ten_minutes_has_no_flatness_and_one_under_twenty_overlaps():
    short = latency_figures(_spread(T0, 150, [1.0, 2.0, 3.0]), Window(T0, T0 + 150))
    assert short["rows"] == 3 and short["p50_s"] == 2.0
    assert short["first_10min_p99_s"] is None and short["last_over_first"] is None and short["flat"] is None
    mid = latency_figures(_spread(T0, 900, [1.0] * 60 + [9.0] * 30), Window(T0, T0 + 900))
    assert mid["ends_overlap"] is True
    assert (mid["first_10min_p99_s"], mid["last_10min_p99_s"]) == (1.0, 9.0)


def test_no_samples_gives_empty_figures_not_an_error():
    f = latency_figures([], Window(T0, T0 + 1200))
    assert f["rows"] == 0 and f["p99_s"] is None and f["last_over_first"] is None


# -- which files each commit added ---------------------------------------------------

def _entry(status: int, snapshot_id: int, path: str, records: int = 10):
    return SimpleNamespace(status=status, snapshot_id=snapshot_id,
                           data_file=SimpleNamespace(file_path=path, record_count=records))


def _manifest(added_by: int, entries: list, content: int = 0):
    return SimpleNamespace(added_snapshot_id=added_by, content=content,
                           fetch_manifest_entry=lambda io, discard_deleted=True: entries)


def _snap(sid: int, ts_ms: int, op: Operation, manifests: list, added: int = 0):
    summary = {"added-records": str(added)}
    return SimpleNamespace(snapshot_id=sid, timestamp_ms=ts_ms, manifests=lambda io: manifests,
                           summary=SimpleNamespace(operation=op, get=summary.get))


ADDED, EXISTING, DELETED = 1, 0, 2


def test_only_files_an_append_added_carry_its_commit_time():
    older = _manifest(1, [_entry(ADDED, 1, "f1")])  # written by snapshot 1, listed again by 2
    snaps = [
        _snap(1, 1_000, Operation.APPEND, [older]),  # before the range
        _snap(2, 2_000, Operation.APPEND, [older, _manifest(2, [
            _entry(ADDED, 2, "f2"), _entry(EXISTING, 1, "f1-merged")])]),  # a merged manifest
        # Compaction: new files of old rows, under a replace snapshot.
        _snap(3, 3_000, Operation.REPLACE, [_manifest(3, [_entry(ADDED, 3, "compacted"), _entry(DELETED, 3, "f2")])]),
        _snap(4, 4_000, Operation.APPEND, [
            _manifest(4, [_entry(ADDED, 4, "f4a", 7), _entry(ADDED, 4, "f4b", 3)]),
            _manifest(4, [_entry(ADDED, 4, "deletes")], content=1)]),  # a delete manifest
        _snap(5, 5_000, Operation.OVERWRITE, [_manifest(5, [_entry(ADDED, 5, "rewritten")])]),
        _snap(6, 6_000, Operation.APPEND, [_manifest(6, [_entry(ADDED, 6, "f6")])]),  # after the range
    ]
    walk = added_files(reversed(snaps), io=None, since_ms=1_500, until_ms=5_500)
    assert [(f.path, f.commit_ms, f.snapshot_id, f.records) for f in walk.files] == [
        ("f2", 2_000, 2, 10), ("f4a", 4_000, 4, 7), ("f4b", 4_000, 4, 3)]
    assert dict(walk.skipped) == {"replace": 1, "overwrite": 1}
    assert [f.path for f in added_files(snaps, None, since_ms=1_500).files] == ["f2", "f4a", "f4b", "f6"]


def test_progress_counts_come_from_the_append_summaries():
    snaps = [_snap(1, 1_000, Operation.APPEND, [], added=50), _snap(2, 2_000, Operation.APPEND, [], added=70),
             _snap(3, 2_500, Operation.REPLACE, [], added=999), _snap(4, 3_000, Operation.APPEND, [], added=5)]
    assert appended_records(snaps, since_ms=1_500) == (75, 2)


def test_progress_line():
    line = progress_line(120.4, 600, 60, {"bronze": (12_000, 24), "silver": (11_950, 23), "gold": (11_900, 22)},
                         streams=3, load=1.5)
    assert line == ("120/600 s (measuring): bronze +12,000 rows in 24 commits, silver +11,950 rows in 23 commits, "
                    "gold +11,900 rows in 22 commits; streams running 3/3; load 1.50")
    assert "(warm-up)" in progress_line(30, 600, 60, {}, 3, 1.0)


# -- scheduled DAG runs in the window ------------------------------------------------

def test_dag_runs_overlapping_the_window_with_times_from_its_start():
    start, end = 1_800_000_000.0, 1_800_000_600.0  # 2027-01-15T08:00:00Z .. 08:10:00Z
    runs = [
        {"dag_id": "compaction", "dag_run_id": "a", "state": "success",
         "start_date": "2027-01-15T07:30:00Z", "end_date": "2027-01-15T07:35:00Z"},  # before
        {"dag_id": "compaction", "dag_run_id": "b", "state": "success",
         "start_date": "2027-01-15T07:58:00Z", "end_date": "2027-01-15T08:01:00+00:00"},  # into it
        {"dag_id": "data_quality", "dag_run_id": "c", "state": "running",
         "start_date": "2027-01-15T08:05:00.5Z", "end_date": None},  # still running
        {"dag_id": "retention", "dag_run_id": "d", "state": "queued", "start_date": None, "end_date": None},
        {"dag_id": "retention", "dag_run_id": "e", "state": "success",
         "start_date": "2027-01-15T08:10:01Z", "end_date": "2027-01-15T08:11:00Z"},  # after
    ]
    assert overlapping_runs(runs, start, end, now=end + 60) == [
        {"dag_id": "compaction", "run_id": "b", "state": "success", "start_s": -120.0, "end_s": 60.0},
        {"dag_id": "data_quality", "run_id": "c", "state": "running", "start_s": 300.5, "end_s": None},
    ]


# -- the workers' mode and what the run leaves running -------------------------------

def test_mode_of_a_workers_command_line():
    assert mode_of(["/v/bin/python", "/v/bin/k2", "workers"]) == WorkersMode(simulator=False)
    assert mode_of(["k2", "workers", "--simulator"]) == WorkersMode(True, 20.0)  # `k2 workers`' default
    assert mode_of(["k2", "workers", "--simulator", "--simulator-rate", "50"]) == WorkersMode(True, 50.0)
    assert mode_of(["k2", "workers", "--simulator", "--simulator-rate=7.5"]) == WorkersMode(True, 7.5)


STACK = frozenset({"postgres", "kafka", "registry"})
AIRFLOW = frozenset({"airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"})
STREAMS = frozenset({"bronze_ingestion", "silver_transformation", "gold_aggregation"})
WANTED = WorkersMode(True, 50.0)


def test_nothing_running_before_means_everything_down_after():
    plan = restore_plan(Found(frozenset(), frozenset(), None), WANTED)
    assert plan.everything_down is True and plan.restart_workers is None


def test_a_running_platform_with_live_workers_gets_them_back_and_keeps_its_streams():
    found = Found(STACK | AIRFLOW | {"workers"}, frozenset({"bronze_ingestion"}), WorkersMode(False))
    plan = restore_plan(found, WANTED)
    assert plan.everything_down is False
    assert plan.keep == STACK | AIRFLOW | {"workers"}
    assert plan.keep_streams == STREAMS  # the babysitter would restart any stream stopped
    assert plan.restart_workers == WorkersMode(False)


def test_workers_already_at_the_rate_are_left_alone():
    found = Found(STACK | AIRFLOW | {"workers"}, STREAMS, WANTED)
    assert restore_plan(found, WANTED).restart_workers is None
    other_rate = Found(STACK | AIRFLOW | {"workers"}, STREAMS, WorkersMode(True, 20.0))
    assert restore_plan(other_rate, WANTED).restart_workers == WorkersMode(True, 20.0)


def test_a_bare_stack_loses_airflow_the_streams_and_the_workers_again():
    # What `make bench` starts when the stack is down: no Airflow, no workers.
    plan = restore_plan(Found(STACK, frozenset(), None), WANTED)
    assert plan.keep == STACK and plan.keep_streams == frozenset()
    assert plan.restart_workers is None and plan.everything_down is False


# -- the markdown summary ------------------------------------------------------------

def test_the_summary_shows_the_platform_figures_beside_the_issue_targets():
    from k2ops.bench.cli import markdown

    w = Window(T0, T0 + 1200)
    e2e = latency_figures(_spread(T0, 1200, [6.0] * 199 + [9.0]), w)
    silver = latency_figures(_spread(T0, 300, [2.0] * 10), w)
    run = {"rate_per_exchange": 50, "warmup_s": 60, "window": {"seconds": 1200}, "e2e": e2e, "silver": silver,
           "batch_breakdown": {"gold_aggregation": {"batches": 200, "median_s": {"trigger_wait": 2.1, "total": 3.0}}},
           "stream_pids": {"gold_aggregation": [11, 12]},
           "dag_runs": [{"dag_id": "compaction", "run_id": "x", "state": "success", "start_s": 95.0, "end_s": 170.0}],
           "load_avg_start": [1.9, 1.5, 1.2], "load_avg_end": [2.1, 1.8, 1.4]}
    report = {"started": "2027-01-15T08:00:00+00:00", "machine": {"cpus": 2, "load_1m": 0.3},
              "results": {"platform": {"runs": [run]}}, "errors": {}}
    text = markdown(report)
    assert ("| end-to-end latency (exchange event → Gold commit), whole platform, 1200 s after a 60 s warm-up "
            "at 50 trades/s per exchange | p50 6.0 s, p99 6.0 s over 200 rows; p99 per 10 min: 6.0, 6.0 s; "
            "p99 per minute: " + "6.0, " * 19 + "9.0 s | < 15 s (issue 17) |") in text
    # Silver's trades all fell in the first 5 minutes: the other minutes have none.
    assert "p99 per minute: 2.0, 2.0, 2.0, 2.0, 2.0, " + "-, " * 14 + "- s |" in text
    assert "Silver latency (Bronze commit → Silver commit), whole platform" in text and "< 8 s (issue 17)" in text
    assert "silver: first 10 min p99 2.0 s, last no rows;" in text  # no trades in the last 10 min
    assert "e2e: first 10 min p99 6.0 s, last 6.0 s, x1.0 |" in text
    assert "gold_aggregation on the platform: median batch (200 batches with rows, restarted 1x)" in text
    assert "compaction (success, from 95 s); load 1.9 → 2.1" in text
    run["window"]["seconds"], run["e2e"] = 300, latency_figures(_spread(T0, 300, [6.0] * 10), Window(T0, T0 + 300))
    run["silver"] = latency_figures(_spread(T0, 300, [2.0] * 10), Window(T0, T0 + 300))
    assert "silver: none (window under 10 min); e2e: none (window under 10 min)" in markdown(report)


def test_the_running_workers_mode_is_read_from_their_command_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from k2.config import load
    from k2.settings import PlatformSettings
    from k2ops.stack.workers import running_mode

    s = load(PlatformSettings, {"K2_HOME": str(tmp_path)})
    assert running_mode(s) is None  # no pid file: not running
    # A stand-in whose command line ends like the service's: `... workers --simulator --simulator-rate 50`.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)",
                             "workers", "--simulator", "--simulator-rate", "50"])
    try:
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
        started = stat[stat.rindex(")") + 2:].split()[19]  # what Service writes beside the pid
        s.run_dir.mkdir(parents=True)
        (s.run_dir / "workers.pid").write_text(f"{proc.pid} {started}\n")
        # Until the child has exec'd, /proc shows pytest's own command line: wait for the stand-in's.
        wait_until(lambda: b"--simulator-rate" in Path(f"/proc/{proc.pid}/cmdline").read_bytes(), 10,
                   "the stand-in to exec", interval=0.01)
        assert running_mode(s) == WorkersMode(True, 50.0)
    finally:
        proc.kill()
        proc.wait()
    assert running_mode(s) is None  # the recorded process is gone


def test_cpu_is_charged_to_the_nearest_labelled_ancestor():
    from k2ops.bench.cpu import OTHER, attribute, shares

    # scheduler 10 -> task 11 -> stream JVM 12 -> python driver 13; kafka 20; bench 30
    procs = {10: (1, 5.0), 11: (10, 1.0), 12: (11, 40.0), 13: (12, 3.0), 20: (1, 7.0), 30: (1, 0.5), 1: (0, 0.1)}
    roots = {10: "airflow-scheduler", 12: "silver_transformation", 20: "kafka"}
    got = attribute(procs, roots)
    assert got == {"airflow-scheduler": 6.0, "silver_transformation": 43.0, "kafka": 7.0, OTHER: 0.6}
    assert shares({"kafka": 7.0}, {"kafka": 19.0, "new": 3.0}, 60) == {"kafka": 0.2, "new": 0.05}


def test_cpu_attribution_survives_a_parent_loop():
    from k2ops.bench.cpu import OTHER, attribute

    assert attribute({5: (6, 1.0), 6: (5, 2.0)}, {}) == {OTHER: 3.0}


def test_cpu_meter_keeps_a_restarted_process_time_its_own(monkeypatch):
    """A stream killed and restarted mid-run: both JVMs' time is the stream's, and the
    parent that reaped the first (here pytest, labelled as the scheduler) is not charged
    for it again through its children's times."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from k2ops.bench import cpu

    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0: pass\ntime.sleep(60)"
    roots = {os.getpid(): "airflow-scheduler"}
    monkeypatch.setattr(cpu, "_roots", lambda s, procs: roots)

    def burnt(proc: subprocess.Popen) -> bool:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / cpu.CLOCK_TICKS >= 1.0

    meter = cpu.CpuMeter(None)
    for _ in range(2):  # the stream, then its restart
        proc = subprocess.Popen([sys.executable, "-c", burn])
        roots[proc.pid] = "silver_transformation"
        try:
            wait_until(lambda proc=proc: burnt(proc), 60, "the stand-in to burn 1 s of CPU", interval=0.05)
            meter.tick()
        finally:
            proc.kill()
            proc.wait()
    meter.tick()
    assert meter.totals["silver_transformation"] >= 2.0
    assert meter.totals.get("airflow-scheduler", 0.0) < 1.0  # pytest's own polling only
    assert meter.totals["machine"] >= 2.0
    assert meter.cores(10.0)["silver_transformation"] == round(meter.totals["silver_transformation"] / 10, 3)


def test_a_spark_jobs_jvm_is_named_by_the_job_it_runs():
    """Maintenance jobs run under Airflow tasks: their JVMs are charged to `job <name>`,
    not to the scheduler."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from k2ops.bench.cpu import spark_job_of

    # A stand-in whose command line reads like spark-submit's driver JVM for compaction.
    proc = subprocess.Popen(["/usr/lib/jvm/bin/java", "-c", "import time; time.sleep(30)",
                             "/opt/k2/spark_jobs/compaction.py"], executable=sys.executable)
    try:
        wait_until(lambda: b"compaction.py" in Path(f"/proc/{proc.pid}/cmdline").read_bytes(), 10,
                   "the stand-in to exec", interval=0.01)
        assert spark_job_of(proc.pid) == "compaction"
    finally:
        proc.kill()
        proc.wait()
    assert spark_job_of(proc.pid) is None  # gone
    assert spark_job_of(os.getpid()) is None  # pytest: not a JVM
