"""Read the lakehouse from a notebook or a script: trades, OHLCV bars, the DLQ and any
table, at its current snapshot or an earlier one (Iceberg time travel).

Every function returns a :class:`pyarrow.Table`; ``to="pandas"`` or ``to="polars"``
converts it. Times are datetimes (naive means UTC) or ISO 8601 strings (``"now"``
too); a range is ``[start, end)``, by default the last ``last`` (``"30s"``, ``"15m"``,
``"2h"``, ``"7d"``) before ``end`` (default now). A bad argument raises
:class:`QueryError` (a ``ValueError``) saying which and why, before anything is read::

    from k2 import lake
    df = lake.trades("binance", "BTCUSDT", last="15m", to="pandas")
    bars = lake.bars("kraken", "BTC/USD", "5m", "2026-03-01T00:00", "2026-03-02T00:00", to="polars")
    snap = lake.snapshots("gold_crypto_trades")["snapshot_id"][-1].as_py()
    pinned = lake.trades("binance", "BTCUSDT", last="7d", snapshot_id=snap)  # the same rows tomorrow
    hourly = lake.sql("SELECT symbol, count(*) AS n FROM gold_crypto_trades "
                      "WHERE timestamp >= '2026-03-01 10:00' AND timestamp < '2026-03-01 11:00' GROUP BY symbol")

pyiceberg plans each scan (a time filter prunes to the partitions that overlap the
range, the other filters use column statistics) and returns Arrow; DuckDB computes
the bars over that Arrow table in-process.

The CLI (`k2 query`, `k2 completeness`) shares the internals: :class:`TradeQuery`,
:func:`scan_trades`, :func:`scan_bars` and what it is made of (:func:`bar_query`,
:func:`hour_statuses`, :func:`bars_of`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

import pyarrow as pa

from k2.catalog import catalog
from k2.contracts import (
    GOLD_TABLE,
    LEDGER_TABLE,
    NAMESPACE,
    SILVER_DLQ_TABLE,
    exchange,
    lakehouse_tables,
)
from k2.iceberg_read import Condition, empty_table
from k2.settings import PlatformSettings, platform
from k2.times import QueryError, ReadOnlyError, parse_duration, parse_time

# pyiceberg, k2.sql (pyiceberg expressions) and DuckDB are imported where they are used:
# `k2 query` reads through k2.iceberg_read and must start in well under a second.
if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot

    from k2.sql import TableScan

__all__ = ["QueryError", "ReadOnlyError", "bars", "dlq", "snapshots", "sql", "table", "trades"]

Time = datetime | str
Output = Literal["arrow", "pandas", "polars"]
OUTPUTS = ("arrow", "pandas", "polars")
MIN_INTERVAL, MAX_INTERVAL = timedelta(seconds=1), timedelta(days=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

TRADE_COLUMNS = (
    "timestamp", "exchange", "symbol", "trade_id", "price", "quantity", "side",
    "base_asset", "quote_currency", "message_id",
)


# Public API ----------------------------------------------------------------------
def trades(exchange: str, symbol: str, start: Time | None = None, end: Time | None = None, *,
           last: str | timedelta = "1h", limit: int | None = None, as_of: Time | None = None,
           snapshot_id: int | None = None, to: Output = "arrow", namespace: str = NAMESPACE,
           settings: PlatformSettings | None = None):
    """Gold's trades of ``exchange`` (``"binance"``, ``"kraken"``) and ``symbol`` (as
    normalized: ``"BTCUSDT"``, ``"BTC/USD"``) in ``[start, end)``, ordered by
    (timestamp, trade_id); at most ``limit`` (the first ones).

    ``as_of`` reads Gold as it was at that time, ``snapshot_id`` at that snapshot
    (see :func:`snapshots`), so that a backtest reads the same rows every time.

    Examples::

        lake.trades("binance", "BTCUSDT", "2026-03-01T10:00", "2026-03-01T11:00", to="pandas")
        lake.trades("kraken", "BTC/USD", last="15m", limit=100)
    """
    _check_output(to)
    _check_limit(limit)
    q = TradeQuery(exchange, symbol, *_range(start, end, last), namespace=namespace)
    settings = settings or platform()
    pinned = _pinned(settings, namespace, GOLD_TABLE, as_of, snapshot_id)
    return _output(scan_trades(settings, q, limit, _id(pinned)), to)


def bars(exchange: str, symbol: str, interval: str | timedelta = "1m", start: Time | None = None,
         end: Time | None = None, *, last: str | timedelta = "1h", as_of: Time | None = None,
         snapshot_id: int | None = None, to: Output = "arrow", namespace: str = NAMESPACE,
         settings: PlatformSettings | None = None):
    """OHLCV bars of ``interval`` (1s to 1d: ``"1s"``, ``"5m"``, ``"4h"``, ``"1d"`` or a
    timedelta) from Gold's trades, one row per bar holding trades: ``timestamp`` (the bar's
    open time; bars are aligned on the Unix epoch, so days start at 00:00 UTC), ``open``,
    ``high``, ``low``, ``close`` (open and close by trade time, then trade id), ``volume``,
    ``vwap``, ``trade_count`` and ``complete``.

    The range is widened to whole bars (start rounded down, end up to the interval) so
    that every bar holds all its trades: ``bars(..., "1d", last="1h")`` is today's bar.

    ``complete`` is the completeness ledger's word on the hours the bar overlaps: false
    if any of them has ``gaps`` or is ``unrecoverable``; true if every hour holding the
    bar's trades is ``complete``; null otherwise (the ledger has not seen an hour yet, the
    venue's ids are not contiguous, or there is no ledger). A gap counts in the hour of
    the trade after it (see :mod:`k2.ledger`). With ``as_of`` the ledger is read as it
    was then too; with ``snapshot_id``, as it was when that Gold snapshot was committed.

    Examples::

        lake.bars("binance", "BTCUSDT", "5m", last="1d", to="polars")
        lake.bars("kraken", "BTC/USD", "1d", "2026-03-01", "2026-04-01")
    """
    _check_output(to)
    width = parse_interval(interval)
    q = TradeQuery(exchange, symbol, *_range(start, end, last), namespace=namespace)
    settings = settings or platform()
    pinned = _pinned(settings, namespace, GOLD_TABLE, as_of, snapshot_id)
    ledger_at = _from_ms(pinned.timestamp_ms) if pinned is not None else None
    if as_of is not None:
        ledger_at = _time(as_of, "as_of")
    return _output(scan_bars(settings, q, width, _id(pinned), ledger_at), to)


def dlq(start: Time | None = None, end: Time | None = None, *, last: str | timedelta = "1h",
        error_type: str | None = None, as_of: Time | None = None, snapshot_id: int | None = None,
        to: Output = "arrow", namespace: str = NAMESPACE, settings: PlatformSettings | None = None):
    """The rows of ``silver_dlq`` (Bronze records Silver rejected, with the reason) whose
    ``error_timestamp`` is in ``[start, end)``, ordered by error time then Kafka
    coordinates; only those of ``error_type`` (e.g. ``"decode_error"``) when given.

    Examples::

        lake.dlq(last="24h", error_type="non_positive_price", to="pandas")
    """
    from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThan

    _check_output(to)
    first, until = _range(start, end, last)
    where: BooleanExpression = And(GreaterThanOrEqual("error_timestamp", first.isoformat()),
                                   LessThan("error_timestamp", until.isoformat()))
    if error_type is not None:
        where = And(where, EqualTo("error_type", error_type))
    rows = _scan(settings or platform(), namespace, SILVER_DLQ_TABLE, where, None, as_of, snapshot_id, None)
    order = [("error_timestamp", "ascending"), ("topic", "ascending"), ("partition", "ascending"),
             ("offset", "ascending")]
    return _output(rows.sort_by(order), to)


def table(name: str, *, where: BooleanExpression | str | None = None, columns: list[str] | tuple[str, ...] | None = None,
          as_of: Time | None = None, snapshot_id: int | None = None, limit: int | None = None,
          to: Output = "arrow", namespace: str = NAMESPACE, settings: PlatformSettings | None = None):
    """Any lakehouse table (``gold_crypto_trades``, ``silver_dlq``, ``completeness_ledger``,
    ...), filtered by ``where`` (a pyiceberg expression, or a predicate string pyiceberg
    parses such as ``"symbol = 'BTCUSDT' AND timestamp >= '2026-03-01T00:00:00+00:00'"``),
    only ``columns`` when given, at most ``limit`` rows (in file order), at the current
    snapshot, the one current at ``as_of`` or ``snapshot_id``.

    Examples::

        from pyiceberg.expressions import EqualTo
        lake.table("completeness_ledger", where=EqualTo("status", "gaps"), to="pandas")
        lake.table("gold_crypto_trades", where="exchange = 'KRAKEN'", columns=["timestamp", "price"], limit=10)
    """
    _check_output(to)
    _check_limit(limit)
    return _output(_scan(settings or platform(), namespace, name, where, columns, as_of, snapshot_id, limit), to)


def sql(query: str, *, as_of: Time | None = None, snapshot_id: int | None = None, to: Output = "arrow",
        namespace: str = NAMESPACE, settings: PlatformSettings | None = None):
    """The result of one read-only SQL statement (DuckDB's dialect) over the lakehouse tables,
    named as in :func:`table` (``gold_crypto_trades``, ``silver_dlq``, ``completeness_ledger``,
    ...), optionally qualified (``market_data.gold_crypto_trades``).

    Each table is read with pyiceberg, only the columns the query names and, when its WHERE
    (or an inner join's ON) ANDs comparisons of a column with constants (``=``, ``<``,
    ``<=``, ``>``, ``>=``, ``BETWEEN``, ``IN``), only the files and rows they can match: a
    one-hour range on Gold's ``timestamp`` reads that hour's files. DuckDB then runs the
    whole statement over those Arrow tables, with no access to files or the network.
    Statements that would write (INSERT, COPY, CREATE, ATTACH, SET, PRAGMA, ... or more
    than one statement) raise :class:`ReadOnlyError` (a QueryError); so does SQL DuckDB
    cannot run, with its message.

    ``as_of`` reads every table as it was at that time; ``snapshot_id`` pins the one table
    the query reads. Times without an offset in the SQL are UTC.

    Examples::

        lake.sql("SELECT exchange, symbol, count(*) AS trades, max(price) AS high "
                 "FROM gold_crypto_trades WHERE timestamp >= '2026-03-01 10:00' "
                 "AND timestamp < '2026-03-01 11:00' GROUP BY ALL ORDER BY trades DESC", to="pandas")
        lake.sql("SELECT l.hour, l.status, count(g.trade_id) AS trades FROM completeness_ledger l "
                 "LEFT JOIN gold_crypto_trades g ON g.symbol = l.symbol "
                 "AND date_trunc('hour', g.timestamp) = l.hour WHERE l.status <> 'complete' GROUP BY ALL")
        lake.sql("SELECT error_type, count(*) FROM silver_dlq GROUP BY 1", as_of="2026-03-01T12:00")
    """
    _check_output(to)
    return _output(query_sql(settings, query, namespace, as_of, snapshot_id).table, to)


SNAPSHOTS_SCHEMA = pa.schema([
    ("snapshot_id", pa.int64()), ("committed_at", pa.timestamp("ms", "UTC")),
    ("operation", pa.string()), ("parent", pa.int64()),
])


def snapshots(name: str, *, to: Output = "arrow", namespace: str = NAMESPACE,
              settings: PlatformSettings | None = None):
    """The snapshots of table ``name`` still kept, oldest first: ``snapshot_id``,
    ``committed_at``, ``operation`` (append, overwrite, delete, replace) and ``parent``
    (the snapshot it followed). Pass one's id as ``snapshot_id`` (or a time as ``as_of``)
    to read the table as it was then. Retention and compaction expire snapshots older than
    ``K2_SNAPSHOT_RETENTION_HOURS`` (1 h by default): that is how far back time travel reaches.

    Examples::

        lake.snapshots("gold_crypto_trades", to="pandas").tail(3)
    """
    _check_output(to)
    tbl = _load(settings or platform(), namespace, name)
    rows = [{"snapshot_id": s.snapshot_id, "committed_at": _from_ms(s.timestamp_ms),
             "operation": s.summary.operation.value if s.summary else None, "parent": s.parent_snapshot_id}
            for s in sorted(tbl.snapshots(), key=lambda s: s.timestamp_ms)]
    return _output(pa.Table.from_pylist(rows, schema=SNAPSHOTS_SCHEMA), to)


def parse_interval(value: str | timedelta) -> timedelta:
    """A bar width between 1 s and 1 d; QueryError otherwise."""
    width = parse_duration(value) if isinstance(value, str) else value
    if not isinstance(width, timedelta) or not MIN_INTERVAL <= width <= MAX_INTERVAL:
        raise QueryError(f"bar interval {value!r} is outside the limits: from 1s to 1d")
    return width


# Internals shared with the CLI ------------------------------------------------------
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

    def conditions(self) -> tuple[Condition, ...]:
        """The rows of the query, ANDed: the one definition both readers filter by."""
        return (Condition("exchange", "=", exchange(self.exchange).enum_symbol),
                Condition("symbol", "=", self.symbol),
                Condition("timestamp", ">=", self.start),
                Condition("timestamp", "<", self.end))

    def row_filter(self) -> BooleanExpression:
        """:meth:`conditions` as pyiceberg's row filter."""
        return _row_filter(self.conditions())


def scan_trades(settings: PlatformSettings, q: TradeQuery, limit: int | None = None,
                snapshot_id: int | None = None) -> pa.Table:
    """Trades in [start, end), ordered by (timestamp, trade_id); at ``snapshot_id`` if given.

    The current snapshot is read by :mod:`k2.iceberg_read` when it covers the table (Gold
    on local disk: `k2 query` answers in well under a second), by pyiceberg otherwise."""
    result = _fast_scan(settings, q.namespace, q.table, q.conditions(), TRADE_COLUMNS) if snapshot_id is None else None
    if result is None:
        table = _load(settings, q.namespace, q.table)
        scan = table.scan(row_filter=q.row_filter(), selected_fields=TRADE_COLUMNS, snapshot_id=snapshot_id)
        result = scan.to_arrow()
    result = result.sort_by([("timestamp", "ascending"), ("trade_id", "ascending")])
    return result.slice(0, limit) if limit is not None else result


@dataclass(frozen=True)
class ScanStats:
    """What reading one table for a SQL query took: files planned of those in its snapshot."""

    table: str
    files: int  # data files planned (after pruning)
    total_files: int  # data files in the snapshot read
    rows: int  # rows read (after the row filter)
    scan: TableScan


@dataclass(frozen=True)
class SqlResult:
    table: pa.Table
    scans: tuple[ScanStats, ...]


def query_sql(settings: PlatformSettings | None, query: str, namespace: str = NAMESPACE, as_of: Time | None = None,
              snapshot_id: int | None = None) -> SqlResult:
    """:func:`sql`'s result with the scan of each table (the CLI prints them). The query is
    checked (and refused) before the settings are read (None: :func:`k2.settings.platform`)."""
    from k2.sql import parse as parse_sql
    from k2.sql import plan as plan_sql
    from k2.sql import run as run_sql

    _check_pin(as_of, snapshot_id)
    namespaces = {NAMESPACE, namespace}
    stmt = parse_sql(query, namespaces)
    if snapshot_id is not None and len(stmt.tables) != 1:
        raise QueryError(f"snapshot_id pins one table; this query reads {len(stmt.tables)} "
                         f"({', '.join(stmt.tables) or 'none'}): use as_of to pin them all")
    settings = settings or platform()
    tables = {name: _load(settings, namespace, name) for name in stmt.tables}
    pins = {name: _id(_pinned(settings, namespace, name, as_of, snapshot_id, tbl)) for name, tbl in tables.items()}
    scans = plan_sql(stmt, {name: tbl.scan(snapshot_id=pins[name]).projection() for name, tbl in tables.items()})
    data, stats = {}, []
    for name, tbl in tables.items():
        data[name], stat = _read(tbl, scans[name], pins[name])
        stats.append(stat)
    return SqlResult(run_sql(stmt, data, namespaces), tuple(stats))


def _read(tbl: Table, plan: TableScan, snapshot_id: int | None) -> tuple[pa.Table, ScanStats]:
    """The rows ``plan`` selects, and how many of the snapshot's data files it planned."""
    from pyiceberg.io.pyarrow import ArrowScan

    scan = tbl.scan(row_filter=plan.row_filter, selected_fields=plan.columns or ("*",), snapshot_id=snapshot_id)
    tasks = list(scan.plan_files())
    rows = ArrowScan(scan.table_metadata, scan.io, scan.projection(), scan.row_filter, scan.case_sensitive,
                     scan.limit).to_table(tasks)
    snapshot = scan.snapshot()
    total = int((snapshot.summary or {}).get("total-data-files") or len(tasks)) if snapshot else 0
    return rows, ScanStats(plan.name, len(tasks), total, rows.num_rows, plan)


HOUR_STATUS_SCHEMA = pa.schema([("hour", pa.timestamp("us", "UTC")), ("status", pa.string())])


def hour_statuses(settings: PlatformSettings, q: TradeQuery, at: datetime | None = None) -> pa.Table:
    """The completeness ledger's status of each hour of ``q`` (``hour``, ``status``), as the
    ledger was at ``at`` (default now); empty when the namespace has no ledger table (see
    k2/ledger_store.py) or it had no snapshot yet at ``at``."""
    from k2.iceberg_read import Missing

    first_hour = q.start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    conditions = (Condition("exchange", "=", q.exchange), Condition("symbol", "=", q.symbol),
                  Condition("hour", ">=", first_hour), Condition("hour", "<", q.end))
    if at is None:
        try:
            rows = _fast_scan(settings, q.namespace, LEDGER_TABLE, conditions, ("hour", "status"))
        except Missing:
            return empty_table(HOUR_STATUS_SCHEMA)
        if rows is not None:
            return rows.select(["hour", "status"]).cast(HOUR_STATUS_SCHEMA)
    cat = catalog(settings)
    ident = f"{q.namespace}.{LEDGER_TABLE}"
    if not cat.table_exists(ident):
        return empty_table(HOUR_STATUS_SCHEMA)
    ledger = cat.load_table(ident)
    snapshot_id = None
    if at is not None:
        snapshot = ledger.snapshot_as_of_timestamp(_ms(at))
        if snapshot is None:
            return empty_table(HOUR_STATUS_SCHEMA)
        snapshot_id = snapshot.snapshot_id
    rows = ledger.scan(row_filter=_row_filter(conditions), selected_fields=("hour", "status"),
                       snapshot_id=snapshot_id).to_arrow()
    return rows.select(["hour", "status"]).cast(HOUR_STATUS_SCHEMA)


def bar_query(q: TradeQuery, interval: timedelta) -> TradeQuery:
    """``q`` widened to whole bars of ``interval`` (aligned on the Unix epoch)."""
    start = EPOCH + (q.start - EPOCH) // interval * interval
    end = EPOCH - (EPOCH - q.end) // interval * interval  # ceiling
    return TradeQuery(q.exchange, q.symbol, start, end, q.namespace, q.table)


def scan_bars(settings: PlatformSettings, q: TradeQuery, interval: timedelta, snapshot_id: int | None = None,
              ledger_at: datetime | None = None) -> pa.Table:
    """The bars of :func:`bars` over ``q`` widened to whole bars (:func:`bar_query`), from Gold
    at ``snapshot_id`` (default current) and the ledger as it was at ``ledger_at`` (default now)."""
    q = bar_query(q, interval)
    return bars_of(scan_trades(settings, q, snapshot_id=snapshot_id), hour_statuses(settings, q, ledger_at), interval)


def bars_of(trades_table: pa.Table, statuses: pa.Table | None = None,
            interval: timedelta = timedelta(minutes=1)) -> pa.Table:
    """OHLCV bars of ``interval`` (see :func:`bars`) from trades (:func:`scan_trades`), with
    ``complete`` from the ledger's ``statuses`` (:func:`hour_statuses`)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # buckets of UTC time, whatever the host zone
    _register(con, "trades", trades_table)
    _register(con, "ledger", statuses if statuses is not None else empty_table(HOUR_STATUS_SCHEMA))
    return con.sql(
        """
        WITH t AS (
        SELECT time_bucket(to_microseconds($width), "timestamp", TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket,
               "timestamp", trade_id, price, quantity,
               -- Exact integers (units of 1e-8) for an exact VWAP: DuckDB divides decimals as doubles.
               CAST(CAST(price AS DECIMAL(38, 8)) * 100000000 AS HUGEINT) AS price_e8,
               CAST(CAST(quantity AS DECIMAL(38, 8)) * 100000000 AS HUGEINT) AS qty_e8
        FROM trades
        ),
        b AS (
        SELECT bucket AS "timestamp",
               arg_min(price, ("timestamp", trade_id)) AS open,
               max(price) AS high,
               min(price) AS low,
               arg_max(price, ("timestamp", trade_id)) AS close,
               sum(CAST(quantity AS DECIMAL(38, 8))) AS volume,
               -- sum(p*q) / sum(q) in units of 1e-8, rounded half up (prices and quantities are > 0)
               CAST(CAST((2 * sum(price_e8 * qty_e8) + sum(qty_e8)) // (2 * sum(qty_e8))
                         AS DECIMAL(18, 0)) * 0.00000001 AS DECIMAL(18, 8)) AS vwap,
               count(*) AS trade_count
        FROM t
        GROUP BY bucket
        ),
        -- false: a ledger hour the bar overlaps has gaps or is unrecoverable
        bad AS (
        SELECT b."timestamp", bool_or(l.status IN ('gaps', 'unrecoverable')) AS any_bad
        FROM b JOIN ledger l ON l.hour >= date_trunc('hour', b."timestamp")
                             AND l.hour < b."timestamp" + to_microseconds($width)
        GROUP BY b."timestamp"
        ),
        -- true: every hour holding the bar's trades is complete
        good AS (
        SELECT h.bucket AS "timestamp", bool_and(coalesce(l.status = 'complete', false)) AS all_complete
        FROM (SELECT DISTINCT bucket, date_trunc('hour', "timestamp") AS hour FROM t) h
        LEFT JOIN ledger l ON l.hour = h.hour
        GROUP BY h.bucket
        )
        SELECT b.*, CASE WHEN bad.any_bad THEN false WHEN good.all_complete THEN true END AS complete
        FROM b LEFT JOIN bad USING ("timestamp") LEFT JOIN good USING ("timestamp")
        ORDER BY "timestamp"
        """,
        params={"width": interval // timedelta(microseconds=1)},
    ).to_arrow_table()


# Helpers -------------------------------------------------------------------------
def _register(con, name: str, table: pa.Table) -> None:
    """``con.register(name, table)`` without importing pandas.

    DuckDB's Python binding checks whether an object it is given is a pandas DataFrame by
    importing pandas (seconds: `k2 query bars` must answer in under one). While pandas is
    not imported no object can be a DataFrame, so pandas is marked unavailable for the
    call: the check answers "no" at once, which is the truth. sys.modules is restored
    before returning; DuckDB imports pandas again later if it is loaded by then.
    """
    if "pandas" in sys.modules:
        con.register(name, table)
        return
    sys.modules["pandas"] = None  # type: ignore[assignment]  # "import pandas" raises ImportError
    try:
        con.register(name, table)
    finally:
        if sys.modules.get("pandas", 0) is None:
            del sys.modules["pandas"]


def _fast_scan(settings: PlatformSettings, namespace: str, name: str, conditions: tuple[Condition, ...],
               columns: tuple[str, ...]) -> pa.Table | None:
    """The current snapshot's matching rows through :mod:`k2.iceberg_read`; None where it does
    not cover the table (pyiceberg reads it then). Missing: no such table."""
    from k2.iceberg_read import scan

    return scan(settings, namespace, name, conditions, columns)


def _row_filter(conditions: tuple[Condition, ...]) -> BooleanExpression:
    """Conditions as pyiceberg's row filter (times as ISO strings, which pyiceberg converts to µs)."""
    from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThan

    ops = {"=": EqualTo, ">=": GreaterThanOrEqual, "<": LessThan}
    terms = [ops[c.op](c.column, c.value.isoformat() if isinstance(c.value, datetime) else c.value)
             for c in conditions]
    return And(*terms) if len(terms) > 1 else terms[0]


def _check_output(to: str) -> None:
    if to not in OUTPUTS:
        raise QueryError(f"to={to!r} is not an output; use one of: {', '.join(OUTPUTS)}")


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise QueryError(f"limit={limit!r} is not a count of rows (an int >= 0)")


def _output(result: pa.Table, to: Output):
    if to == "pandas":
        return result.to_pandas()
    if to == "polars":
        import polars

        return polars.from_arrow(result)
    return result


def _time(value: Time, what: str) -> datetime:
    if isinstance(value, str):
        return parse_time(value)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    raise QueryError(f"{what}={value!r} is not a time: give a datetime or an ISO 8601 string")


def _range(start: Time | None, end: Time | None, last: str | timedelta) -> tuple[datetime, datetime]:
    until = _time(end, "end") if end is not None else datetime.now(UTC)
    if start is not None:
        return _time(start, "start"), until
    return until - (parse_duration(last) if isinstance(last, str) else last), until


def _id(snapshot: Snapshot | None) -> int | None:
    return snapshot.snapshot_id if snapshot is not None else None


def _ms(t: datetime) -> int:
    return (t - EPOCH) // timedelta(milliseconds=1)


def _from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def _load(settings: PlatformSettings, namespace: str, name: str) -> Table:
    from pyiceberg.exceptions import NoSuchTableError

    if name not in lakehouse_tables():
        raise QueryError(f"unknown table {name!r}; the lakehouse tables are: {', '.join(lakehouse_tables())}")
    try:
        return catalog(settings).load_table(f"{namespace}.{name}")
    except NoSuchTableError:
        raise QueryError(f"table {namespace}.{name} does not exist (yet): bootstrap creates it") from None


def _check_pin(as_of: Time | None, snapshot_id: int | None) -> datetime | None:
    """``as_of`` as a datetime; QueryError if it is no time or comes with ``snapshot_id``."""
    if as_of is not None and snapshot_id is not None:
        raise QueryError("give as_of or snapshot_id, not both")
    return _time(as_of, "as_of") if as_of is not None else None


def _pinned(settings: PlatformSettings, namespace: str, name: str, as_of: Time | None,
            snapshot_id: int | None, tbl: Table | None = None) -> Snapshot | None:
    """The snapshot of the table that ``as_of`` or ``snapshot_id`` names; None for the current one."""
    when = _check_pin(as_of, snapshot_id)
    if as_of is None and snapshot_id is None:
        return None
    tbl = tbl or _load(settings, namespace, name)
    ident = f"{namespace}.{name}"
    if snapshot_id is not None:
        found = tbl.snapshot_by_id(snapshot_id)
        if found is None:
            raise QueryError(f"{ident} has no snapshot {snapshot_id} (expired, or of another table); "
                             f"lake.snapshots({name!r}) lists those it keeps")
        return found
    found = tbl.snapshot_as_of_timestamp(_ms(when))
    if found is None:
        kept = tbl.snapshots()
        first = (f"its first snapshot was committed at {_from_ms(min(s.timestamp_ms for s in kept)).isoformat()}"
                 if kept else "it has no snapshot yet")
        raise QueryError(f"{ident} has no snapshot at or before {when.isoformat()}: {first}")
    return found


def _scan(settings: PlatformSettings, namespace: str, name: str, where: BooleanExpression | str | None,
          columns: list[str] | tuple[str, ...] | None, as_of: Time | None, snapshot_id: int | None,
          limit: int | None) -> pa.Table:
    _check_pin(as_of, snapshot_id)
    tbl = _load(settings, namespace, name)
    pinned = _pinned(settings, namespace, name, as_of, snapshot_id, tbl)
    known = [f.name for f in tbl.schema().fields]
    unknown = [c for c in columns or () if c not in known]
    if unknown:
        raise QueryError(f"{namespace}.{name} has no column {', '.join(map(repr, unknown))}; "
                         f"its columns: {', '.join(known)}")
    row_filter = _predicate(where, tbl, f"{namespace}.{name}")
    return tbl.scan(row_filter=row_filter, selected_fields=tuple(columns) if columns is not None else ("*",),
                    snapshot_id=_id(pinned), limit=limit).to_arrow()


def _predicate(where: BooleanExpression | str | None, tbl: Table, ident: str) -> BooleanExpression:
    """``where`` parsed and checked against the table's columns; QueryError if it cannot filter it."""
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.expressions.parser import parse
    from pyiceberg.expressions.visitors import bind
    from pyparsing import ParseException

    if where is None:
        return AlwaysTrue()
    try:
        expr = parse(where) if isinstance(where, str) else where
    except ParseException as exc:
        raise QueryError(f"where={where!r} is not a predicate pyiceberg parses (column {exc.col}); "
                         "write e.g. \"symbol = 'BTCUSDT' AND price > 100\"") from None
    try:
        bind(tbl.schema(), expr, case_sensitive=True)
    except ValueError as exc:
        raise QueryError(f"where={where!r} cannot filter {ident}: {exc}") from None
    return expr
