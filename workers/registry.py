"""Registering the v3 contract: subject ``<topic>-value``, BACKWARD compatibility."""

from __future__ import annotations

import warnings

from k2 import contracts
from k2.errors import K2Error

with warnings.catch_warnings():
    # authlib (imported by the registry client) installs an "always" filter for its own
    # deprecation warning about its httpx shim; import it first, then silence that noise.
    import authlib.deprecate  # noqa: F401

    warnings.simplefilter("ignore")
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient


class RegistryError(K2Error, RuntimeError):
    """The schema registry refused or could not be reached; the message names the URL."""


def registry_client(url: str) -> SchemaRegistryClient:
    """A registry client; ``mock://...`` gives confluent-kafka's in-process mock (unit tests)."""
    return SchemaRegistryClient.new_client({"url": url})


def register_trade_schema(client: SchemaRegistryClient, topic: str, url: str = "") -> int:
    """Ensure BACKWARD compatibility on ``<topic>-value`` and register v3; returns its id.

    Registering an identical schema again returns the existing id, so every worker start
    may call this. An incompatible change is rejected by the registry, which is the point.
    """
    subject = contracts.value_subject(topic)
    try:
        client.set_compatibility(subject_name=subject, level="BACKWARD")
        return client.register_schema(subject, Schema(contracts.trade_schema_text(), "AVRO"))
    except Exception as exc:  # the client raises several unrelated types (HTTP, JSON, registry)
        raise RegistryError(
            f"could not register {contracts.TRADE_SCHEMA_FILE.name} under {subject!r} at "
            f"{url or 'the registry'}: {exc} "
            "(check K2_REGISTRY_URL and that the registry is running: `k2 stack status`)"
        ) from exc
