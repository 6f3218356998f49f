"""The cleanup-migrations DAG's steps: list the legacy estate, save the plan, remove it.

Which names are legacy is an explicit list (:mod:`k2_airflow.legacy`): nothing else is
ever selected, whatever its name looks like.

- **Dry run**: each step lists the listed names that exist now; the summary saves them as
  the plan (:mod:`k2_airflow.cleanup_plan`). Nothing is removed.
- **Real run**: each step loads the plan and removes exactly the plan's names that still
  exist; it never looks for new ones. A plan name gone in between is reported, not an
  error. One structured (JSON) log line per plan item says what happened to it. Without
  a valid plan the steps refuse (:class:`~k2_airflow.cleanup_plan.PlanError`). After a
  successful real run the summary archives the plan, so running again needs a new dry run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from k2.log import json_line
from k2.settings import PlatformSettings
from k2_airflow import cleanup_plan, legacy
from k2_airflow.report import log_summary

log = logging.getLogger("k2.airflow.cleanup")

GONE = "already gone"  # in the plan, absent when the real run came to it


def legacy_tables(settings: PlatformSettings, dry_run: bool) -> dict[str, str]:
    from k2 import iceberg_admin
    from k2.catalog import catalog

    cat = catalog(settings)
    return _step("table", settings, dry_run, lambda: iceberg_admin.existing_tables(cat),
                 lambda names: {t: iceberg_admin.purge_table(cat, t) for t in names})


def legacy_subjects(settings: PlatformSettings, dry_run: bool) -> dict[str, str]:
    from k2 import schema_registry

    client = schema_registry.registry_client(settings.registry_url)
    return _step("subject", settings, dry_run, lambda: schema_registry.list_subjects(client),
                 lambda names: {s: schema_registry.delete_subject(client, s) for s in names})


def legacy_topics(settings: PlatformSettings, dry_run: bool) -> dict[str, str]:
    from k2 import kafka_admin
    from k2.kafka_client import client_config

    admin = kafka_admin.admin_client(client_config(settings, admin=True))
    return _step("topic", settings, dry_run, lambda: list(kafka_admin.existing_topics(admin)),
                 lambda names: kafka_admin.delete_topics(admin, names))


def _step(kind: str, settings: PlatformSettings, dry_run: bool,
          present: Callable[[], list[str]],
          remove: Callable[[list[str]], dict[str, str]]) -> dict[str, str]:
    """name -> outcome for one kind: what the dry run found, or what the real run did."""
    if dry_run:
        results = {name: "would remove" for name in legacy.select(kind, present())}
    else:
        plan = cleanup_plan.load(settings)
        planned = plan["items"][kind]
        existing = set(present())
        doomed = [name for name in planned if name in existing]
        results = {name: GONE for name in planned if name not in existing}
        results.update(remove(doomed) if doomed else {})
        for name in planned:
            log.info(json_line({
                "event": "cleanup_removed" if results[name] in ("deleted", "purged") else "cleanup_not_removed",
                "kind": kind, "name": _display(kind, name), "outcome": results[name],
                "plan_created_at": plan["created_at"],
            }))
    log_summary(f"Legacy {kind}s (dry_run={dry_run})",
                [(kind, _display(kind, n), o) for n, o in sorted(results.items())])
    return results


def summarize(settings: PlatformSettings, dry_run: bool, found: dict[str, dict[str, str]]) -> dict:
    """One report over all kinds; the dry run saves it as the plan, the real run archives
    the plan it carried out. The DAG run's final task log is the record of the run."""
    rows = [(kind, _display(kind, name), outcome)
            for kind, items in found.items() for name, outcome in sorted(items.items())]
    if dry_run:
        path = cleanup_plan.save(settings, {kind: list(items) for kind, items in found.items()})
        title = (f"Cleanup migrations: DRY RUN, nothing removed; plan saved to {path}, "
                 "a real run (dry_run=false) removes exactly these")
    else:
        path = cleanup_plan.archive(settings)
        title = f"Cleanup migrations: removed (plan archived to {path})"
    if not rows:
        title += " (no legacy objects found)"
    log_summary(title, rows)
    return {"dry_run": dry_run, "plan": str(path), **{k: sorted(v) for k, v in found.items()}}


def _display(kind: str, name: str) -> str:
    from k2 import contracts

    return contracts.qualified(name) if kind == "table" else name
