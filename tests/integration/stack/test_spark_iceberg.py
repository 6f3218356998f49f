"""spark-submit with the platform's jars and catalog; pyiceberg reads what Spark wrote."""

from __future__ import annotations

import re
import subprocess

import pyspark
import pytest

from k2.catalog import catalog
from k2.jobs import job_path
from k2.log import events_named
from k2.settings import platform
from k2ops.stack.spark import spark_submit as spark_submit_binary

pytestmark = pytest.mark.integration


def test_pyspark_matches_spark_submit_version(spark_env):
    out = subprocess.run([spark_submit_binary(), "--version"], env=spark_env,
                         capture_output=True, text=True, timeout=120)
    match = re.search(r"version (\d+\.\d+\.\d+)", out.stdout + out.stderr)
    assert match, out.stderr[-2000:]
    assert match.group(1) == pyspark.__version__


def test_spark_writes_iceberg_table_that_pyiceberg_reads(spark_submit, run_id):
    table = f"k2test_{run_id}.smoke"
    result = spark_submit(job_path("smoke"), "--table", table, "--rows", "25")
    assert result.returncode == 0, result.stderr[-3000:]
    written = events_named(result.stdout, "rows_written")
    assert [(e["job"], e["rows"], e["table"]) for e in written] == [("smoke", 25, table)], result.stdout[-3000:]

    cat = catalog(platform())
    rows = cat.load_table(table).scan().to_arrow().to_pydict()
    assert sorted(rows["id"]) == list(range(25))
    assert sorted(rows["label"]) == sorted(f"row-{i}" for i in range(25))
    cat.purge_table(table)
    cat.drop_namespace(f"k2test_{run_id}")
