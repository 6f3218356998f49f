"""Spark from pyspark, preconfigured for K2: jars, the Iceberg catalog, local defaults.

Every ``spark-submit`` (ours, the tests', Airflow's SparkSubmitOperator) reads
``$SPARK_CONF_DIR/spark-defaults.conf``, written here, so jobs need no per-job flags.
The master is ``K2_SPARK_MASTER`` (``local[2]`` by default); ``k2 stack up
--spark-standalone`` also runs a standalone master and worker on 127.0.0.1. Once
``k2 stack up`` has built the class-data archive (:mod:`k2ops.stack.spark_cds`), the
driver's JVM flags point at it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import urllib.request
from pathlib import Path

from k2 import jobs
from k2.settings import PlatformSettings, env_for_children
from k2ops.stack import spark_cds
from k2ops.stack.artifacts import spark_jars
from k2ops.stack.errors import StackError
from k2ops.stack.private_files import write_private
from k2ops.stack.process import Service
from spark_jobs.wire import AVRO_LIMITS

MASTER_PORT = 7077
MASTER_UI_PORT = 8090
WORKER_UI_PORT = 8091
WILDCARDS = ("", "0.0.0.0", "::")
DAEMON_CONF = "spark-daemon.conf"
DAEMON_MAINS = {"master": "org.apache.spark.deploy.master.Master",
                "worker": "org.apache.spark.deploy.worker.Worker"}


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def spark_submit() -> str:
    """The venv's spark-submit (:func:`k2.jobs.spark_submit`); a StackError saying what to do if missing."""
    try:
        return jobs.spark_submit()
    except FileNotFoundError as exc:
        raise StackError("spark", "spark-submit not found", "run `make setup`") from exc


def catalog_conf(s: PlatformSettings) -> dict[str, str]:
    """Spark settings of the Iceberg JDBC catalog (same tables pyiceberg's SqlCatalog uses)."""
    cat = f"spark.sql.catalog.{s.catalog_name}"
    conf = {
        cat: "org.apache.iceberg.spark.SparkCatalog",
        f"{cat}.type": "jdbc",
        f"{cat}.uri": s.pg_jdbc_url(s.catalog_db),
        f"{cat}.jdbc.user": s.pg_user,
        f"{cat}.jdbc.password": s.pg_password.reveal(),
        f"{cat}.warehouse": s.warehouse,
    }
    if s.warehouse_on_s3:
        conf.update(
            {
                f"{cat}.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
                f"{cat}.client.region": s.s3_region,
                f"{cat}.s3.path-style-access": str(s.s3_path_style).lower(),
                f"{cat}.s3.access-key-id": s.s3_access_key_id.reveal(),
                f"{cat}.s3.secret-access-key": s.s3_secret_access_key.reveal(),
            }
        )
        if s.s3_endpoint:
            conf[f"{cat}.s3.endpoint"] = s.s3_endpoint
    return conf


def advertised_host(host: str) -> str:
    """``host``, or, for a wildcard (bind every interface: compose's 0.0.0.0), this machine's
    own address (in a container, the one its /etc/hosts gives its hostname), which a peer in
    another container can connect to; its hostname when that resolves to loopback only."""
    if host not in WILDCARDS:
        return host
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        return name
    return name if ipaddress.ip_address(address).is_loopback else address


def auth_conf(s: PlatformSettings) -> dict[str, str]:
    """Spark's RPC authentication: on iff K2_SPARK_AUTH_SECRET is set.

    With a ``spark://`` master, Spark 4 takes the secret from ``spark.authenticate.secret``
    only (``spark.authenticate.secret.file`` is read for local, YARN and Kubernetes masters),
    so it goes into 0600 properties files: ``spark-defaults.conf`` for drivers and
    :func:`write_daemon_conf`'s file for the master and workers, whose command lines name
    the file only. A worker hands it to its executors in their environment
    (``_SPARK_AUTH_SECRET``), not on their command line.
    """
    if not s.spark_auth_secret:
        return {}
    return {"spark.authenticate": "true", "spark.authenticate.secret": s.spark_auth_secret.reveal()}


# Spark's generated code for a wide projection (Silver's decode and validation rules, a
# scan of Bronze's rows) compiles to Java methods of more than 8,000 bytes of bytecode,
# which HotSpot never compiles by default: they run in the bytecode interpreter on every
# row. Measured on 200,000 Silver rows (decode, validate, hold; local[2]): 3.24 s with the
# quick compiler as configured, 1.65 s with this flag (2.52 / 0.92 s with the full JIT).
# Spark's own remedy, spark.sql.codegen.hugeMethodLimit=8000, gave 3.29 s: its fallback
# generates methods as large. In every driver and executor, ahead of K2_SPARK_JAVA_OPTIONS
# (a later +DontCompileHugeMethods there turns it off again).
COMPILE_HUGE_METHODS = "-XX:-DontCompileHugeMethods"


def base_java_options(conf_dir: Path) -> str:
    return f"-Dlog4j2.configurationFile={conf_dir / 'log4j2.properties'} {COMPILE_HUGE_METHODS}"


