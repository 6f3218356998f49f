"""Platform settings shared by the CLI, the local stack, Spark jobs and DAGs.

All values come from ``K2_*`` environment variables with the defaults below, which
describe the local stack (every service on 127.0.0.1). ``k2 config`` lists them.
Secrets (the PostgreSQL password) are never defaults in code: locally the stack
generates one into the state folder on first start; elsewhere set ``K2_PG_PASSWORD``.
Every secret is held as a :class:`~k2.secret.Secret`, so ``repr(settings)`` never shows it.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from k2.config import load, register, require, setting
from k2.secret import Secret

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL")


def _home(values: dict) -> str:
    return str(REPO_ROOT / ".k2")


def _under_home(*parts: str):
    def default(values: dict) -> str:
        return str(Path(values["home"], *parts))

    return default


def _home_folder(name: str) -> property:
    """A read-only property: the folder ``name`` under the settings' ``K2_HOME``."""

    def folder(self: PlatformSettings) -> Path:
        return self.home_path / name

    return property(folder, doc=f"$K2_HOME/{name}")


def _stream_metrics_port(stream: str, port: int):
    """The setting ``K2_<STREAM>_METRICS_PORT``: where one stream's driver serves Prometheus metrics."""
    return setting(f"{stream.upper()}_METRICS_PORT", port,
                   f"Prometheus /metrics port of the {stream} stream's driver, on K2_BIND_HOST (0: off).")


def _pg_password(values: dict) -> str:
    secret = Path(values["home"]) / "secrets" / "pg_password"
    return secret.read_text().strip() if secret.exists() else ""


