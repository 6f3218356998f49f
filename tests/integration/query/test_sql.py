"""`lake.sql` and `k2 sql` over Gold- and ledger-shaped Iceberg tables whose rows and files
the test chose: exact results (filter, GROUP BY, a join of Gold with the ledger), the files
a one-hour predicate plans (that hour's, and only them), a predicate under OR (not pushed,
still right), refused writes, CSV/Parquet/table output and time travel."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.expressions import AlwaysTrue

from gold_fixture import gold_rows, gold_table
from k2 import lake
from k2.catalog import catalog
from k2.contracts import GOLD_TABLE, LEDGER_TABLE
from k2.settings import platform

pytestmark = pytest.mark.integration

K2 = str(Path(sys.executable).parent / "k2")
D = Decimal


def _ts(hh: int, mm: int = 0, ss: int = 0, us: int = 0) -> datetime:
    return datetime(2026, 3, 1, hh, mm, ss, us, tzinfo=UTC)


# (exchange, symbol, time, trade_id, price, quantity). Two appends: the first writes one
# file for each of the hours 09, 10, 11 and 12, the second one for 10 and one for 13.
FIRST = [
    ("BINANCE", "BTCUSDT", _ts(9, 30), "1", D("100"), D("1")),
    ("BINANCE", "BTCUSDT", _ts(10, 0), "2", D("101"), D("2")),
    ("BINANCE", "BTCUSDT", _ts(10, 59, 59, 999999), "3", D("103"), D("1")),
    ("BINANCE", "ETHUSDT", _ts(10, 15), "50", D("5"), D("10")),
    ("KRAKEN", "BTC/USD", _ts(11, 0), "70", D("99"), D("1")),
    ("BINANCE", "BTCUSDT", _ts(12, 10), "4", D("104"), D("3")),
]
SECOND = [
    ("BINANCE", "BTCUSDT", _ts(10, 30), "5", D("102"), D("4")),
    ("BINANCE", "ETHUSDT", _ts(13, 0), "51", D("6"), D("1")),
]
FILES, HOUR_10_FILES = 6, 2

LEDGER = pa.table({
    "exchange": ["binance", "binance", "binance", "kraken"], "symbol": ["BTCUSDT", "BTCUSDT", "BTCUSDT", "BTC/USD"],
    "hour": [_ts(9), _ts(10), _ts(12), _ts(11)], "status": ["complete", "complete", "gaps", "not_applicable"],
}, schema=pa.schema([("exchange", pa.string()), ("symbol", pa.string()), ("hour", pa.timestamp("us", "UTC")),
                     ("status", pa.string())]))

HOUR_10 = "timestamp >= '2026-03-01 10:00' AND timestamp < '2026-03-01 11:00'"


@pytest.fixture(scope="module")
def ns(stack, run_id):
    cat = catalog(platform())
    with gold_table(f"k2test_sql_{run_id}", gold_rows(FIRST)) as namespace:
        cat.load_table(f"{namespace}.{GOLD_TABLE}").append(gold_rows(SECOND))
        try:
            cat.create_table(f"{namespace}.{LEDGER_TABLE}", schema=LEDGER.schema).append(LEDGER)
            yield namespace
        finally:
            if cat.table_exists(f"{namespace}.{LEDGER_TABLE}"):
                cat.purge_table(f"{namespace}.{LEDGER_TABLE}")


def _sql(ns: str, query: str, **kwargs) -> lake.SqlResult:
    return lake.query_sql(platform(), query, ns, **kwargs)


def _k2_sql(ns: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([K2, "sql", "--namespace", ns, *args], capture_output=True, text=True, timeout=120)


def _scan(result: lake.SqlResult, table: str) -> lake.ScanStats:
    [found] = [s for s in result.scans if s.table == table]
    return found


def _hours_of_files(ns: str, row_filter) -> list[str]:
    tbl = catalog(platform()).load_table(f"{ns}.{GOLD_TABLE}")
    return sorted(re.search(r"timestamp_hour=([\d-]+)", t.file.file_path).group(1)
                  for t in tbl.scan(row_filter=row_filter).plan_files())


def test_a_filter(ns):
    result = _sql(ns, f"SELECT trade_id, price FROM gold_crypto_trades WHERE symbol = 'BTCUSDT' AND {HOUR_10} "
                      "ORDER BY timestamp")
    assert result.table.to_pylist() == [{"trade_id": "2", "price": D("101")}, {"trade_id": "5", "price": D("102")},
                                        {"trade_id": "3", "price": D("103")}]
    gold = _scan(result, GOLD_TABLE)
    assert (gold.files, gold.total_files, gold.rows) == (HOUR_10_FILES, FILES, 3)
    assert gold.scan.columns == ("trade_id", "symbol", "timestamp", "price")  # in the table's order


def test_a_one_hour_predicate_plans_exactly_that_hours_files(ns):
    everything = _hours_of_files(ns, AlwaysTrue())
    assert len(everything) == FILES and everything.count("2026-03-01-10") == HOUR_10_FILES  # as the fixture wrote
    result = _sql(ns, f"SELECT count(*) AS n FROM gold_crypto_trades WHERE {HOUR_10}")
    assert result.table.to_pylist() == [{"n": 4}]  # 2, 3, 50 and 5
    gold = _scan(result, GOLD_TABLE)
    assert (gold.files, gold.total_files) == (HOUR_10_FILES, FILES)
    assert _hours_of_files(ns, gold.scan.row_filter) == ["2026-03-01-10"] * HOUR_10_FILES
    # Qualified by the namespace, and BETWEEN: the same files.
    between = _sql(ns, f"SELECT count(*) AS n FROM {ns}.gold_crypto_trades "
                       "WHERE timestamp BETWEEN '2026-03-01T10:00:00Z' AND '2026-03-01 10:59:59.999999'")
    assert between.table.to_pylist() == [{"n": 4}] and _scan(between, GOLD_TABLE).files == HOUR_10_FILES


def test_a_predicate_under_or_is_not_pushed_and_the_result_is_still_right(ns):
    result = _sql(ns, f"SELECT trade_id FROM gold_crypto_trades WHERE ({HOUR_10}) OR symbol = 'BTC/USD' "
                      "ORDER BY trade_id")
    assert result.table["trade_id"].to_pylist() == ["2", "3", "5", "50", "70"]
    gold = _scan(result, GOLD_TABLE)
    assert isinstance(gold.scan.row_filter, AlwaysTrue)
    assert (gold.files, gold.rows) == (FILES, 8)


def test_group_by(ns):
    result = _sql(ns, "SELECT exchange, symbol, count(*) AS trades, sum(quantity) AS volume, max(price) AS high "
                      "FROM market_data.gold_crypto_trades GROUP BY ALL ORDER BY exchange, symbol")
    assert [tuple(r.values()) for r in result.table.to_pylist()] == [
        ("BINANCE", "BTCUSDT", 5, D("11"), D("104")),  # 1 + 2 + 1 + 3 + 4
        ("BINANCE", "ETHUSDT", 2, D("11"), D("6")),
        ("KRAKEN", "BTC/USD", 1, D("1"), D("99")),
    ]


def test_gold_joined_with_the_ledger(ns):
    result = _sql(ns, "SELECT l.hour, l.status, count(*) AS trades, sum(g.quantity) AS volume "
                      "FROM completeness_ledger l JOIN gold_crypto_trades g ON g.symbol = l.symbol "
                      "AND lower(g.exchange) = l.exchange AND date_trunc('hour', g.timestamp) = l.hour "
                      "WHERE l.exchange = 'binance' GROUP BY ALL ORDER BY l.hour")
    assert [tuple(r.values()) for r in result.table.to_pylist()] == [
        (_ts(9), "complete", 1, D("1")), (_ts(10), "complete", 3, D("7")), (_ts(12), "gaps", 1, D("3"))]
    ledger = _scan(result, LEDGER_TABLE)
    assert ledger.rows == 3  # exchange = 'binance' was pushed to the ledger's scan
    assert _scan(result, GOLD_TABLE).rows == 8


def test_lake_sql_converts_like_the_other_readers(ns):
    df = lake.sql("SELECT symbol, count(*) AS n FROM gold_crypto_trades GROUP BY 1 ORDER BY 1", namespace=ns,
                  to="pandas")
    assert df.to_dict("list") == {"symbol": ["BTC/USD", "BTCUSDT", "ETHUSDT"], "n": [1, 5, 2]}
    assert lake.sql("DESCRIBE gold_crypto_trades", namespace=ns, to="polars")["column_name"].to_list()[:3] == [
        "message_id", "trade_id", "symbol"]


@pytest.mark.parametrize("query, kind", [
    ("DELETE FROM gold_crypto_trades", "DELETE"),
    ("drop table gold_crypto_trades", "DROP"),
    ("-- tidy up\nINSERT INTO gold_crypto_trades SELECT * FROM gold_crypto_trades", "INSERT"),
    ("WITH x AS (SELECT * FROM gold_crypto_trades) INSERT INTO gold_crypto_trades SELECT * FROM x", "INSERT"),
    ("COPY gold_crypto_trades TO '/tmp/k2_sql_test.csv'", "COPY"),
    ("ATTACH '/tmp/k2_sql_test.duckdb' AS x", "ATTACH"),
    ("SELECT 1; DROP TABLE gold_crypto_trades", None),
])
def test_writes_are_refused_and_nothing_changes(ns, query, kind):
    gold = catalog(platform()).load_table(f"{ns}.{GOLD_TABLE}")
    before = gold.current_snapshot().snapshot_id
    out = _k2_sql(ns, query)
    assert out.returncode == 2, out.stderr
    expected = f"k2 sql: refused: {kind} statements are not allowed; SQL here is read-only" if kind else \
        "k2 sql: give exactly one statement (a SELECT); this query holds 2"
    assert expected in out.stderr and out.stdout == ""
    assert gold.refresh().current_snapshot().snapshot_id == before
    assert not Path("/tmp/k2_sql_test.csv").exists() and not Path("/tmp/k2_sql_test.duckdb").exists()
    with pytest.raises(lake.ReadOnlyError):
        lake.sql(query, namespace=ns)


def test_cli_csv_and_the_scan_line(ns):
    out = _k2_sql(ns, f"SELECT trade_id, price FROM gold_crypto_trades WHERE {HOUR_10} ORDER BY trade_id",
                  "--format", "csv")
    assert out.returncode == 0, out.stderr
    assert [(r["trade_id"], r["price"]) for r in csv.DictReader(io.StringIO(out.stdout))] == [
        ("2", "101.00000000"), ("3", "103.00000000"), ("5", "102.00000000"), ("50", "5.00000000")]
    assert re.search(rf"k2 sql: 4 rows in \d+ ms; read gold_crypto_trades: {HOUR_10_FILES} of {FILES} files, 4 rows",
                     out.stderr), out.stderr


def test_cli_parquet_and_table(ns, tmp_path):
    target = tmp_path / "out.parquet"
    query = "SELECT symbol, count(*) AS n FROM gold_crypto_trades WHERE exchange = 'BINANCE' GROUP BY 1 ORDER BY 1"
    out = _k2_sql(ns, query, "--format", "parquet", "-o", str(target))
    assert out.returncode == 0, out.stderr
    assert pq.read_table(target).to_pylist() == [{"symbol": "BTCUSDT", "n": 5}, {"symbol": "ETHUSDT", "n": 2}]
    table = _k2_sql(ns, query)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines() == ["symbol   n", "BTCUSDT  5", "ETHUSDT  2"]
    refused = _k2_sql(ns, query, "--format", "parquet")
    assert refused.returncode == 2 and "--format parquet needs --output FILE" in refused.stderr


def test_cli_errors_are_clear(ns):
    unknown = _k2_sql(ns, "SELECT * FROM gold")
    assert unknown.returncode == 2 and "k2 sql: unknown table 'gold'; the lakehouse tables are:" in unknown.stderr
    missing = _k2_sql(ns, "SELECT * FROM bronze_crypto_trades")
    assert missing.returncode == 2 and "bronze_crypto_trades does not exist (yet)" in missing.stderr
    binder = _k2_sql(ns, "SELECT nope FROM gold_crypto_trades")
    assert binder.returncode == 2 and 'Referenced column "nope" not found' in binder.stderr


def test_time_travel(stack, run_id):
    cat = catalog(platform())
    with gold_table(f"k2test_sql_tt_{run_id}", gold_rows(FIRST)) as ns:
        first = cat.load_table(f"{ns}.{GOLD_TABLE}").current_snapshot().snapshot_id
        time.sleep(0.05)
        noted = datetime.now(UTC)
        time.sleep(0.05)
        cat.load_table(f"{ns}.{GOLD_TABLE}").append(gold_rows(SECOND))
        count = "SELECT count(*) AS n FROM gold_crypto_trades"

        assert lake.sql(count, namespace=ns).to_pylist() == [{"n": 8}]
        assert lake.sql(count, as_of=noted, namespace=ns).to_pylist() == [{"n": 6}]
        assert lake.sql(count, snapshot_id=first, namespace=ns).to_pylist() == [{"n": 6}]
        then = _k2_sql(ns, count, "--as-of", noted.isoformat(), "--format", "csv")
        assert then.returncode == 0 and then.stdout.splitlines() == ["\"n\"", "6"], then.stderr
        assert "read gold_crypto_trades: 4 of 4 files" in then.stderr
        pinned = _k2_sql(ns, count, "--snapshot-id", str(first), "--format", "csv")
        assert pinned.returncode == 0 and pinned.stdout.splitlines() == ["\"n\"", "6"], pinned.stderr
        now = _k2_sql(ns, count, "--format", "csv")
        assert now.stdout.splitlines() == ["\"n\"", "8"]

        with pytest.raises(lake.QueryError, match=r"has no snapshot at or before"):
            lake.sql(count, as_of="2020-01-01", namespace=ns)
        both = _k2_sql(ns, count, "--as-of", noted.isoformat(), "--snapshot-id", str(first))
        assert both.returncode == 2 and "not allowed with argument" in both.stderr
        with pytest.raises(lake.QueryError, match=r"snapshot_id pins one table; this query reads 2"):
            lake.sql("SELECT * FROM gold_crypto_trades, completeness_ledger", snapshot_id=first, namespace=ns)
