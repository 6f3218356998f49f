"""Coinbase Exchange ``matches`` channel (spot), with REST ``/products/{id}/trades`` backfill.

A frame on ``wss://ws-feed.exchange.coinbase.com`` after subscribing::

    {"type":"match","trade_id":929248657,"sequence":112233445566,
     "maker_order_id":"ac928c66-ca53-498f-9c13-a110027a60e8",
     "taker_order_id":"132fb6ae-456b-4654-b4e0-d681ac05cea1",
     "time":"2026-01-01T00:00:00.123456Z","product_id":"BTC-USD",
     "size":"0.00210000","price":"94250.01","side":"sell"}

One message per trade. ``side`` is the MAKER's side (Coinbase: "the side field indicates
the maker order side"; ``sell`` is an up-tick), so the taker side recorded is its
opposite: ``sell`` -> ``BUY``. ``price``/``size`` are decimal strings, ``time`` RFC 3339
with µs. ``trade_id`` is an integer, consecutive per product, so a jump is a gap
(:mod:`workers.progress`), filled over REST ``GET /products/{id}/trades?after=`` whose
items are ``{"time":...,"trade_id":929248657,"price":"94250.01","size":"0.0021",
"side":"sell"}`` (same ids, same maker ``side``), newest first, at most 1,000 a page.

The subscribe message is mandatory within 5 s of connecting. We subscribe ``matches``
and ``heartbeat`` for the same products; the venue then sends ``last_match`` (the most
recent trade, parsed like a match: it may repeat a trade, same message_id), one
``{"type":"heartbeat","sequence":..,"last_trade_id":..,"product_id":..,"time":..}`` a
second per product (so an idle product still proves the connection alive), a
``{"type":"subscriptions","channels":[...]}`` ack, and ``{"type":"error","message":..,
"reason":..}`` for a rejected subscribe or before a forced disconnect (slow consumer,
message too big). There is no application ping and no planned-close notice.

Every fact here, with the page it was checked on, is in ``docs/exchanges/coinbase.md``.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable, Sequence

import msgspec

from workers.base import ConnectionLimits, Control, Exchange, Parsed, Rate
from workers.jsonframe import DECODE_ERRORS, decode, decode_rest_body
from workers.normalize import (
    MAX_TRADE_ID,
    NormalizeError,
    clip,
    decimal_18_8,
    rfc3339_to_us,
    trade_id_text,
    trade_record,
)
from workers.progress import Gap
from workers.rest_source import IdPagedTrades, RestPage
from workers.symbols import Pair

WS_URL = "wss://ws-feed.exchange.coinbase.com"
REST_URL = "https://api.exchange.coinbase.com"
PRODUCTS_PATH = "/products"  # instruments metadata (pairs_from_products)

# Limits (https://docs.cdp.coinbase.com/exchange/websocket-feed/rate-limits and
# .../exchange/rest-api/rate-limits), per IP unless said otherwise:
CONNECTS_PER_S = 8  # WebSocket connection requests a second ...
CONNECTS_BURST = 20  # ... and in bursts
CLIENT_MESSAGES_PER_S = 100  # messages we send (subscribe/unsubscribe) a second
SAME_SUBSCRIPTIONS_MAX = 10  # subscriptions to one product on one channel (duplicates count)
SUBSCRIBE_DEADLINE_S = 5.0  # connections without a subscribe are closed after this
REST_PUBLIC_PER_S = 10  # public REST requests a second (bursts up to 15)
REST_PAGE_MAX = 1000  # trades per /trades page
# Coinbase rejects a subscribe that is too large ("Message too big", websocket-feed/errors)
# without saying how large: we keep each under this many products (about 1.3 KB) ...
PRODUCTS_PER_SUBSCRIBE = 100
# ... and (our choice, for the sharding to come) give one connection at most this many
# products: the venue documents no per-connection cap, only "spread subscriptions over
# more than one connection" (websocket-feed/best-practices).
PRODUCTS_PER_CONNECTION = 500
CHANNELS = ("matches", "heartbeat")
# For the shard planner: the connection rate per IP as documented (the burst of 20 is not
# relied on); client messages are 100 a second per IP, so each connection sends at most 10
# a second (ten shards at once stay within it).
LIMITS = ConnectionLimits(per_connection=PRODUCTS_PER_CONNECTION, messages=Rate(10, 1.0),
                          connects=Rate(CONNECTS_PER_S, 1.0))
# Backfill pacing: half the public REST rate, leaving the rest to the connect probe and
# the metadata refresh that share the IP.
REST_MIN_INTERVAL_S = 2 / REST_PUBLIC_PER_S
THROTTLED_WAIT_S = 1.0  # 429 without Retry-After: the token bucket refills in about a second

_TAKER_OF_MAKER = {"buy": "SELL", "sell": "BUY"}


class _Match(msgspec.Struct, tag_field="type", tag="match"):
    trade_id: int
    sequence: int
    maker_order_id: str
    taker_order_id: str
    time: str
    product_id: str
    size: str
    price: str
    side: str


class _LastMatch(_Match, tag="last_match"):
    """Sent once per product right after subscribing: the most recent match."""


class _Heartbeat(msgspec.Struct, tag_field="type", tag="heartbeat"):
    sequence: int
    last_trade_id: int
    product_id: str
    time: str


class _RestTrade(msgspec.Struct):
    trade_id: int
    price: str
    size: str
    time: str
    side: str


# One decoder for the frames that come every second (trades and heartbeats); a tagged
# union decodes either without a second pass.
_decode_fast = msgspec.json.Decoder(_Match | _LastMatch | _Heartbeat).decode
_decode_any = msgspec.json.Decoder().decode


def taker_side(maker_side: object) -> str:
    """Coinbase's maker ``side`` -> the record's taker side (``sell`` -> ``BUY``)."""
    taker = _TAKER_OF_MAKER.get(maker_side) if isinstance(maker_side, str) else None
    if taker is None:
        raise NormalizeError("bad_trade", f"side {clip(maker_side)!r} is neither 'buy' nor 'sell'")
    return taker


class Coinbase(Exchange):
    name = "coinbase"
    enum_symbol = "COINBASE"
    sends_heartbeats = True  # the heartbeat channel: one a second per product
    sequential_ids = True  # trade_id is consecutive per product
    backfills = True  # REST /products/{id}/trades pages by trade id
    default_urls = (WS_URL,)
    default_symbols = ("BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD", "DOGE-USD", "BTC-EUR")
    symbols_doc = ("Coinbase Exchange products to capture as BASE-QUOTE (upper case, must be in "
                   "workers/exchanges/coinbase_symbols.json or the /products metadata).")
    default_rest_url = REST_URL
    rest_url_doc = ("Coinbase Exchange REST base URL: products metadata at start and gap backfill "
                    "(/products/{id}/trades, paced to 5 requests a second).")
    simulator_protocol = "workers.simulator.venues.coinbase"
    limits = LIMITS

    def normalize_symbol(self, symbol: str) -> str:
        return symbol.upper()  # product ids are BASE-QUOTE in upper case, as on the wire

    @classmethod
    def metadata_url(cls, rest_url: str, symbols: Iterable[str]) -> str:
        return f"{rest_url}{PRODUCTS_PATH}"

    @classmethod
    def pairs_from_metadata(cls, doc: object) -> list[Pair]:
        return pairs_from_products(doc)

    def stream_url(self, endpoint: str, symbols: Sequence[str] | None = None) -> str:
        return endpoint

    def subscribe_messages(self, symbols: Sequence[str] | None = None) -> list[str]:
        """One subscribe per :data:`PRODUCTS_PER_SUBSCRIBE` products, both channels each."""
        return _requests("subscribe", self.symbols if symbols is None else list(symbols))

    def unsubscribe_messages(self, symbols: Sequence[str]) -> list[str]:
        return _requests("unsubscribe", list(symbols))

    def parse(self, frame: str | bytes, received_us: int) -> Parsed:
        try:
            message = _decode_fast(frame)
        except DECODE_ERRORS:  # an ack, an error, an odd trade, or not JSON: the slow path says
            return self._parse_other(frame, received_us)
        if isinstance(message, _Heartbeat):
            return Parsed(control=_heartbeat(message.product_id, message.last_trade_id))
        try:
            return Parsed(trades=[self._record(message, received_us)])
        except NormalizeError as exc:
            return Parsed(rejects=[exc])

    def _record(self, match: _Match, received_us: int) -> dict:
        pair = self.known_pair(self.normalize_symbol(match.product_id), match.product_id)
        return _record(pair, match, received_us, {
            "maker_side": match.side,
            "sequence": str(match.sequence),
            "maker_order_id": match.maker_order_id,
            "taker_order_id": match.taker_order_id,
            "type": "last_match" if isinstance(match, _LastMatch) else "match",
        })

    def _parse_other(self, frame: str | bytes, received_us: int) -> Parsed:
        """Slow path: controls, and trade frames that do not match the format."""
        doc = decode(_decode_any, frame)
        if not isinstance(doc, dict):
            raise NormalizeError("unexpected_frame", f"expected a JSON object, got {type(doc).__name__}")
        kind = doc.get("type")
        if kind == "subscriptions":
            return Parsed(control=Control("ack", _subscriptions(doc.get("channels"))))
        if kind == "error":
            message, reason = doc.get("message"), doc.get("reason")
            detail = f"{clip(message)}: {clip(reason)}" if reason is not None else clip(message)
            subscribe = isinstance(message, str) and "subscribe" in message.lower()
            return Parsed(control=Control("subscribe_error" if subscribe else "exchange_error", detail))
        if kind == "heartbeat":
            return Parsed(control=_heartbeat(doc.get("product_id"), doc.get("last_trade_id")))
        if kind not in ("match", "last_match"):
            # The venue may add message types; we subscribe to none that carry other data,
            # so anything else is dead-lettered (seen) rather than silently dropped.
            raise NormalizeError("unexpected_frame", f"unknown message type {clip(kind)}")
        try:
            match = msgspec.convert(doc, _Match | _LastMatch)
        except msgspec.ValidationError as exc:
            raise NormalizeError("bad_trade", f"{kind} does not match the matches format: {exc}") from None
        try:
            return Parsed(trades=[self._record(match, received_us)])
        except NormalizeError as exc:
            return Parsed(rejects=[exc])

    # REST history ------------------------------------------------------------------

    def parse_rest_trades(self, body: bytes, symbol: str, received_us: int) -> RestPage:
        """A ``/products/{id}/trades`` body for ``symbol`` -> page (pure). Raises
        ``NormalizeError("bad_rest_response")`` when the body is not a JSON array."""
        items = decode_rest_body(_decode_any, body, list, "trades body")
        pair = self.known_pair(symbol)
        page = RestPage()
        for item in items:
            raw = msgspec.json.encode(item)
            tid = item.get("trade_id") if isinstance(item, dict) else None
            if type(tid) is int and 0 <= tid <= MAX_TRADE_ID:  # an odd id is rejected below, not paged on
                page.ids.append(tid)
            try:
                page.records.append(self._rest_record(item, pair, received_us))
            except NormalizeError as exc:
                page.rejects.append((exc, raw))
        return page

    def _rest_record(self, item: object, pair: Pair, received_us: int) -> dict:
        try:
            trade = msgspec.convert(item, _RestTrade)
        except msgspec.ValidationError as exc:
            raise NormalizeError("bad_trade", f"REST trade does not match: {exc}") from None
        return _record(pair, trade, received_us, {"maker_side": trade.side, "source": "rest"})

    def rest_source(self, rest_url: str, page_limit: int) -> CoinbaseTrades:
        return CoinbaseTrades(self, rest_url, page_limit)


def _record(pair: Pair, trade: _Match | _RestTrade, received_us: int, vendor_data: dict[str, str]) -> dict:
    """The v3 record of a trade from either path (stream match or REST item): same fields,
    same message_id, so a trade seen on both deduplicates."""
    return trade_record(
        exchange_enum="COINBASE",
        pair=pair,
        trade_id=trade_id_text(trade.trade_id, "trade_id"),
        timestamp_us=rfc3339_to_us(trade.time, "time"),
        price=decimal_18_8(trade.price, "price"),
        quantity=decimal_18_8(trade.size, "size"),
        side=taker_side(trade.side),
        ingestion_us=received_us,
        vendor_data=vendor_data,
    )


def _requests(kind: str, products: list[str]) -> list[str]:
    return [
        json.dumps({"type": kind, "product_ids": products[i : i + PRODUCTS_PER_SUBSCRIBE],
                    "channels": list(CHANNELS)}, separators=(",", ":"))
        for i in range(0, len(products), PRODUCTS_PER_SUBSCRIBE)
    ]


def _heartbeat(product: object, last_trade_id: object) -> Control:
    return Control("heartbeat", f"{clip(product)} last_trade_id={clip(last_trade_id)}")


def _subscriptions(channels: object) -> str:
    """``matches: BTC-USD,ETH-USD; heartbeat: ...`` of a subscriptions ack."""
    if not isinstance(channels, list):
        return f"channels {clip(channels)}"
    parts = []
    for channel in channels:
        if isinstance(channel, dict):
            products = channel.get("product_ids")
            listed = ",".join(map(str, products)) if isinstance(products, list) else clip(products)
            parts.append(f"{clip(channel.get('name'))}: {clip(listed, 200)}")
        else:
            parts.append(clip(channel))
    return clip("; ".join(parts), 600)


class CoinbaseTrades(IdPagedTrades):
    """``GET /products/{id}/trades?after=A&limit=L``: the ``L`` trades with ids below ``A``,
    newest first (``after`` pages towards older trades). The gap's trades from ``next_id``
    are asked for as ``after = next_id + L``, so each page is exactly
    ``[next_id, next_id + L)``, whatever order it is listed in. Public REST allows 10
    requests a second per IP; 429 says to slow down."""

    min_interval_s = REST_MIN_INTERVAL_S
    max_page = REST_PAGE_MAX
    throttle_statuses = {429: THROTTLED_WAIT_S}

    def _url(self, symbol: str, **query: int) -> str:
        product = urllib.parse.quote(symbol, safe="")
        return f"{self.rest_url}{PRODUCTS_PATH}/{product}/trades?{urllib.parse.urlencode(query)}"

    def request(self, gap: Gap, next_id: int, cursor: object) -> tuple[str, dict[str, str]]:
        limit = self.page_size(gap, next_id)
        return self._url(gap.symbol, after=next_id + limit, limit=limit), {}

    def latest_request(self, symbol: str) -> tuple[str, dict[str, str]]:
        return self._url(symbol, limit=1), {}


# symbol metadata -------------------------------------------------------------------


def pairs_from_products(doc: object) -> list[Pair]:
    """Pairs of the tradable products in a ``GET /products`` answer (a JSON array of
    ``{"id":"BTC-USD","base_currency":"BTC","quote_currency":"USD","status":"online",
    "trading_disabled":false,...}``). Products not ``online``, with trading disabled, or
    missing a field are left out. Raises ``ValueError`` when ``doc`` is not an array."""
    if not isinstance(doc, list):
        raise ValueError(f"Coinbase /products answer is not a JSON array: {clip(doc)}")
    pairs = []
    for product in doc:
        if not isinstance(product, dict) or product.get("status") != "online" or product.get("trading_disabled"):
            continue
        fields = product.get("id"), product.get("base_currency"), product.get("quote_currency")
        if all(isinstance(f, str) and f for f in fields):
            pairs.append(Pair(*fields))
    return pairs
