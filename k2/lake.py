"""Read Gold: trades and one-minute OHLCV bars for an exchange, symbol and time range.

pyiceberg plans the scan (the time filter prunes to the hour partitions that overlap
the range, the exchange/symbol filters use column statistics) and returns Arrow;
DuckDB computes the bars over that Arrow table in-process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThan

from k2.catalog import catalog
from k2.contracts import GOLD_TABLE, LEDGER_TABLE, NAMESPACE, exchange
from k2.settings import PlatformSettings
from k2.times import QueryError, parse_duration, parse_time  # noqa: F401 - the CLI reads them here

TRADE_COLUMNS = (
    "timestamp", "exchange", "symbol", "trade_id", "price", "quantity", "side",
    "base_asset", "quote_currency", "message_id",
)


@dataclass(frozen=True)
class TradeQuery:
    exchange: str  # lower-case exchange id, e.g. "binance"
    symbol: str  # normalized symbol, e.g. "BTCUSDT" or "BTC/USD"
    start: datetime
    end: datetime
    namespace: str = NAMESPACE
    table: str = GOLD_TABLE

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise QueryError(f"end {self.end.isoformat()} is not after start {self.start.isoformat()}")
        try:
            exchange(self.exchange)
        except KeyError as exc:
            raise QueryError(str(exc.args[0])) from None

    def row_filter(self):
        # Iceberg compares timestamps in µs; ISO strings are converted by pyiceberg.
        return And(
            EqualTo("exchange", exchange(self.exchange).enum_symbol),
            EqualTo("symbol", self.symbol),
            GreaterThanOrEqual("timestamp", self.start.isoformat()),
            LessThan("timestamp", self.end.isoformat()),
        )


def scan_trades(settings: PlatformSettings, q: TradeQuery, limit: int | None = None) -> pa.Table:
    """Trades in [start, end), ordered by (timestamp, trade_id)."""
    table = catalog(settings).load_table(f"{q.namespace}.{q.table}")
    scan = table.scan(row_filter=q.row_filter(), selected_fields=TRADE_COLUMNS)
    result = scan.to_arrow()
    result = result.sort_by([("timestamp", "ascending"), ("trade_id", "ascending")])
    return result.slice(0, limit) if limit is not None else result


HOUR_STATUS_SCHEMA = pa.schema([("hour", pa.timestamp("us", "UTC")), ("status", pa.string())])


def hour_statuses(settings: PlatformSettings, q: TradeQuery) -> pa.Table:
    """The completeness ledger's status of each hour of ``q`` (``hour``, ``status``); empty
    when the namespace has no ledger table (see k2/ledger_store.py)."""
    cat = catalog(settings)
    ident = f"{q.namespace}.{LEDGER_TABLE}"
    if not cat.table_exists(ident):
        return HOUR_STATUS_SCHEMA.empty_table()
    first_hour = q.start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    rows = cat.load_table(ident).scan(
        row_filter=And(EqualTo("exchange", q.exchange), EqualTo("symbol", q.symbol),
                       GreaterThanOrEqual("hour", first_hour.isoformat()), LessThan("hour", q.end.isoformat())),
        selected_fields=("hour", "status")).to_arrow()
    return rows.select(["hour", "status"]).cast(HOUR_STATUS_SCHEMA)


def bars_of(trades_table: pa.Table, statuses: pa.Table | None = None) -> pa.Table:
    """One-minute OHLCV bars (open/close by trade time, then trade id) from trades, with
    ``trade_count`` and ``complete``: whether the completeness ledger (``statuses``, from
    :func:`hour_statuses`) says the bar's hour holds every trade id; null when the ledger
    has no word on it yet, or the venue's ids are not contiguous."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # minute buckets of UTC time, whatever the host zone
    con.register("trades", trades_table)
    con.register("ledger", statuses if statuses is not None else HOUR_STATUS_SCHEMA.empty_table())
    return con.sql(
        """
        WITH b AS (
        SELECT time_bucket(INTERVAL 1 MINUTE, "timestamp") AS minute,
               arg_min(price, ("timestamp", trade_id)) AS open,
               max(price) AS high,
               min(price) AS low,
               arg_max(price, ("timestamp", trade_id)) AS close,
               sum(CAST(quantity AS DECIMAL(38, 8))) AS volume,
               count(*) AS trade_count,
               -- decimal(18,8) products overflow 18 digits: widen before multiplying.
               CAST(sum(CAST(price AS DECIMAL(38, 8)) * CAST(quantity AS DECIMAL(38, 8)))
                    / sum(CAST(quantity AS DECIMAL(38, 8))) AS DECIMAL(18, 8)) AS vwap
        FROM trades
        GROUP BY minute
        )
        SELECT b.*, CASE l.status WHEN 'complete' THEN true WHEN 'gaps' THEN false
                                  WHEN 'unrecoverable' THEN false END AS complete
        FROM b LEFT JOIN ledger l ON l.hour = date_trunc('hour', b.minute)
        ORDER BY minute
        """
    ).to_arrow_table()
