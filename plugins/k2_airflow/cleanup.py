"""The cleanup-migrations DAG's steps: find the legacy estate, then remove it (or not).

Which names are legacy is an explicit list in :mod:`k2_airflow.legacy` (v3 objects can
never be on it). Each step lists what it found; with ``dry_run`` it removes nothing. Running it
again after a real run finds nothing, so it is idempotent.
"""

from __future__ import annotations

from k2.settings import PlatformSettings
from k2_airflow.report import log_summary


def legacy_tables(settings: PlatformSettings, dry_run: bool) -> dict[str, str]:
    from k2 import contracts, iceberg_admin
    from k2.catalog import catalog
    from k2_airflow import legacy

    cat = catalog(settings)
    found = legacy.select("table", iceberg_admin.existing_tables(cat))
    results = {
        contracts.qualified(t): "would purge" if dry_run else iceberg_admin.purge_table(cat, t)
        for t in found
    }
    log_summary(f"Legacy Iceberg tables (dry_run={dry_run})",
                [("table", n, o) for n, o in sorted(results.items())])
    return results


def legacy_subjects(settings: PlatformSettings, dry_run: bool) -> dict[str, str]:
    from k2 import schema_registry
    from k2_airflow import legacy

    client = schema_registry.registry_client(settings.registry_url)
    found = legacy.select("subject", schema_registry.list_subjects(client))
    results = {s: "would remove" if dry_run else schema_registry.delete_subject(client, s) for s in found}
    log_summary(f"Legacy registry subjects (dry_run={dry_run})",
                [("subject", n, o) for n, o in sorted(results.items())])
    return results


def legacy_topics(settings: PlatformSettings, dry_run: bool) -> dict[str, str]:
    from k2 import kafka_admin
    from k2_airflow import legacy

    admin = kafka_admin.admin_client(settings.kafka_bootstrap)
    found = legacy.select("topic", list(kafka_admin.existing_topics(admin)))
    results = {t: "would remove" for t in found} if dry_run else kafka_admin.delete_topics(admin, found)
    log_summary(f"Legacy Kafka topics (dry_run={dry_run})",
                [("topic", n, o) for n, o in sorted(results.items())])
    return results


def summarize(dry_run: bool, found: dict[str, dict[str, str]]) -> dict:
    """One report over all kinds; the DAG run's final task log is the record of the run."""
    rows = [(kind, name, outcome) for kind, items in found.items() for name, outcome in sorted(items.items())]
    title = "Cleanup migrations: DRY RUN, nothing removed" if dry_run else "Cleanup migrations: removed"
    if not rows:
        title += " (no legacy objects found)"
    log_summary(title, rows)
    return {"dry_run": dry_run, **{k: sorted(v) for k, v in found.items()}}
