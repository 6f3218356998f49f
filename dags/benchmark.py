"""
### benchmark — measure the running platform (manual; params `rate`, `duration_seconds`)

- **workers**: `python -m workers.bench --rate <rate> --duration <s>` (simulator →
  worker → Kafka acked throughput).
- **spark**: `python -m spark_jobs.bench --rate <rate> --duration <s>` (ingest rate,
  Silver/end-to-end latency, Gold query latency).
- **streams**: throughput and lag of the running streams from their `progress.json`.

Each step appends one JSON line (run id, params, timing, exit code, the suite's JSON
results) to `$K2_HOME/bench/airflow_runs.jsonl` so runs compare side by side, and logs
the figures. A suite that does not exist yet is skipped, saying so. One run at a time:
two benchmarks would measure each other.
"""

from __future__ import annotations

from airflow.sdk import Param, task

from k2_airflow import bench
from k2_airflow.defaults import default_args, k2_dag, task_settings

SUITES = {"workers": "workers.bench", "spark": "spark_jobs.bench"}

with k2_dag(
    "benchmark", __doc__, schedule=None, tags=["k2", "benchmark"],
    task_args=default_args(retries=0),  # a re-run would not measure the same thing
    params={
        "rate": Param(50_000, type="integer", minimum=1, description="target messages per second"),
        "duration_seconds": Param(600, type="integer", minimum=10, description="sustained duration"),
    },
) as dag:
    previous = None
    for name, module in SUITES.items():

        @task(task_id=name)
        def run_suite(module: str = module, params: dict | None = None, run_id: str | None = None):
            from airflow.sdk.exceptions import AirflowSkipException

            try:
                return bench.run_suite(task_settings(module), module, int(params["rate"]),
                                       int(params["duration_seconds"]), run_id)
            except bench.SuiteMissing as exc:
                raise AirflowSkipException(str(exc)) from exc

        current = run_suite()
        if previous is not None:
            previous >> current  # one suite at a time: they share the 2 cores
        previous = current

    @task(trigger_rule="all_done")
    def streams(run_id: str | None = None) -> dict:
        return bench.stream_figures(task_settings("streams"), run_id)

    previous >> streams()
