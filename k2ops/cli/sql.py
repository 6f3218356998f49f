"""`k2 sql "SELECT ..."`: read-only SQL over the lakehouse tables (through :func:`k2.lake.query_sql`)."""

from __future__ import annotations

import argparse
import sys
import time

from k2.contracts import NAMESPACE, lakehouse_tables
from k2ops.cli.commands import add_command
from k2ops.cli.query import add_output_arguments, check_output, write_output

DESCRIPTION = f"""\
Run one read-only SQL query (DuckDB's dialect) over the lakehouse tables and print the result.

tables: {", ".join(lakehouse_tables())}
  by name, or qualified: {NAMESPACE}.gold_crypto_trades. `DESCRIBE <table>` lists a table's columns.
  Times in the SQL without an offset are UTC.

pushdown: each table is read with pyiceberg, only the columns the query names, and only the
  files and rows that the WHERE clause (and inner joins' ON) can match: the comparisons of a
  column with constants (=, <, <=, >, >=, BETWEEN, IN) that are ANDed together. A one-hour range
  on Gold's `timestamp` reads that hour's files. Conditions under OR or NOT, on functions or
  casts of a column, on the nullable side of an outer join, or on a subquery's columns are not
  pushed: DuckDB still applies the whole query to the rows read, so the result is exact either
  way. A line on stderr gives the rows, the time and, per table, the data files read of those
  in its snapshot.

read-only: one statement (SELECT, WITH, FROM, VALUES, DESCRIBE, SUMMARIZE, SHOW); INSERT,
  UPDATE, DELETE, CREATE, DROP, COPY, ATTACH, PRAGMA, SET, INSTALL, LOAD, EXPORT ... and
  several statements are refused (exit 2). DuckDB runs in-process with no access to files,
  the network or extensions.

time travel: --as-of reads every table as it was then; --snapshot-id pins the one table read
  (see `lake.snapshots(...)` in the Python API, which offers the same as `lake.sql(...)`)."""

EPILOG = """\
examples:
  k2 sql "SELECT symbol, count(*) AS trades, min(price), max(price) FROM gold_crypto_trades
          WHERE timestamp >= '2026-03-01 10:00' AND timestamp < '2026-03-01 11:00' GROUP BY symbol"
  k2 sql "SELECT error_type, count(*) FROM silver_dlq GROUP BY 1 ORDER BY 2 DESC" --format csv
  k2 sql "SELECT hour, symbol, status FROM completeness_ledger WHERE status <> 'complete'" --as-of 2026-03-01T12:00
  k2 sql "SELECT * FROM gold_crypto_trades WHERE exchange = 'KRAKEN'" --format parquet -o kraken.parquet
  echo "DESCRIBE gold_crypto_trades" | k2 sql -"""


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "sql", run, "read-only SQL (DuckDB) over the lakehouse tables, with pushdown",
                    DESCRIPTION, epilog=EPILOG, raw=True)
    p.add_argument("query", help="one SELECT statement; - reads it from stdin")
    pin = p.add_mutually_exclusive_group()
    pin.add_argument("--as-of", help="read every table as it was at this time (ISO 8601, UTC when no offset)")
    pin.add_argument("--snapshot-id", type=int, help="read the one table the query names at this snapshot")
    add_output_arguments(p, ["table", "csv", "parquet"], "file to write (default stdout; required for parquet)")


def run(args: argparse.Namespace) -> int:
    from k2 import lake

    query = sys.stdin.read() if args.query == "-" else args.query
    began = time.monotonic()
    try:
        check_output(args)
        # Settings are read once the query passed its checks: a refusal needs none.
        result = lake.query_sql(None, query, args.namespace or NAMESPACE, args.as_of, args.snapshot_id)
    except lake.QueryError as exc:
        print(f"k2 sql: {exc}", file=sys.stderr)
        return 2
    elapsed = time.monotonic() - began
    write_output(result.table, args.format, args.output)
    scans = "; ".join(f"{s.table}: {s.files} of {s.total_files} files, {s.rows} rows" for s in result.scans)
    print(f"k2 sql: {result.table.num_rows} rows in {elapsed * 1000:.0f} ms"
          + (f"; read {scans}" if scans else ""), file=sys.stderr)
    return 0
