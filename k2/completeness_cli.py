"""`k2 completeness`: hour by hour, does Gold hold every trade of a symbol?"""

from __future__ import annotations

import argparse
import json
import sys

from k2.query_cli import add_range_arguments, range_query, write_output


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "completeness",
        help="per hour: trades in Gold, missing trade ids and ranges, live vs backfilled",
        description="For one exchange and symbol over [start, end), one row per UTC hour that holds "
        "trades in market_data.gold_crypto_trades: first and last trade id, trades in Gold, and for "
        "venues whose ids are contiguous (Binance, Kraken) the expected count and the missing id ranges; "
        "how many trades came from REST backfill; a status (complete, gaps, unrecoverable, "
        "not_applicable). A gap is counted in the hour of the trade that follows it. Ends with a "
        "one-line summary on stderr; exits 1 when ids are missing, so scripts can check.",
        epilog="examples:\n"
        "  k2 completeness --exchange binance --symbol BTCUSDT --start 2026-01-01 --end 2026-01-02\n"
        "  k2 completeness --exchange kraken --symbol BTC/USD --last 6h --format json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_range_arguments(p, "range start (inclusive; rounded down to the hour)", "24h", ["table", "csv", "json"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from k2 import completeness, query

    try:
        q = range_query(args)
    except query.QueryError as exc:
        print(f"k2 completeness: {exc}", file=sys.stderr)
        return 2
    rows, summary = completeness.report(q)
    table = completeness.as_arrow(rows)
    if args.format == "json":
        text = json.dumps({"rows": table.to_pylist(), "summary": summary.__dict__}, default=str, indent=1)
        if args.output:
            with open(args.output, "w") as fh:
                fh.write(text + "\n")
        else:
            print(text)
    else:
        write_output(table, args.format, args.output)
    print(f"k2 completeness: {summary.line(q.exchange, q.symbol, completeness.floor_hour(q.start), q.end)}",
          file=sys.stderr)
    return 1 if summary.missing_ids else 0
