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
- **Source**: a trade with ``vendor_data["source"] == "rest"`` came from REST backfill,
  any other from the live stream.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from k2.exchanges import VENUES

COMPLETE = "complete"
GAPS = "gaps"
UNRECOVERABLE = "unrecoverable"
NOT_APPLICABLE = "not_applicable"
STATUSES = (COMPLETE, GAPS, UNRECOVERABLE, NOT_APPLICABLE)
# Venues whose symbols' next trade gets the next id (the registry says which).
CONTIGUOUS_IDS = frozenset(v.name for v in VENUES if v.contiguous_ids)

Range = tuple[int, int]  # first and last missing id, both included
SymbolKey = tuple[str, str]  # (exchange, symbol)


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
