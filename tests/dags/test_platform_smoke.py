"""Airflow runs a SparkSubmitOperator task against the local Spark and catalog."""

from __future__ import annotations

import pytest

from k2.catalog import catalog
from k2.settings import platform

pytestmark = pytest.mark.dags


def test_platform_smoke_dag_runs_spark_submit(airflow_cli):
    result = airflow_cli("dags", "test", "platform_smoke", timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "DagRun Finished: dag_id=platform_smoke" in output
    assert "state=success" in output, output[-4000:]
    rows = catalog(platform()).load_table("k2_smoke.airflow_check").scan().to_arrow()
    assert sorted(rows.column("id").to_pylist()) == [0, 1, 2, 3, 4]
