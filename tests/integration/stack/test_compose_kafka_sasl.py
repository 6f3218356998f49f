"""The compose deployment's Kafka, without Docker: SASL/SCRAM and the ACLs per principal.

The kafka service's own entry point (docker/kafka-start.sh) runs with the kafka service's
own environment from docker-compose.yaml, against the local stack's Kafka jars (its
/opt/kafka/bin is replaced by two wrappers around them), on free loopback ports under a
tmp folder. The ACLs are granted as the kafka-init service grants them, and each client
is built by k2.kafka_client from the environment of the compose service that plays its
role: the exchange workers (producer), Airflow (streams, admin tools) and kafka-init.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import NewTopic

from k2 import contracts
from k2.config import load
from k2.kafka_admin import admin_client, delete_topics, desired_topics, ensure_topics
from k2.kafka_client import client_config
from k2.polling import wait_until
from k2.settings import REPO_ROOT, PlatformSettings
from ports import free_port

pytestmark = pytest.mark.integration

DOC = yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())
COMPOSE = DOC["services"]
TOPIC = contracts.trade_topic("binance")




def _wrapper(path: Path, java: str, classpath: str, log4j: Path, main: str) -> None:
    path.write_text(f'#!/bin/sh\nexec "{java}" $KAFKA_HEAP_OPTS -Dlog4j2.configurationFile={log4j} '
                    f'-cp "{classpath}" {main} "$@"\n')
    path.chmod(0o755)


class Broker:
    """The compose kafka service as a local process group, and the compose clients of it."""

    def __init__(self, root: Path, platform: PlatformSettings) -> None:
        from k2ops.stack.artifacts import kafka_classpath
        from k2ops.stack.kafka import java

        if not any(Path(kafka_classpath(platform)).parent.glob("kafka_2.13-*.jar")):
            pytest.fail("the local stack's Kafka jars are missing: run `make setup` (k2 setup kafka)")
        self.root = root
        self.secrets = root / "secrets"
        bin_dir, conf = root / "bin", root / "config"
        for folder in (self.secrets, bin_dir, conf):
            folder.mkdir()
        log4j = conf / "log4j2.properties"
        log4j.write_text("rootLogger.level = WARN\nrootLogger.appenderRef.out.ref = OUT\n"
                         "appender.out.type = Console\nappender.out.name = OUT\n"
                         "appender.out.layout.type = PatternLayout\nappender.out.layout.pattern = %p %m (%c)%n\n")
        for name, main in (("kafka-storage.sh", "kafka.tools.StorageTool"), ("kafka-server-start.sh", "kafka.Kafka")):
            _wrapper(bin_dir / name, java(), kafka_classpath(platform), log4j, main)

        env = {k: str(v) for k, v in COMPOSE["kafka"]["environment"].items()}
        for role in env["K2_KAFKA_SCRAM_ROLES"].split():
            (self.secrets / f"kafka_{role}_password").write_text(f"{role}-{uuid.uuid4().hex}\n")
        for name in set(DOC["secrets"]) - {p.name for p in self.secrets.iterdir()}:  # the services' others
            (self.secrets / name).write_text(f"unused-{name}\n")
        self.address = f"127.0.0.1:{free_port()}"
        controller = f"127.0.0.1:{free_port()}"
        for key, value in env.items():
            value = (value.replace("://:9092", f"://{self.address}").replace("kafka:9092", self.address)
                     .replace("127.0.0.1:9093", controller).replace("/var/lib/kafka/data", str(root / "data")))
            env[key] = value
        env["KAFKA_HEAP_OPTS"] = "-Xmx512m -Xms256m"
        leftover = {k: v for k, v in env.items() if ":9092" in v or ":9093" in v or "/var/lib" in v}
        assert not leftover, f"compose kafka settings this test does not map to local ones: {leftover}"
        env.update(PATH=os.environ["PATH"], K2_SECRETS_DIR=str(self.secrets), K2_KAFKA_BIN=str(bin_dir),
                   K2_KAFKA_CONFIG_DIR=str(conf))
        self.log = root / "kafka.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(["bash", str(REPO_ROOT / "docker" / "kafka-start.sh")], env=env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def settings(self, service: str) -> PlatformSettings:
        """The K2 settings of a compose service, its secret files and bootstrap made local."""
        environ = {}
        for key, value in COMPOSE[service]["environment"].items():
            value = str(value).replace("/run/secrets", str(self.secrets))
            environ[key] = self.address if key == "K2_KAFKA_BOOTSTRAP" else value
        environ["K2_HOME"] = str(self.root / "k2-home")
        return load(PlatformSettings, environ)

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the broker exited ({self.proc.returncode}):\n{self.log.read_text()[-4000:]}")
        try:
            admin_client(client_config(self.settings("kafka-init")), log_level=0).list_topics(timeout=2)
        except KafkaException:
            return False
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def broker(tmp_path_factory, platform_settings):
    from k2ops.stack import kafka_acls

    b = Broker(tmp_path_factory.mktemp("compose-kafka"), platform_settings)
    try:
        wait_until(b.ready, 120, "the compose SASL broker to accept the kafka-init principal")
        # What the kafka-init service runs (`k2 stack kafka-acls`), with its environment.
        kafka_acls.apply(admin_client(client_config(b.settings("kafka-init"))))
        yield b
    finally:
        b.stop()
    print(f"compose Kafka log: {b.log}")


def _errors(config: dict) -> tuple[dict, list[KafkaError]]:
    seen: list[KafkaError] = []
    return {**config, "error_cb": seen.append, "log_level": 0}, seen


def _create(config: dict, topic: str) -> None:
    admin = admin_client(config)  # kept alive until the result is in
    admin.create_topics([NewTopic(topic, 1, 1)], request_timeout=15)[topic].result(30)


@pytest.fixture(scope="module")
def topics(broker):
    """The admin principal (Airflow's admin tools) creates the platform's topics."""
    admin = client_config(broker.settings("airflow-scheduler"), admin=True)
    assert admin["sasl.username"] == "k2-admin"
    results = ensure_topics(admin_client(admin), desired_topics())
    assert set(results.values()) == {"created"}
    return results


def _refused(config: dict, codes: set[int], what: str) -> None:
    """Every metadata request fails, and the client reports one of ``codes`` (polled)."""
    config, seen = _errors(config)
    admin = admin_client(config)

    def reported() -> bool:
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=1)
        admin.poll(0.2)  # serves error_cb
        return bool({e.code() for e in seen} & codes)

    wait_until(reported, 30, what, interval=0)


def test_a_client_without_credentials_is_refused(broker):
    # The broker expects a SASL handshake first and drops the connection of a PLAINTEXT client.
    _refused({"bootstrap.servers": broker.address}, {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN},
             "a PLAINTEXT client's connection to be dropped")


def test_a_client_with_a_wrong_password_gets_an_authentication_error(broker):
    good = client_config(broker.settings("worker-binance"))
    _refused({**good, "sasl.password": "not-the-password"}, {KafkaError._AUTHENTICATION},
             "an authentication error for a wrong SCRAM password")


def test_the_admin_principal_creates_and_deletes_topics(broker, topics):
    admin = client_config(broker.settings("airflow-scheduler"), admin=True)
    scratch = contracts.TOPIC_PREFIX + f"scratch-{uuid.uuid4().hex[:8]}"
    _create(admin, scratch)
    assert delete_topics(admin_client(admin), [scratch]) == {scratch: "deleted"}


def test_the_producer_principal_writes_trades_but_cannot_create_or_delete_topics(broker, topics):
    producer_config = client_config(broker.settings("worker-binance"))
    assert producer_config["sasl.username"] == "k2-producer"
    delivered: list = []
    producer = Producer({**producer_config, "enable.idempotence": True, "acks": "all"})
    for topic in (TOPIC, contracts.DLQ_TOPIC):
        producer.produce(topic, b"value", b"key", on_delivery=lambda err, msg: delivered.append(err))
    assert producer.flush(30) == 0
    assert delivered == [None, None]

    with pytest.raises(KafkaException, match="AUTHORIZATION_FAILED"):
        _create(producer_config, contracts.TOPIC_PREFIX + "not-allowed")
    with pytest.raises(RuntimeError, match="AUTHORIZATION_FAILED"):
        delete_topics(admin_client(producer_config), [TOPIC])


def test_the_streams_principal_reads_trades_but_cannot_write(broker, topics):
    streams_config = client_config(broker.settings("airflow-scheduler"))
    assert streams_config["sasl.username"] == "k2-streams"
    producer = Producer(client_config(broker.settings("worker-kraken")))
    producer.produce(TOPIC, b"for-streams", b"k")
    assert producer.flush(30) == 0

    consumer = Consumer({**streams_config, "group.id": f"k2-sasl-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([TOPIC])
    try:
        def read_it() -> bool:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error():
                raise AssertionError(f"the streams principal cannot read: {msg.error()}")
            return msg is not None and msg.value() == b"for-streams"

        wait_until(read_it, 60, f"the streams principal to read {TOPIC}", interval=0)
    finally:
        consumer.close()

    failed: list = []
    writer = Producer({**streams_config, "log_level": 0})
    writer.produce(TOPIC, b"x", on_delivery=lambda err, msg: failed.append(err))
    writer.flush(30)
    assert failed and failed[0] is not None and failed[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
