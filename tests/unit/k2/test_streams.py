"""The stream contract: one running copy (lock), progress records, stop by process group."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from k2.config import load
from k2.polling import wait_until
from k2.settings import PlatformSettings
from k2.streams import (
    AlreadyRunning,
    StreamProgress,
    hold_run_lock,
    lock_holder,
    read_progress,
    stop_stream,
    write_progress,
)


@pytest.fixture
def settings(tmp_path):
    return load(PlatformSettings, {"K2_HOME": str(tmp_path), "K2_CHECKPOINT_ROOT": str(tmp_path / "cp")})


def test_progress_round_trip(settings):
    assert read_progress("gold_aggregation", settings) is None
    progress = StreamProgress(stream="gold_aggregation", batch_id=7, batch_timestamp="2026-01-01T00:00:00Z",
                              rows_in=120, rows_per_second=40.0, source_lag=None, pid=1)
    write_progress(progress, settings)
    assert read_progress("gold_aggregation", settings) == progress


def test_second_copy_is_refused_naming_the_holder(settings):
    handle = hold_run_lock("bronze_ingestion", settings)
    try:
        with pytest.raises(AlreadyRunning, match=r"already running \(pid \d+\)"):
            hold_run_lock("bronze_ingestion", settings)
    finally:
        handle.close()
    assert lock_holder("bronze_ingestion", settings) is None


def test_stop_stream_kills_the_holders_process_group(settings, tmp_path):
    script = textwrap.dedent(f"""
        import subprocess, sys, time
        from k2.config import load
        from k2.settings import PlatformSettings
        from k2.streams import hold_run_lock
        s = load(PlatformSettings, {{"K2_HOME": {str(tmp_path)!r}, "K2_CHECKPOINT_ROOT": {str(tmp_path / "cp")!r}}})
        lock = hold_run_lock("silver_transformation", s)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(tmp_path / "child.pid")!r}, "w").write(str(child.pid))
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    holder = wait_until(lambda: lock_holder("silver_transformation", settings), 30, what="lock")
    assert holder == proc.pid
    child_pid = int(wait_until(lambda: (tmp_path / "child.pid").exists() and (tmp_path / "child.pid").read_text(), 30,
                               "the child to write its pid"))

    assert stop_stream("silver_transformation", settings, timeout_s=30) is True
    assert proc.wait(10) == -9
    assert lock_holder("silver_transformation", settings) is None
    wait_until(lambda: subprocess.run(["ps", "-o", "stat=", "-p", str(child_pid)], capture_output=True,
                                      text=True).stdout.strip() in ("", "Z"), 10, what="child killed")


def test_unknown_stream_is_rejected(settings):
    with pytest.raises(KeyError, match="bronze_ingestion"):
        read_progress("platinum", settings)


def _lock_holder_process(tmp_path, on_sigterm: str) -> subprocess.Popen:
    """A process holding silver_transformation's run lock; ``on_sigterm``: exit | ignore."""
    script = textwrap.dedent(f"""
        import signal, sys, time
        from k2.config import load
        from k2.settings import PlatformSettings
        from k2.streams import hold_run_lock
        s = load(PlatformSettings, {{"K2_HOME": {str(tmp_path)!r}, "K2_CHECKPOINT_ROOT": {str(tmp_path / "cp")!r}}})
        lock = hold_run_lock("silver_transformation", s)
        if {on_sigterm!r} == "exit":
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a stream's clean stop
        else:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(600)
    """)
    return subprocess.Popen([sys.executable, "-c", script], start_new_session=True)


def test_graceful_stop_lets_the_stream_exit_cleanly(settings, tmp_path):
    proc = _lock_holder_process(tmp_path, "exit")
    wait_until(lambda: lock_holder("silver_transformation", settings), 30, what="lock")
    assert stop_stream("silver_transformation", settings, timeout_s=30, graceful_s=30) is True
    assert proc.wait(10) == 0  # exit 0: an Airflow runner task succeeds and is not retried


def test_graceful_stop_kills_a_stream_that_does_not_stop(settings, tmp_path):
    proc = _lock_holder_process(tmp_path, "ignore")
    wait_until(lambda: lock_holder("silver_transformation", settings), 30, what="lock")
    assert stop_stream("silver_transformation", settings, timeout_s=30, graceful_s=2) is True
    assert proc.wait(10) == -9
