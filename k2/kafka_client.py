"""The settings of every K2 Kafka client, built in one place from the platform settings.

Producers, consumers, admin clients and Spark's Kafka source all start from
:func:`client_config` (librdkafka) or :func:`spark_options` (Spark's ``kafka.*`` options),
so a SASL setting reaches every one of them. The local stack is PLAINTEXT with no
credentials; docker-compose uses SASL/SCRAM with one principal per role: the workers'
producer, the streams (Spark, offsets, the DLQ ledger) and the admin tools, which create
and delete topics (``admin=True``: ``K2_KAFKA_ADMIN_SASL_*`` when set).
"""

from __future__ import annotations

from collections.abc import Mapping

from k2.settings import PlatformSettings

# Where a library function takes "kafka": a client config from client_config(), or a bare
# bootstrap string (PLAINTEXT, no credentials: the local stack, tests).
KafkaTarget = Mapping[str, object] | str

SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
PLAIN_LOGIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"


def _principal(settings: PlatformSettings, admin: bool) -> tuple[str, str]:
    if admin and settings.kafka_admin_sasl_username:
        return settings.kafka_admin_sasl_username, settings.kafka_admin_sasl_password.reveal()
    return settings.kafka_sasl_username, settings.kafka_sasl_password.reveal()


def client_config(settings: PlatformSettings, *, admin: bool = False) -> dict[str, object]:
    """librdkafka settings: the bootstrap servers and, with SASL, protocol, mechanism and
    the principal (the admin tools' one with ``admin=True``)."""
    config: dict[str, object] = {"bootstrap.servers": settings.kafka_bootstrap}
    if settings.kafka_security_protocol != "PLAINTEXT":
        config["security.protocol"] = settings.kafka_security_protocol
    if settings.kafka_security_protocol.startswith("SASL_"):
        username, password = _principal(settings, admin)
        config.update({"sasl.mechanism": settings.kafka_sasl_mechanism,
                       "sasl.username": username, "sasl.password": password})
    return config


def as_config(kafka: KafkaTarget) -> dict[str, object]:
    """A fresh librdkafka dict from a :data:`KafkaTarget`."""
    return {"bootstrap.servers": kafka} if isinstance(kafka, str) else dict(kafka)


def _jaas_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def spark_options(settings: PlatformSettings) -> dict[str, str]:
    """Spark's Kafka source options for the same connection (``kafka.``-prefixed Java
    client settings; SASL credentials go in ``kafka.sasl.jaas.config``)."""
    options = {"kafka.bootstrap.servers": settings.kafka_bootstrap}
    if settings.kafka_security_protocol != "PLAINTEXT":
        options["kafka.security.protocol"] = settings.kafka_security_protocol
    if settings.kafka_security_protocol.startswith("SASL_"):
        username, password = _principal(settings, admin=False)
        module = PLAIN_LOGIN_MODULE if settings.kafka_sasl_mechanism == "PLAIN" else SCRAM_LOGIN_MODULE
        options["kafka.sasl.mechanism"] = settings.kafka_sasl_mechanism
        options["kafka.sasl.jaas.config"] = (
            f"{module} required username={_jaas_quote(username)} password={_jaas_quote(password)};"
        )
    return options
