"""The bootstrap DAG's steps: topics, schemas, and the final verification of everything.

Each step is idempotent and returns ``{object: outcome}`` so the task log and XCom show
what changed; a second run reports ``exists`` everywhere and changes nothing.
"""

from __future__ import annotations

import logging

from k2 import contracts
from k2.errors import K2Error
from k2.kafka_client import client_config
from k2.settings import PlatformSettings
from k2_airflow.report import log_summary

log = logging.getLogger("k2.airflow.bootstrap")


class BootstrapIncomplete(K2Error, RuntimeError):
    """Verification found missing or misconfigured objects (listed in the message)."""


def create_topics(s: PlatformSettings, retention_hours: int) -> dict[str, str]:
    from k2 import kafka_admin

    specs = kafka_admin.desired_topics(retention_hours=retention_hours)
    results = kafka_admin.ensure_topics(kafka_admin.admin_client(client_config(s, admin=True)), specs)
    log_summary("Kafka topics", [("topic", name, results[name]) for name in sorted(results)])
    return results


def register_schemas(s: PlatformSettings) -> dict[str, dict]:
    from k2 import schema_registry

    results = schema_registry.ensure_trade_subjects(schema_registry.registry_client(s.registry_url))
    log_summary(
        "Registry subjects",
        [("subject", subj, f"{r['status']} (id {r['id']}, version {r['version']}, "
          f"{schema_registry.COMPATIBILITY})") for subj, r in sorted(results.items())],
    )
    return results


def _check_topics(s: PlatformSettings, rows: list, problems: list) -> None:
    from k2 import kafka_admin

    present = kafka_admin.existing_topics(kafka_admin.admin_client(client_config(s, admin=True)))
    for spec in kafka_admin.desired_topics():
        have = present.get(spec.name)
        if have is None:
            rows.append(("topic", spec.name, "MISSING"))
            problems.append(f"topic {spec.name} is missing")
        elif have != spec.partitions:
            # Not a failure: the topic works. But it was made before bootstrap (the broker
            # auto-creates a topic a producer names first, with its default count), and
            # growing it would move symbols' keys to other partitions, so it stays as is.
            rows.append(("topic", spec.name, f"ok ({have} partitions; the contracts give {spec.partitions}: "
                                             "created before bootstrap, left as is)"))
        else:
            rows.append(("topic", spec.name, f"ok ({have} partitions)"))


def _check_subjects(s: PlatformSettings, rows: list, problems: list) -> None:
    from k2 import schema_registry

    client = schema_registry.registry_client(s.registry_url)  # first: it silences authlib's import noise
    from confluent_kafka.schema_registry import Schema

    present = set(schema_registry.list_subjects(client))
    v3 = Schema(contracts.trade_schema_text(), "AVRO")
    for subject in schema_registry.desired_subjects():
        if subject not in present:
            rows.append(("subject", subject, "MISSING"))
            problems.append(f"subject {subject} is missing")
            continue
        level = schema_registry.subject_compatibility(client, subject)
        try:
            registered = client.lookup_schema(subject, v3)
            has_v3 = True
        except Exception:
            registered, has_v3 = None, False
        if level != schema_registry.COMPATIBILITY or not has_v3:
            rows.append(("subject", subject, f"WRONG (compatibility {level}, v3 registered: {has_v3})"))
            problems.append(f"subject {subject}: compatibility {level}, v3 registered {has_v3}")
        else:
            rows.append(("subject", subject, f"ok (v3 id {registered.schema_id}, {level})"))


def _check_tables(s: PlatformSettings, rows: list, problems: list) -> None:
    from k2 import iceberg_admin
    from k2.catalog import catalog

    cat = catalog(s)
    if not iceberg_admin.namespace_exists(cat):
        rows.append(("namespace", contracts.NAMESPACE, "MISSING"))
        problems.append(f"namespace {contracts.NAMESPACE} is missing")
        return
    rows.append(("namespace", contracts.NAMESPACE, "ok"))
    present = set(iceberg_admin.existing_tables(cat))
    for table in contracts.lakehouse_tables():
        name = contracts.qualified(table)
        if table not in present:
            rows.append(("table", name, "MISSING"))
            problems.append(f"table {name} is missing")
            continue
        meta = cat.load_table(name).metadata
        codec = meta.properties.get("write.parquet.compression-codec", "zstd")
        fields = ", ".join(f.name for f in meta.spec().fields) or "unpartitioned"
        outcome = f"ok (format v{meta.format_version}, {codec}, partitioned by {fields})"
        if meta.format_version < 2 or codec != "zstd":
            outcome = f"WRONG (format v{meta.format_version}, {codec}; want v2, zstd)"
            problems.append(f"table {name}: format v{meta.format_version}, codec {codec}")
        rows.append(("table", name, outcome))


def verify(s: PlatformSettings) -> str:
    """Check every object the platform needs; log a summary; raise if any is missing."""
    rows: list[tuple[str, str, str]] = []
    problems: list[str] = []
    for check in (_check_topics, _check_subjects, _check_tables):
        check(s, rows, problems)
    text = log_summary("Bootstrap verification", rows)
    if problems:
        raise BootstrapIncomplete(
            "bootstrap incomplete: " + "; ".join(problems)
            + " (re-run the bootstrap DAG; see the task logs of the failing step)"
        )
    return text
