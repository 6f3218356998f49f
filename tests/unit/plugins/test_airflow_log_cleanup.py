"""Age-based cleanup of Airflow's log folder: old files go, recent ones and links stay."""

from __future__ import annotations

import os
from pathlib import Path

from k2_airflow.maintenance import clean_old_logs

NOW = 1_800_000_000.0
DAY = 86400.0


def _file(path: Path, size: int, age_days: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (NOW - age_days * DAY, NOW - age_days * DAY))
    return path


def test_files_older_than_the_limit_and_their_emptied_folders_are_deleted(tmp_path):
    old_run = tmp_path / "dag_id=retention" / "run_id=old" / "task_id=t"
    old = _file(old_run / "attempt=1.log", 100, age_days=8)
    old2 = _file(old_run / "attempt=2.log", 50, age_days=7.5)
    running = _file(tmp_path / "dag_id=stream_bronze_ingestion" / "run_id=r" / "attempt=1.log",
                    70, age_days=0.01)  # a stream's task still writing its log
    processor = _file(tmp_path / "dag_processor" / "2026-01-01" / "dags.log", 10, age_days=30)
    (tmp_path / "dag_processor" / "latest").symlink_to(processor.parent)

    assert clean_old_logs(tmp_path, 7, NOW) == (3, 160)

    assert not old.exists() and not old2.exists() and not processor.exists()
    assert not (tmp_path / "dag_id=retention").exists()  # emptied folders removed
    assert running.exists()
    assert (tmp_path / "dag_processor" / "latest").is_symlink()


def test_a_file_just_inside_the_limit_is_kept(tmp_path):
    kept = _file(tmp_path / "a.log", 1, age_days=6.99)
    assert clean_old_logs(tmp_path, 7, NOW) == (0, 0)
    assert kept.exists()
