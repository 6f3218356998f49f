"""k2.sql without services: which statements are refused, which predicates are pushed to
the Iceberg scan (and which are not), the columns read, and the locked-down DuckDB. The
property test checks the pushed filter against DuckDB itself on random rows: it never
drops a row the query keeps, and for ANDs of pushable comparisons it keeps exactly those.
(The integration tier reads real tables: tests/integration/query/test_sql.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyiceberg.expressions import AlwaysFalse, AlwaysTrue, And, BooleanExpression, In, Or
from pyiceberg.expressions.visitors import bind
from pyiceberg.io.pyarrow import expression_to_pyarrow
from pyiceberg.schema import Schema
from pyiceberg.types import (
    DateType,
    DecimalType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from k2 import sql
from k2.exchanges import names
from k2.times import QueryError

GOLD = Schema(
    NestedField(1, "id", LongType()), NestedField(2, "exchange", StringType()),
    NestedField(3, "symbol", StringType()), NestedField(4, "timestamp", TimestamptzType()),
    NestedField(5, "price", DecimalType(18, 8)), NestedField(6, "trade_id", StringType()),
)
LEDGER = Schema(
    NestedField(1, "exchange", StringType()), NestedField(2, "symbol", StringType()),
    NestedField(3, "hour", TimestamptzType()), NestedField(4, "status", StringType()),
    NestedField(5, "gold_trades", LongType()),
)
SILVER = Schema(NestedField(1, "symbol", StringType()), NestedField(2, "exchange_date", DateType()))
SCHEMAS = {"gold_crypto_trades": GOLD, "completeness_ledger": LEDGER, "silver_binance_trades": SILVER}


def scans(query: str) -> dict[str, sql.TableScan]:
    stmt = sql.parse(query, ["market_data", "k2test_ns"])
    return sql.plan(stmt, {name: SCHEMAS[name] for name in stmt.tables})


def pushed(query: str, table: str = "gold_crypto_trades") -> set[str]:
    """The pushed filter's AND-ed parts, each as pyiceberg prints it (empty: nothing pushed)."""
    return {repr(p) for p in _parts(scans(query)[table].row_filter)}


def _parts(expr: BooleanExpression) -> list[BooleanExpression]:
    if isinstance(expr, AlwaysTrue):
        return []
    if isinstance(expr, And):
        return _parts(expr.left) + _parts(expr.right)
    return [expr]


def ge(col, v): return f"GreaterThanOrEqual(term=Reference(name='{col}'), literal={v})"  # noqa: E704
def gt(col, v): return f"GreaterThan(term=Reference(name='{col}'), literal={v})"  # noqa: E704
def lt(col, v): return f"LessThan(term=Reference(name='{col}'), literal={v})"  # noqa: E704
def le(col, v): return f"LessThanOrEqual(term=Reference(name='{col}'), literal={v})"  # noqa: E704
def eq(col, v): return f"EqualTo(term=Reference(name='{col}'), literal={v})"  # noqa: E704
def s(text): return f"literal('{text}')"  # noqa: E704
def d(text): return f"DecimalLiteral(Decimal('{text}'))"  # noqa: E704


HOUR = [ge("timestamp", s("2026-03-01T10:00:00+00:00")), lt("timestamp", s("2026-03-01T11:00:00+00:00"))]


# Refused statements ---------------------------------------------------------------
@pytest.mark.parametrize("query", [
    "INSERT INTO gold_crypto_trades SELECT * FROM gold_crypto_trades",
    "insert into gold_crypto_trades values (1)",
    "UPDATE gold_crypto_trades SET price = 0",
    "delete from gold_crypto_trades",
    "/* just a look */ DELETE FROM gold_crypto_trades -- really",
    "CREATE TABLE x AS SELECT * FROM gold_crypto_trades",
    "create view v as select 1",
    "CREATE MACRO m() AS 1",
    "DROP TABLE gold_crypto_trades",
    "ALTER TABLE gold_crypto_trades ADD COLUMN x INT",
    "COPY gold_crypto_trades TO '/tmp/x.csv'",
    "copy (select 1) to '/tmp/x.parquet' (format parquet)",
    "ATTACH '/tmp/x.duckdb' AS x",
    "DETACH x",
    "PRAGMA version",
    "SET enable_external_access = true",
    "RESET enable_external_access",
    "INSTALL httpfs",
    "LOAD httpfs",
    "EXPORT DATABASE '/tmp/x'",
    "IMPORT DATABASE '/tmp/x'",
    "CALL pragma_version()",
    "CHECKPOINT",
    "VACUUM",
    "BEGIN TRANSACTION",
    "USE memory",
    "EXPLAIN SELECT 1",
    "WITH x AS (SELECT * FROM gold_crypto_trades) INSERT INTO gold_crypto_trades SELECT * FROM x",
    "SELECT 1; DROP TABLE gold_crypto_trades",
    "SELECT 1; SELECT 2",
    "select 1;\ncopy gold_crypto_trades to '/tmp/y.csv'",
])
def test_statements_that_are_not_one_select_are_refused(query):
    with pytest.raises(sql.ReadOnlyError, match=r"refused: \w+ statements are not allowed|exactly one statement"):
        sql.parse(query)


