"""The completeness ledger table (issue 12): kept current from Gold, incrementally.

One row per exchange, symbol and UTC hour holding trades in Gold, with the rules of
:mod:`k2.ledger`. A scheduled job maintains it (the ``completeness_ledger`` DAG, every
15 minutes; ``k2 ledger update`` by hand), not the Gold stream: a late trade from
backfill changes the hour it lands in *and* the gap attributed to the next held hour,
so a row is only right once its neighbours are known, which a per-batch writer would
have to re-read anyway; and the ledger's cost then never adds to Gold's batch time.

**Incremental:** the table property ``k2.ledger.gold-snapshot-id`` is the last Gold
snapshot the ledger reflects. Each update reads the data files Gold *added* since then
(appends and MERGE commits; compaction's rewrites add no trade), takes the earliest
hour they touch, and recomputes every hour from there to Gold's newest, starting each
symbol from the last id the ledger holds before that hour. The rows and the new
property are one commit, so a crash recomputes the same hours again. Without a usable
property (first run, or the snapshot has been expired) it recomputes all of Gold.

**Unrecoverable ranges:** before each update, :func:`k2.unrecoverable.ingest` copies the
ranges the workers reported the exchange no longer serves (their DLQ topic) into
``completeness_unrecoverable``. An hour whose every missing id lies in one of them is
``unrecoverable``; an hour the ledger calls ``gaps`` whose ids a newly reported range
explains is recomputed, though Gold did not change.

**Possible-loss windows:** likewise :func:`k2.loss_windows.ingest` copies the times the
workers of venues without gap detection were not listening into
``completeness_possible_loss``; the hours they overlap are ``possibly_incomplete``, with
the windows and the seconds they cover (hours without trades included). The ledger
property :data:`WINDOWS_MARK` is the DLQ position of the windows it reflects: windows
copied past it make their hours recomputed, in the same commit that moves it.

**Its own upkeep:** rewrites a month partition once it holds more than
:data:`MAX_FILES_PER_MONTH` files, and expires snapshots older than a day (keeping
the last :data:`KEEP_SNAPSHOTS`), deleting the files only they reached. Only this job
writes the table (the DAG has ``max_active_runs=1``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from k2 import contracts, ledger, loss_windows, unrecoverable
from k2.catalog import catalog, create_documented_table
from k2.kafka_client import client_config
from k2.settings import PlatformSettings

WATERMARK = "k2.ledger.gold-snapshot-id"
WINDOWS_MARK = "k2.ledger.possible-loss-dlq-offsets"  # {"<partition>": offset} of the windows reflected
LOOKBACK = timedelta(days=31)  # how far back the last held id of a symbol is looked for
MAX_FILES_PER_MONTH = 16
KEEP_SNAPSHOTS = 5
SNAPSHOT_AGE = timedelta(days=1)
GOLD_COLUMNS = ("exchange", "symbol", "timestamp", "trade_id", "vendor_data")

RANGE = pa.struct([pa.field("first_id", pa.int64(), nullable=False),
                   pa.field("last_id", pa.int64(), nullable=False)])
WINDOW = pa.struct([pa.field("from_ts", pa.timestamp("us", "UTC"), nullable=False),
                    pa.field("to_ts", pa.timestamp("us", "UTC"), nullable=False)])
# The table's columns, in order (the Arrow form pyiceberg writes; bootstrap creates the
# table from it, see create_table).
ARROW_SCHEMA = pa.schema([
    pa.field("exchange", pa.string(), nullable=False),
    pa.field("symbol", pa.string(), nullable=False),
    pa.field("hour", pa.timestamp("us", "UTC"), nullable=False),
    pa.field("status", pa.string(), nullable=False),
    pa.field("gold_trades", pa.int64(), nullable=False),
    pa.field("live_trades", pa.int64(), nullable=False),
    pa.field("backfill_trades", pa.int64(), nullable=False),
    pa.field("expected_trades", pa.int64()),
    pa.field("missing_ids", pa.int64()),
    pa.field("missing_ranges", pa.list_(pa.field("element", RANGE, nullable=False))),
    pa.field("first_trade_id", pa.string(), nullable=False),
    pa.field("last_trade_id", pa.string(), nullable=False),
    pa.field("computed_at", pa.timestamp("us", "UTC"), nullable=False),
    # Added with possible-loss windows: optional, so tables of earlier releases gain them.
    pa.field("possible_loss_windows", pa.list_(pa.field("element", WINDOW, nullable=False))),
    pa.field("possible_loss_seconds", pa.float64()),
])
DOC = {
    "exchange": f"Exchange id, lower case ({', '.join(e.name for e in contracts.EXCHANGES)}).",
    "symbol": "Normalized symbol, as in Gold.",
    "hour": "UTC hour the row covers (start).",
    "status": "complete | gaps | unrecoverable | possibly_incomplete (a possible-loss window overlaps the hour) | "
              "not_applicable (venue without contiguous ids).",
    "gold_trades": "Trades Gold holds for the symbol in this hour.",
    "live_trades": "Of those, trades that came from the exchange's live stream.",
    "backfill_trades": "Of those, trades that came from REST backfill (vendor_data source=rest).",
    "expected_trades": "Contiguous-id venues: held + missing; null otherwise.",
    "missing_ids": "Contiguous-id venues: ids missing (gaps revealed by this hour's trades); null otherwise.",
    "missing_ranges": "The missing ids as [first_id, last_id] ranges, both included.",
    "first_trade_id": "Lowest trade id held in the hour.",
    "last_trade_id": "Highest trade id held in the hour.",
    "computed_at": "When the ledger job computed this row, UTC.",
    "possible_loss_windows": "Possible-loss windows of the symbol overlapping the hour (whole), [from_ts, to_ts]: "
                             "times its worker was not listening; trades then may be missing.",
    "possible_loss_seconds": "Seconds of the hour those windows cover.",
}


def identifier(namespace: str = contracts.NAMESPACE) -> str:
    return f"{namespace}.{contracts.LEDGER_TABLE}"


def create_table(cat, namespace: str = contracts.NAMESPACE):
    """Create the ledger table if missing, partitioned by month of ``hour``, each column
    documented; returns it. Idempotent: an existing table is returned as it is."""
    from pyiceberg.transforms import MonthTransform

    return create_documented_table(
        cat, identifier(namespace), ARROW_SCHEMA,
        "Completeness ledger: one row per exchange, symbol and UTC hour (k2 ledger update).", DOC,
        partition=("hour", MonthTransform(), "hour_month"))


# -- what changed in Gold -----------------------------------------------------------------


def _added_hours(gold, since_id: int | None) -> tuple[bool, set[int]]:
    """Hours (since the epoch) of the data files Gold added after snapshot ``since_id``,
    and whether ``since_id`` is still among the current snapshot's ancestors."""
    hours: set[int] = set()
    snap = gold.current_snapshot()
    while snap is not None and snap.snapshot_id != since_id:
        operation = snap.summary.operation.value if snap.summary else "append"
        if operation in ("append", "overwrite"):  # Gold's MERGE commits; "replace" is compaction
            for manifest in snap.manifests(gold.io):
                if manifest.added_snapshot_id != snap.snapshot_id:
                    continue
                for entry in manifest.fetch_manifest_entry(gold.io):
                    if entry.snapshot_id == snap.snapshot_id and entry.status.name == "ADDED":
                        hours.add(entry.data_file.partition[0])
        snap = gold.snapshot_by_id(snap.parent_snapshot_id) if snap.parent_snapshot_id is not None else None
    return snap is not None, hours


