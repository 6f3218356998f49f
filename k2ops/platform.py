"""The whole platform with one command: `k2 up` (what `make run` runs) and `k2 down`.

Order: the stack (PostgreSQL, Kafka, registry, Spark config, Airflow) → the bootstrap
DAG (topics, schemas, tables; skipped once it has succeeded) → the streaming babysitter
(which starts the three streams through their runner DAGs) → the maintenance DAGs
(retention daily, compaction hourly) left scheduled → the exchange workers under
their supervisor. Live exchanges are the default; ``--simulator`` (``make run
OFFLINE=1``) feeds the workers from the local exchange simulator instead, at
``--simulator-rate`` trades/s per exchange (default 20). Workers already running are
left alone, whatever they read: `k2 stack status` shows how they were started.
"""

from __future__ import annotations

import argparse
import sys
import time

from k2.contracts import STREAMS, runner_dag_id
from k2.settings import PlatformSettings
from k2ops.airflow_api import AirflowApi, AirflowApiError
from k2ops.cli.commands import add_command
from k2ops.stack import airflow
from k2ops.stack.errors import StackError
from k2ops.stack.progress import say, step

BOOTSTRAP_DAG = "bootstrap"
BABYSITTER_DAG = "streaming_babysitter"
# Scheduled, never triggered here: without them snapshots, manifests and small files
# grow without bound (issue 11). Their first run starts once they are unpaused.
MAINTENANCE_DAGS = ("retention", "compaction")
# Scheduled too: the completeness ledger follows Gold every 15 minutes; the hourly
# reconciliation follows each record through the layers.
SCHEDULED_DAGS = (*MAINTENANCE_DAGS, "completeness_ledger", "data_quality")


def runner_dags() -> list[str]:
    return [runner_dag_id(stream) for stream in STREAMS]


def missing_objects(s: PlatformSettings) -> list[str]:
    """Topics, registry subjects and lakehouse tables the current contracts name that do
    not exist: what a release adding a venue needs bootstrap to create on an existing
    installation (its streams would fail on the first batch otherwise); then the tables
    whose properties differ from this release's (:func:`outdated_tables`)."""
    from k2 import contracts, iceberg_admin, kafka_admin, schema_registry
    from k2.catalog import catalog
    from k2.kafka_client import client_config

    topics = kafka_admin.existing_topics(kafka_admin.admin_client(client_config(s, admin=True)))
    missing = [f"topic {t.name}" for t in kafka_admin.desired_topics() if t.name not in topics]
    subjects = set(schema_registry.list_subjects(schema_registry.registry_client(s.registry_url)))
    missing += [f"subject {name}" for name in schema_registry.desired_subjects() if name not in subjects]
    tables = set(iceberg_admin.existing_tables(catalog(s)))
    missing += [f"table {contracts.qualified(t)}" for t in contracts.lakehouse_tables() if t not in tables]
    return missing + outdated_tables(s, tables)


def outdated_tables(s: PlatformSettings, existing: set[str]) -> list[str]:
    """Existing tables whose properties are not those of this release's definitions (a
    release that changes a table's write layout): bootstrap re-applies them, data untouched."""
    from k2 import contracts
    from k2.catalog import catalog
    from spark_jobs.tables import property_problems, table_defs

    cat, out = catalog(s), []
    for t in table_defs():
        if t.name in existing:
            table = cat.load_table(contracts.qualified(t.name))
            actual = {**table.properties, "format-version": str(table.format_version)}
            out += property_problems(f"table {contracts.qualified(t.name)}", t.all_properties, actual)
    return out


def bootstrap(api: AirflowApi, s: PlatformSettings) -> None:
    done = api.last_successful_run(BOOTSTRAP_DAG)
    if done:
        missing = missing_objects(s)
        if not missing:
            say(f"bootstrap: already succeeded (run {done}) and nothing is missing; skipping")
            return
        say(f"bootstrap: {len(missing)} object(s) of this release are missing or out of date "
            f"({', '.join(missing[:6])}" + (", ..." if len(missing) > 6 else "")
            + "); running it again (it creates what is missing and re-applies table properties; no data changes)")
    api.set_paused(BOOTSTRAP_DAG, False)
    run_id = api.trigger(BOOTSTRAP_DAG)
    last = {"state": ""}

    def show(state: str) -> None:
        if state != last["state"]:
            say(f"bootstrap: run {run_id} is {state}")
            last["state"] = state

    with step("bootstrap: topics, schemas, tables (Airflow DAG `bootstrap`)"):
        state = api.wait_for_run(BOOTSTRAP_DAG, run_id, timeout=900, on_poll=show)
    if state != "success":
        raise StackError("bootstrap", f"DAG run {run_id} {state}",
                         "open the run in the Airflow UI and read its task logs")