def test_a_refusal_names_the_kind_and_what_runs():
    with pytest.raises(sql.ReadOnlyError, match=r"^refused: INSERT statements are not allowed; SQL here is read-only: "
                                                 r"one SELECT"):
        sql.parse("with x as (select 1) insert into t select * from x")
    with pytest.raises(sql.ReadOnlyError, match=r"this query holds 2"):
        sql.parse("select 1; select 2")


@pytest.mark.parametrize("query, named", [
    ("SELECT * FROM gold", "'gold'"),
    ("SELECT * FROM other.gold_crypto_trades", "'other.gold_crypto_trades'"),
    ("SELECT * FROM information_schema.tables", "'information_schema.tables'"),
    ("SELECT * FROM gold_crypto_trades JOIN nope USING (symbol)", "'nope'"),
    ("SELECT * FROM (SELECT * FROM k2_arrow_gold_crypto_trades)", "'k2_arrow_gold_crypto_trades'"),
])
def test_only_lakehouse_tables_can_be_named(query, named):
    with pytest.raises(QueryError, match=rf"unknown table {named}; the lakehouse tables are: bronze_crypto_trades"):
        sql.parse(query)


def test_tables_are_found_anywhere_case_insensitively_and_ctes_are_not_tables():
    assert sql.parse("SELECT * FROM Market_Data.GOLD_CRYPTO_TRADES").tables == ("gold_crypto_trades",)
    stmt = sql.parse("WITH h AS (SELECT * FROM completeness_ledger) SELECT * FROM gold_crypto_trades "
                     "WHERE symbol IN (SELECT symbol FROM h) AND EXISTS (SELECT 1 FROM silver_dlq)")
    assert stmt.tables == ("completeness_ledger", "gold_crypto_trades", "silver_dlq")
    assert sql.parse("SHOW gold_crypto_trades").tables == ("gold_crypto_trades",)


def test_the_cli_refuses_before_reading_settings_or_the_catalog(capsys, monkeypatch):
    from k2 import lake, settings
    from k2ops.cli import main

    def refuse(*_args, **_kwargs):
        raise AssertionError("settings or the catalog were read")

    monkeypatch.setattr(lake, "catalog", refuse)
    monkeypatch.setattr(settings, "load_platform", refuse)
    monkeypatch.setattr(lake, "platform", refuse)
    assert main(["sql", "-- tidy up\ndelete FROM gold_crypto_trades"]) == 2
    assert capsys.readouterr().err == ("k2 sql: refused: DELETE statements are not allowed; SQL here is read-only: "
                                       "one SELECT (WITH, FROM, VALUES, DESCRIBE, SUMMARIZE, SHOW) over the "
                                       "lakehouse tables\n")
    assert main(["sql", "SELECT * FROM gold_crypto_trades", "--format", "parquet"]) == 2
    assert "--format parquet needs --output FILE" in capsys.readouterr().err


def test_help_names_the_tables_pushdown_and_read_only(capsys):
    from k2ops.cli import main

    with pytest.raises(SystemExit):
        main(["sql", "--help"])
    out = capsys.readouterr().out
    silver = ", ".join(f"silver_{name}_trades" for name in names())  # one per registered venue
    assert (f"tables: bronze_crypto_trades, {silver}, silver_dlq, gold_crypto_trades, completeness_ledger, "
            "completeness_unrecoverable") in " ".join(out.split())
    assert "pushdown:" in out and "read-only:" in out and "--as-of" in out and "--snapshot-id" in out