def _gold_hours(gold) -> list[int]:
    """Every hour partition of Gold's current snapshot, sorted."""
    parts = gold.inspect.partitions()
    if parts.num_rows == 0:
        return []
    return sorted(p["timestamp_hour"] for p in parts.column("partition").to_pylist()
                  if p.get("timestamp_hour") is not None)


def _hour(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=value)


# -- recomputing hours --------------------------------------------------------------------


def _held_before(table, start: datetime) -> dict[ledger.SymbolKey, int]:
    """Each symbol's last trade id the ledger holds in the hours before ``start``."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    rows = table.scan(row_filter=And(GreaterThanOrEqual("hour", (start - LOOKBACK).isoformat()),
                                     LessThan("hour", start.isoformat())),
                      selected_fields=("exchange", "symbol", "hour", "last_trade_id")).to_arrow()
    latest: dict[ledger.SymbolKey, tuple[datetime, str]] = {}
    for row in rows.to_pylist():
        key = (row["exchange"], row["symbol"])
        if not row["last_trade_id"]:  # an hour a possible-loss window holds without trades
            continue
        if key not in latest or row["hour"] > latest[key][0]:
            latest[key] = (row["hour"], row["last_trade_id"])
    return {key: int(last) for key, (_, last) in latest.items() if key[0] in ledger.CONTIGUOUS_IDS}


def held_trades(gold_rows: pa.Table) -> Iterable[ledger.HeldTrade]:
    """Gold rows (:data:`GOLD_COLUMNS`) as ledger input."""
    names = {e.enum_symbol: e.name for e in contracts.EXCHANGES}
    hours = pc.floor_temporal(gold_rows.column("timestamp"), unit="hour").to_pylist()
    rest = pc.fill_null(pc.equal(pc.map_lookup(gold_rows.column("vendor_data"), "source", "first"), "rest"), False)
    for exchange, symbol, hour, trade_id, from_rest in zip(
            gold_rows.column("exchange").to_pylist(), gold_rows.column("symbol").to_pylist(), hours,
            gold_rows.column("trade_id").to_pylist(), rest.to_pylist(), strict=True):
        yield ledger.HeldTrade(names.get(exchange, exchange.lower()), symbol, hour, trade_id, from_rest)


def recompute(gold, start: datetime, end: datetime, held_before: dict[ledger.SymbolKey, int],
              lost: dict[ledger.SymbolKey, list[ledger.Range]] | None = None,
              step: timedelta = timedelta(hours=24),
              windows: dict[ledger.SymbolKey, list[ledger.Window]] | None = None) -> list[ledger.HourLedger]:
    """Ledger rows of every hour in [start, end), read from Gold ``step`` at a time, each
    symbol carried from one step to the next (and from ``held_before`` into the first);
    ``lost``: the ranges the exchanges no longer serve; ``windows``: the possible-loss windows."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    carried = dict(held_before)
    rows: list[ledger.HourLedger] = []
    at = start
    while at < end:
        upto = min(end, at + step)
        part = gold.scan(row_filter=And(GreaterThanOrEqual("timestamp", at.isoformat()),
                                        LessThan("timestamp", upto.isoformat())),
                         selected_fields=GOLD_COLUMNS).to_arrow()
        found = ledger.hour_ledgers(held_trades(part), lambda ex: ex in ledger.CONTIGUOUS_IDS, carried, lost)
        if windows:
            found = ledger.with_windows(found, windows, at, upto)
        for row in found:  # sorted by symbol, then hour: the last one of a symbol wins
            if row.exchange in ledger.CONTIGUOUS_IDS and row.gold_trades:
                carried[(row.exchange, row.symbol)] = int(row.last_trade_id)
        rows += found
        at = upto
    return rows


