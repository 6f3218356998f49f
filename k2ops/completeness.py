"""Completeness of Gold for one exchange, symbol and time range, hour by hour.

Computed from Gold itself (pyiceberg scan of the range's hour partitions) with the
ledger's rules (:mod:`k2.ledger`). The scan starts one hour before the range so that a
gap at the range's first trade is seen when the trade before it is in Gold within that hour.

Not known here: which missing ranges the exchange no longer serves (the ledger job
records them), so a missing id counts as ``gaps``. Possible-loss windows (times the
worker of a venue without gap detection was not listening) are read from the table the
ledger job keeps (k2/loss_windows.py): the hours they overlap are ``possibly_incomplete``,
those without trades included.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from k2 import ledger, ledger_store, loss_windows
from k2.catalog import catalog
from k2.lake import TradeQuery
from k2.settings import PlatformSettings

# The report's columns, in order; missing ranges as text ``a-b,c-d`` (CSV- and terminal-friendly).
LEDGER_SCHEMA = pa.schema([
    ("exchange", pa.string()), ("symbol", pa.string()), ("hour", pa.timestamp("us", "UTC")),
    ("status", pa.string()), ("gold_trades", pa.int64()), ("expected_trades", pa.int64()),
    ("missing_ids", pa.int64()), ("missing_ranges", pa.string()), ("live_trades", pa.int64()),
    ("backfill_trades", pa.int64()), ("first_trade_id", pa.string()), ("last_trade_id", pa.string()),
    ("possible_loss_windows", pa.string()), ("possible_loss_seconds", pa.float64()),
])


@dataclass(frozen=True)
class Summary:
    hours: int
    complete: int  # including hours without trades in which no gap was revealed
    without_trades: int
    with_gaps: int
    unrecoverable: int
    missing_ids: int
    missing_ranges: int
    possibly_incomplete: int = 0  # hours a possible-loss window overlaps

    def line(self, exchange: str, symbol: str, start: datetime, end: datetime) -> str:
        return (f"{exchange} {symbol} [{start.isoformat()}, {end.isoformat()}): "
                f"{self.complete}/{self.hours} hours complete ({self.without_trades} without trades), "
                f"{self.missing_ids} missing ids in {self.missing_ranges} ranges"
                + (f", {self.unrecoverable} hours unrecoverable" if self.unrecoverable else "")
                + (f", {self.possibly_incomplete} hours possibly incomplete (possible-loss windows)"
                   if self.possibly_incomplete else ""))


def floor_hour(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def report(settings: PlatformSettings, q: TradeQuery) -> tuple[list[ledger.HourLedger], Summary]:
    """The ledger rows of the hours of ``q`` that hold trades, and the range's summary."""
    start, end = floor_hour(q.start), q.end
    scan_q = TradeQuery(q.exchange, q.symbol, start - timedelta(hours=1), end, q.namespace, q.table)
    cat = catalog(settings)
    table = cat.load_table(f"{q.namespace}.{q.table}")
    gold = table.scan(row_filter=scan_q.row_filter(), selected_fields=ledger_store.GOLD_COLUMNS).to_arrow()
    rows = ledger.hour_ledgers(ledger_store.held_trades(gold), lambda ex: ex in ledger.CONTIGUOUS_IDS)
    rows = [r for r in rows if r.hour >= start]  # the hour before only revealed the first gap
    if cat.table_exists(loss_windows.identifier(q.namespace)):
        found = loss_windows.overlapping(cat.load_table(loss_windows.identifier(q.namespace)), start, end)
        windows = {(q.exchange, q.symbol): [(ledger.epoch_us(w["from_ts"]), ledger.epoch_us(w["to_ts"])) for w in found
                                            if (w["exchange"], w["symbol"]) == (q.exchange, q.symbol)]}
        rows = ledger.with_windows(rows, windows, start, end)
    return rows, summarize(rows, start, end)


def summarize(rows: list[ledger.HourLedger], start: datetime, end: datetime) -> Summary:
    hours = max(1, -(-int((end - start).total_seconds()) // 3600))
    gaps = sum(r.status == ledger.GAPS for r in rows)
    lost = sum(r.status == ledger.UNRECOVERABLE for r in rows)
    possibly = sum(r.status == ledger.POSSIBLY_INCOMPLETE for r in rows)
    return Summary(hours=hours, complete=hours - gaps - lost - possibly,
                   without_trades=hours - sum(r.gold_trades > 0 for r in rows), with_gaps=gaps,
                   unrecoverable=lost, missing_ids=sum(r.missing_ids or 0 for r in rows),
                   missing_ranges=sum(len(r.missing_ranges) for r in rows), possibly_incomplete=possibly)


def _iso(us: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")


def as_arrow(rows: list[ledger.HourLedger]) -> pa.Table:
    """The rows as a :data:`LEDGER_SCHEMA` table."""
    records = []
    for r in rows:
        record = asdict(r)
        record["missing_ranges"] = ",".join(f"{a}-{b}" if a != b else str(a) for a, b in r.missing_ranges)
        record["possible_loss_windows"] = ",".join(f"{_iso(a)}/{_iso(b)}" for a, b in record.pop("possible_loss"))
        records.append(record)
    return pa.Table.from_pylist(records, schema=LEDGER_SCHEMA)