def test_a_syntax_error_says_so():
    with pytest.raises(QueryError, match="the query does not parse: .*syntax error"):
        sql.parse("SELEC 1")


# Pushdown -------------------------------------------------------------------------
def test_a_time_range_and_equalities_are_pushed():
    assert pushed("SELECT * FROM gold_crypto_trades WHERE timestamp >= '2026-03-01 10:00' "
                  "AND timestamp < '2026-03-01T11:00:00Z' AND exchange = 'BINANCE' AND 'BTCUSDT' = symbol") == {
        *HOUR, eq("exchange", s("BINANCE")), eq("symbol", s("BTCUSDT"))}


@pytest.mark.parametrize("condition, expected", [
    ("timestamp BETWEEN '2026-03-01 10:00' AND '2026-03-01 10:59:59.999999'",
     {ge("timestamp", s("2026-03-01T10:00:00+00:00")), le("timestamp", s("2026-03-01T10:59:59.999999+00:00"))}),
    ("timestamp >= TIMESTAMPTZ '2026-03-01 12:00+02' AND timestamp < TIMESTAMP '2026-03-01 11:00'", set(HOUR)),
    ("timestamp >= '2026-03-01T10:00:00+00:00'::TIMESTAMPTZ AND '2026-03-01 11:00' > timestamp", set(HOUR)),
    ("price > 100 AND price <= 100.5", {gt("price", d("100.00000000")), le("price", d("100.50000000"))}),
    ("id = -3", {eq("id", "LongLiteral(-3)")}),
    ("(exchange = 'KRAKEN' AND (id > 5 AND id < 9))",
     {eq("exchange", s("KRAKEN")), gt("id", "LongLiteral(5)"), lt("id", "LongLiteral(9)")}),
])
def test_comparisons_between_and_in_are_pushed(condition, expected):
    assert pushed(f"SELECT id FROM gold_crypto_trades WHERE {condition}") == expected


def test_in_is_pushed():
    scan = scans("SELECT id FROM gold_crypto_trades WHERE symbol IN ('BTCUSDT', 'ETHUSDT')")["gold_crypto_trades"]
    assert scan.row_filter == In("symbol", ["ETHUSDT", "BTCUSDT"])


@pytest.mark.parametrize("condition", [
    "timestamp >= '2026-03-01 10:00' OR symbol = 'BTCUSDT'",  # under OR
    "NOT (symbol = 'BTCUSDT')",
    "symbol <> 'BTCUSDT'",
    "symbol NOT IN ('A', 'B')",
    "timestamp NOT BETWEEN '2026-03-01' AND '2026-03-02'",
    "symbol IS NULL",
    "lower(symbol) = 'btcusdt'",  # a function of the column
    "CAST(timestamp AS DATE) = '2026-03-01'",
    "symbol = 'btcusdt' COLLATE nocase",
    "symbol = exchange",  # two columns
    "symbol = ?",
    "price > 1.123456789",  # finer than decimal(18, 8): DuckDB compares it exactly
    "price > 12345678901",  # beyond decimal(18, 8)
    "price > 1e2",  # a double
    "id > 9223372036854775808",
    "id = 1.5",
    "trade_id = 5",  # a number against a string column
    "timestamp >= '2026-03-01 10:00:00.0000001'",  # finer than µs
    "timestamp >= 'yesterday'",
    "timestamp >= DATE '2026-03-01'",
    "timestamp >= TRY_CAST('2026-03-01' AS TIMESTAMPTZ)",
    "timestamp >= now() - INTERVAL 1 HOUR",
])
def test_what_cannot_be_translated_exactly_is_not_pushed(condition):
    assert pushed(f"SELECT id FROM gold_crypto_trades WHERE {condition}") == set()


def test_only_the_translatable_conjuncts_are_pushed():
    assert pushed("SELECT id FROM gold_crypto_trades WHERE (symbol = 'A' OR symbol = 'B') "
                  "AND timestamp >= '2026-03-01 10:00' AND lower(exchange) = 'x' AND timestamp < '2026-03-01 11:00'"
                  ) == set(HOUR)


