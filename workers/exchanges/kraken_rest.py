"""Kraken's REST trade history (``GET /0/public/Trades``), the source of Kraken gap backfill.

``GET https://api.kraken.com/0/public/Trades?pair=XBTUSD&since=1767225600000000000`` answers::

    {"error":[],"result":{"XXBTZUSD":[["94250.10000","0.01250000",1767225600.123456,"s","m","",81234567]],
     "last":"1767225600123456789"}}

Each trade is ``[price, volume, time, side, ordertype, misc, trade_id]``: decimal strings,
float seconds, taker side ``b``/``s``, ``m``/``l``, and the id the v2 WebSocket sends as
``trade_id``. Up to 1,000 trades per call, with time > ``since`` (a ns cursor, exclusive);
``last`` is the cursor of the next page. Errors come with HTTP 200 in ``error``
(``EAPI:Rate limit exceeded``). Public calls are limited per IP and pair; one a second
stays within them (Kraken support, "What are the API rate limits").

The cursor is a time, the gap is ids, so the first request starts a little before now and
steps back (doubling) until the answer begins at or below the first missing id; when
stepping back keeps returning the same first trade, or returns a newer one (the history
is being cut from below while we ask), the history before it is no longer served and the
generic backfill reports it unavailable, except for the gap's trades that answers listed
while stepping back (a history being cut may not list them again): those are produced.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal

import msgspec

from workers.jsonframe import decode_rest_body
from workers.normalize import (
    MAX_TIMESTAMP_US,
    MAX_TRADE_ID,
    NormalizeError,
    clip,
    decimal_18_8,
    trade_id_text,
    trade_record,
)
from workers.progress import Gap
from workers.rest_source import Again, Answer, Got, Problem, RestPage, Throttled, retry_after_s
from workers.symbols import Pair

TRADES = "/0/public/Trades"
MIN_INTERVAL_S = 1.0  # Kraken: one public call a second per IP and pair stays within the limit
RATE_LIMITED_WAIT_S = 5.0  # "restricted for a few seconds" after EAPI:Rate limit exceeded
STEP_BACK_NS = 30 * 10**9  # first look this far back for a gap's first id, doubling each step
SAME_FIRST_LIMIT = 3  # the same first trade after this many step-backs: older history is gone
_SIDES = {"b": "BUY", "s": "SELL"}
_ORDER_TYPES = {"m": "market", "l": "limit"}
_decode_any = msgspec.json.Decoder(float_hook=Decimal).decode  # keeps the time's digits


@dataclass(frozen=True)
class Since:
    """The ``since`` cursor of the next request, and how it was placed."""

    ns: int
    anchor_ns: int  # step-backs count from here
    back: int = 0  # step-backs taken
    first_id: int | None = None  # lowest id answered while stepping back
    same: int = 0  # step-backs that answered that same first id
    placed: bool = False  # at or below the gap's first id (or history's start): page forward


def rest_pair(symbol: str, aliases: dict[str, str]) -> str:
    """``BTC/USD`` -> ``XBTUSD``: the REST ``pair`` (Kraken's altname) of a v2 symbol."""
    reverse = {ours: theirs for theirs, ours in aliases.items()}
    base, _, quote = symbol.partition("/")
    return reverse.get(base, base) + reverse.get(quote, quote)


def time_to_us(value: object) -> int:
    """Float seconds written as JSON text (decoded to Decimal) -> µs, truncated like the stream's RFC 3339."""
    if not isinstance(value, Decimal | int) or isinstance(value, bool):
        raise NormalizeError("bad_timestamp", f"time {clip(value)} is not a number of seconds")
    try:
        seconds = Decimal(value)
        # Bounded before int(): "1e999999" would otherwise build a million-digit integer.
        if not seconds.is_finite() or seconds.adjusted() > 12:
            raise ValueError(value)
        us = int(seconds.scaleb(6))
    except (ArithmeticError, ValueError):  # decimal's Overflow/InvalidOperation are ArithmeticErrors
        raise NormalizeError("bad_timestamp", f"time {clip(value)} is not a number of seconds") from None
    if not 0 <= us <= MAX_TIMESTAMP_US:
        raise NormalizeError("bad_timestamp", f"time {clip(value)} is before 1970 or after 9999")
    return us


def parse_trades(body: bytes, pair: Pair, received_us: int) -> tuple[RestPage, int]:
    """A Trades answer for ``pair`` -> (page, ``last`` cursor) (pure). Raises ``rest_error``
    for a non-empty ``error`` array and ``bad_rest_response`` for anything not a Trades answer."""
    doc = decode_rest_body(_decode_any, body, dict, "Trades body")
    errors = doc.get("error")
    if errors:
        raise NormalizeError("rest_error", clip(errors, 300))
    result = doc.get("result")
    if not isinstance(result, dict):
        raise NormalizeError("bad_rest_response", f"Trades body has no result object: {clip(doc)}")
    lists = [v for k, v in result.items() if k != "last"]
    if len(lists) != 1 or not isinstance(lists[0], list):
        raise NormalizeError("bad_rest_response", f"Trades result should hold one pair's list: {clip(list(result))}")
    try:
        last = int(result.get("last"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise NormalizeError("bad_rest_response", f"Trades cursor last {clip(result.get('last'))} is not an integer") from None
    page = RestPage()
    for item in lists[0]:
        raw = msgspec.json.encode(item)
        tid = item[6] if isinstance(item, list) and len(item) >= 7 else None
        if type(tid) is int and 0 <= tid <= MAX_TRADE_ID:  # an odd id is rejected below, not paged on
            page.ids.append(tid)
        try:
            page.records.append(_record(item, pair, received_us))
        except NormalizeError as exc:
            page.rejects.append((exc, raw))
    return page, last


def _record(item: object, pair: Pair, received_us: int) -> dict:
    if not isinstance(item, list) or len(item) < 7:
        raise NormalizeError("bad_trade", f"REST trade is not [price, volume, time, side, ordertype, misc, trade_id]: {clip(item)}")
    price, volume, when, side, order_type, _misc, tid = item[:7]
    if type(tid) is not int:
        raise NormalizeError("bad_trade", f"trade_id {clip(tid)} is not an integer")
    if not isinstance(price, str) or not isinstance(volume, str):
        raise NormalizeError("bad_trade", "price and volume must be decimal strings")
    taker = _SIDES.get(side) if isinstance(side, str) else None
    if taker is None:
        raise NormalizeError("bad_trade", f"side {clip(side)!r} is neither 'b' nor 's'")
    return trade_record(
        exchange_enum="KRAKEN",
        pair=pair,
        trade_id=trade_id_text(tid, "trade_id"),
        timestamp_us=time_to_us(when),
        price=decimal_18_8(price, "price"),
        quantity=decimal_18_8(volume, "volume"),
        side=taker,
        ingestion_us=received_us,
        vendor_data={"ord_type": _ORDER_TYPES.get(order_type, clip(order_type)) if isinstance(order_type, str)
                     else clip(order_type), "source": "rest"},
    )


class KrakenTrades:
    """The :class:`~workers.rest_source.RestSource` of Kraken gap backfill."""

    min_interval_s = MIN_INTERVAL_S
    url_setting = "K2_KRAKEN_REST_URL"

    def __init__(self, pairs: Callable[[str], Pair | None], aliases: dict[str, str], rest_url: str,
                 page_limit: int, clock_ns: Callable[[], int] = time.time_ns):
        self.pairs = pairs
        self.aliases = aliases
        self.base = rest_url.rstrip("/") + TRADES
        self.page_limit = page_limit
        self.clock_ns = clock_ns

    def start(self, gap: Gap) -> Since:
        anchor = self.clock_ns()
        return Since(max(0, anchor - STEP_BACK_NS), anchor)

    def request(self, gap: Gap, next_id: int, cursor: object) -> tuple[str, dict[str, str]]:
        assert isinstance(cursor, Since)
        pair = rest_pair(gap.symbol, self.aliases)
        return f"{self.base}?pair={pair}&since={cursor.ns}&count={self.page_limit}", {}

    def answer(self, status: int, headers: dict[str, str], body: bytes, gap: Gap, next_id: int,
               cursor: object, received_us: int) -> Answer:
        assert isinstance(cursor, Since)
        parsed = self._page(status, headers, body, gap.symbol, received_us)
        if not isinstance(parsed, tuple):
            return parsed
        page, last = parsed
        low = min(page.ids) if page.ids else None
        if not cursor.placed and cursor.ns > 0 and (low is None or low > next_id):
            # Nothing at or before the first missing id yet: look further back in time.
            same = cursor.same + 1 if low is not None and low == cursor.first_id else 0
            # An earlier ``since`` answering a *newer* first trade: the history is being cut
            # from below as we ask (a full history only ever answers older ones), so older
            # trades are gone; the same first trade several times: gone, or a quiet pair.
            cut = low is not None and cursor.first_id is not None and low > cursor.first_id
            if same < SAME_FIRST_LIMIT and not cut:
                back = cursor.back + 1
                since = max(0, cursor.anchor_ns - STEP_BACK_NS * 2**back)
                return Again(replace(cursor, ns=since, back=back, first_id=low, same=same),
                             f"no trade at or before id {next_id} after since={cursor.ns}: stepping back", page)
        if not page.ids:  # REST may trail the stream by a moment
            return Problem(f"no trades after since={cursor.ns} yet (want id {next_id})")
        if last - 1 <= cursor.ns and max(page.ids) < next_id:  # paging on would never end
            return Problem(f"bad_rest_response: cursor last={last} does not pass since={cursor.ns}")
        # The next page starts 1 ns before ``last``: trades sharing the boundary's time are
        # asked for again (their ids filter them out) rather than skipped.
        return Got(page, replace(cursor, ns=max(last - 1, cursor.ns), placed=True))

    def latest_request(self, symbol: str) -> tuple[str, dict[str, str]]:
        # No since: the most recent trades (Kraken: "returns the last 1000 trades by default").
        return f"{self.base}?pair={rest_pair(symbol, self.aliases)}&count=1", {}

    def latest_answer(self, status: int, headers: dict[str, str], body: bytes, symbol: str,
                      received_us: int) -> Answer:
        parsed = self._page(status, headers, body, symbol, received_us)
        if not isinstance(parsed, tuple):
            return parsed
        return Got(parsed[0], None) if parsed[0].ids else Problem(f"no recent trade of {symbol}")

    def _page(self, status: int, headers: dict[str, str], body: bytes, symbol: str,
              received_us: int) -> tuple[RestPage, int] | Answer:
        text = body[:200].decode("utf-8", "replace")
        if status == 429:
            return Throttled(retry_after_s(headers, RATE_LIMITED_WAIT_S), f"HTTP 429: {text}")
        if status != 200:
            return Problem(f"HTTP {status}: {text}")
        pair = self.pairs(symbol)
        if pair is None:
            return Problem(f"unknown_symbol: {clip(symbol)} is not in the symbol table")
        try:
            return parse_trades(body, pair, received_us)
        except NormalizeError as exc:
            if exc.kind == "rest_error" and ("Rate limit" in str(exc) or "Too many requests" in str(exc)):
                return Throttled(RATE_LIMITED_WAIT_S, f"rest_error: {exc}")
            return Problem(f"{exc.kind}: {exc}")
