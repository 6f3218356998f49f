"""`k2 query trades|bars`: read Gold as a table, CSV or Parquet (through :mod:`k2.lake`)."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from k2.contracts import EXCHANGES
from k2.settings import load_platform
from k2ops.cli.commands import add_command

if TYPE_CHECKING:
    from k2.lake import TradeQuery


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "query", run, "trades or OHLCV bars (1s to 1d) from Gold (pyiceberg + DuckDB)",
        "Read market_data.gold_crypto_trades for one exchange and symbol over a "
        "time range [start, end). Times are ISO 8601 (UTC when no offset) or `now`; "
        "without --start the range is the last --last (default 1h) before --end. Bars widen the range "
        "to whole bars of --interval (aligned on the Unix epoch: days start at 00:00 UTC).",
        epilog="examples:\n"
        "  k2 query trades --exchange binance --symbol BTCUSDT --last 15m\n"
        "  k2 query bars --exchange kraken --symbol BTC/USD --start 2026-01-01T00:00 "
        "--end 2026-01-01T06:00 --format csv -o bars.csv\n"
        "  k2 query bars --exchange binance --symbol BTCUSDT --interval 4h --last 7d",
    )
    p.add_argument("what", choices=["trades", "bars"], help="trades, or OHLCV bars of --interval")
    add_range_arguments(p, "range start (inclusive)", "1h", ["table", "csv", "parquet"],
                        "file to write (default stdout; required for parquet)")
    p.add_argument("--limit", type=int, help="at most this many trades (trades only)")
    p.add_argument("--interval", default="1m", help="bar length, 1s to 1d (30s, 5m, 4h, 1d; default 1m; bars only)")


def add_range_arguments(p: argparse.ArgumentParser, start_help: str, last: str, formats: list[str],
                        output_help: str = "file to write (default stdout)") -> None:
    """Exchange, symbol, time range and output options, shared by the commands that read Gold."""
    p.add_argument("--exchange", required=True, choices=[e.name for e in EXCHANGES])
    p.add_argument("--symbol", required=True, help="normalized symbol: BTCUSDT (Binance), BTC/USD (Kraken)")
    p.add_argument("--start", help=start_help)
    p.add_argument("--end", default="now", help="range end (exclusive; default now)")
    p.add_argument("--last", default=last,
                   help=f"range length when --start is omitted (30s, 15m, 2h, 7d; default {last})")
    add_output_arguments(p, formats, output_help)


def add_output_arguments(p: argparse.ArgumentParser, formats: list[str],
                         output_help: str = "file to write (default stdout)") -> None:
    """--format, -o and the tests' hidden --namespace, shared by the commands that read the lakehouse."""
    p.add_argument("--format", choices=formats, default="table")
    p.add_argument("-o", "--output", help=output_help)
    p.add_argument("--namespace", default=None, help=argparse.SUPPRESS)  # tests


def check_output(args: argparse.Namespace) -> None:
    """QueryError if the output options cannot be honoured (Parquet is not for a terminal)."""
    from k2.times import QueryError

    if args.format == "parquet" and not args.output:
        raise QueryError("--format parquet needs --output FILE")


def range_query(args: argparse.Namespace) -> TradeQuery:
    """The :class:`k2.lake.TradeQuery` the range options describe; QueryError if they cannot."""
    from k2 import lake

    end = lake.parse_time(args.end)
    start = lake.parse_time(args.start) if args.start else end - lake.parse_duration(args.last)
    kwargs = {"namespace": args.namespace} if args.namespace else {}
    return lake.TradeQuery(args.exchange, args.symbol, start, end, **kwargs)


def run(args: argparse.Namespace) -> int:
    from k2 import lake

    try:
        q = range_query(args)
        if args.what == "bars":
            interval = lake.parse_interval(args.interval)
            q = lake.bar_query(q, interval)
        check_output(args)
    except lake.QueryError as exc:
        print(f"k2 query: {exc}", file=sys.stderr)
        return 2
    began = time.monotonic()
    settings = load_platform()
    if args.what == "bars":
        result = lake.scan_bars(settings, q, interval)
    else:
        result = lake.scan_trades(settings, q, args.limit)
    elapsed = time.monotonic() - began
    write_output(result, args.format, args.output)
    print(f"k2 query: {result.num_rows} {args.what} for {args.exchange} {args.symbol} "
          f"[{q.start.isoformat()}, {q.end.isoformat()}) in {elapsed * 1000:.0f} ms", file=sys.stderr)
    return 0


def write_output(table, fmt: str, output: str | None) -> None:
    import pyarrow.csv
    import pyarrow.parquet

    if fmt == "parquet":
        pyarrow.parquet.write_table(table, output)
    elif fmt == "csv":
        pyarrow.csv.write_csv(table, output or sys.stdout.buffer)
    else:
        text = _render(table)
        if output:
            with open(output, "w") as fh:
                fh.write(text)
        else:
            sys.stdout.write(text)


def _cell(value) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return "" if value is None else str(value)


def _text(column):
    """The column as the table shows it, one string per value (null: empty), computed in
    Arrow: a Python object per cell took longer than the whole query for an hour of trades."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from k2.iceberg_read import arrow_scalar  # Python values given to pyarrow make it import pandas

    kind = column.type
    if pa.types.is_timestamp(kind) and kind.unit == "us":
        # In UTC, to the µs: Arrow's %S prints seconds with the unit's fraction ("05.000000").
        text = pc.strftime(column.cast(pa.timestamp("us", "UTC")), "%Y-%m-%d %H:%M:%S")
    elif pa.types.is_boolean(kind):
        text = pc.if_else(column, arrow_scalar("True", pa.string()), arrow_scalar("False", pa.string()))
    elif pa.types.is_string(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind):
        text = column.cast(pa.string())
    else:  # anything else (`k2 sql`'s floats, dates, lists ...) as Python prints it
        text = pa.array([_cell(v) for v in column.to_pylist()], pa.string())
    return pc.coalesce(text, arrow_scalar("", pa.string()))


def _render(table) -> str:
    import pyarrow as pa
    import pyarrow.compute as pc

    from k2.iceberg_read import arrow_scalar

    names = table.column_names
    texts = [_text(table[n]) for n in names]
    widths = [max(len(n), pc.max(pc.utf8_length(t)).as_py() or 0) for n, t in zip(names, texts, strict=True)]
    header = "  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip()
    if not table.num_rows:
        return header + "\n"
    padded = [pc.utf8_rpad(t, width=w, padding=" ") for t, w in zip(texts, widths, strict=True)]
    lines = pc.utf8_rtrim_whitespace(pc.binary_join_element_wise(*padded, arrow_scalar("  ", pa.string())))
    return "\n".join([header, *lines.to_pylist()]) + "\n"