def test_inner_join_conditions_and_qualified_columns_go_to_their_table():
    query = ("SELECT g.symbol, l.status FROM gold_crypto_trades g JOIN completeness_ledger AS l "
             "ON l.symbol = g.symbol AND l.status = 'gaps' "
             "WHERE g.timestamp >= '2026-03-01 10:00' AND g.timestamp < '2026-03-01 11:00' AND gold_trades > 3")
    assert pushed(query) == set(HOUR)
    assert pushed(query, "completeness_ledger") == {eq("status", s("gaps")), gt("gold_trades", "LongLiteral(3)")}


def test_ambiguous_columns_are_not_pushed():
    # symbol is a column of both: DuckDB refuses it, we do not guess
    assert pushed("SELECT 1 FROM gold_crypto_trades, completeness_ledger WHERE symbol = 'A'") == set()


@pytest.mark.parametrize("join", ["LEFT JOIN", "LEFT OUTER JOIN"])
def test_the_nullable_side_of_an_outer_join_gets_nothing(join):
    query = (f"SELECT * FROM gold_crypto_trades g {join} completeness_ledger l ON l.symbol = g.symbol "
             "AND l.status = 'gaps' WHERE g.symbol = 'A' AND l.gold_trades > 3")
    assert pushed(query) == {eq("symbol", s("A"))}  # the preserved side still is filtered
    assert pushed(query, "completeness_ledger") == set()


def test_right_full_asof_positional_and_lateral_joins():
    right = ("SELECT * FROM gold_crypto_trades g RIGHT JOIN completeness_ledger l ON l.symbol = g.symbol "
             "WHERE g.symbol = 'A' AND l.status = 'gaps'")
    assert pushed(right) == set() and pushed(right, "completeness_ledger") == {eq("status", s("gaps"))}
    full = ("SELECT * FROM gold_crypto_trades g FULL JOIN completeness_ledger l ON l.symbol = g.symbol "
            "WHERE g.symbol = 'A' AND l.status = 'gaps'")
    assert pushed(full) == set() and pushed(full, "completeness_ledger") == set()
    asof = ("SELECT * FROM gold_crypto_trades g ASOF JOIN completeness_ledger l "
            "ON l.symbol = g.symbol AND g.timestamp >= l.hour WHERE l.status = 'gaps' AND g.symbol = 'A'")
    assert pushed(asof) == set() and pushed(asof, "completeness_ledger") == set()  # the nearest row would change
    positional = "SELECT * FROM gold_crypto_trades POSITIONAL JOIN completeness_ledger WHERE status = 'gaps'"
    assert pushed(positional, "completeness_ledger") == set()


def test_subqueries_ctes_and_outer_references():
    # The outer WHERE names the subquery's price (price * 2), not Gold's.
    assert pushed("SELECT * FROM (SELECT price * 2 AS price FROM gold_crypto_trades) WHERE price > 5") == set()
    assert pushed("SELECT * FROM (SELECT price * 2 AS price FROM gold_crypto_trades) sub "
                  "WHERE sub.price > 5") == set()
    # ...but the subquery's own WHERE is its table's.
    assert pushed("SELECT * FROM (SELECT * FROM gold_crypto_trades WHERE symbol = 'A') WHERE price > 5") == {
        eq("symbol", s("A"))}
    assert pushed("WITH x AS (SELECT * FROM gold_crypto_trades WHERE symbol = 'A') SELECT * FROM x "
                  "WHERE price > 5") == {eq("symbol", s("A"))}
    # A correlated reference to the outer Gold inside the ledger's subquery is not the ledger's.
    query = ("SELECT * FROM gold_crypto_trades g WHERE EXISTS (SELECT 1 FROM completeness_ledger l "
             "WHERE l.symbol = g.symbol AND g.price > 5 AND status = 'gaps')")
    assert pushed(query) == set()
    assert pushed(query, "completeness_ledger") == {eq("status", s("gaps"))}


def test_a_cte_named_like_a_table_leaves_that_table_unfiltered_and_whole():
    query = ("WITH gold_crypto_trades AS (SELECT price - 10 AS price FROM market_data.gold_crypto_trades) "
             "SELECT * FROM gold_crypto_trades WHERE price > 5")
    scan = scans(query)["gold_crypto_trades"]
    assert isinstance(scan.row_filter, AlwaysTrue) and scan.columns is None


