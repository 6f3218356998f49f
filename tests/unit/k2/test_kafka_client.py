"""k2.kafka_client: every Kafka client's settings, PLAINTEXT locally and SASL in compose."""

from __future__ import annotations

import re

import pytest

from k2.config import SettingsError, load
from k2.kafka_client import as_config, client_config, spark_options
from k2.settings import REPO_ROOT, PlatformSettings

SASL = {"K2_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "K2_KAFKA_SASL_USERNAME": "k2-streams",
        "K2_KAFKA_SASL_PASSWORD": 'pa"ss', "K2_KAFKA_BOOTSTRAP": "kafka:9092"}


def _settings(tmp_path, **env) -> PlatformSettings:
    return load(PlatformSettings, {"K2_HOME": str(tmp_path), **env})


def test_local_stack_clients_are_plaintext_with_no_credentials(tmp_path):
    s = _settings(tmp_path)
    assert client_config(s) == client_config(s, admin=True) == {"bootstrap.servers": "127.0.0.1:9092"}
    assert spark_options(s) == {"kafka.bootstrap.servers": "127.0.0.1:9092"}


def test_sasl_settings_reach_librdkafka_and_spark(tmp_path):
    s = _settings(tmp_path, **SASL)
    assert client_config(s) == {"bootstrap.servers": "kafka:9092", "security.protocol": "SASL_PLAINTEXT",
                                "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "k2-streams",
                                "sasl.password": 'pa"ss'}
    options = spark_options(s)
    assert options["kafka.security.protocol"] == "SASL_PLAINTEXT"
    assert options["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    assert options["kafka.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="k2-streams" password="pa\\"ss";')


def test_admin_tools_use_their_own_principal_when_set(tmp_path):
    s = _settings(tmp_path, **SASL, K2_KAFKA_ADMIN_SASL_USERNAME="k2-admin", K2_KAFKA_ADMIN_SASL_PASSWORD="pw-9f3c")
    assert (client_config(s, admin=True)["sasl.username"], client_config(s, admin=True)["sasl.password"]) == (
        "k2-admin", "pw-9f3c")
    assert client_config(s)["sasl.username"] == "k2-streams"
    assert "pw-9f3c" not in repr(s)


def test_sasl_without_credentials_or_an_unknown_protocol_is_a_settings_error(tmp_path):
    with pytest.raises(SettingsError, match="K2_KAFKA_SASL_USERNAME"):
        _settings(tmp_path, K2_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT")
    with pytest.raises(SettingsError, match="K2_KAFKA_SECURITY_PROTOCOL"):
        _settings(tmp_path, K2_KAFKA_SECURITY_PROTOCOL="SSL_PLEASE")


def test_a_bare_bootstrap_string_is_a_plaintext_config():
    assert as_config("127.0.0.1:9092") == {"bootstrap.servers": "127.0.0.1:9092"}
    config = {"bootstrap.servers": "b:1", "sasl.username": "u"}
    assert as_config(config) == config and as_config(config) is not config


# Production code that may name the bootstrap servers itself. Every other Kafka client
# goes through k2.kafka_client, or it would miss the SASL settings in compose.
ALLOWED = {
    "k2/kafka_client.py": "builds every client's settings",
    "k2/settings.py": "declares K2_KAFKA_BOOTSTRAP",
    "k2ops/stack/kafka.py": "the local broker's own address, shown by `k2 stack status`",
    "k2ops/stack/spark_warmup.py": "plans a Kafka source against 127.0.0.1:1; nothing connects",
    "workers/run.py": "names the bootstrap servers in a log line",
    "plugins/k2_airflow/cleanup_plan.py": "names the Kafka cluster a cleanup plan was made for",
}


def test_every_kafka_client_gets_its_settings_from_kafka_client():
    pattern = re.compile(r"bootstrap\.servers|\.kafka_bootstrap\b")
    offenders = []
    for folder in ("k2", "k2ops", "workers", "spark_jobs", "plugins", "dags"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            rel = path.relative_to(REPO_ROOT).as_posix()
            if rel not in ALLOWED and pattern.search(path.read_text()):
                offenders.append(rel)
    assert offenders == [], "build Kafka clients from k2.kafka_client.client_config / spark_options"