def up(simulator: bool, simulator_rate: float | None = None) -> PlatformSettings:
    from k2ops.stack import services, workers

    s = services.up()
    api = AirflowApi(s, airflow.password(s))
    with step("airflow: waiting for the DAGs to be parsed"):
        api.wait_for_dags([BOOTSTRAP_DAG, BABYSITTER_DAG, *runner_dags(), *SCHEDULED_DAGS])
    bootstrap(api, s)
    schedule(api)
    workers.service(s, simulator=simulator, simulator_rate=simulator_rate).start()
    return s


def schedule(api: AirflowApi) -> None:
    """Unpause what runs by itself: the streams' runners, the babysitter, maintenance."""
    for dag_id in [*runner_dags(), BABYSITTER_DAG]:
        api.set_paused(dag_id, False)
    api.trigger(BABYSITTER_DAG)
    say("streaming_babysitter: unpaused and triggered; it starts the three streams")
    for dag_id in SCHEDULED_DAGS:
        api.set_paused(dag_id, False)
    say(f"{', '.join(SCHEDULED_DAGS)}: scheduled (unpaused)")


def print_guide(s: PlatformSettings, simulator: bool) -> None:
    from k2.streams import metrics_url
    from k2ops.stack.workers import metrics_ports, running_mode

    host = s.bind_host
    ports = metrics_ports()
    stream_urls = ", ".join(filter(None, (metrics_url(stream, s) for stream in STREAMS)))
    mode = running_mode(s)  # what the workers really read: ones already running were kept
    source = mode.describe() if mode else ("the local exchange simulator" if simulator else "the live exchanges")
    print(f"""
K2 is running (workers read {source}).

  Airflow UI      {airflow.api_url(s)}   login: {s.airflow_user}, password in
                  {s.airflow_home / airflow.PASSWORDS_FILE} (readable by its owner only)
                  DAGs: bootstrap, streaming_babysitter, stream_*, retention, compaction, ...
  Spark UIs       http://{host}:4040, :4041, :4042 (one per running stream, in start order)
  Worker metrics  {", ".join(f"http://{host}:{p}/metrics" for p in ports.values())}
  Worker health   {", ".join(f"http://{host}:{p}/health" for p in ports.values())}
  Stream metrics  {stream_urls or "off (K2_<STREAM>_METRICS_PORT=0)"}
  Logs            {s.logs_dir}/   (k2 stack logs workers -f; streams: their task logs in the UI)
  Status          .venv/bin/k2 stack status
  Query Gold      .venv/bin/k2 query trades --exchange binance --symbol BTCUSDT --last 15m
                  .venv/bin/k2 query bars --exchange kraken --symbol BTC/USD --last 1h
  Stop            make stop
""")


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "up", _up, "run the whole platform (what `make run` does)", __doc__, raw=True)
    p.add_argument("--simulator", action="store_true",
                   help="feed the workers from the local exchange simulator (offline use)")
    p.add_argument("--simulator-rate", type=float, metavar="TRADES_PER_S",
                   help="with --simulator: trades/s the simulator sends per exchange (default 20)")
    add_command(sub, "down", _down, "stop everything `k2 up` started (data is kept)",
                "Stops the workers, Airflow, the streams and the stack.")


def _up(args: argparse.Namespace) -> int:
    if args.simulator_rate is not None and not args.simulator:
        print("k2 up: --simulator-rate needs --simulator", file=sys.stderr)
        return 2
    began = time.monotonic()
    try:
        s = up(args.simulator, args.simulator_rate)
    except (StackError, AirflowApiError) as exc:
        print(f"k2 up: {exc}", file=sys.stderr)
        return 1
    say(f"platform up in {time.monotonic() - began:.0f}s")
    print_guide(s, args.simulator)
    return 0


def _down(args: argparse.Namespace) -> int:
    from k2ops.stack import services

    stopped = services.down()
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0
