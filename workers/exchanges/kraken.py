"""Kraken WebSocket v2 ``trade`` channel.

A frame on ``wss://ws.kraken.com/v2`` after subscribing::

    {"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"sell",
     "price":94250.1,"qty":0.0125,"ord_type":"market","trade_id":81234567,
     "timestamp":"2026-01-01T00:00:00.123456Z"}]}

``price``/``qty`` are JSON numbers: decoded straight from their text into Decimal,
never through float. One frame may batch several trades; a ``snapshot`` replays the
last trades on every (re)subscribe, which yields duplicates with equal message_id.
``side`` is the taker side. ``trade_id`` is sequential per symbol, so a jump is a gap:
counted like Binance's (:mod:`workers.progress`) and backfilled over REST ``Trades``
(:mod:`workers.exchanges.kraken_rest`). Control frames: one subscribe ack per symbol
(``success:false`` carries ``error``), ``{"channel":"heartbeat"}`` about once a second,
``status`` on connect, and ``pong`` answering our application ``ping``. v1 names
(``XBT``, ``XDG``) are normalized to ``BTC``/``DOGE``.

Symbol metadata ships as ``kraken_symbols.json`` (``wsname`` of ``/0/public/AssetPairs``,
keyed by normalized names) and is refreshed from that endpoint at start.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Literal

import msgspec

from workers.base import ConnectionLimits, Control, Exchange, Parsed, Rate
from workers.batches import convert_item, parse_items
from workers.exchanges.kraken_rest import KrakenTrades
from workers.jsonframe import DECODE_ERRORS, decode
from workers.normalize import (
    NormalizeError,
    clip,
    decimal_18_8,
    rfc3339_to_us,
    trade_id_text,
    trade_record,
)
from workers.symbols import Pair

# v1 asset names the v2 API and its metadata still use in places -> the names we record.
ASSET_ALIASES = {"XBT": "BTC", "XDG": "DOGE"}


class _Trade(msgspec.Struct):
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    trade_id: int
    timestamp: str
    ord_type: str = ""


class _TradeFrame(msgspec.Struct):
    channel: Literal["trade"]
    type: str
    data: list[_Trade]


_decode_trade_frame = msgspec.json.Decoder(_TradeFrame).decode
# Generic decoding keeps JSON floats exact: msgspec hands their text to Decimal.
_decode_any = msgspec.json.Decoder(float_hook=Decimal).decode
_SIDES = {"buy": "BUY", "sell": "SELL"}
# AssetPairs ``status`` values under which a pair still trades (cancel_only and post_only
# books match nothing; delisted ones are gone); an answer without status is an older one.
TRADING_STATUSES = ("online", "limit_only", "reduce_only")

# Kraken documents no number of symbols per connection, and its WebSocket message rate
# limit is "dynamic", without a figure (https://docs.kraken.com/api/docs/guides/spot-ratelimits).
# K2's choices: 250 symbols a connection (a spot market of ~1,000 pairs in 4 shards, a
# dropped shard re-snapshots few books), one subscribe message and one new connection a
# second.
LIMITS = ConnectionLimits(per_connection=250, messages=Rate(1, 1.0), connects=Rate(1, 1.0))


class Kraken(Exchange):
    name = "kraken"
    enum_symbol = "KRAKEN"
    sends_heartbeats = True
    sequential_ids = True  # trade_id is sequential per book
    backfills = True  # REST Trades (workers.exchanges.kraken_rest)
    default_urls = ("wss://ws.kraken.com/v2",)
    urls_doc = "Kraken WebSocket v2 URLs, comma separated, tried in order on failure (failover)."
    default_symbols = ("BTC/USD", "ETH/USD", "SOL/USD", "XRP/USD", "DOGE/USD", "BTC/EUR")
    symbols_doc = "Kraken v2 pairs to capture as BASE/QUOTE (XBT/XDG are accepted and normalized)."
    default_rest_url = "https://api.kraken.com"
    rest_url_doc = ("Kraken REST base URL: base/quote metadata (AssetPairs) at start and gap backfill "
                    "(public Trades, paced to one request a second).")
    ping_interval_s = 30.0
    simulator_protocol = "workers.simulator.venues.kraken"
    limits = LIMITS

    def normalize_symbol(self, symbol: str) -> str:
        return normalize_symbol(symbol)

    @classmethod
    def metadata_url(cls, rest_url: str, symbols: Iterable[str]) -> str:
        return f"{rest_url}/0/public/AssetPairs"

    @classmethod
    def pairs_from_metadata(cls, doc: Mapping) -> list[Pair]:
        """Pairs from a Kraken ``/0/public/AssetPairs`` response, keyed by normalized wsname."""
        return asset_pairs(doc, lambda info: True)

    @classmethod
    def trading_pairs(cls, doc: Mapping) -> list[Pair]:
        """The pairs of an AssetPairs answer whose ``status`` is one that trades."""
        return asset_pairs(doc, lambda info: info.get("status", "online") in TRADING_STATUSES)

    def stream_url(self, endpoint: str, symbols: Sequence[str] | None = None) -> str:
        return endpoint

    def subscribe_messages(self, symbols: Sequence[str] | None = None) -> list[str]:
        return [self._request("subscribe", self.symbols if symbols is None else symbols, snapshot=True)]

    def unsubscribe_messages(self, symbols: Sequence[str]) -> list[str]:
        return [self._request("unsubscribe", symbols)]

    @staticmethod
    def _request(method: str, symbols: Sequence[str], **extra: object) -> str:
        params = {"channel": "trade", "symbol": list(symbols), **extra}
        return json.dumps({"method": method, "params": params, "req_id": 1})

    def rest_source(self, rest_url: str, page_limit: int) -> KrakenTrades:
        return KrakenTrades(self.pair, ASSET_ALIASES, rest_url, page_limit)

    def ping_message(self, req_id: int) -> str | None:
        return json.dumps({"method": "ping", "req_id": req_id})

    def parse(self, frame: str | bytes, received_us: int) -> Parsed:
        try:
            message = _decode_trade_frame(frame)
        except DECODE_ERRORS:  # a control frame, an odd trade item, or not JSON: the slow path says
            return self._parse_other(frame, received_us)
        return parse_items(message.data, lambda trade: self._record(trade, message.type, received_us))

    def _record(self, trade: _Trade, message_type: str, received_us: int) -> dict:
        pair = self.known_pair(self.normalize_symbol(trade.symbol), trade.symbol)
        side = _SIDES.get(trade.side)
        if side is None:
            raise NormalizeError("bad_trade", f"side {clip(trade.side)!r} is neither 'buy' nor 'sell'")
        return trade_record(
            exchange_enum="KRAKEN",
            pair=pair,
            trade_id=trade_id_text(trade.trade_id, "trade_id"),
            timestamp_us=rfc3339_to_us(trade.timestamp),
            price=decimal_18_8(trade.price, "price"),
            quantity=decimal_18_8(trade.qty, "qty"),
            side=side,
            ingestion_us=received_us,
            vendor_data={"ord_type": trade.ord_type, "type": message_type},
        )

    def _parse_other(self, frame: str | bytes, received_us: int) -> Parsed:
        """Slow path: control frames, and trade frames with at least one odd item."""
        doc = decode(_decode_any, frame)
        if not isinstance(doc, dict):
            raise NormalizeError("unexpected_frame", f"expected a JSON object, got {type(doc).__name__}")
        channel, method = doc.get("channel"), doc.get("method")
        if channel == "heartbeat":
            return Parsed(control=Control("heartbeat"))
        if channel == "status":
            return Parsed(control=Control("status", _system_status(doc.get("data"))))
        if method == "subscribe":
            return Parsed(control=_subscribe_result(doc))
        if method == "pong":
            return Parsed(control=Control("pong", f"req_id={clip(doc.get('req_id'))}"))
        if channel == "trade" and isinstance(doc.get("data"), list):
            return self._parse_items(doc, received_us)
        if doc.get("success") is False:
            return Parsed(control=Control("exchange_error", f"{clip(method)}: {clip(doc.get('error'))}"))
        raise NormalizeError("unexpected_frame", f"unknown message (channel={clip(channel)}, method={clip(method)})")

    def _parse_items(self, doc: dict, received_us: int) -> Parsed:
        """Item by item, so one bad trade in a batch does not drop its neighbours."""
        message_type = clip(doc.get("type", ""))
        return parse_items(doc["data"], lambda item: self._record(convert_item(item, _Trade, "trade does not match the v2 format"), message_type, received_us))



def asset_pairs(doc: object, keep: Callable[[Mapping], bool]) -> list[Pair]:
    """Pairs of an AssetPairs answer (``{"error":[],"result":{"XXBTZUSD":{"wsname":"XBT/USD",
    "status":"online",...}}}``) that ``keep`` accepts, keyed by normalized ``wsname``; raises
    ``ValueError`` for an error answer or a body that is not one."""
    if not isinstance(doc, Mapping):
        raise ValueError(f"Kraken AssetPairs answer is not a JSON object: {clip(doc)}")
    if doc.get("error"):
        raise ValueError(f"Kraken AssetPairs error: {clip(doc['error'], 200)}")
    result = doc.get("result")
    if not isinstance(result, Mapping):
        raise ValueError(f"Kraken AssetPairs answer has no result object: {clip(doc, 200)}")
    pairs = []
    for info in result.values():
        wsname = info.get("wsname") if isinstance(info, Mapping) else None
        if not isinstance(wsname, str) or "/" not in wsname or not keep(info):
            continue
        symbol = normalize_symbol(wsname)
        base, quote = symbol.split("/", 1)
        if base and quote:
            pairs.append(Pair(symbol, base, quote))
    return pairs


def normalize_symbol(symbol: str) -> str:
    """``XBT/USD`` -> ``BTC/USD``, ``XDG/EUR`` -> ``DOGE/EUR``; others unchanged."""
    base, sep, quote = symbol.partition("/")
    if not sep:
        return symbol
    return f"{ASSET_ALIASES.get(base, base)}/{ASSET_ALIASES.get(quote, quote)}"


def _system_status(data: object) -> str:
    """``system`` of a status message (``data: [{"system": "online", ...}]``), "?" if absent."""
    first = data[0] if isinstance(data, list) and data else None
    return clip(first.get("system", "?")) if isinstance(first, dict) else "?"


def _subscribe_result(doc: dict) -> Control:
    result = doc.get("result") if isinstance(doc.get("result"), dict) else {}
    symbol = clip(result.get("symbol") or doc.get("symbol") or "?")
    if doc.get("success") is True:
        return Control("ack", f"trade {symbol}")
    return Control("subscribe_error", f"subscribe {symbol} rejected: {clip(doc.get('error', 'no error text'))}")
