"""Binance spot combined ``@trade`` streams.

A frame on ``/stream?streams=btcusdt@trade/ethusdt@trade&timeUnit=MICROSECOND``::

    {"stream":"btcusdt@trade","data":{"e":"trade","E":1767225600125000,"s":"BTCUSDT",
     "t":5123456789,"p":"94250.01000000","q":"0.00210000","T":1767225600120000,
     "m":true,"M":true}}

``m`` is buyer-is-maker, so ``m: true`` means the taker sold (SELL). Prices and
quantities are strings, kept as decimals. Times are µs because the URL asks for
``timeUnit=MICROSECOND`` (ms otherwise). Control frames: ``{"result":null,"id":1}``
(ack), ``{"code":2,"msg":"..."}`` (error), and
``{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":...}}`` before a
planned close. Keepalive is WebSocket ping frames from the server, answered by the
connection layer: no application ping.

Trades the stream missed come from REST ``/api/v3/historicalTrades`` (see
:mod:`workers.backfill`); an element of its JSON array::

    {"id":5123456789,"price":"94250.01000000","qty":"0.00210000","quoteQty":"197.92502100",
     "time":1767225600120000,"isBuyerMaker":true,"isBestMatch":true}

``time`` is µs because the request sends ``X-MBX-TIME-UNIT: MICROSECOND``. The record
is the stream's (same message_id, so a trade seen on both paths deduplicates), with
``vendor_data.source = "rest"`` and no event time (REST has none).

Symbol metadata ships as ``binance_symbols.json`` (``baseAsset``/``quoteAsset`` of
``/api/v3/exchangeInfo``) and is refreshed from that endpoint at start. Connections are
cut after 24 h (``K2_WORKERS_CONNECTION_LIFETIME_S`` rotates them before).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from itertools import count

import msgspec

from workers.base import ConnectionLimits, Control, Exchange, Parsed, Rate
from workers.jsonframe import DECODE_ERRORS, decode, decode_rest_body
from workers.normalize import (
    MAX_TRADE_ID,
    NormalizeError,
    clip,
    decimal_18_8,
    epoch_int_to_us,
    trade_id_text,
    trade_record,
)
from workers.progress import Gap
from workers.rest_source import IdPagedTrades, RestPage
from workers.symbols import Pair, SymbolTable, listed_pairs

HISTORICAL_TRADES = "/api/v3/historicalTrades"
RECENT_TRADES = "/api/v3/trades"
EXCHANGE_INFO = "/api/v3/exchangeInfo"

# Limits, https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams
# ("WebSocket Limits"): "A single connection can listen to a maximum of 1024 streams";
# "5 incoming messages per second" per connection, where a message is a ping or pong
# frame or a JSON control message (we send 4 a second, leaving one for the pongs
# websocket-client sends); "300 connections per attempt every 5 minutes per IP".
LIMITS = ConnectionLimits(per_connection=1024, messages=Rate(4, 1.0), connects=Rate(300, 300.0))
# Streams named in one SUBSCRIBE/UNSUBSCRIBE request, and in the connect URL. The docs set
# no figure for either; users measured a URL limit of 8,004 characters
# (oliver-zehentleitner/unicorn-binance-websocket-api#17) and saw a SUBSCRIBE of 437 streams
# fail silently (altangent/ccxws#161). 200 streams of at most ~25 characters keep both
# near 5 KB; a shard's streams past the first 200 are subscribed by message after connecting.
STREAMS_PER_REQUEST = 200
URL_STREAMS = 200


class _Trade(msgspec.Struct):
    e: str
    E: int
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool


class _RestTrade(msgspec.Struct):
    id: int
    price: str
    qty: str
    time: int
    isBuyerMaker: bool  # noqa: N815 - Binance's field name


class _Envelope(msgspec.Struct):
    stream: str
    data: _Trade


_decode_trade_frame = msgspec.json.Decoder(_Envelope).decode
_decode_any = msgspec.json.Decoder().decode
_decode_rest_page = msgspec.json.Decoder(list[_RestTrade]).decode


class Binance(Exchange):
    name = "binance"
    enum_symbol = "BINANCE"
    sends_heartbeats = False
    sequential_ids = True
    backfills = True
    default_urls = ("wss://stream.binance.com:9443", "wss://data-stream.binance.vision")
    urls_doc = ("Binance WebSocket base URLs, comma separated, tried in order on failure (failover). "
                "The worker appends /stream?streams=... itself.")
    default_symbols = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT")
    symbols_doc = "Binance spot symbols to capture (upper case, must be in workers/exchanges/binance_symbols.json)."
    default_rest_url = "https://api.binance.com"
    rest_url_doc = ("Binance REST base URL: base/quote metadata (exchangeInfo) at start and gap backfill "
                    "(historicalTrades). Must be the simulator's http://127.0.0.1:PORT when the streams are.")
    simulator_protocol = "workers.simulator.venues.binance"
    limits = LIMITS

    def __init__(self, symbols: Sequence[str], table: SymbolTable, *, microseconds: bool = True):
        super().__init__(symbols, table)
        self.microseconds = microseconds
        self._unit_us = 1 if microseconds else 1000
        self._request_ids = count(1)

    def normalize_symbol(self, symbol: str) -> str:
        return symbol.upper()

    @classmethod
    def metadata_url(cls, rest_url: str, symbols: Iterable[str]) -> str:
        query = urllib.parse.urlencode({"symbols": json.dumps(sorted(symbols), separators=(",", ":"))})
        return f"{rest_url}{EXCHANGE_INFO}?{query}"

    @classmethod
    def listing_url(cls, rest_url: str) -> str:
        return f"{rest_url.rstrip('/')}{EXCHANGE_INFO}"  # no filter: every symbol, with its status

    @classmethod
    def pairs_from_metadata(cls, doc: Mapping) -> list[Pair]:
        """Pairs from a Binance ``/api/v3/exchangeInfo`` response."""
        return [Pair(s["symbol"], s["baseAsset"], s["quoteAsset"]) for s in doc.get("symbols", [])]

    @classmethod
    def trading_pairs(cls, doc: Mapping) -> list[Pair]:
        """The spot symbols of an ``exchangeInfo`` answer whose ``status`` is ``TRADING``
        (not ``BREAK``, ``HALT``, ``END_OF_DAY``...) and that allow spot trading."""
        return listed_pairs(
            doc, "symbols", "Binance exchangeInfo", ("symbol", "baseAsset", "quoteAsset"),
            lambda s: s.get("status") == "TRADING" and s.get("isSpotTradingAllowed", True) is not False,
        )

    def stream_url(self, endpoint: str, symbols: Sequence[str] | None = None) -> str:
        """The combined stream of the first :data:`URL_STREAMS` symbols (the rest: by message)."""
        streams = "/".join(_stream(s) for s in list(self.pairs if symbols is None else symbols)[:URL_STREAMS])
        url = f"{endpoint.rstrip('/')}/stream?streams={streams}"
        return url + "&timeUnit=MICROSECOND" if self.microseconds else url

    def subscribe_messages(self, symbols: Sequence[str] | None = None) -> list[str]:
        """SUBSCRIBE requests for the symbols :meth:`stream_url` leaves out (none up to 200)."""
        return self._requests("SUBSCRIBE", list(self.pairs if symbols is None else symbols)[URL_STREAMS:])

    def subscribe_more(self, symbols: Sequence[str]) -> list[str]:
        return self._requests("SUBSCRIBE", symbols)

    def unsubscribe_messages(self, symbols: Sequence[str]) -> list[str]:
        return self._requests("UNSUBSCRIBE", symbols)

    def _requests(self, method: str, symbols: Sequence[str]) -> list[str]:
        """``{"method":"SUBSCRIBE","params":["btcusdt@trade",...],"id":N}`` per batch: the
        combined stream's live subscription change (the URL holds the set at connect)."""
        return [
            json.dumps({"method": method, "params": [_stream(s) for s in symbols[i : i + STREAMS_PER_REQUEST]],
                        "id": next(self._request_ids)}, separators=(",", ":"))
            for i in range(0, len(symbols), STREAMS_PER_REQUEST)
        ]

    def parse(self, frame: str | bytes, received_us: int) -> Parsed:
        try:
            envelope = _decode_trade_frame(frame)
        except DECODE_ERRORS:  # not a well-formed trade frame: the slow path says what it is
            return self._parse_other(frame)
        trade = envelope.data
        if trade.e != "trade":
            raise NormalizeError("unexpected_frame", f"event type {clip(trade.e)!r} is not 'trade'")
        try:
            return Parsed(trades=[self._record(trade, received_us)])
        except NormalizeError as exc:
            return Parsed(rejects=[exc])

    def _record(self, trade: _Trade, received_us: int) -> dict:
        pair = self.known_pair(trade.s)
        unit = self._unit_us
        return trade_record(
            exchange_enum="BINANCE",
            pair=pair,
            trade_id=trade_id_text(trade.t, "trade id t"),
            timestamp_us=epoch_int_to_us(trade.T, unit, "T"),
            price=decimal_18_8(trade.p, "price p"),
            quantity=decimal_18_8(trade.q, "quantity q"),
            side="SELL" if trade.m else "BUY",
            ingestion_us=received_us,
            vendor_data={
                "event_time_us": str(epoch_int_to_us(trade.E, unit, "E")),
                "buyer_is_maker": "true" if trade.m else "false",
            },
        )

    def rest_time_unit_header(self) -> dict[str, str]:
        """Ask REST for the stream's time unit, so both paths give the same timestamp."""
        return {"X-MBX-TIME-UNIT": "MICROSECOND"} if self.microseconds else {}

    def parse_rest_trades(self, body: bytes, symbol: str, received_us: int) -> RestPage:
        """Parse a historicalTrades/trades body for ``symbol`` (pure). Raises
        ``NormalizeError("bad_rest_response")`` when the body is not a JSON array of trades."""
        try:
            items = _decode_rest_page(body)
        except DECODE_ERRORS:  # some element is not a trade, or the body is not JSON at all
            return self._parse_rest_items(body, symbol, received_us)
        page = RestPage(ids=[t.id for t in items if 0 <= t.id <= MAX_TRADE_ID])  # others are rejected below
        for t in items:
            try:
                page.records.append(self._rest_record(t, symbol, received_us))
            except NormalizeError as exc:
                page.rejects.append((exc, msgspec.json.encode(t)))
        return page

    def _parse_rest_items(self, body: bytes, symbol: str, received_us: int) -> RestPage:
        """Slow path: some element is not a trade; keep the good ones, reject the others."""
        doc = decode_rest_body(_decode_any, body, list, "REST body")
        page = RestPage()
        for item in doc:
            raw = msgspec.json.encode(item)
            try:
                trade = msgspec.convert(item, _RestTrade)
            except msgspec.ValidationError as exc:
                page.rejects.append((NormalizeError("bad_trade", f"REST trade does not match: {exc}"), raw))
                if isinstance(item, dict) and type(item.get("id")) is int and 0 <= item["id"] <= MAX_TRADE_ID:
                    page.ids.append(item["id"])
                continue
            if 0 <= trade.id <= MAX_TRADE_ID:  # an id out of range is rejected below, not paged on
                page.ids.append(trade.id)
            try:
                page.records.append(self._rest_record(trade, symbol, received_us))
            except NormalizeError as exc:
                page.rejects.append((exc, raw))
        return page

    def _rest_record(self, trade: _RestTrade, symbol: str, received_us: int) -> dict:
        return trade_record(
            exchange_enum="BINANCE",
            pair=self.known_pair(symbol),
            trade_id=trade_id_text(trade.id, "trade id"),
            timestamp_us=epoch_int_to_us(trade.time, self._unit_us, "time"),
            price=decimal_18_8(trade.price, "price"),
            quantity=decimal_18_8(trade.qty, "qty"),
            side="SELL" if trade.isBuyerMaker else "BUY",
            ingestion_us=received_us,
            vendor_data={"buyer_is_maker": "true" if trade.isBuyerMaker else "false", "source": "rest"},
        )

    def rest_source(self, rest_url: str, page_limit: int) -> BinanceTrades:
        return BinanceTrades(self, rest_url, page_limit)

    def _parse_other(self, frame: str | bytes) -> Parsed:
        """Slow path: anything that is not a well-formed trade frame."""
        doc = decode(_decode_any, frame)
        if not isinstance(doc, dict):
            raise NormalizeError("unexpected_frame", f"expected a JSON object, got {type(doc).__name__}")
        if "result" in doc and "id" in doc:
            return Parsed(control=Control("ack", f"id={clip(doc['id'])} result={clip(doc['result'])}"))
        if "code" in doc and "msg" in doc:
            return Parsed(control=Control("exchange_error", f"code={clip(doc['code'])} msg={clip(doc['msg'])}"))
        data = doc.get("data")
        if not isinstance(data, dict) or "stream" not in doc:
            raise NormalizeError("unexpected_frame", "not a combined-stream frame (no stream/data)")
        event = data.get("e")
        if event == "serverShutdown":
            return Parsed(control=Control("server_shutdown", f"E={clip(data.get('E'))}"))
        if event != "trade":
            raise NormalizeError("unexpected_frame", f"event type {clip(event)} is not 'trade'")
        try:
            msgspec.convert(data, _Trade)
        except msgspec.ValidationError as exc:
            raise NormalizeError("bad_trade", f"trade event does not match the @trade format: {exc}") from None
        raise NormalizeError("bad_trade", "trade frame does not match the combined-stream format")


def _stream(symbol: str) -> str:
    return f"{symbol.lower()}@trade"


class BinanceTrades(IdPagedTrades):
    """``GET /api/v3/historicalTrades?symbol=S&fromId=N&limit=L``: pages by trade id, each
    request costing REST weight; 429 (over the weight) and 418 (banned for ignoring it)
    say how long to wait in ``Retry-After``."""

    min_interval_s = 0.0  # Binance meters weight and says when to wait (429/418)
    throttle_statuses = {429: 1.0, 418: 60.0}
    exchange: Binance

    def request(self, gap: Gap, next_id: int, cursor: object) -> tuple[str, dict[str, str]]:
        query = urllib.parse.urlencode({"symbol": gap.symbol, "fromId": next_id, "limit": self.page_size(gap, next_id)})
        return f"{self.rest_url}{HISTORICAL_TRADES}?{query}", self.exchange.rest_time_unit_header()

    def latest_request(self, symbol: str) -> tuple[str, dict[str, str]]:
        query = urllib.parse.urlencode({"symbol": symbol, "limit": 1})
        return f"{self.rest_url}{RECENT_TRADES}?{query}", self.exchange.rest_time_unit_header()
