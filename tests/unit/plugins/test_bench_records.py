"""Benchmark results are appended as comparable JSON lines; a missing suite says so."""

from __future__ import annotations

import dataclasses
import json

import pytest

from k2.settings import load_platform
from k2_airflow import bench


@pytest.fixture
def settings(tmp_path):
    return dataclasses.replace(load_platform(), home=str(tmp_path))


def test_records_append_one_json_line_per_entry(settings):
    bench.record({"run_id": "a", "suite": "s", "results": {"x": 1}}, settings)
    path = bench.record({"run_id": "b", "suite": "s", "results": {"x": 2}}, settings)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["run_id"], e["results"]["x"]) for e in lines] == [("a", 1), ("b", 2)]
    assert path == settings.home_path / "bench" / "airflow_runs.jsonl"


def test_missing_suite_is_reported_not_run(settings):
    with pytest.raises(bench.SuiteMissing, match="no_such_bench_module"):
        bench.run_suite(settings, "no_such_bench_module", rate=1, duration_s=10, run_id="r")
