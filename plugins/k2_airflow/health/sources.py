"""Where the health page's figures come from: one reader per section, each short.

Each function reads one source and returns that section's JSON-ready dict (shaped by
:mod:`.shape`), or raises with a message that says what failed; :mod:`.collect` runs
them side by side under one deadline, so a source that hangs or fails costs only its
own section. Network reads carry their own short timeouts (:data:`HTTP_TIMEOUT_S`,
:data:`KAFKA_TIMEOUT_S`) well inside that deadline.

Heavy libraries (confluent_kafka, pyiceberg) are imported inside the functions: this
module is imported by Airflow's api-server, and a broken dependency must cost one
section, not the server.
"""

from __future__ import annotations

import time
import urllib.request
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from k2 import contracts
from k2.settings import PlatformSettings

from . import shape

HTTP_TIMEOUT_S = 0.5  # a worker's /metrics answers in milliseconds; one that does not is down
KAFKA_TIMEOUT_S = 0.5  # per metadata or watermark request
DLQ_SAMPLE = 200  # newest DLQ topic records read per partition for the reasons
DLQ_WINDOW_H = 24  # silver_dlq reasons cover the rows rejected this long ago at most
# The maintenance DAGs whose last runs the page lists (dags/retention.py, compaction.py,
# streaming_babysitter.py).
MAINTENANCE_DAGS = ("retention", "compaction", "streaming_babysitter")


def local_host(bind_host: str) -> str:
    """Where this machine reaches a service bound to ``bind_host`` (a wildcard: localhost)."""
    return "localhost" if bind_host in ("0.0.0.0", "::", "") else bind_host


# -- streams --------------------------------------------------------------------------


def streams(settings: PlatformSettings, now: float | None = None) -> list[dict]:
    """Each stream's run lock and last published progress: what `k2 streams status` reads."""
    from k2.streams import lock_holder, read_progress

    now = now or time.time()
    rows = []
    for stream in contracts.STREAMS:
        progress = read_progress(stream, settings)
        rows.append(shape.stream_row(stream, lock_holder(stream, settings), asdict(progress) if progress else None,
                                     now))
    return rows


# -- workers --------------------------------------------------------------------------


def scrape(url: str, timeout: float = HTTP_TIMEOUT_S) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own endpoints
        return response.read().decode()


def workers(endpoints: dict[str, str], previous: dict[str, shape.WorkerSample]) -> list[dict]:
    """Scrape each worker's /metrics (``endpoints``: exchange -> URL); a rate needs the
    sample of the previous call, kept in ``previous`` (updated here)."""
    rows = []
    for exchange, url in endpoints.items():
        try:
            sample = shape.worker_sample(scrape(url), time.time())
        except (OSError, ValueError) as exc:  # refused, timed out, or not Prometheus text
            previous.pop(exchange, None)
            rows.append(shape.worker_row(exchange, url, None, None, down_reason=_reason(exc)))
            continue
        rows.append(shape.worker_row(exchange, url, sample, previous.get(exchange)))
        previous[exchange] = sample
    return rows


def worker_endpoints(settings: PlatformSettings) -> dict[str, str]:
    """exchange -> its worker's /metrics URL (``K2_<EXCHANGE>_METRICS_PORT``; 0: not served)."""
    from workers.settings import EXCHANGE_NAMES, worker_settings

    ports = worker_settings()
    host = local_host(settings.bind_host)
    return {e: f"http://{host}:{ports.metrics_port(e)}/metrics" for e in EXCHANGE_NAMES if ports.metrics_port(e)}


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "reason", None)  # URLError wraps the socket error
    return str(inner if inner is not None else exc) or type(exc).__name__


# -- dead letters ---------------------------------------------------------------------


def kafka_dlq(settings: PlatformSettings, deadline_s: float) -> dict:
    """The workers' DLQ topic: records held, and the reasons among the newest
    :data:`DLQ_SAMPLE` of each partition, read until ``deadline_s`` (monotonic)."""
    from confluent_kafka import Consumer, TopicPartition

    from k2.kafka_client import client_config

    topic = contracts.DLQ_TOPIC
    consumer = Consumer({**client_config(settings), "group.id": "k2-health-page", "enable.auto.commit": False,
                         "socket.timeout.ms": 1000, "enable.partition.eof": True})
    try:
        meta = consumer.list_topics(topic, timeout=KAFKA_TIMEOUT_S).topics.get(topic)
        if meta is None or meta.error is not None:
            raise LookupError(f"topic {topic} not found: {meta.error if meta else 'no metadata'}")
        marks = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=KAFKA_TIMEOUT_S)
                 for p in sorted(meta.partitions)}
        start = [TopicPartition(topic, p, max(low, high - DLQ_SAMPLE)) for p, (low, high) in marks.items() if high > low]
        values = _read_to_end(consumer, start, marks, deadline_s) if start else []
    finally:
        consumer.close()
    return shape.kafka_dlq_summary(topic, marks, shape.dlq_kinds(values))


