"""Fixtures shared by every tier.

Unmarked tests are unit tests and need no services. Tests marked ``integration``,
``dags`` or ``e2e`` talk to the real local stack, which `make test` starts; run alone,
they fail with a message saying how to start it (never silently skipped).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# The test machine has 2 cores shared with the local stack: how fast Hypothesis draws
# inputs says nothing about the code under test, so neither the draw speed nor a
# per-example deadline may fail a test. Tests that pin their own settings keep them.
settings.register_profile("k2", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("k2")

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "plugins"))  # Airflow adds plugins/ to sys.path too
sys.path.insert(0, str(REPO_ROOT / "tests"))


TIERS = ("faults", "e2e", "dags", "integration")  # a test counts in the first tier it is marked with
_tier_seconds: dict[str, float] = {}
_tier_tests: dict[str, set[str]] = {}


def pytest_addoption(parser):
    parser.addoption("--tier-times", default=None, metavar="FILE",
                     help="also write the per-tier timing summary as JSON to FILE (make test prints it)")
    parser.addoption(
        "--fake-now", default=None, metavar="HH:MM|ISO",
        help="run the calendar-dependent tests (marker 'clock') as if it were this UTC time: "
             "HH:MM means its latest past occurrence (00:05, 01:30, 23:55), or a full ISO-8601 "
             "instant; the jobs they start receive it as --now (`make test-clock` runs all three)")


@pytest.fixture(scope="session")
def clock_now(request) -> datetime:
    """The instant calendar-dependent tests count from: now, or ``--fake-now``.

    Tests that seed data by date take it from here and hand it to the jobs they run
    (``--now``), so no assertion depends on the wall-clock hour, day or date.
    """
    from fake_clock import fake_now

    real = datetime.now(UTC)
    text = request.config.getoption("--fake-now")
    return fake_now(text, real) if text else real


@pytest.fixture(scope="session")
def platform_settings():
    from k2.settings import fresh_platform

    return fresh_platform()


@pytest.fixture(scope="session")
def stack(platform_settings):
    """The running local stack (Kafka, registry, PostgreSQL); fails clearly if it is down."""
    from k2ops.stack.process import port_in_use

    s = platform_settings
    needed = {"kafka": s.kafka_port, "registry": s.registry_port, "postgres": s.pg_port}
    down = [name for name, port in needed.items() if not port_in_use(s.bind_host, port)]
    if down:
        pytest.fail(f"local stack not running ({', '.join(down)} down): run `make test`, "
                    "or `.venv/bin/k2 stack up` before running this tier by hand")
    return s


@pytest.fixture(scope="session")
def run_id() -> str:
    """A short id unique to this test session, for topic, table and subject names."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def spark_env(stack):
    from k2ops.stack.airflow import environment

    return environment(stack)


@pytest.fixture(scope="session")
def spark_submit(spark_env):
    """Run ``spark-submit <app> <args>`` as the platform does; returns CompletedProcess."""
    from k2ops.stack.spark import spark_submit as binary

    def run(app: str | Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [binary(), str(app), *args], env=spark_env, cwd=REPO_ROOT,
            capture_output=True, text=True, timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def airflow_cli(stack):
    """Run ``airflow <args>`` with the local stack's Airflow environment."""
    from k2ops.stack.airflow import run_cli

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return run_cli(stack, list(args), capture_output=True, text=True, timeout=timeout)

    return run


def pytest_runtest_logreport(report):
    tier = next((t for t in TIERS if t in report.keywords), "unit")
    _tier_seconds[tier] = _tier_seconds.get(tier, 0.0) + report.duration  # setup + call + teardown
    _tier_tests.setdefault(tier, set()).add(report.nodeid)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _tier_seconds:
        return
    terminalreporter.section("time per tier (setup + test + teardown)")
    order = [t for t in (*TIERS[::-1], "unit") if t in _tier_seconds]
    rows = {t: {"seconds": round(_tier_seconds[t], 1), "tests": len(_tier_tests[t])} for t in order}
    for tier, row in rows.items():
        terminalreporter.write_line(f"{tier:<12} {row['seconds']:>8.1f} s  {row['tests']:>4} tests")
    path = config.getoption("--tier-times")
    if path:
        Path(path).write_text(json.dumps(rows))


def pytest_collection_modifyitems(config, items):
    # Keep tests that stop and restart the whole stack last.
    items.sort(key=lambda item: "restarts_stack" in item.keywords)


os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
