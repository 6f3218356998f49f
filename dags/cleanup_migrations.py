"""
### cleanup_migrations — remove the legacy v1/v2, equity and ASX estate (manual)

**`dry_run` defaults to true**: the first run only lists what it would remove and saves
that list as the **plan** (`$K2_HOME/cleanup/plan.json`). Review it in the summary, then
trigger again with `dry_run` unticked: the real run removes **exactly the plan's objects**
that still exist, nothing found since. Without a plan, with a plan older than 24 h or one
made for another catalog, registry or Kafka cluster, the real run refuses and says to run
the dry run again. A successful real run archives the plan (`plan-<time>.done.json`).

Only the names on the explicit list in `k2_airflow.legacy` are ever selected (another
application's `myapp.v1-value` or `equity-...` subject is never touched):

- **tables**: Iceberg `market_data.trades_v1/v2`, `quotes_v1/v2`, dropped and purged
  (data and metadata files deleted) with pyiceberg.
- **subjects**: `com.k2.marketdata.Trade-value`, `com.k2.marketdata.Quote-value` (v1)
  and `market.equities.{trades,quotes,reference_data}.asx-value`, soft- then hard-deleted.
- **topics**: Kafka `market.equities.{trades,quotes,reference_data}.asx`.
- **summary**: one table of everything removed (or that would be); one JSON log line
  per removed object in each step's log.

v3 objects can never be on the list (checked when `k2_airflow.legacy` is imported).
"""

from __future__ import annotations

from airflow.sdk import Param, task

from k2_airflow import cleanup
from k2_airflow.defaults import k2_dag, task_settings


def _run(step, task_name: str, params: dict) -> dict:
    """Run one step with the task's settings; a refused plan fails the task at once (no
    retry: retrying cannot make a missing or stale plan valid)."""
    from k2_airflow.cleanup_plan import PlanError

    try:
        return step(task_settings(task_name), dry_run=bool(params["dry_run"]))
    except PlanError as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc


with k2_dag(
    "cleanup_migrations", __doc__, schedule=None, tags=["k2", "migration"],
    params={"dry_run": Param(True, type="boolean",
                             description="only list what would be removed, and save that as the plan")},
) as dag:

    @task
    def tables(params: dict | None = None) -> dict:
        return _run(cleanup.legacy_tables, "tables", params)

    @task
    def subjects(params: dict | None = None) -> dict:
        return _run(cleanup.legacy_subjects, "subjects", params)

    @task
    def topics(params: dict | None = None) -> dict:
        return _run(cleanup.legacy_topics, "topics", params)

    @task
    def summary(tables: dict, subjects: dict, topics: dict, params: dict | None = None) -> dict:
        found = {"table": tables, "subject": subjects, "topic": topics}
        return _run(lambda settings, dry_run: cleanup.summarize(settings, dry_run, found), "summary", params)

    summary(tables(), subjects(), topics())