@register
@dataclass(frozen=True)
class PlatformSettings:
    """Where the platform's services listen and keep their state, and how components reach them."""

    home: str = setting("HOME", _home, "State folder: pid files, logs, data, warehouse, checkpoints.")
    cache_dir: str = setting(
        "CACHE_DIR",
        lambda v: str(Path.home() / ".cache" / "k2"),
        "Download cache for JVM artifacts (Kafka, registry, Spark jars), shared by clones.",
    )
    bind_host: str = setting("BIND_HOST", "127.0.0.1", "Address every local service binds to.")

    # Kafka
    kafka_port: int = setting("KAFKA_PORT", 9092, "Kafka broker listener port.")
    kafka_controller_port: int = setting("KAFKA_CONTROLLER_PORT", 9093, "KRaft controller port.")
    kafka_bootstrap: str = setting(
        "KAFKA_BOOTSTRAP",
        lambda v: f"{v['bind_host']}:{v['kafka_port']}",
        "Kafka bootstrap servers used by producers, consumers and Spark.",
    )
    # Kafka authentication: none on the local stack; SASL/SCRAM in docker-compose, where
    # each role has its own principal (k2.kafka_client builds every client's settings).
    kafka_security_protocol: str = setting(
        "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", "Kafka client protocol: PLAINTEXT, SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_sasl_mechanism: str = setting(
        "KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", "SASL mechanism when the protocol is SASL_*."
    )
    kafka_sasl_username: str = setting(
        "KAFKA_SASL_USERNAME", "", "Kafka principal of this process's producers, consumers and Spark streams."
    )
    kafka_sasl_password: Secret = setting(
        "KAFKA_SASL_PASSWORD", "", "Password of K2_KAFKA_SASL_USERNAME.", secret=True
    )
    kafka_admin_sasl_username: str = setting(
        "KAFKA_ADMIN_SASL_USERNAME",
        "",
        "Kafka principal of the admin tools that create and delete topics (bootstrap, cleanup); "
        "empty: K2_KAFKA_SASL_USERNAME.",
    )
    kafka_admin_sasl_password: Secret = setting(
        "KAFKA_ADMIN_SASL_PASSWORD", "", "Password of K2_KAFKA_ADMIN_SASL_USERNAME.", secret=True
    )

    # Schema registry (Apicurio, Confluent-compatible API)
    registry_port: int = setting("REGISTRY_PORT", 8081, "Schema registry HTTP port.")
    registry_url: str = setting(
        "REGISTRY_URL",
        lambda v: f"http://{v['bind_host']}:{v['registry_port']}/apis/ccompat/v7",
        "Confluent-compatible schema registry base URL.",
    )

    # PostgreSQL: Iceberg catalog, registry storage, Airflow metadata
    pg_port: int = setting("PG_PORT", 5433, "Local PostgreSQL port.")
    pg_host: str = setting("PG_HOST", lambda v: v["bind_host"], "PostgreSQL host.")
    pg_user: str = setting("PG_USER", "k2", "PostgreSQL role used by every K2 component.")
    pg_password: Secret = setting(
        "PG_PASSWORD",
        _pg_password,
        "PostgreSQL password (local stack: generated into $K2_HOME/secrets on first start).",
        secret=True,
    )

    # Iceberg
    catalog_name: str = setting(
        "CATALOG", "k2", "Iceberg catalog name; Spark and pyiceberg must use the same one."
    )
    catalog_db: str = setting("CATALOG_DB", "iceberg_catalog", "PostgreSQL database of the catalog.")
    warehouse: str = setting(
        "WAREHOUSE",
        lambda v: "file://" + str(Path(v["home"], "warehouse")),
        "Iceberg warehouse location (file:// locally, s3:// in production).",
    )
    # Object storage, used when K2_WAREHOUSE is an s3:// URI (MinIO in docker-compose).
    s3_endpoint: str = setting(
        "S3_ENDPOINT", "", "S3-compatible endpoint URL (empty: AWS's default endpoints)."
    )
    s3_region: str = setting("S3_REGION", "us-east-1", "S3 region.")
    s3_access_key_id: Secret = setting("S3_ACCESS_KEY_ID", "", "S3 access key id.", secret=True)
    s3_secret_access_key: Secret = setting(
        "S3_SECRET_ACCESS_KEY", "", "S3 secret access key.", secret=True
    )
    s3_path_style: bool = setting(
        "S3_PATH_STYLE", True, "Path-style S3 addressing (needed by MinIO and most S3 clones)."
    )
    checkpoint_root: str = setting(
        "CHECKPOINT_ROOT", _under_home("checkpoints"), "Root of the streams' checkpoint folders."
    )

    # Spark
    spark_master: str = setting("SPARK_MASTER", "local[2]", "Spark master for spark-submit.")
    spark_driver_memory: str = setting("SPARK_DRIVER_MEMORY", "1g", "Driver memory per Spark app.")
    spark_java_options: str = setting(
        "SPARK_JAVA_OPTIONS",
        "-XX:TieredStopAtLevel=1",
        "Extra JVM options of every Spark driver. The default keeps the JVM on its quick "
        "compiler: K2's jobs run small batches, and Spark generates new code for them all "
        "the time, so the full JIT spent about 30 % of each stream's CPU recompiling it, "
        "still 12 minutes after start (issue 17). `-XX:TieredStopAtLevel=4` restores the "
        "JVM's full JIT, for a large one-off job.",
    )
    spark_driver_host: str = setting(
        "SPARK_DRIVER_HOST",
        lambda v: v["bind_host"],
        "Address at which a standalone cluster's executors reach a driver (spark.driver.host); "
        "the driver binds K2_BIND_HOST. A wildcard (compose's 0.0.0.0) is never advertised: "
        "the machine's (container's) own address is, instead.",
    )
    spark_auth_secret: Secret = setting(
        "SPARK_AUTH_SECRET",
        "",
        "Shared secret of Spark's RPC authentication (spark.authenticate) between a standalone "
        "master, its workers, their executors and every K2 driver (required in compose). Empty: "
        "authentication off, as on the local stack, whose local[N] master runs in one JVM. "
        "Spark reads it from 0600 properties files only, never from a command line.",
        secret=True,
    )

    # Prometheus metrics of the three streams (one port each; the workers' are 9101, 9102)
    bronze_ingestion_metrics_port: int = _stream_metrics_port("bronze_ingestion", 9111)
    silver_transformation_metrics_port: int = _stream_metrics_port("silver_transformation", 9112)
    gold_aggregation_metrics_port: int = _stream_metrics_port("gold_aggregation", 9113)

    # Airflow
    airflow_port: int = setting("AIRFLOW_PORT", 8080, "Airflow api-server (UI) port.")
    airflow_user: str = setting("AIRFLOW_USER", "admin", "Airflow UI login (simple auth manager).")
    airflow_password: Secret = setting(
        "AIRFLOW_PASSWORD",
        "",
        "Airflow UI password of K2_AIRFLOW_USER (empty: generated once into $K2_HOME/airflow).",
        secret=True,
    )
    airflow_pg_user: str = setting(
        "AIRFLOW_PG_USER", lambda v: v["pg_user"], "PostgreSQL role of Airflow's metadata database (default: K2_PG_USER)."
    )
    airflow_pg_password: Secret = setting(
        "AIRFLOW_PG_PASSWORD",
        lambda v: v["pg_password"],
        "Password of K2_AIRFLOW_PG_USER (default: K2_PG_PASSWORD).",
        secret=True,
    )
    airflow_background_nice: int = setting(
        "AIRFLOW_BACKGROUND_NICE",
        10,
        "CPU niceness (0-19) of the Airflow tasks that work in the background beside the "
        "streams: retention, compaction, the completeness ledger, data quality, and the Spark "
        "jobs they start. On a small machine their CPU competes with the streams' micro-batches "
        "and showed as seconds of extra latency while they ran (issue 17); at 10 they get the "
        "CPU the streams leave. 0: same priority as the streams.",
    )
    airflow_api_url: str = setting(
        "AIRFLOW_API_URL",
        lambda v: f"http://{v['bind_host']}:{v['airflow_port']}",
        "URL at which Airflow's api-server is reached (UI, REST and task execution API).",
    )

    def validate(self) -> None:
        for name in ("kafka_port", "kafka_controller_port", "registry_port", "pg_port", "airflow_port"):
            port = getattr(self, name)
            require(0 < port < 65536, name.upper(), f"port {port} is outside 1-65535")
        from k2.contracts import STREAMS  # not at the top: k2.contracts imports this module

        for stream in STREAMS:
            port = self.stream_metrics_port(stream)
            require(0 <= port < 65536, f"{stream.upper()}_METRICS_PORT", f"port {port} is outside 0-65535 (0: off)")
        used = [p for p in map(self.stream_metrics_port, STREAMS) if p]
        require(len(used) == len(set(used)), "BRONZE_INGESTION_METRICS_PORT",
                f"the streams' metrics ports must differ, got {used}")
        require(0 <= self.airflow_background_nice <= 19, "AIRFLOW_BACKGROUND_NICE",
                f"must be a niceness from 0 to 19, got {self.airflow_background_nice}")
        require(self.spark_master != "", "SPARK_MASTER", "must not be empty (e.g. local[2])")
        require(
            self.kafka_security_protocol in KAFKA_PROTOCOLS,
            "KAFKA_SECURITY_PROTOCOL",
            f"{self.kafka_security_protocol!r} is not one of {', '.join(KAFKA_PROTOCOLS)}",
        )
        if self.kafka_security_protocol.startswith("SASL_"):
            require(
                bool(self.kafka_sasl_username and self.kafka_sasl_password),
                "KAFKA_SASL_USERNAME",
                f"{self.kafka_security_protocol} needs K2_KAFKA_SASL_USERNAME and K2_KAFKA_SASL_PASSWORD",
            )
        require(
            self.warehouse.startswith(("file://", "s3://", "s3a://")),
            "WAREHOUSE",
            f"{self.warehouse!r} must start with file://, s3:// or s3a://",
        )

    # Derived values -------------------------------------------------------------

    def stream_metrics_port(self, stream: str) -> int:
        """``K2_<STREAM>_METRICS_PORT`` (0: the stream serves no metrics)."""
        return getattr(self, f"{stream}_metrics_port")

    @property
    def warehouse_on_s3(self) -> bool:
        return self.warehouse.startswith(("s3://", "s3a://"))

    @property
    def home_path(self) -> Path:
        return Path(self.home)

    logs_dir = _home_folder("logs")
    run_dir = _home_folder("run")
    data_dir = _home_folder("data")
    spark_conf_dir = _home_folder("spark-conf")
    airflow_home = _home_folder("airflow")

    def pg_sqlalchemy_url(self, database: str, user: str | None = None, password: Secret | None = None) -> str:
        """SQLAlchemy URL of ``database`` as K2_PG_USER, or as ``user`` with ``password``."""
        user, password = (user, password) if user else (self.pg_user, self.pg_password)
        return (
            f"postgresql+psycopg2://{user}:{password.reveal()}"
            f"@{self.pg_host}:{self.pg_port}/{database}"
        )

    def pg_jdbc_url(self, database: str) -> str:
        return f"jdbc:postgresql://{self.pg_host}:{self.pg_port}/{database}"


