"""
### cleanup_migrations — remove the legacy v1/v2, equity and ASX estate (manual)

**`dry_run` defaults to true**: the first run only lists what it would remove. Trigger
again with `dry_run` unticked to remove it.

- **tables**: Iceberg `market_data.trades_v1/v2`, `quotes_v1/v2`, dropped and purged
  (data and metadata files deleted) with pyiceberg.
- **subjects**: registry subjects that are v1, equity or ASX (e.g.
  `com.k2.marketdata.Trade-value`, `com.k2.marketdata.Quote-value`,
  `market.equities.trades.asx-value`), soft- then hard-deleted.
- **topics**: Kafka topics `market.equities.*`.
- **summary**: one table of everything removed (or that would be).

Never touches v3 objects (the names in `k2.contracts` are protected in
`k2_airflow.legacy`). Idempotent: a second real run finds nothing.
"""

from __future__ import annotations

from airflow.sdk import Param, task

from k2_airflow import cleanup
from k2_airflow.defaults import k2_dag, task_settings

with k2_dag(
    "cleanup_migrations", __doc__, schedule=None, tags=["k2", "migration"],
    params={"dry_run": Param(True, type="boolean",
                             description="only list what would be removed")},
) as dag:

    @task
    def tables(params: dict | None = None) -> dict:
        return cleanup.legacy_tables(task_settings("tables"), dry_run=bool(params["dry_run"]))

    @task
    def subjects(params: dict | None = None) -> dict:
        return cleanup.legacy_subjects(task_settings("subjects"), dry_run=bool(params["dry_run"]))

    @task
    def topics(params: dict | None = None) -> dict:
        return cleanup.legacy_topics(task_settings("topics"), dry_run=bool(params["dry_run"]))

    @task
    def summary(tables: dict, subjects: dict, topics: dict, params: dict | None = None) -> dict:
        return cleanup.summarize(bool(params["dry_run"]),
                                 {"table": tables, "subject": subjects, "topic": topics})

    summary(tables(), subjects(), topics())
