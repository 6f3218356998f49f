"""The completeness ledger's arithmetic: per exchange, symbol and UTC hour, which trade
ids Gold holds and which are missing (issue 12, item 3).

Pure functions over trades already read from Gold; the job that reads Gold and writes
the ledger table is built on them. Rules, decided here once:

- **Contiguous venues** (every trade of a symbol gets the next integer id; the registry's
  ``contiguous_ids``, :mod:`k2.exchanges`): the ids of a symbol, sorted, must step by one. A gap between two held ids
  ``a < b`` is attributed to the hour of ``b``, the trade that revealed it (the missing
  trades happened between the two, so no later than ``b``). The gap before a window's
  first held id is counted only when the caller knows the last id held before it
  (``held_before``), as when the job recomputes one hour on top of earlier ones.
- **Other venues** have no id arithmetic: their hours are ``not_applicable``, with counts.
- **Status** of an hour: ``complete`` when nothing is missing; ``unrecoverable`` when
  every missing id lies in a range the exchange no longer serves (what the workers'
  backfill reports); ``gaps`` otherwise, since a backfill may still fill them.
- **Possible losses**: a venue that can neither detect nor refetch missing trades reports
  the times it was not listening (possible-loss windows, :mod:`k2.loss_windows`). An hour
  a window of its symbol overlaps is ``possibly_incomplete`` (rather than ``complete`` or
  ``not_applicable``; ``gaps`` and ``unrecoverable`` say more and stay), with the windows
  and the seconds of the hour they cover; such an hour without any trade gets a row too
  (0 trades), since silence there is not evidence that nothing traded.
- **Source**: a trade with ``vendor_data["source"] == "rest"`` came from REST backfill,
  any other from the live stream.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from k2.exchanges import VENUES

COMPLETE = "complete"
GAPS = "gaps"
UNRECOVERABLE = "unrecoverable"
NOT_APPLICABLE = "not_applicable"
POSSIBLY_INCOMPLETE = "possibly_incomplete"
STATUSES = (COMPLETE, GAPS, UNRECOVERABLE, POSSIBLY_INCOMPLETE, NOT_APPLICABLE)
# Venues whose symbols' next trade gets the next id (the registry says which).
CONTIGUOUS_IDS = frozenset(v.name for v in VENUES if v.contiguous_ids)

Range = tuple[int, int]  # first and last missing id, both included
SymbolKey = tuple[str, str]  # (exchange, symbol)
Window = tuple[int, int]  # a possible-loss window: µs since the epoch, both ends included
HOUR_US = 3_600_000_000


@dataclass(frozen=True)
class HeldTrade:
    """What the ledger needs of one Gold row."""

    exchange: str
    symbol: str
    hour: datetime  # the trade's timestamp truncated to the UTC hour
    trade_id: str
    from_backfill: bool


@dataclass(frozen=True)
class HourLedger:
    exchange: str
    symbol: str
    hour: datetime
    first_trade_id: str
    last_trade_id: str
    gold_trades: int
    live_trades: int
    backfill_trades: int
    expected_trades: int | None  # contiguous venues: held + missing
    missing_ids: int | None
    missing_ranges: tuple[Range, ...]
    status: str
    possible_loss: tuple[Window, ...] = ()  # the windows overlapping the hour, whole
    possible_loss_seconds: float = 0.0  # seconds of the hour they cover


def hour_ledgers(
    trades: Iterable[HeldTrade],
    contiguous: Callable[[str], bool],
    held_before: Mapping[SymbolKey, int] | None = None,
    unrecoverable: Mapping[SymbolKey, Sequence[Range]] | None = None,
) -> list[HourLedger]:
    """One row per (exchange, symbol, hour) present in ``trades``, sorted by that key.

    A trade id seen twice is counted once (Gold holds one row per trade; a replayed
    read must not double it).
    """
    held_before = held_before or {}
    unrecoverable = unrecoverable or {}
    by_symbol: dict[SymbolKey, dict[str, HeldTrade]] = defaultdict(dict)
    for trade in trades:
        by_symbol[(trade.exchange, trade.symbol)].setdefault(trade.trade_id, trade)
    rows: list[HourLedger] = []
    for key in sorted(by_symbol):
        held = by_symbol[key]
        if contiguous(key[0]):
            rows += _contiguous_hours(key, held, held_before.get(key), unrecoverable.get(key, ()))
        else:
            rows += _counted_hours(key, held)
    return rows


def _contiguous_hours(key: SymbolKey, held: dict[str, HeldTrade], before: int | None,
                      lost: Sequence[Range]) -> list[HourLedger]:
    ordered = sorted(held.values(), key=lambda t: int(t.trade_id))
    hours: dict[datetime, list[HeldTrade]] = defaultdict(list)
    gaps: dict[datetime, list[Range]] = defaultdict(list)
    previous = before
    for trade in ordered:
        tid = int(trade.trade_id)
        if previous is not None and tid > previous + 1:
            gaps[trade.hour].append((previous + 1, tid - 1))
        hours[trade.hour].append(trade)
        previous = tid
    rows = []
    for hour in sorted(hours):
        ranges = tuple(gaps[hour])
        missing = sum(last - first + 1 for first, last in ranges)
        held_in_hour = hours[hour]  # in id order: filled from ``ordered``
        if not missing:
            status = COMPLETE
        elif all_covered(ranges, lost):
            status = UNRECOVERABLE
        else:
            status = GAPS
        rows.append(_row(key, hour, held_in_hour, held_in_hour[0].trade_id, held_in_hour[-1].trade_id,
                         expected=len(held_in_hour) + missing, missing=missing, ranges=ranges, status=status))
    return rows


def _counted_hours(key: SymbolKey, held: dict[str, HeldTrade]) -> list[HourLedger]:
    hours: dict[datetime, list[HeldTrade]] = defaultdict(list)
    for trade in held.values():
        hours[trade.hour].append(trade)
    rows = []
    for hour in sorted(hours):
        ids = sorted(t.trade_id for t in hours[hour])
        rows.append(_row(key, hour, hours[hour], ids[0], ids[-1], expected=None, missing=None,
                         ranges=(), status=NOT_APPLICABLE))
    return rows


def _row(key: SymbolKey, hour: datetime, trades: list[HeldTrade], first: str, last: str, *,
         expected: int | None, missing: int | None, ranges: tuple[Range, ...], status: str) -> HourLedger:
    backfilled = sum(t.from_backfill for t in trades)
    return HourLedger(exchange=key[0], symbol=key[1], hour=hour, first_trade_id=first, last_trade_id=last,
                      gold_trades=len(trades), live_trades=len(trades) - backfilled,
                      backfill_trades=backfilled, expected_trades=expected, missing_ids=missing,
                      missing_ranges=ranges, status=status)


def with_windows(rows: Iterable[HourLedger], windows: Mapping[SymbolKey, Sequence[Window]],
                 start: datetime, end: datetime) -> list[HourLedger]:
    """``rows`` (hours in [start, end)) with the possible-loss ``windows`` applied, plus a
    row for each hour of [start, end) a window overlaps that holds no trade of its symbol;
    sorted by (exchange, symbol, hour)."""
    out: dict[tuple[str, str, datetime], HourLedger] = {(r.exchange, r.symbol, r.hour): r for r in rows}
    first, stop = epoch_us(start), epoch_us(end)
    for (exchange, symbol), found in windows.items():
        for a, b in found:
            hour = max(first, a - a % HOUR_US)
            while hour < stop and hour <= b:
                at = datetime.fromtimestamp(hour // 1_000_000, start.tzinfo)
                out.setdefault((exchange, symbol, at), HourLedger(
                    exchange=exchange, symbol=symbol, hour=at, first_trade_id="", last_trade_id="", gold_trades=0,
                    live_trades=0, backfill_trades=0, expected_trades=None, missing_ids=None, missing_ranges=(),
                    status=POSSIBLY_INCOMPLETE))
                hour += HOUR_US
    return [_marked(row, windows.get((row.exchange, row.symbol), ())) for _, row in sorted(out.items())]


def _marked(row: HourLedger, windows: Sequence[Window]) -> HourLedger:
    begin = epoch_us(row.hour)
    overlapping = sorted(w for w in windows if w[0] < begin + HOUR_US and w[1] >= begin)
    if not overlapping:
        return row
    covered, reached = 0, begin
    for a, b in overlapping:  # the union of the windows, clipped to the hour
        a, b = max(a, reached), min(b, begin + HOUR_US)
        if b > a:
            covered, reached = covered + b - a, b
    status = POSSIBLY_INCOMPLETE if row.status in (COMPLETE, NOT_APPLICABLE) else row.status
    return replace(row, status=status, possible_loss=tuple(overlapping), possible_loss_seconds=covered / 1e6)


def epoch_us(t: datetime) -> int:
    """``t`` (aware, or naive meaning UTC) as µs since the epoch, exactly (no float)."""
    delta = t - datetime(1970, 1, 1, tzinfo=t.tzinfo)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def all_covered(gaps: Sequence[Range], lost: Sequence[Range]) -> bool:
    """True when every id of every one of ``gaps`` (at least one) lies in ``lost``."""
    return bool(gaps) and all(_covered(g, lost) for g in gaps)


def _covered(gap: Range, lost: Sequence[Range]) -> bool:
    """True when every id of ``gap`` lies in one of the (possibly overlapping) ``lost`` ranges."""
    need = gap[0]
    for first, last in sorted(lost):
        if first > need:
            return False
        need = max(need, last + 1)
        if need > gap[1]:
            return True
    return need > gap[1]


def is_backfilled(vendor_data: Mapping[str, str] | None) -> bool:
    """How a Gold row says it came from REST backfill (set by the workers' REST parsers)."""
    return (vendor_data or {}).get("source") == "rest"