def as_arrow(rows: list[ledger.HourLedger], computed_at: datetime) -> pa.Table:
    return pa.Table.from_pylist([{
        "exchange": r.exchange, "symbol": r.symbol, "hour": r.hour, "status": r.status,
        "gold_trades": r.gold_trades, "live_trades": r.live_trades, "backfill_trades": r.backfill_trades,
        "expected_trades": r.expected_trades, "missing_ids": r.missing_ids,
        "missing_ranges": [{"first_id": a, "last_id": b} for a, b in r.missing_ranges],
        "first_trade_id": r.first_trade_id, "last_trade_id": r.last_trade_id, "computed_at": computed_at,
        "possible_loss_windows": [{"from_ts": _utc(a), "to_ts": _utc(b)} for a, b in r.possible_loss],
        "possible_loss_seconds": r.possible_loss_seconds,
    } for r in rows], schema=ARROW_SCHEMA)


def _utc(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


@dataclass
class Update:
    """What one update did (its :meth:`line` is the job's log line)."""

    gold_snapshot: int | None
    since: datetime | None  # first hour recomputed; None: nothing to do
    full: bool
    rows: int
    statuses: dict[str, int]
    missing_ids: int
    seconds: float

    def line(self) -> str:
        if self.since is None:
            return f"completeness ledger: up to date with Gold snapshot {self.gold_snapshot} ({self.seconds:.1f} s)"
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items())) or "no trades"
        return (f"completeness ledger: {self.rows} symbol-hours from {self.since:%Y-%m-%dT%H:00Z} "
                f"{'(full recompute)' if self.full else '(incremental)'}: {counts}; {self.missing_ids} missing ids; "
                f"Gold snapshot {self.gold_snapshot}; {self.seconds:.1f} s")


