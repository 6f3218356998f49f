"""Possible-loss windows: times a worker's venue was covered by no connection, kept in
``market_data.completeness_possible_loss`` for the completeness ledger.

A venue that can neither detect a missing trade (no contiguous ids) nor fetch it again
(no REST history) reports instead when it was not listening: one DLQ record per symbol
and interruption (``error_kind`` ``possible_loss_window``, workers/dlq.py and
workers/loss_window.py). :func:`ingest` copies them here before each ledger update, rows
and DLQ offsets in one commit (the same copier as :mod:`k2.unrecoverable`), and the
ledger calls the hours they overlap ``possibly_incomplete`` (:mod:`k2.ledger`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from k2 import contracts, ledger
from k2.catalog import create_documented_table
from k2.kafka_client import KafkaTarget
from k2.unrecoverable import (
    KEY_DOC,
    KEY_FIELDS,
    REPORT_FIELDS,
    WHERE_DOC,
    copy_records,
    parse_report,
)

KIND = "possible_loss_window"  # the DLQ error kind (workers/dlq.py POSSIBLE_LOSS_WINDOW)

ARROW_SCHEMA = pa.schema([
    *KEY_FIELDS,
    pa.field("from_ts", pa.timestamp("us", "UTC"), nullable=False),
    pa.field("to_ts", pa.timestamp("us", "UTC"), nullable=False),
    *REPORT_FIELDS,
])
DOC = {
    **KEY_DOC,
    "from_ts": "Start of the window (the venue's trade time, widened by the worker's margin), UTC.",
    "to_ts": "End of the window (included): trades of the symbol timestamped in [from_ts, to_ts] may be missing.",
    "reason": "Why coverage ended: the connection's close reason (connection_error, stall, ...) or restart.",
    "reported_at": "When the worker was covering the symbol again, UTC.",
    "endpoint": "The connection that covered it again.",
    **WHERE_DOC,
}


@dataclass(frozen=True)
class Ingested:
    rows: int  # new windows copied
    read: int  # DLQ records read
    expired: int  # DLQ records Kafka deleted before they were read


def identifier(namespace: str = contracts.NAMESPACE) -> str:
    return f"{namespace}.{contracts.POSSIBLE_LOSS_TABLE}"


def create_table(cat, namespace: str = contracts.NAMESPACE):
    """Create the table if missing (unpartitioned: a few rows per interruption), each
    column documented; returns it. Idempotent."""
    return create_documented_table(
        cat, identifier(namespace), ARROW_SCHEMA,
        "Times a worker's venue was covered by no connection (possible losses it cannot detect or refetch).", DOC)


def _us(value: object) -> datetime:
    return datetime.fromtimestamp(int(value) / 1e6, UTC)


def parse(partition: int, offset: int, value: bytes | None) -> dict | None:
    """The table row of one DLQ record, or None when it is not a ``possible_loss_window``
    record (any other dead letter, or a value that is not one)."""

    def row(record: dict, window: dict) -> dict | None:
        start, end = int(window["from_us"]), int(window["to_us"])
        return None if start > end else {"exchange": str(record["exchange"]), "symbol": str(window["symbol"]),
                                         "from_ts": _us(start), "to_ts": _us(end),
                                         "reason": str(window.get("reason", ""))}

    return parse_report(value, KIND, "possible_loss", partition, offset, row)


def ingest(table, kafka: KafkaTarget, topic: str, log: Callable[[str], None] = print) -> Ingested:
    """Copy the ``possible_loss_window`` records the DLQ topic received since the last call."""
    rows, read, expired = copy_records(table, kafka, topic, parse, ARROW_SCHEMA, "possible-loss windows", log)
    if rows:
        log(f"completeness ledger: {len(rows)} possible-loss window(s) reported by the workers: " + "; ".join(
            f"{r['exchange']} {r['symbol']} {r['from_ts']:%H:%M:%S}..{r['to_ts']:%H:%M:%S} ({r['reason']})"
            for r in rows[:5]))
    return Ingested(len(rows), read, expired)


def windows(table) -> dict[ledger.SymbolKey, list[ledger.Window]]:
    """Every window in the table, per (exchange, symbol), as µs since the epoch."""
    out: dict[ledger.SymbolKey, list[ledger.Window]] = defaultdict(list)
    if table.current_snapshot() is None:
        return out
    rows = table.scan(selected_fields=("exchange", "symbol", "from_ts", "to_ts")).to_arrow()
    for row in rows.to_pylist():
        key = (row["exchange"], row["symbol"])
        out[key].append((ledger.epoch_us(row["from_ts"]), ledger.epoch_us(row["to_ts"])))
    return out


def added_since(table, offsets: dict[str, int]) -> datetime | None:
    """The earliest start among the windows copied from DLQ offsets at or past ``offsets``
    (``{"<partition>": offset}``, what an earlier reader had seen); None when there are none."""
    if table.current_snapshot() is None:
        return None
    rows = table.scan(selected_fields=("from_ts", "dlq_partition", "dlq_offset")).to_arrow().to_pylist()
    fresh = [r["from_ts"] for r in rows if r["dlq_offset"] >= offsets.get(str(r["dlq_partition"]), 0)]
    return min(fresh, default=None)


def overlapping(table, start: datetime, end: datetime) -> list[dict]:
    """The windows that overlap [start, end), earliest first (exchange, symbol, from_ts,
    to_ts, reason)."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    if table.current_snapshot() is None:
        return []
    rows = table.scan(row_filter=And(LessThan("from_ts", end.isoformat()), GreaterThanOrEqual("to_ts", start.isoformat())),
                      selected_fields=("exchange", "symbol", "from_ts", "to_ts", "reason")).to_arrow().to_pylist()
    return sorted(rows, key=lambda r: (r["from_ts"], r["exchange"], r["symbol"]))
