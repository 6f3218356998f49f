"""`k2 stack ...` and `k2 setup`, `k2 airflow ...`: the local stack from the command line."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from k2.settings import fresh_platform
from k2ops.cli.commands import add_command
from k2ops.stack.errors import StackError


def register(sub: argparse._SubParsersAction) -> None:
    stack = add_command(sub, "stack", None, "start, stop and inspect the local services (Kafka, registry, "
                        "PostgreSQL, Spark, Airflow)",
                        "The platform's real services as local processes bound to 127.0.0.1, "
                        "with pid files and logs under $K2_HOME (default ./.k2). `up` is idempotent and "
                        "restarts keep all data.")
    ss = stack.add_subparsers(dest="stack_command", metavar="ACTION", required=True)

    p = add_command(ss, "up", _up, "start every service (or those named) and wait until healthy",
                    "Start PostgreSQL, Kafka (KRaft), the schema registry, Spark "
                    "configuration and Airflow; each is health-checked before the next starts. "
                    "Already-running services are left alone.")
    p.add_argument("services", nargs="*", metavar="SERVICE",
                   help="only these groups: postgres kafka registry spark airflow (PostgreSQL "
                   "always starts; default: all)")
    p.add_argument("--spark-standalone", action="store_true",
                   help="also run a Spark standalone master + worker; jobs use it when "
                   "K2_SPARK_MASTER=spark://127.0.0.1:7077 (default: local master)")

    add_command(ss, "down", _down, "stop every service the stack started",
                "Stop all services (reverse order, SIGKILL after a timeout). Data stays in $K2_HOME.")

    add_command(ss, "status", _status, "each service's state (running, stopped, crashed) and address",
                "Exit code 0 when every started service is running and healthy, 3 otherwise.")

    p = add_command(ss, "logs", _logs, "show a service's log",
                    "Print the last lines of a service's log (or follow it).")
    p.add_argument("service", help="e.g. kafka, registry, postgres, airflow-scheduler")
    p.add_argument("-n", "--lines", type=int, default=50, help="lines to show (default 50)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")

    add_command(ss, "spark-conf", _spark_conf, "write spark-defaults.conf for the current settings",
                "Write $SPARK_CONF_DIR (default $K2_HOME/spark-conf)/"
                "spark-defaults.conf from the K2_* settings: jars, Iceberg catalog, master. "
                "`up` does this; containers run it before spark-submit.")

    p = add_command(ss, "spark-daemon", _spark_daemon, "run a Spark standalone master or worker in the foreground",
                    "Exec pyspark's spark-class for a standalone master or worker "
                    "(what the compose spark services run; locally, `up --spark-standalone`).")
    p.add_argument("role", choices=["master", "worker"])
    p.add_argument("--master-url", default="spark://spark-master:7077",
                   help="worker only: the master to join (default spark://spark-master:7077)")
    p.add_argument("--host", default=None,
                   help="address to bind and advertise (default: K2_BIND_HOST, or, where that is a "
                   "wildcard such as compose's 0.0.0.0, this container's own address)")

    add_command(ss, "init-airflow", _init_airflow, "migrate Airflow's metadata DB and set the UI login",
                "Idempotent: `airflow db migrate` and the simple-auth-manager "
                "password file. `up` does this; the compose airflow-init service runs it.")

    add_command(ss, "kafka-acls", _kafka_acls, "grant each Kafka principal its rights (compose)",
                "Create the ACLs of the compose deployment's SASL principals (producer, streams, "
                "admin; k2ops/stack/kafka_acls.py), idempotently, as K2_KAFKA_SASL_USERNAME (the "
                "broker's super user). The compose kafka-init service runs it; the local stack has no ACLs.")

    p = add_command(sub, "setup", _setup, "download the JVM artifacts (Kafka, registry, Spark jars)",
                    "Fetch the stack's JVM artifacts from Maven Central into "
                    "$K2_CACHE_DIR (idempotent). `make setup` also creates the virtualenv.")
    # No `choices=` here: with nargs="*" argparse rejects the empty default (Python 3.11).
    p.add_argument("components", nargs="*", metavar="COMPONENT",
                   help="only these: kafka spark registry (default: all)")

    # Wrappers: every argument belongs to the wrapped tool (see k2ops.cli.PASSTHROUGH).
    for name, func, what, description in (
        ("airflow", _airflow, "the Airflow CLI",
         "Runs `airflow ARGS...` with the stack's Airflow environment "
         "(AIRFLOW_HOME, metadata DB, connections), e.g. `k2 airflow dags list`."),
        ("spark-submit", _spark_submit, "spark-submit",
         "Runs pyspark's `spark-submit ARGS...` with the stack's Spark "
         "configuration (SPARK_CONF_DIR: jars, Iceberg catalog, master), e.g. "
         "`k2 spark-submit spark_jobs/retention.py --tables silver_dlq --dry-run`."),
    ):
        p = add_command(sub, name, func, f"run {what} against the local stack", description, add_help=False)
        p.add_argument("args", nargs=argparse.REMAINDER)


def _report(exc: StackError) -> int:
    print(f"k2 stack: {exc}", file=sys.stderr)
    return 1


def _up(args: argparse.Namespace) -> int:
    from k2ops.stack import airflow, services

    groups = tuple(args.services) or services.GROUPS
    try:
        s = services.up(groups, spark_standalone=args.spark_standalone)
    except StackError as exc:
        return _report(exc)
    _print_status()
    if "airflow" in groups:
        # Not the password itself: this output often ends up in a log (`make test`, CI).
        print(f"\nAirflow UI: {airflow.api_url(s)}  login: {s.airflow_user}, password in "
              f"{s.airflow_home / airflow.PASSWORDS_FILE} (readable by its owner only)")
    print(f"Logs: {s.logs_dir}   (k2 stack logs SERVICE)")
    return 0


def _down(args: argparse.Namespace) -> int:
    from k2ops.stack import services

    stopped = services.down()
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _print_status() -> bool:
    from k2ops.stack import services

    rows = services.status()
    streams = services.stream_rows(fresh_platform())
    header = ("SERVICE", "STATE", "ADDRESS", "PID")
    widths = [max(len(r[i]) for r in [header, *rows, *streams]) for i in range(4)]
    for row in [header, *rows, *([("STREAM", "STATE", "LAST BATCH", "PID"), *streams] if streams else [])]:
        print("  ".join(col.ljust(w) for col, w in zip(row, widths, strict=True)).rstrip())
    # Streams come and go under the babysitter; the exit code speaks for services only.
    return all(r[1] in ("running", "local") for r in rows)


def _status(args: argparse.Namespace) -> int:
    return 0 if _print_status() else 3


def _logs(args: argparse.Namespace) -> int:
    s = fresh_platform()
    path = s.logs_dir / f"{args.service}.log"
    if not path.exists():
        known = sorted(p.stem for p in s.logs_dir.glob("*.log"))
        print(f"k2 stack: no log for {args.service!r}; known: {', '.join(known)}", file=sys.stderr)
        return 1
    cmd = ["tail", "-n", str(args.lines)] + (["-F"] if args.follow else []) + [str(path)]
    return subprocess.call(cmd)


def _spark_conf(args: argparse.Namespace) -> int:
    from pathlib import Path

    from k2ops.stack import spark

    s = fresh_platform()
    target = Path(os.environ.get("SPARK_CONF_DIR") or s.spark_conf_dir)
    spark.write_conf(s, target)
    print(f"wrote {target / 'spark-defaults.conf'}")
    return 0


def _spark_daemon(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from k2ops.stack import spark

    s = fresh_platform()
    # The master or worker binds and advertises one address (Spark has no separate bind
    # address for them): in compose, the container's own, which its peers can reach; the
    # UI binds every interface (SPARK_LOCAL_IP unset) for the published port. Their
    # properties (the RPC secret) go into a 0600 file of a private folder of this container,
    # not onto the command line, nor onto the volume that containers share.
    host = args.host or spark.advertised_host(s.bind_host)
    conf = spark.write_daemon_conf(s, Path(tempfile.mkdtemp(prefix="k2-spark-")) / spark.DAEMON_CONF)
    argv = spark.daemon_argv(args.role, host, conf, *([args.master_url] if args.role == "worker" else []))
    env = dict(os.environ, SPARK_HOME=str(spark.spark_home()), SPARK_NO_DAEMONIZE="1")
    os.execve(argv[0], argv, env)
    return 0  # not reached


def _init_airflow(args: argparse.Namespace) -> int:
    from k2ops.stack import airflow

    try:
        airflow.prepare(fresh_platform())
    except StackError as exc:
        return _report(exc)
    return 0


def _kafka_acls(args: argparse.Namespace) -> int:
    from k2.kafka_admin import admin_client
    from k2.kafka_client import client_config
    from k2ops.stack import kafka_acls

    count = kafka_acls.apply(admin_client(client_config(fresh_platform())))
    print(f"kafka-acls: {count} ACL bindings in place")
    return 0


def _setup(args: argparse.Namespace) -> int:
    from k2ops.stack import artifacts

    unknown = set(args.components) - set(artifacts.COMPONENTS)
    if unknown:
        print(f"k2 setup: unknown components {sorted(unknown)}; choose from "
              f"{', '.join(artifacts.COMPONENTS)}", file=sys.stderr)
        return 2
    try:
        artifacts.ensure_all(fresh_platform(), tuple(args.components) or artifacts.COMPONENTS)
    except StackError as exc:
        return _report(exc)
    print("JVM artifacts ready in", os.path.join(fresh_platform().cache_dir, "jvm"))
    return 0


def _spark_submit(args: argparse.Namespace) -> int:
    from k2.settings import REPO_ROOT, env_for_children
    from k2ops.stack import spark

    settings = fresh_platform()
    try:
        spark.write_conf(settings)  # current K2_* settings, as `k2 stack up` would write them
        binary = spark.spark_submit()
    except StackError as exc:
        return _report(exc)
    env = env_for_children(settings)
    # The jobs import spark_jobs/ and k2/ from the checkout, whatever the cwd.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.run([binary, *args.args], env=env).returncode


def _airflow(args: argparse.Namespace) -> int:
    from k2ops.stack import airflow

    return airflow.run_cli(fresh_platform(), args.args).returncode