def test_a_table_read_twice_is_scanned_for_either_use():
    both = scans("SELECT * FROM gold_crypto_trades a, gold_crypto_trades b WHERE a.symbol = 'A' AND b.symbol = 'B'")
    assert isinstance(both["gold_crypto_trades"].row_filter, Or)
    assert pushed("SELECT * FROM gold_crypto_trades a, gold_crypto_trades b WHERE a.symbol = 'A'") == set()
    union = scans("SELECT id FROM gold_crypto_trades WHERE id = 1 UNION ALL "
                  "SELECT id FROM gold_crypto_trades WHERE id = 2")["gold_crypto_trades"].row_filter
    assert repr(union) == f"Or(left={eq('id', 'LongLiteral(1)')}, right={eq('id', 'LongLiteral(2)')})"


def test_samples_are_taken_before_filtering():
    # DuckDB samples what FROM gives, before WHERE: filtering first would sample other rows.
    assert pushed("SELECT * FROM gold_crypto_trades WHERE symbol = 'A' USING SAMPLE 10%") == set()
    assert pushed("SELECT * FROM gold_crypto_trades TABLESAMPLE 10% WHERE symbol = 'A'") == set()


def test_dates_of_date_columns():
    assert pushed("SELECT * FROM silver_binance_trades WHERE exchange_date = '2026-03-01' "
                  "AND exchange_date < DATE '2026-03-05'", "silver_binance_trades") == {
        eq("exchange_date", s("2026-03-01")), lt("exchange_date", s("2026-03-05"))}


def test_describe_reads_no_rows():
    for query in ("DESCRIBE gold_crypto_trades", "SHOW gold_crypto_trades", "DESCRIBE SELECT * FROM gold_crypto_trades"):
        assert isinstance(scans(query)["gold_crypto_trades"].row_filter, AlwaysFalse), query
    assert isinstance(scans("SUMMARIZE gold_crypto_trades")["gold_crypto_trades"].row_filter, AlwaysTrue)


# Projection -----------------------------------------------------------------------
@pytest.mark.parametrize("query, columns", [
    ("SELECT symbol, max(price) FROM gold_crypto_trades WHERE timestamp > '2026-03-01' GROUP BY 1",
     ("symbol", "timestamp", "price")),
    ("SELECT count(*) FROM gold_crypto_trades", ("id",)),  # one column, for the row count
    ("SELECT g.Symbol FROM gold_crypto_trades g JOIN completeness_ledger USING (exchange)", ("exchange", "symbol")),
    ("SELECT * FROM gold_crypto_trades", None),
    ("SELECT g.* FROM gold_crypto_trades g", None),
    ("SELECT * EXCLUDE (price) FROM gold_crypto_trades", None),
    ("SELECT COLUMNS('pri.*') FROM gold_crypto_trades", None),
    ("SELECT gold_crypto_trades FROM gold_crypto_trades", None),  # the row as a struct
    ("SELECT to_json(g) FROM gold_crypto_trades g", None),
    ("SELECT 1 FROM gold_crypto_trades NATURAL JOIN completeness_ledger", None),
    ("SELECT a FROM gold_crypto_trades g(a, b)", None),  # renamed columns
])
def test_only_the_columns_named_are_read(query, columns):
    cols = scans(query)["gold_crypto_trades"].columns
    assert (tuple(sorted(cols)) if cols else cols) == (tuple(sorted(columns)) if columns else columns)


# The locked-down DuckDB -----------------------------------------------------------
ROWS = pa.table({"symbol": ["A", "B"], "price": pa.array([Decimal("1"), Decimal("2")], pa.decimal128(18, 8))})


def test_run_reads_the_tables_by_name_and_qualified():
    stmt = sql.parse("SELECT g.symbol, g.price * 2 AS p FROM market_data.gold_crypto_trades g "
                     "JOIN k2test_ns.gold_crypto_trades USING (symbol) WHERE g.price > 1", ["market_data", "k2test_ns"])
    assert sql.run(stmt, {"gold_crypto_trades": ROWS}, ["market_data", "k2test_ns"]).to_pylist() == [
        {"symbol": "B", "p": Decimal("4")}]