def _read_to_end(consumer, start: list, marks: dict[int, tuple[int, int]], deadline_s: float) -> list[bytes]:
    consumer.assign(start)
    pending = {tp.partition for tp in start}
    values: list[bytes] = []
    while pending and time.monotonic() < deadline_s:
        for msg in consumer.consume(500, max(0.05, min(0.2, deadline_s - time.monotonic()))):
            if msg.error():
                pending.discard(msg.partition())  # end of partition (or an error: nothing more to read there)
                continue
            values.append(msg.value())
            if msg.offset() + 1 >= marks[msg.partition()][1]:
                pending.discard(msg.partition())
    return values


def load_table(cat, namespace: str, name: str):
    """The table, or LookupError saying it is not there yet (bootstrap creates it)."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return cat.load_table(f"{namespace}.{name}")
    except NoSuchTableError:
        raise LookupError(f"table {namespace}.{name} does not exist yet: the bootstrap DAG creates it") from None


def silver_dlq(cat, now: datetime, namespace: str = contracts.NAMESPACE) -> dict:
    """``silver_dlq``: its row count (snapshot summary, no scan) and the reasons of the rows
    rejected in the last :data:`DLQ_WINDOW_H` hours (its day partitions prune the scan)."""
    from pyiceberg.expressions import GreaterThanOrEqual

    name = contracts.SILVER_DLQ_TABLE
    table = load_table(cat, namespace, name)
    snapshot = table.current_snapshot()
    total = int((snapshot.summary or {}).get("total-records") or 0) if snapshot else 0
    since = now - timedelta(hours=DLQ_WINDOW_H)
    recent = table.scan(row_filter=GreaterThanOrEqual("error_timestamp", since.isoformat()),
                        selected_fields=("error_type",)).to_arrow()
    counts = recent.column("error_type").value_counts().to_pylist() if recent.num_rows else []
    return shape.silver_dlq_summary(name, total, {str(c["values"]): c["counts"] for c in counts}, DLQ_WINDOW_H)


# -- completeness heat map ------------------------------------------------------------


def heatmap(cat, now: datetime, namespace: str = contracts.NAMESPACE) -> dict:
    """The last :data:`shape.HEAT_HOURS` hours from the completeness ledger; from Gold's
    trade counts when the ledger has no row in that window (not kept yet)."""
    from pyiceberg.expressions import GreaterThanOrEqual

    first = shape.heat_hours(now)[0]
    ledger = load_table(cat, namespace, contracts.LEDGER_TABLE)
    fields = ("exchange", "symbol", "hour", "status", "gold_trades", "missing_ids")
    if "possible_loss_seconds" in {f.name for f in ledger.schema().fields}:  # a ledger of this release
        fields += ("possible_loss_seconds",)
    rows = ledger.scan(row_filter=GreaterThanOrEqual("hour", first.isoformat()), selected_fields=fields,
                       ).to_arrow().to_pylist()
    if rows:
        return shape.heatmap(shape.ledger_cells(rows), now, "ledger")
    gold = load_table(cat, namespace, contracts.GOLD_TABLE)
    trades = gold.scan(row_filter=GreaterThanOrEqual("timestamp", first.isoformat()),
                       selected_fields=("exchange", "symbol", "timestamp")).to_arrow()
    stamps = zip(trades.column("exchange").to_pylist(), trades.column("symbol").to_pylist(),
                 trades.column("timestamp").to_pylist(), strict=True)
    return shape.heatmap(shape.gold_cells((e.lower(), s, t) for e, s, t in stamps), now, "gold")


# -- maintenance DAG runs -----------------------------------------------------------------


def maintenance_runs(now: datetime, per_dag: int = 3) -> list[dict]:
    """The last runs of the retention, compaction and babysitter DAGs, from Airflow's
    metadata database (this code runs in the api-server, which has a session)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    columns = (DagRun.dag_id, DagRun.run_id, DagRun.state, DagRun.start_date, DagRun.end_date, DagRun.logical_date)
    runs: list[dict] = []
    with create_session() as session:
        for dag_id in MAINTENANCE_DAGS:  # per DAG: the babysitter's runs (every 5 min) must not crowd out the others
            query = (select(*columns).where(DagRun.dag_id == dag_id)
                     .order_by(DagRun.start_date.desc().nulls_last()).limit(per_dag))
            runs += [dict(r._mapping) for r in session.execute(query)]
    for run in runs:
        run["state"] = str(getattr(run["state"], "value", run["state"]))
    return shape.dag_runs(runs, MAINTENANCE_DAGS, now, per_dag)


def utc_now() -> datetime:
    return datetime.now(UTC)
