"""The schema registry, reached from here only: the v3 trade contract under ``<topic>-value``,
BACKWARD.

Works against any Confluent-compatible registry (locally Apicurio's ``/apis/ccompat/v7``).
Two ways in, for two kinds of caller:

- :func:`registry_client`: confluent-kafka's client, for registering and administering
  subjects (workers at start, the bootstrap and cleanup DAGs, reconciliation, tests).
- :func:`fetch_schema_by_id`: one plain HTTP GET of a schema by id, for the Spark driver's
  writer-schema cache (``spark_jobs/wire.py``), which keeps its own per-answer cache policy
  and must tell a 4xx answer about an id apart from an outage.
"""

from __future__ import annotations

import urllib.request
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING

from k2 import contracts
from k2.errors import K2Error

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

COMPATIBILITY = "BACKWARD"


class RegistryError(K2Error, RuntimeError):
    """The schema registry refused or could not be reached; the message names the URL."""


def _client_module():
    with warnings.catch_warnings():
        # authlib (imported by the registry client) installs an "always" filter for its own
        # deprecation warning about its httpx shim; import it first, then silence that noise.
        import authlib.deprecate  # noqa: F401

        warnings.simplefilter("ignore")
        from confluent_kafka import schema_registry

    return schema_registry


def __getattr__(name: str):
    # `from k2.schema_registry import Schema`: confluent-kafka's classes, imported quietly on
    # first use, so importing this module (the Spark driver does) does not load the client.
    if name in ("Schema", "SchemaRegistryClient"):
        return getattr(_client_module(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def registry_client(url: str) -> SchemaRegistryClient:
    """A registry client; ``mock://...`` gives confluent-kafka's in-process mock (unit tests)."""
    return _client_module().SchemaRegistryClient.new_client({"url": url})


def register_trade_schema(client: SchemaRegistryClient, topic: str, url: str = "") -> int:
    """Ensure BACKWARD compatibility on ``<topic>-value`` and register v3; returns its id.

    Registering an identical schema again returns the existing id, so every worker start
    may call this. An incompatible change is rejected by the registry, which is the point.
    """
    subject = contracts.value_subject(topic)
    try:
        client.set_compatibility(subject_name=subject, level=COMPATIBILITY)
        return client.register_schema(subject, _client_module().Schema(contracts.trade_schema_text(), "AVRO"))
    except Exception as exc:  # the client raises several unrelated types (HTTP, JSON, registry)
        raise RegistryError(
            f"could not register {contracts.TRADE_SCHEMA_FILE.name} under {subject!r} at "
            f"{url or 'the registry'}: {exc} "
            "(check K2_REGISTRY_URL and that the registry is running: `k2 stack status`)"
        ) from exc


def fetch_schema_by_id(registry_url: str, schema_id: int, timeout_s: float) -> bytes:
    """The body of ``GET {registry_url}/schemas/ids/{schema_id}`` (JSON: ``schema``, ``schemaType``).

    Raises urllib's ``HTTPError`` for an HTTP error status (4xx: the registry's answer
    about this id; 5xx: an outage) and ``URLError``/``OSError`` when it cannot be reached.
    """
    url = f"{registry_url.rstrip('/')}/schemas/ids/{schema_id}"
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        return resp.read()


def desired_subjects(topics: Iterable[str] | None = None) -> list[str]:
    """The v3 subjects: one per trade topic (TopicNameStrategy); ``topics`` default to the
    contract's (a test passes its own, prefixed ones)."""
    return [contracts.value_subject(t) for t in (contracts.trade_topics() if topics is None else topics)]


def list_subjects(client: SchemaRegistryClient) -> list[str]:
    return sorted(client.get_subjects())


def ensure_trade_subjects(client: SchemaRegistryClient, topics: Iterable[str] | None = None) -> dict[str, dict]:
    """Set BACKWARD and register v3 under every trade subject (of ``topics``, default the contract's).

    Registering identical content again returns the existing id and adds no version, so
    the result (subject -> {id, version, versions, status}) is the same on every run.
    """
    schema = _client_module().Schema(contracts.trade_schema_text(), "AVRO")
    results: dict[str, dict] = {}
    existing = set(list_subjects(client))
    for subject in desired_subjects(topics):
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
