"""`k2 streams status|stop|reset`: the operator's handle on the three Spark streams.

The babysitter (Airflow DAG `streaming_babysitter`) starts missing streams and
restarts crashed or stalled ones; these commands are for an operator's deliberate
actions (see docs/runbook.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict

from k2.contracts import STREAMS
from k2.settings import load_platform
from k2ops.cli.commands import add_command


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "streams", None, "status, stop or reset the Spark streams", __doc__, raw=True)
    ss = p.add_subparsers(dest="streams_command", metavar="ACTION", required=True)
    s = add_command(ss, "status", _status, "each stream: running pid, its last published batch and where its time "
                    "went, data lost, and its metrics URL")
    s.add_argument("--json", action="store_true", help="print the progress records as JSON")
    s = add_command(ss, "stop", _stop, "stop a stream cleanly after its current batch (or --kill it)",
                    "Stops a running stream: SIGTERM, so it finishes its current batch "
                    "and exits 0 (its Airflow runner run ends as a success); killed if it has not "
                    "stopped after --grace seconds. With the babysitter unpaused it is started "
                    "again from its checkpoint at the babysitter's next run (every 5 min); pause "
                    "`streaming_babysitter` to keep it down. --kill instead: kill -9 at once; "
                    "its runner task retries it within seconds (a quick restart).")
    s.add_argument("stream", choices=STREAMS)
    s.add_argument("--kill", action="store_true",
                   help="kill -9 its process group now (safe: checkpoint); Airflow restarts it in seconds")
    s.add_argument("--grace", type=float, default=120.0,
                   help="seconds to wait for a clean stop before killing it (default %(default)s)")
    s = add_command(ss, "reset", _reset, "stop a stream and move its checkpoint aside",
                    "Stops the stream and renames its checkpoint folder to "
                    "checkpoint.reset-<epoch>, so the next start reprocesses its whole "
                    "source (Kafka from the earliest retained offset; Iceberg sources from "
                    "their current snapshot's full history). Read docs/runbook.md first.")
    s.add_argument("stream", choices=STREAMS)
    s.add_argument("--yes", action="store_true", help="do it (without this, only say what would happen)")


LOSS_LINES = 5  # newest ledger ranges listed under a stream; `--json` has them all


def _status(args: argparse.Namespace) -> int:
    from k2.streams import (
        describe_breakdown,
        lock_holder,
        loss_file,
        metrics_url,
        read_losses,
        read_progress,
    )

    s = load_platform()
    records = []
    for stream in STREAMS:
        progress = read_progress(stream, s)
        # From the ledger, not progress.json: a later batch overwrites the progress file.
        lost = read_losses(stream, s)
        records.append({"stream": stream, "pid": lock_holder(stream, s), "metrics_url": metrics_url(stream, s),
                        "progress": asdict(progress) if progress else None,
                        "data_lost": {"offsets": sum(r.count for r in lost), "ranges": [asdict(r) for r in lost],
                                      "ledger": str(loss_file(stream, s))}})
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    for r in records:
        p = r["progress"]
        last = "no batch published yet"
        if p:
            last = (f"batch {p['batch_id']} at {p['batch_timestamp']}, {p['rows_in']} rows, "
                    f"{p['rows_per_second']:.0f} rows/s, lag {p['source_lag']}, "
                    f"written {time.time() - p['updated_at']:.0f}s ago")
        state = f"running (pid {r['pid']})" if r["pid"] else "stopped"
        print(f"{r['stream']:<22} {state:<20} {last}")
        if r["pid"] and r["metrics_url"]:
            print(f"{'':<22} metrics: {r['metrics_url']}")
        if p and p.get("breakdown"):
            print(f"{'':<22} time of that batch: {describe_breakdown(p['breakdown'])}")
        _print_losses(r["data_lost"])
    return 0


def _print_losses(lost: dict) -> None:
    from k2.streams import LostRange

    ranges = [LostRange(**d) for d in lost["ranges"]]
    if not ranges:
        return
    print(f"{'':<22} DATA LOST: {lost['offsets']} offsets in {len(ranges)} range(s) deleted by Kafka "
          f"before the stream read them (ledger {lost['ledger']})")
    for r in ranges[-LOSS_LINES:]:
        when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(r.detected_at))
        print(f"{'':<24} {r.describe()}, batch {r.batch_id}, found {when}")
    if len(ranges) > LOSS_LINES:
        print(f"{'':<24} ... and {len(ranges) - LOSS_LINES} older range(s) (--json lists all)")


def _stop(args: argparse.Namespace) -> int:
    from k2.streams import lock_holder, stop_stream

    s = load_platform()
    if lock_holder(args.stream, s) is None:
        print(f"{args.stream}: not running")
        return 0
    if not args.kill:
        print(f"{args.stream}: asking it to stop after its current batch (up to {args.grace:.0f}s)")
    ok = stop_stream(args.stream, s, graceful_s=0.0 if args.kill else args.grace)
    print(f"{args.stream}: {'stopped' if ok else 'still holding its lock after 60s'}")
    return 0 if ok else 1


def _reset(args: argparse.Namespace) -> int:
    from k2.streams import checkpoint_dir, stop_stream

    s = load_platform()
    checkpoint = checkpoint_dir(args.stream, s)
    target = checkpoint.with_name(f"checkpoint.reset-{int(time.time())}")
    if not args.yes:
        print(f"would stop {args.stream} and move {checkpoint} to {target}; add --yes to do it")
        return 0
    # A clean stop, so its Airflow runner run ends instead of retrying into the old checkpoint.
    if not stop_stream(args.stream, s, graceful_s=120.0):
        print(f"{args.stream}: could not stop it; nothing changed", file=sys.stderr)
        return 1
    if checkpoint.exists():
        shutil.move(str(checkpoint), str(target))
        print(f"{args.stream}: checkpoint moved to {target}")
    else:
        print(f"{args.stream}: had no checkpoint")
    return 0
