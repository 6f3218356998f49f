"""Every entry point checks the environment for unknown K2_* names before it does anything.

Each test starts one real entry point with a typo (K2_KAFKA_BOOTSTRAP_SERVER for
K2_KAFKA_BOOTSTRAP) and asserts the warning names it and the right name; in strict mode
the entry point must stop before touching a service (no stack runs in unit tests, so
getting past the check would fail differently or hang).
"""

from __future__ import annotations

import ast
import importlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from k2.config import SettingsError

ROOT = Path(__file__).resolve().parents[3]
TYPO, RIGHT = "K2_KAFKA_BOOTSTRAP_SERVER", "K2_KAFKA_BOOTSTRAP"
HINT = f"{TYPO} is not a K2 setting and is ignored (did you mean {RIGHT}?)"


@pytest.fixture
def typo_env(monkeypatch, tmp_path):
    """The process environment of an entry point started with a misspelt setting."""
    for name in [n for n in os.environ if n.startswith("K2_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("K2_HOME", str(tmp_path))
    monkeypatch.setenv(TYPO, "127.0.0.1:9092")
    return tmp_path


def _child_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
    return {**env, "K2_HOME": str(home), TYPO: "127.0.0.1:9092", **extra}


def test_the_k2_cli_warns_and_goes_on(typo_env, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "k2ops.cli", "streams", "status"], cwd=ROOT,
                          env=_child_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"k2 streams: warning: {HINT}" in proc.stderr.splitlines()[0]


def test_the_k2_cli_rejects_in_strict_mode(typo_env, monkeypatch, capsys):
    from k2ops import cli

    monkeypatch.setenv("K2_STRICT_SETTINGS", "true")
    assert cli.main(["streams", "status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("k2: configuration error:") and HINT in err


def test_a_worker_warns_in_its_json_log(typo_env):
    import io

    from k2.log import EventLog, parse_events
    from workers.run import warn_unknown_settings

    out = io.StringIO()
    warn_unknown_settings(EventLog(out, exchange="binance"))
    events = parse_events(out.getvalue())
    assert [(e["event"], e["variable"], e["did_you_mean"]) for e in events] == [
        ("unknown_setting", TYPO, RIGHT)]


def test_a_worker_process_stops_with_a_config_error_in_strict_mode(tmp_path):
    from k2.log import parse_events
    from workers.exits import EXIT_CONFIG

    reason = tmp_path / "reason"
    proc = subprocess.run(
        [sys.executable, "-m", "workers.run", "binance", "--exit-reason-file", str(reason)],
        cwd=ROOT, env=_child_env(tmp_path, K2_STRICT_SETTINGS="true"),
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    errors = [e for e in parse_events(proc.stderr) if e["event"] == "configuration_error"]
    assert len(errors) == 1 and HINT in errors[0]["error"]
    assert HINT in reason.read_text()


# Each Spark job's main with arguments it accepts; strict mode must stop it before Spark.
SPARK_MAINS = {
    "bronze_ingestion": [], "silver_transformation": [], "gold_aggregation": [],
    "bootstrap_tables": [], "compaction": [], "retention": [], "legacy_cleanup": [],
    "smoke": ["--table", "k2_smoke.t"], "bench": ["bronze", "--namespace", "k2bench"],
}


def test_every_spark_job_with_a_main_is_listed():
    with_main = sorted(p.stem for p in (ROOT / "spark_jobs").glob("*.py")
                       if any(isinstance(n, ast.FunctionDef) and n.name == "main"
                              for n in ast.parse(p.read_text()).body))
    assert with_main == sorted(SPARK_MAINS)


@pytest.mark.parametrize("job", sorted(SPARK_MAINS))
def test_every_spark_job_main_checks_before_starting_spark(job, typo_env, monkeypatch):
    module = importlib.import_module(f"spark_jobs.{job}")
    monkeypatch.setenv("K2_STRICT_SETTINGS", "true")
    with pytest.raises(SettingsError, match=TYPO):
        module.main(SPARK_MAINS[job])


def test_a_spark_job_warns_on_stderr_and_gets_its_settings(typo_env, capsys):
    from spark_jobs.options import job_settings

    settings = job_settings("bronze_ingestion")
    assert capsys.readouterr().err.splitlines() == [
        f"spark job bronze_ingestion: warning: {HINT}; `k2 config` lists every setting"]
    assert settings.home == str(typo_env)


def test_an_airflow_task_warns_in_its_log_and_gets_its_settings(typo_env, caplog):
    from k2_airflow.defaults import task_settings

    with caplog.at_level(logging.WARNING, logger="k2.airflow.settings"):
        settings = task_settings("create_topics")
    assert [r.getMessage() for r in caplog.records] == [
        f"create_topics: {HINT}; `k2 config` lists every setting"]
    assert settings.home == str(typo_env)


def test_an_airflow_task_fails_in_strict_mode(typo_env, monkeypatch):
    from k2_airflow.defaults import task_settings

    monkeypatch.setenv("K2_STRICT_SETTINGS", "true")
    with pytest.raises(SettingsError, match=TYPO):
        task_settings("create_topics")


def test_dags_and_plugins_read_settings_only_through_the_checked_loader():
    """No DAG or plugin module reads the settings around task_settings (and its check)."""
    paths = [*(ROOT / "dags").glob("*.py"), *(ROOT / "plugins").rglob("*.py")]
    assert len(paths) > 20
    offenders = [p.name for p in paths if p.name != "defaults.py"
                 and any(call in p.read_text() for call in ("platform()", "load(PlatformSettings"))]
    assert offenders == []
    assert sum("task_settings(" in p.read_text() for p in paths) >= 6  # the DAGs using settings + the watch
