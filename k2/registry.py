"""Schema registry subjects: the v3 trade contract under ``<topic>-value``, BACKWARD.

Works against any Confluent-compatible registry (locally Apicurio's ``/apis/ccompat/v7``).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from k2 import contracts

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

COMPATIBILITY = "BACKWARD"


def registry_client(url: str) -> SchemaRegistryClient:
    with warnings.catch_warnings():
        # authlib, imported by the client, warns about its own httpx shim at import time.
        warnings.simplefilter("ignore")
        from confluent_kafka.schema_registry import SchemaRegistryClient

    return SchemaRegistryClient({"url": url})


def desired_subjects() -> list[str]:
    """The v3 subjects: one per trade topic (TopicNameStrategy)."""
    return [contracts.value_subject(t) for t in contracts.trade_topics()]


def list_subjects(client: SchemaRegistryClient) -> list[str]:
    return sorted(client.get_subjects())


def ensure_trade_subjects(client: SchemaRegistryClient) -> dict[str, dict]:
    """Set BACKWARD and register v3 under every trade subject.

    Registering identical content again returns the existing id and adds no version, so
    the result (subject -> {id, version, versions, status}) is the same on every run.
    """
    from confluent_kafka.schema_registry import Schema

    schema = Schema(contracts.trade_schema_text(), "AVRO")
    results: dict[str, dict] = {}
    existing = set(list_subjects(client))
    for subject in desired_subjects():
        try:
            client.set_compatibility(subject_name=subject, level=COMPATIBILITY)
            schema_id = client.register_schema(subject, schema)
            registered = client.lookup_schema(subject, schema)
            versions = client.get_versions(subject)
        except Exception as exc:  # the client raises HTTP, JSON and registry errors alike
            raise RuntimeError(
                f"registering {contracts.TRADE_SCHEMA_FILE.name} under {subject!r} failed: {exc} "
                "(check K2_REGISTRY_URL and `k2 stack status`)"
            ) from exc
        results[subject] = {
            "status": "exists" if subject in existing else "registered",
            "id": schema_id,
            "version": registered.version,
            "versions": list(versions),
        }
    return results


def subject_compatibility(client: SchemaRegistryClient, subject: str) -> str | None:
    try:
        return client.get_compatibility(subject_name=subject)
    except Exception:
        return None


def delete_subject(client: SchemaRegistryClient, subject: str) -> str:
    """Soft then hard delete (Confluent semantics, which Apicurio's ccompat API follows)."""
    if subject not in set(list_subjects(client)):
        return "absent"
    client.delete_subject(subject, permanent=False)
    try:
        client.delete_subject(subject, permanent=True)
    except Exception as exc:
        # Registries that delete permanently on the first call answer 404 here.
        if "404" not in str(exc) and "not found" not in str(exc).lower():
            raise
    return "deleted"