@pytest.mark.parametrize("query, error", [
    ("SELECT count(*) FROM gold_crypto_trades, read_csv('/etc/passwd')", "file system operations are disabled"),
    ("SELECT * FROM glob('/*'), gold_crypto_trades", "file system operations are disabled"),
    ("SELECT * FROM gold_crypto_trades, read_parquet('http://127.0.0.1:1/x.parquet')", "disabled"),
    ("SELECT getenv('HOME') FROM gold_crypto_trades", "getenv"),
    ("SELECT * FROM gold_crypto_trades, ROWS", "ROWS does not exist"),  # no Python variables as tables
])
def test_the_query_can_reach_nothing_but_its_tables(query, error):
    try:
        stmt = sql.parse(query)
    except QueryError as exc:  # refused even before running: fine too
        assert "unknown table" in str(exc)
        return
    with pytest.raises(QueryError, match=error):
        sql.run(stmt, {"gold_crypto_trades": ROWS})


def test_the_configuration_is_locked_while_the_query_runs():
    stmt = sql.parse("SELECT current_setting('enable_external_access') AS ext, "
                     "current_setting('lock_configuration') AS locked, current_setting('TimeZone') AS tz "
                     "FROM gold_crypto_trades LIMIT 1")
    assert sql.run(stmt, {"gold_crypto_trades": ROWS}).to_pylist() == [{"ext": False, "locked": True, "tz": "UTC"}]


def test_a_duckdb_error_is_a_query_error():
    with pytest.raises(QueryError, match="nope"):
        sql.run(sql.parse("SELECT nope FROM gold_crypto_trades"), {"gold_crypto_trades": ROWS})


# The pushed filter against DuckDB on random rows ----------------------------------
T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
SYMBOLS = ["A", "B", "BTCUSDT", "a", "Ä"]
ARROW = pa.schema([("id", pa.int64()), ("exchange", pa.string()), ("symbol", pa.string()),
                   ("timestamp", pa.timestamp("us", "UTC")), ("price", pa.decimal128(18, 8)),
                   ("trade_id", pa.string())])

times = st.builds(lambda us: T0 + timedelta(microseconds=us), st.integers(-3 * 3600 * 10**6, 3 * 3600 * 10**6)
                  | st.sampled_from([0, 1, -1, 3600 * 10**6, 999999]))
prices = st.builds(lambda n, e: Decimal(n).scaleb(-e), st.integers(-10**9, 10**9), st.integers(0, 8))
row = st.fixed_dictionaries({
    "exchange": st.sampled_from(["BINANCE", "KRAKEN", None]), "symbol": st.sampled_from([*SYMBOLS, None]),
    "timestamp": times | st.none(), "price": prices | st.none(), "trade_id": st.sampled_from(["1", "10", "9", None]),
})


def _time_text(draw, t: datetime) -> str:
    form = draw(st.sampled_from(["naive", "T", "Z", "+02", "+05:30", "date", "cast", "cast_naive"]))
    if form == "date":
        return f"'{t:%Y-%m-%d}'"
    if form in ("+02", "+05:30"):
        offset = timedelta(hours=2) if form == "+02" else timedelta(hours=5, minutes=30)
        return f"'{(t + offset).strftime('%Y-%m-%d %H:%M:%S.%f')}{form}'"
    text = t.strftime("%Y-%m-%d %H:%M:%S.%f")
    return {"naive": f"'{text}'", "T": f"'{text.replace(' ', 'T')}'", "Z": f"'{text}Z'",
            "cast": f"TIMESTAMPTZ '{text}+00'", "cast_naive": f"TIMESTAMP '{text}'"}[form]


@st.composite
def comparison(draw, rows: list[dict], pushable_only: bool,
               columns: tuple[str, ...] = ("exchange", "symbol", "timestamp", "price", "trade_id", "id"),
               fine: bool | None = None) -> str:
    """A comparison of one column with constants, often with a value some row holds; ``fine``
    (default: unless ``pushable_only``) draws prices finer than the column too."""
    fine = not pushable_only if fine is None else fine
    column = draw(st.sampled_from(columns))
    held = [r[column] for r in rows if r[column] is not None] if column != "id" else list(range(len(rows)))

    def const() -> str:
        if column == "timestamp":
            t = draw(st.sampled_from(held) if held and draw(st.booleans()) else times)
            return _time_text(draw, t)
        if column == "price":
            p = draw(st.sampled_from(held)) if held and draw(st.integers(0, 2)) > 0 else draw(prices)
            if fine:  # finer than the column's 8 decimals, next to a value
                p += draw(st.sampled_from([Decimal("-3e-9"), Decimal("-1e-9"), Decimal(0), Decimal("1e-9"),
                                           Decimal("3e-9")]))
            return f"{p:f}"
        if column == "id":
            return str(draw(st.integers(-1, len(rows) + 1)))
        return "'" + draw(st.sampled_from(held or SYMBOLS) | st.sampled_from(SYMBOLS)) + "'"

    kinds = ["=", "<", "<=", ">", ">=", "between", "in", "flip"]
    if not pushable_only:
        kinds += ["<>", "not", "lower"]
    kind = draw(st.sampled_from(kinds))
    if kind == "between":
        return f'"{column}" BETWEEN {const()} AND {const()}'
    if kind == "in":
        return f'"{column}" IN ({", ".join(const() for _ in range(draw(st.integers(1, 3))))})'
    if kind == "flip":
        return f'{const()} {draw(st.sampled_from(["=", "<", ">=", ">"]))} "{column}"'
    if kind == "not":
        return f'NOT ("{column}" = {const()})'
    if kind == "lower":
        return f'lower(CAST("{column}" AS VARCHAR)) = lower(CAST({const()} AS VARCHAR))' if column != "timestamp" else "true"
    return f'"{column}" {kind} {const()}'