def defaults(s: PlatformSettings, conf_dir: Path) -> dict[str, str]:
    # The jars go on the JVM class path, not in spark.jars: spark.jars makes every Spark
    # process copy all of them (~120 MB, Iceberg's AWS bundle alone is 64 MB) into its
    # temp dir before its first task, which slows every stream (re)start, and a process
    # killed with -9 leaves the copy behind in /tmp. Executors of the standalone cluster
    # run on this machine (or from the same image), so the same paths hold for them.
    classpath = os.pathsep.join(str(p) for p in spark_jars(s))
    conf = {
        "spark.master": s.spark_master,
        "spark.driver.memory": s.spark_driver_memory,
        # Executors of a standalone cluster connect to spark.driver.host: never a wildcard.
        # Every port is Spark's choice: compose's containers share one network, open inside.
        "spark.driver.host": advertised_host(s.spark_driver_host),
        "spark.driver.bindAddress": s.bind_host,
        # Spark's own jars again, explicitly, ahead of $SPARK_CONF_DIR (which spark-submit
        # puts between the extra class path and its jars): the class-data archive may only
        # hold classes from entries before the first non-empty folder on the class path.
        "spark.driver.extraClassPath": os.pathsep.join(str(p) for p in spark_cds.driver_class_path(s)),
        "spark.executor.extraClassPath": classpath,
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        "spark.sql.defaultCatalog": s.catalog_name,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": " ".join(filter(None, [base_java_options(conf_dir),
                                                                 spark_cds.java_options(s),
                                                                 s.spark_java_options])),
        # Executor JVMs of a standalone cluster: the same Avro allocation caps the driver
        # sets on itself (spark_jobs.wire.cap_avro_allocations), so a forged length
        # prefix is a decode_error there too, not an OutOfMemoryError.
        "spark.executor.extraJavaOptions": " ".join([COMPILE_HUGE_METHODS,
                                                      *(f"-D{k}={v}" for k, v in AVRO_LIMITS.items())]),
    }
    conf.update(catalog_conf(s))
    conf.update(auth_conf(s))
    return conf


def daemon_conf(s: PlatformSettings) -> dict[str, str]:
    """A standalone master's or worker's properties: authentication, and no unauthenticated
    way in (the REST submission server, the UIs' kill buttons: the UIs have no login)."""
    return {**auth_conf(s), "spark.master.rest.enabled": "false", "spark.ui.killEnabled": "false"}


def _write_private(path: Path, conf: dict[str, str], what: str) -> None:
    """``conf`` as a Spark properties file, readable by its owner only from its creation on."""
    lines = [f"# Generated by {what} from k2ops/stack/spark.py; may hold secrets: keep private."]
    lines += [f"{k} {v}" for k, v in conf.items()]
    write_private(path, "\n".join(lines) + "\n")


def write_daemon_conf(s: PlatformSettings, path: Path) -> Path:
    _write_private(path, daemon_conf(s), "`k2 stack`")
    return path


def daemon_argv(role: str, host: str, properties: Path, *extra: str) -> list[str]:
    """spark-class for a standalone ``master`` or ``worker`` (``extra``: its other arguments)."""
    return [str(spark_home() / "bin" / "spark-class"), DAEMON_MAINS[role], "--host", host,
            "--properties-file", str(properties), *extra]


def write_conf(s: PlatformSettings, conf_dir: Path | None = None) -> None:
    conf_dir = conf_dir or s.spark_conf_dir
    conf_dir.mkdir(parents=True, exist_ok=True)
    _write_private(conf_dir / "spark-defaults.conf", defaults(s, conf_dir), "`k2 stack up`")
    write_daemon_conf(s, conf_dir / DAEMON_CONF)  # `up --spark-standalone`'s master and worker
    (conf_dir / "log4j2.properties").write_text(
        "\n".join(
            [
                "rootLogger.level = warn",
                "rootLogger.appenderRef.stdout.ref = console",
                "appender.console.type = Console",
                "appender.console.name = console",
                "appender.console.target = SYSTEM_ERR",
                "appender.console.layout.type = PatternLayout",
                "appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n",
                "logger.k2.name = k2",
                "logger.k2.level = info",
                "logger.streaming.name = org.apache.spark.sql.execution.streaming",
                "logger.streaming.level = warn",
                "",
            ]
        )
    )


def _ui_ready(port: int, host: str) -> bool:
    with urllib.request.urlopen(f"http://{host}:{port}/", timeout=3) as resp:
        return resp.status == 200


def standalone_services(s: PlatformSettings) -> list[Service]:
    env = env_for_children(s)
    env["SPARK_HOME"] = str(spark_home())
    env["SPARK_NO_DAEMONIZE"] = "1"
    host = s.bind_host
    properties = s.spark_conf_dir / DAEMON_CONF  # written by write_conf, before they start
    master = Service(
        name="spark-master",
        argv=daemon_argv("master", host, properties, "--port", str(MASTER_PORT),
                         "--webui-port", str(MASTER_UI_PORT)),
        run_dir=s.run_dir, log_file=s.logs_dir / "spark-master.log",
        address=f"spark://{host}:{MASTER_PORT} (UI http://{host}:{MASTER_UI_PORT})",
        env=env, ports=[(host, MASTER_PORT), (host, MASTER_UI_PORT)],
        ready=lambda: _ui_ready(MASTER_UI_PORT, host), ready_timeout=60,
    )
    worker = Service(
        name="spark-worker",
        argv=daemon_argv("worker", host, properties, "--webui-port", str(WORKER_UI_PORT),
                         "--cores", str(os.cpu_count() or 2), "--memory", "4g",
                         f"spark://{host}:{MASTER_PORT}"),
        run_dir=s.run_dir, log_file=s.logs_dir / "spark-worker.log",
        address=f"UI http://{host}:{WORKER_UI_PORT}",
        env=env, ports=[(host, WORKER_UI_PORT)],
        ready=lambda: _ui_ready(WORKER_UI_PORT, host), ready_timeout=60,
    )
    return [master, worker]
