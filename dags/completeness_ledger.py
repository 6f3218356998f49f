"""
### completeness_ledger — keep `market_data.completeness_ledger` current (every 15 min)

One task, `update`: recomputes the ledger rows of every hour Gold changed since the
last run (k2/ledger_store.py), one row per exchange, symbol and UTC hour with first and
last trade id, trades in Gold (live and from REST backfill), expected and missing ids
and their ranges, and a status (`complete`, `gaps`, `unrecoverable`,
`possibly_incomplete`, `not_applicable`). A late trade from backfill updates its hour and
the hour its gap was counted in. Ranges the workers reported the exchange no longer
serves (DLQ records `unrecoverable_range`) are copied to
`market_data.completeness_unrecoverable` first: an hour missing only such ids is
`unrecoverable`, not `gaps`. Times a worker of a venue without gap detection was not
listening (DLQ records `possible_loss_window`) are copied to
`market_data.completeness_possible_loss`: the hours they overlap are
`possibly_incomplete`, with the windows and the seconds they cover. Its log line says
how many symbol-hours were recomputed and how many ids are missing.

A scheduled job rather than the Gold stream: a row is only right once its neighbouring
hours are known, and the ledger's cost never adds to Gold's batch time. Reads Gold
through pyiceberg (no Spark start-up); the table keeps itself small (month partitions
rewritten when crowded, snapshots older than a day expired).

`k2 up` (`make run`) leaves it scheduled. `k2 ledger update` does the same by hand,
`k2 completeness` reads a symbol's hours straight from Gold.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import task

from k2_airflow.defaults import default_args, k2_dag, task_settings

# One run at a time (k2_dag): the job is the table's only writer.
with k2_dag("completeness_ledger", __doc__, schedule=timedelta(minutes=15), tags=["k2", "completeness"],
            task_args=default_args(retries=2)) as dag:

    @task(task_id="update", execution_timeout=timedelta(minutes=30))
    def update() -> dict:
        from k2 import ledger_store
        from k2_airflow.priority import run_in_background

        settings = task_settings("update")
        run_in_background("update", settings)
        result = ledger_store.update(settings)
        return {"rows": result.rows, "missing_ids": result.missing_ids, "statuses": result.statuses}

    update()
