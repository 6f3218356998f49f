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
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from workers.base import Control, Exchange, Parsed
from workers.normalize import NormalizeError, decimal_18_8, epoch_int_to_us, trade_record
from workers.symbols import SymbolTable


class _Trade(msgspec.Struct):
    e: str
    E: int
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool


class _Envelope(msgspec.Struct):
    stream: str
    data: _Trade


_decode_trade_frame = msgspec.json.Decoder(_Envelope).decode
_decode_any = msgspec.json.Decoder().decode


class Binance(Exchange):
    name = "binance"
    enum_symbol = "BINANCE"
    sends_heartbeats = False

    def __init__(self, symbols: Sequence[str], table: SymbolTable, *, microseconds: bool = True):
        super().__init__(symbols, table)
        self.microseconds = microseconds
        self._unit_us = 1 if microseconds else 1000

    def normalize_symbol(self, symbol: str) -> str:
        return symbol.upper()

    def stream_url(self, endpoint: str) -> str:
        streams = "/".join(f"{s.lower()}@trade" for s in self.pairs)
        url = f"{endpoint.rstrip('/')}/stream?streams={streams}"
        return url + "&timeUnit=MICROSECOND" if self.microseconds else url

    def parse(self, frame: str | bytes, received_us: int) -> Parsed:
        try:
            envelope = _decode_trade_frame(frame)
        except msgspec.ValidationError:
            return self._parse_other(frame)
        except msgspec.DecodeError as exc:
            raise NormalizeError("malformed_json", f"frame is not valid JSON: {exc}") from None
        trade = envelope.data
        if trade.e != "trade":
            raise NormalizeError("unexpected_frame", f"event type {trade.e!r} is not 'trade'")
        try:
            return Parsed(trades=[self._record(trade, received_us)])
        except NormalizeError as exc:
            return Parsed(rejects=[exc])

    def _record(self, trade: _Trade, received_us: int) -> dict:
        pair = self.pair(trade.s)
        if pair is None:
            raise NormalizeError("unknown_symbol", f"symbol {trade.s!r} is not in the symbol table")
        unit = self._unit_us
        return trade_record(
            exchange_enum="BINANCE",
            symbol=pair.symbol,
            base_asset=pair.base,
            quote_currency=pair.quote,
            trade_id=str(trade.t),
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

    def _parse_other(self, frame: str | bytes) -> Parsed:
        """Slow path: anything that is not a well-formed trade frame."""
        doc = _decode_any(frame)  # valid JSON: the typed decode got past the syntax
        if not isinstance(doc, dict):
            raise NormalizeError("unexpected_frame", f"expected a JSON object, got {type(doc).__name__}")
        if "result" in doc and "id" in doc:
            return Parsed(control=Control("ack", f"id={doc['id']} result={doc['result']!r}"))
        if "code" in doc and "msg" in doc:
            return Parsed(control=Control("exchange_error", f"code={doc['code']} msg={doc['msg']}"))
        data = doc.get("data")
        if not isinstance(data, dict) or "stream" not in doc:
            raise NormalizeError("unexpected_frame", "not a combined-stream frame (no stream/data)")
        event = data.get("e")
        if event == "serverShutdown":
            return Parsed(control=Control("server_shutdown", f"E={data.get('E')}"))
        if event != "trade":
            raise NormalizeError("unexpected_frame", f"event type {event!r} is not 'trade'")
        try:
            msgspec.convert(data, _Trade)
        except msgspec.ValidationError as exc:
            raise NormalizeError("bad_trade", f"trade event does not match the @trade format: {exc}") from None
        raise NormalizeError("bad_trade", "trade event does not match the @trade format")