def load_platform() -> PlatformSettings:
    """Read the platform settings from the environment now.

    Entry points (a CLI command, a worker's or a Spark job's main, an Airflow task) call
    this once and pass the result to every function that needs a setting; library code
    takes ``settings: PlatformSettings`` as a parameter and never reads the environment.
    """
    return load(PlatformSettings)


@functools.cache
def platform() -> PlatformSettings:
    """The settings read once per process, for tests and scripts that have no entry point
    of their own; code under k2/, workers/, spark_jobs/, plugins/ and dags/ takes them as a
    parameter instead (see :func:`load_platform`)."""
    return load_platform()


def fresh_platform() -> PlatformSettings:
    """Re-read the settings (for the stack, after it generated the local password)."""
    platform.cache_clear()
    return platform()


def env_for_children(settings: PlatformSettings) -> dict[str, str]:
    """Environment for spawned tools (spark-submit, Airflow) so they see the same stack."""
    env = dict(os.environ)
    env["K2_HOME"] = settings.home
    env["K2_CACHE_DIR"] = settings.cache_dir
    env["SPARK_CONF_DIR"] = str(settings.spark_conf_dir)
    # Spark binds its UIs (drivers', a standalone master's and worker's) to SPARK_LOCAL_IP,
    # else to every interface: where K2 binds every interface (compose), the UIs of the
    # drivers it spawns stay on loopback (their RPC binds spark.driver.bindAddress).
    env["SPARK_LOCAL_IP"] = "127.0.0.1" if settings.bind_host in ("0.0.0.0", "::") else settings.bind_host
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    return env
