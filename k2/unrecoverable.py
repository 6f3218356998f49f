"""Trades the exchange no longer serves: the ranges the completeness ledger calls
``unrecoverable`` (issue 12), kept in ``market_data.completeness_unrecoverable``.

A worker whose REST backfill finds a range older than the exchange's history records it
on the workers' DLQ topic (``error_kind`` ``unrecoverable_range``, workers/dlq.py). The
topic keeps records for days; the ledger needs them for as long as the hours they
explain, so :func:`ingest` copies them into this table, one row per range, before each
ledger update. The rows and the DLQ offsets read so far (table property
:data:`OFFSETS`) are one commit, so each record is copied once even across crashes.

DLQ records that Kafka deleted before they were read cannot be copied: they are
counted and logged as an error (the hours they explain then stay ``gaps``: a loss is
never called complete).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from k2 import contracts, ledger
from k2.catalog import create_documented_table
from k2.kafka_client import KafkaTarget, as_config

OFFSETS = "k2.unrecoverable.dlq-offsets"  # {"<partition>": next offset to read}
KIND = "unrecoverable_range"  # the DLQ error kind (workers/dlq.py UNRECOVERABLE_RANGE)
READ_TIMEOUT_S = 120.0

# The columns every table of worker loss reports starts and ends with (k2/loss_windows.py too).
KEY_FIELDS = [pa.field("exchange", pa.string(), nullable=False), pa.field("symbol", pa.string(), nullable=False)]
REPORT_FIELDS = [
    pa.field("reason", pa.string(), nullable=False),
    pa.field("reported_at", pa.timestamp("us", "UTC"), nullable=False),
    pa.field("endpoint", pa.string()),
    pa.field("dlq_partition", pa.int32(), nullable=False),
    pa.field("dlq_offset", pa.int64(), nullable=False),
]
KEY_DOC = {"exchange": "Exchange id, lower case.", "symbol": "Normalized symbol, as in Gold."}
WHERE_DOC = {"dlq_partition": "Where the worker recorded it: DLQ topic partition ...", "dlq_offset": "... and offset."}

ARROW_SCHEMA = pa.schema([
    *KEY_FIELDS,
    pa.field("first_id", pa.int64(), nullable=False),
    pa.field("last_id", pa.int64(), nullable=False),
    *REPORT_FIELDS,
])
DOC = {
    **KEY_DOC,
    "first_id": "First trade id of the range the exchange no longer serves.",
    "last_id": "Last trade id of the range (included).",
    "reason": "What the worker's backfill found.",
    "reported_at": "When the worker's backfill found it, UTC.",
    "endpoint": "The REST request that showed it.",
    **WHERE_DOC,
}


@dataclass(frozen=True)
class Ingested:
    rows: int  # new ranges copied
    read: int  # DLQ records read
    expired: int  # DLQ records Kafka deleted before they were read
    symbols: frozenset[ledger.SymbolKey]  # symbols with new ranges


def identifier(namespace: str = contracts.NAMESPACE) -> str:
    return f"{namespace}.{contracts.UNRECOVERABLE_TABLE}"


def create_table(cat, namespace: str = contracts.NAMESPACE):
    """Create the table if missing (unpartitioned: a range per loss is few rows), each
    column documented; returns it. Idempotent."""
    return create_documented_table(
        cat, identifier(namespace), ARROW_SCHEMA,
        "Trade-id ranges the exchange no longer serves, reported by the workers' REST backfill.", DOC)


def ranges(table) -> dict[ledger.SymbolKey, list[ledger.Range]]:
    """Every range in the table, per (exchange, symbol)."""
    out: dict[ledger.SymbolKey, list[ledger.Range]] = defaultdict(list)
    if table.current_snapshot() is None:
        return out
    rows = table.scan(selected_fields=("exchange", "symbol", "first_id", "last_id")).to_arrow()
    for row in rows.to_pylist():
        out[(row["exchange"], row["symbol"])].append((row["first_id"], row["last_id"]))
    return out


def parse(partition: int, offset: int, value: bytes | None) -> dict | None:
    """The table row of one DLQ record, or None when it is not an ``unrecoverable_range``
    record (any other dead letter, or a value that is not one)."""

    def row(record: dict, lost: dict) -> dict | None:
        first, last = int(lost["first_id"]), int(lost["last_id"])
        return None if first > last else {"exchange": str(record["exchange"]), "symbol": str(lost["symbol"]),
                                          "first_id": first, "last_id": last, "reason": str(record.get("error", ""))}

    return parse_report(value, KIND, "lost_range", partition, offset, row)


def parse_report(value: bytes | None, kind: str, detail: str, partition: int, offset: int,
                 row: Callable[[dict, dict], dict | None]) -> dict | None:
    """The table row of a worker's loss report of ``kind``: ``row(record, record[detail])``
    (None to refuse it) plus the other :data:`REPORT_FIELDS`; None for any other dead
    letter and for a value that is not a well-formed report (never an exception)."""
    try:
        record = json.loads(value or b"")
        if not isinstance(record, dict) or record.get("error_kind") != kind:
            return None
        found = row(record, record[detail])
        if found is None:
            return None
        return {**found, "reported_at": datetime.fromtimestamp(int(record["received_at_us"]) / 1e6, UTC),
                "endpoint": record.get("endpoint"), "dlq_partition": partition, "dlq_offset": offset}
    except (ValueError, KeyError, TypeError, OverflowError, OSError):
        return None


RowParser = Callable[[int, int, bytes | None], dict | None]  # (partition, offset, value) -> row or None


def _read(kafka: KafkaTarget, topic: str, start: dict[int, int], log: Callable[[str], None],
          parse_row: RowParser = parse) -> tuple[list[dict], dict[int, int], int, int]:
    """New rows, the next offset per partition, records read, and records expired unread."""
    import time

    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**as_config(kafka), "group.id": "k2-completeness-ledger", "enable.auto.commit": False})
    rows: list[dict] = []
    nxt: dict[int, int] = {}
    read = expired = 0
    try:
        meta = consumer.list_topics(topic, timeout=30).topics.get(topic)
        if meta is None or meta.error is not None:
            log(f"completeness ledger: DLQ topic {topic} not found; no loss reports read")
            return rows, dict(start), 0, 0
        for partition in sorted(meta.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
            at = start.get(partition, 0)
            if at < low:
                expired += low - at
                at = low
            nxt[partition] = at
            if at >= high:
                continue
            consumer.assign([TopicPartition(topic, partition, at)])
            deadline = time.monotonic() + READ_TIMEOUT_S
            while nxt[partition] < high:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{topic}[{partition}]: read up to offset {nxt[partition]} of {high} "
                                       f"in {READ_TIMEOUT_S:g} s; is Kafka overloaded?")
                for msg in consumer.consume(500, 2):
                    if msg.error():
                        continue
                    read += 1
                    nxt[partition] = msg.offset() + 1
                    row = parse_row(partition, msg.offset(), msg.value())
                    if row is not None:
                        rows.append(row)
    finally:
        consumer.close()
    return rows, nxt, read, expired


def ingest(table, kafka: KafkaTarget, topic: str, log: Callable[[str], None] = print) -> Ingested:
    """Copy the ``unrecoverable_range`` records the DLQ topic received since the last call."""
    rows, read, expired = copy_records(table, kafka, topic, parse, ARROW_SCHEMA, "unrecoverable ranges", log)
    if rows:
        log(f"completeness ledger: {len(rows)} unrecoverable range(s) reported by the workers: " + "; ".join(
            f"{r['exchange']} {r['symbol']} {r['first_id']}..{r['last_id']}" for r in rows[:5]))
    return Ingested(len(rows), read, expired, frozenset((r["exchange"], r["symbol"]) for r in rows))


def copy_records(table, kafka: KafkaTarget, topic: str, parse_row: RowParser, schema: pa.Schema, what: str,
                 log: Callable[[str], None]) -> tuple[list[dict], int, int]:
    """Append to ``table`` the rows ``parse_row`` makes of the DLQ records received since
    the offsets in the table's :data:`OFFSETS` property, rows and offsets in one commit.
    Returns (rows, records read, records Kafka deleted before they were read)."""
    start = {int(p): o for p, o in json.loads(table.properties.get(OFFSETS, "{}")).items()}
    rows, nxt, read, expired = _read(kafka, topic, start, log, parse_row)
    if expired:
        log(f"ERROR completeness ledger: {expired} DLQ records of {topic} were deleted by Kafka before "
            f"they were read; {what} among them are not known to the ledger")
    if nxt != start:
        with table.transaction() as tx:  # rows and offsets in one commit: each record copied once
            if rows:
                tx.append(pa.Table.from_pylist(rows, schema=schema))
            tx.set_properties({OFFSETS: json.dumps({str(p): o for p, o in sorted(nxt.items())})})
    return rows, read, expired