def update(settings: PlatformSettings, namespace: str = contracts.NAMESPACE, *, full: bool = False, now: datetime | None = None,
           cat=None, topic_prefix: str = "", log: Callable[[str], None] = print) -> Update:
    """Bring the ledger up to Gold's current snapshot and the unrecoverable ranges the
    workers reported on ``topic_prefix`` + the DLQ topic (see the module doc)."""
    import time

    from pyiceberg.expressions import AlwaysTrue, GreaterThanOrEqual

    began = time.monotonic()
    cat = cat or catalog(settings)
    gold = cat.load_table(f"{namespace}.{contracts.GOLD_TABLE}")
    table = create_table(cat, namespace)
    lost_table = unrecoverable.create_table(cat, namespace)
    unrecoverable.ingest(lost_table, client_config(settings), topic_prefix + contracts.DLQ_TOPIC, log)
    lost = unrecoverable.ranges(lost_table.refresh())
    window_table = loss_windows.create_table(cat, namespace)
    loss_windows.ingest(window_table, client_config(settings), topic_prefix + contracts.DLQ_TOPIC, log)
    window_table = window_table.refresh()
    windows = loss_windows.windows(window_table)
    windows_read = window_table.properties.get(unrecoverable.OFFSETS, "{}")
    snap = gold.current_snapshot()
    mark = None if full else table.properties.get(WATERMARK)
    stale = _explained_gaps(table, lost)  # hours still "gaps" whose ids are now known unrecoverable
    new_windows = loss_windows.added_since(window_table, json.loads(table.properties.get(WINDOWS_MARK, "{}")))
    if new_windows is not None:
        stale.append(new_windows.astimezone(UTC).replace(minute=0, second=0, microsecond=0))
    marks = {WINDOWS_MARK: windows_read}
    if snap is None or (mark == str(snap.snapshot_id) and not stale):
        return _done(Update(snap.snapshot_id if snap else None, None, full, 0, {}, 0, time.monotonic() - began), log)
    marks[WATERMARK] = str(snap.snapshot_id)
    found, added = _added_hours(gold, int(mark) if mark else None)
    hours = _gold_hours(gold)
    full = full or not found
    if not hours or (not full and not added and not stale):
        with table.transaction() as tx:  # nothing new to count (a compaction): just move the mark
            tx.set_properties(marks)
        return _done(Update(snap.snapshot_id, None, full, 0, {}, 0, time.monotonic() - began), log)
    start = min([_hour(hours[0]), *stale]) if full else min([*map(_hour, added), *stale])
    end = max(_hour(hours[-1] + 1), _after_windows(windows))
    rows = recompute(gold, start, end, {} if full else _held_before(table, start), lost, windows=windows)
    data = as_arrow(rows, now or datetime.now(UTC))
    where = AlwaysTrue() if full else GreaterThanOrEqual("hour", start.isoformat())
    with table.transaction() as tx:  # rows and mark in one commit: a crash recomputes the same hours
        if table.current_snapshot() is None:
            tx.append(data)  # the first rows: nothing to replace
        elif data.num_rows:
            tx.overwrite(data, overwrite_filter=where)
        else:
            tx.delete(where)
        tx.set_properties(marks)
    statuses: dict[str, int] = defaultdict(int)
    for r in rows:
        statuses[r.status] += 1
    result = Update(snap.snapshot_id, start, full, len(rows), dict(statuses),
                    sum(r.missing_ids or 0 for r in rows), time.monotonic() - began)
    maintain(cat.load_table(identifier(namespace)), now or datetime.now(UTC), log)
    return _done(result, log)