@st.composite
def predicate(draw, rows: list[dict], depth: int = 0) -> str:
    if depth >= 3 or draw(st.integers(0, 2)) == 0:
        return draw(comparison(rows, pushable_only=False))
    op = draw(st.sampled_from(["AND", "OR"]))
    parts = [draw(predicate(rows, depth + 1)) for _ in range(draw(st.integers(2, 3)))]
    return "(" + f" {op} ".join(parts) + ")"


def _table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist([{"id": i, **r} for i, r in enumerate(rows)], schema=ARROW)


def _kept_by_duckdb(where: str, data: pa.Table) -> set[int]:
    stmt = sql.parse(f"SELECT id FROM gold_crypto_trades WHERE {where}")
    return set(sql.run(stmt, {"gold_crypto_trades": data})["id"].to_pylist())


def _kept_by_pushdown(where: str, data: pa.Table) -> tuple[set[int], BooleanExpression]:
    """The rows pyiceberg's row filter keeps (how ArrowScan applies it), and the filter."""
    expr = scans(f"SELECT id FROM gold_crypto_trades WHERE {where}")["gold_crypto_trades"].row_filter
    kept = data.filter(expression_to_pyarrow(bind(GOLD, expr, case_sensitive=True)))
    return set(kept["id"].to_pylist()), expr


@settings(max_examples=100, derandomize=True, deadline=None)  # repeatable, as the unit tier is
@given(st.data(), st.lists(row, min_size=1, max_size=12))
def test_the_pushed_filter_never_drops_a_row_the_query_keeps(data, rows):
    where = data.draw(predicate(rows))
    table = _table(rows)
    duck = _kept_by_duckdb(where, table)
    kept, expr = _kept_by_pushdown(where, table)
    assert duck <= kept, f"WHERE {where}\npushed {expr}\nDuckDB keeps {sorted(duck)}, the scan {sorted(kept)}"


@settings(max_examples=100, derandomize=True, deadline=None)  # repeatable, as the unit tier is
@given(st.data(), st.lists(row, min_size=1, max_size=12))
def test_ands_of_pushable_comparisons_are_pushed_exactly(data, rows):
    parts = data.draw(st.lists(comparison(rows, pushable_only=True), min_size=1, max_size=3))
    where = " AND ".join(parts)
    table = _table(rows)
    kept, expr = _kept_by_pushdown(where, table)
    assert not isinstance(expr, AlwaysTrue), f"nothing pushed for WHERE {where}"
    assert kept == _kept_by_duckdb(where, table), f"WHERE {where}\npushed {expr}"


@settings(max_examples=100, derandomize=True, deadline=None)
@given(st.data(), st.lists(row, min_size=1, max_size=12))
def test_one_comparison_of_a_time_or_price_next_to_the_rows_values_never_drops_one(data, rows):
    """Where conversions could round: times in every form DuckDB reads, prices finer than the column."""
    where = data.draw(comparison(rows, pushable_only=True, columns=("timestamp", "price"), fine=True))
    table = _table(rows)
    duck = _kept_by_duckdb(where, table)
    kept, expr = _kept_by_pushdown(where, table)
    assert duck <= kept, f"WHERE {where}\npushed {expr}\nDuckDB keeps {sorted(duck)}, the scan {sorted(kept)}"
