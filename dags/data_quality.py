"""
### data_quality — every record followed through the layers (hourly, at :15)

One task, `reconcile` (k2/reconcile.py): for the last whole hour of Kafka time that
ended at least `grace_minutes` ago, per topic-partition of the trade topics, the offsets
Kafka received; each must be in Bronze, then in `silver_dlq` or (by `message_id`) in its
exchange's Silver table, then in Gold (one row per trade, so duplicates count once).
The log has one line per partition (`produced`, `bronze`, `silver + silver_dlq`, `gold`)
and names each record that stopped somewhere: topic, partition, offset, message id,
and the layer it did not reach.

Anything missing fails the task **without retry** (a loss is not transient), so the
run shows red in the UI; a failure to read Kafka or a table is retried. Records a stream
has not reached yet (its checkpoint says how far it has committed) are *in flight*, not
missing: the task then fails with a retry, so the window is checked again once the streams
have caught up (after an outage, Airflow's catch-up runs come before the streams have); a
stream still behind after the retries leaves the run red, its records unchecked. Params `start`/`end`
(ISO-8601) check another window; `namespace`/`topic_prefix` point it at another
deployment's objects. `k2 reconcile` runs the same check by hand.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, task

from k2_airflow.defaults import default_args, k2_dag, task_settings

with k2_dag(
    "data_quality", __doc__, schedule="15 * * * *", tags=["k2", "completeness"],
    # Retries wait 10 min: a failure to read is retried, and so are records still in flight.
    task_args=default_args(retries=3, retry_delay=timedelta(minutes=10)),
    params={
        "grace_minutes": Param(30, type="number", minimum=0, description="how long a record may be in flight"),
        "start": Param("", type="string", description="window start, ISO-8601 (default: the last whole hour)"),
        "end": Param("", type="string", description="window end, ISO-8601"),
        "namespace": Param("market_data", type="string"),
        "topic_prefix": Param("", type="string", description="prefix of the trade topics (tests)"),
    },
) as dag:

    @task(task_id="reconcile", execution_timeout=timedelta(minutes=30))
    def reconcile(params: dict | None = None) -> dict:
        from datetime import UTC, datetime

        from airflow.sdk.exceptions import AirflowFailException

        from k2 import reconcile as rec
        from k2.times import parse_time
        from k2_airflow.priority import run_in_background

        settings = task_settings("reconcile")
        run_in_background("reconcile", settings)
        p = params or {}
        if p.get("start") and p.get("end"):
            start, end = parse_time(p["start"]), parse_time(p["end"])
        else:
            start, end = rec.default_window(datetime.now(UTC), timedelta(minutes=float(p.get("grace_minutes", 30))))
        report = rec.reconcile(settings, start, end, p.get("namespace") or "market_data", p.get("topic_prefix") or "")
        for line in report.lines():
            print(line, flush=True)
        if report.missing:
            raise AirflowFailException(f"RECONCILIATION: {report.missing} record(s) missing; see the lines above")
        if report.in_flight:
            raise RuntimeError(f"RECONCILIATION: {report.in_flight} record(s) still in flight (a stream has not "
                               "reached them yet); nothing is missing so far; checking again on retry")
        return {"records": sum(part.produced for part in report.partitions), "missing": 0}

    reconcile()
