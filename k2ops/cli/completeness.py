"""`k2 completeness` (hour by hour, does Gold hold every trade of a symbol?) and
`k2 ledger update` (bring the completeness ledger table up to date with Gold)."""

from __future__ import annotations

import argparse
import json
import sys

from k2.settings import load_platform
from k2ops.cli.commands import add_command
from k2ops.cli.query import add_range_arguments, range_query, write_output


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "completeness", run,
        "per hour: trades in Gold, missing trade ids and ranges, live vs backfilled",
        "For one exchange and symbol over [start, end), one row per UTC hour that holds "
        "trades in market_data.gold_crypto_trades: first and last trade id, trades in Gold, and for "
        "venues whose ids are contiguous (Binance, Kraken) the expected count and the missing id ranges; "
        "how many trades came from REST backfill; a status (complete, gaps, unrecoverable, "
        "possibly_incomplete, not_applicable). A gap is counted in the hour of the trade that follows it. "
        "Hours a possible-loss window overlaps (the worker of a venue without gap detection was not listening, "
        "as copied by the last `k2 ledger update`) are possibly_incomplete, with the windows and the seconds "
        "they cover, hours without trades included. Ends with a one-line summary on stderr; exits 1 when ids "
        "are missing or hours possibly incomplete, so scripts can check.",
        epilog="examples:\n"
        "  k2 completeness --exchange binance --symbol BTCUSDT --start 2026-01-01 --end 2026-01-02\n"
        "  k2 completeness --exchange kraken --symbol BTC/USD --last 6h --format json",
    )
    add_range_arguments(p, "range start (inclusive; rounded down to the hour)", "24h", ["table", "csv", "json"])

    ledger = add_command(
        sub, "ledger", None, "the completeness ledger table (market_data.completeness_ledger)",
        "The completeness ledger: one row per exchange, symbol and UTC hour holding trades in "
        "Gold, with first and last trade id, trades in Gold (live and from backfill), expected and missing "
        "ids with their ranges, possible-loss windows with the seconds they cover, and a status. The "
        "`completeness_ledger` DAG updates it every 15 minutes; query it with any Iceberg reader.")
    actions = ledger.add_subparsers(dest="action", metavar="ACTION", required=True)
    upd = add_command(
        actions, "update", run_update,
        "recompute the hours Gold changed since the last update (all of Gold with --full)",
        "Copies the ranges the workers reported the exchanges no longer serve (DLQ records of "
        "kind unrecoverable_range) into market_data.completeness_unrecoverable and the times they were not "
        "listening (possible_loss_window) into market_data.completeness_possible_loss, reads the data files "
        "Gold added since the Gold snapshot the ledger last reflected, and recomputes every hour from the "
        "earliest one they (or a newly reported range or window) touch; prints one line with what changed "
        "(statuses include possibly_incomplete).")
    upd.add_argument("--namespace", default=None, help=argparse.SUPPRESS)  # tests
    upd.add_argument("--topic-prefix", default="", help=argparse.SUPPRESS)  # tests
    upd.add_argument("--full", action="store_true", help="recompute every hour of Gold")

    rec = add_command(
        sub, "reconcile", run_reconcile,
        "follow every record of a window of Kafka time through Bronze, Silver/DLQ and Gold",
        "Per topic-partition of the trade topics, the offsets Kafka received in [start, end) must "
        "be in Bronze, then in silver_dlq or (by message_id) in the exchange's Silver table, then in Gold. "
        "Prints one line per partition and names each record that stopped somewhere (topic, partition, "
        "offset, message id, layer), then the possible-loss windows overlapping the window (POSSIBLY "
        "INCOMPLETE: trades published then never reached Kafka; not counted as missing). Records a stream "
        "has not reached yet (per its checkpoint) are counted as in "
        "flight, not missing. Exits 1 when anything is missing, 3 when nothing is missing but some records are "
        "still in flight (run it again later), else 0. The data_quality DAG runs it hourly.",
        epilog="example:\n  k2 reconcile --start 2026-01-01T10:00 --end 2026-01-01T11:00")
    rec.add_argument("--start", help="window start, Kafka time, ISO 8601 (default: --last before --end)")
    rec.add_argument("--end", default="now", help="window end (default: now)")
    rec.add_argument("--last", default="1h", help="window length when --start is not given (default 1h)")
    rec.add_argument("--namespace", default=None, help=argparse.SUPPRESS)  # tests
    rec.add_argument("--topic-prefix", default="", help=argparse.SUPPRESS)  # tests


def run(args: argparse.Namespace) -> int:
    from k2 import lake
    from k2ops import completeness

    try:
        q = range_query(args)
    except lake.QueryError as exc:
        print(f"k2 completeness: {exc}", file=sys.stderr)
        return 2
    rows, summary = completeness.report(load_platform(), q)
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
    return 1 if summary.missing_ids or summary.possibly_incomplete else 0


def run_update(args: argparse.Namespace) -> int:
    from k2 import contracts, ledger_store

    ledger_store.update(load_platform(), args.namespace or contracts.NAMESPACE, full=args.full, topic_prefix=args.topic_prefix,
                        log=lambda line: print(line, file=sys.stderr))
    return 0


def run_reconcile(args: argparse.Namespace) -> int:
    from k2 import contracts, lake, reconcile

    try:
        end = lake.parse_time(args.end)
        start = lake.parse_time(args.start) if args.start else end - lake.parse_duration(args.last)
    except lake.QueryError as exc:
        print(f"k2 reconcile: {exc}", file=sys.stderr)
        return 2
    report = reconcile.reconcile(load_platform(), start, end, args.namespace or contracts.NAMESPACE, args.topic_prefix,
                                 log=lambda line: print(line, file=sys.stderr))
    for line in report.lines():
        print(line)
    return 1 if report.missing else 3 if report.in_flight else 0