def _after_windows(windows: dict[ledger.SymbolKey, list[ledger.Window]]) -> datetime:
    """The hour after the last one a window reaches (the epoch when there is none)."""
    last = max((b for found in windows.values() for _, b in found), default=0)
    return _hour(last // ledger.HOUR_US + 1) if last else _hour(0)


def _explained_gaps(table, lost: dict[ledger.SymbolKey, list[ledger.Range]]) -> list[datetime]:
    """Hours the ledger calls ``gaps`` whose missing ranges all lie in ``lost``: reported
    unrecoverable after the hour was computed, so the hour must be computed again. (Read
    from the table rather than from what the last ingest added, so a crash between the
    two commits changes nothing.)"""
    from pyiceberg.expressions import EqualTo

    if not lost or table.current_snapshot() is None:
        return []
    rows = table.scan(row_filter=EqualTo("status", ledger.GAPS),
                      selected_fields=("exchange", "symbol", "hour", "missing_ranges")).to_arrow().to_pylist()
    return sorted(r["hour"] for r in rows if ledger.all_covered(
        [(m["first_id"], m["last_id"]) for m in r["missing_ranges"] or ()], lost.get((r["exchange"], r["symbol"]), ())))


def _done(result: Update, log: Callable[[str], None]) -> Update:
    log(result.line())
    return result


# -- upkeep -------------------------------------------------------------------------------


def _month_bounds(months: int) -> tuple[datetime, datetime]:
    year, month = divmod(months, 12)
    first = datetime(1970 + year, month + 1, 1, tzinfo=UTC)
    nxt = datetime(first.year + (first.month == 12), first.month % 12 + 1, 1, tzinfo=UTC)
    return first, nxt


def _reachable(table, snapshots) -> set[str]:
    files: set[str] = set()
    for snap in snapshots:
        files.add(snap.manifest_list)
        for manifest in snap.manifests(table.io):
            files.add(manifest.manifest_path)
            files.update(e.data_file.file_path for e in manifest.fetch_manifest_entry(table.io))
    return files


def maintain(table, now: datetime, log: Callable[[str], None] = print) -> None:
    """Rewrite crowded month partitions; expire old snapshots and delete what only they reached."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    per_month: dict[int, int] = defaultdict(int)
    for part in table.inspect.files().column("partition").to_pylist():
        per_month[part["hour_month"]] += 1
    for month, files in sorted(per_month.items()):
        if files > MAX_FILES_PER_MONTH:
            first, nxt = _month_bounds(month)
            where = And(GreaterThanOrEqual("hour", first.isoformat()), LessThan("hour", nxt.isoformat()))
            rows = table.scan(row_filter=where).to_arrow()
            table.overwrite(rows, overwrite_filter=where)
            log(f"completeness ledger: {first:%Y-%m} rewritten from {files} files")
    table = table.refresh()
    snapshots = sorted(table.snapshots(), key=lambda s: s.timestamp_ms)
    cutoff_ms = (now - SNAPSHOT_AGE).timestamp() * 1000
    old = [s.snapshot_id for s in snapshots[:-KEEP_SNAPSHOTS] if s.timestamp_ms < cutoff_ms]
    if not old:
        return
    before = _reachable(table, snapshots)
    table.maintenance.expire_snapshots().by_ids(old).commit()
    table = table.refresh()
    gone = before - _reachable(table, table.snapshots())
    for path in gone:
        table.io.delete(path)
    log(f"completeness ledger: expired {len(old)} snapshots, deleted {len(gone)} files only they reached")
