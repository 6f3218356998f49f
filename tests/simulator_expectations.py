"""Expected data from the exchange simulator's record, built independently of K2's code.

The simulator writes every trade and bad frame it sends (``--record``). These helpers
turn that record into the v3 fields a worker must produce, using only the standard
library (uuid.uuid5, Decimal, datetime) and restated constants, never the worker's own
normalization, so a bug there cannot hide in the expectation.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from workers.simulator import SimulatorConfig, SimulatorThread, read_record

NAMESPACE = uuid.UUID("6f1c2b1e-5d0a-5b8e-9c3e-4b2a7f0d1e93")  # the contract's, restated
PAIRS = {  # base/quote restated independently of workers/exchanges/*_symbols.json
    "BTCUSDT": ("BTC", "USDT"), "ETHUSDT": ("ETH", "USDT"), "SOLUSDT": ("SOL", "USDT"),
    "BTC/USD": ("BTC", "USD"), "ETH/USD": ("ETH", "USD"), "SOL/USD": ("SOL", "USD"),
    "ADAUSDT": ("ADA", "USDT"), "ADA/USD": ("ADA", "USD"),
    "BTC-USD": ("BTC", "USD"), "ETH-USD": ("ETH", "USD"), "SOL-USD": ("SOL", "USD"),
    "BTC-USDT": ("BTC", "USDT"), "ETH-USDT": ("ETH", "USDT"), "SOL-USDT": ("SOL", "USDT"),
}
# Venues whose wire carries trade times in ms (the record's time_us is the tape's µs):
# what the worker can know of a trade's time is its ms. The others send µs.
MS_VENUES = {"bybit", "okx"}
DLQ_KIND = {  # simulator bad-frame kind -> the worker's DLQ error_kind
    "truncated_json": "malformed_json", "not_json": "malformed_json",
    "oversize_decimal": "decimal_out_of_range", "unknown_symbol": "unknown_symbol",
}


@contextmanager
def recorded_simulators(directory: Path, **defaults: object) -> Iterator[Callable[..., SimulatorThread]]:
    """``make(**config)`` starts an in-thread simulator recording to its own file in
    ``directory`` (``sim.record_path``); every one started is stopped at the end."""
    started: list[SimulatorThread] = []

    def make(**overrides: object) -> SimulatorThread:
        cfg = SimulatorConfig(record=str(directory / f"record{len(started)}.jsonl"), **{**defaults, **overrides})
        sim = SimulatorThread(cfg)
        sim.record_path = cfg.record
        started.append(sim)
        return sim

    try:
        yield make
    finally:
        for sim in started:
            try:
                sim.stop()
            except Exception:  # noqa: BLE001 - already stopped
                pass


def wire_time_us(time_wire: object, unit: str) -> int:
    """A trade time as the simulator wrote it on the wire, in µs since the epoch."""
    if unit == "rfc3339":
        dt = datetime.fromisoformat(str(time_wire).replace("Z", "+00:00"))
        return int(dt.timestamp()) * 1_000_000 + dt.microsecond
    return int(time_wire) * {"us": 1, "ms": 1000}[unit]


def expected_trades(record_path: str, exchange: str,
                    pairs: dict[str, tuple[str, str]] | None = None) -> dict[tuple[str, str], dict]:
    """(symbol, trade_id) -> the v3 fields the worker must produce, per the record
    (``pairs``: base/quote of symbols beyond :data:`PAIRS`, e.g. a generated universe's,
    as the simulator lists them)."""
    pairs = {**PAIRS, **(pairs or {})}
    expected: dict[tuple[str, str], dict] = {}
    for ev in read_record(record_path):
        if ev.get("ev") != "trade" or ev["exchange"] != exchange:
            continue
        ts = wire_time_us(ev["time_wire"], ev["time_unit"])
        enum = exchange.upper()
        base, quote = pairs[ev["symbol"]]
        expected[(ev["symbol"], ev["trade_id"])] = {
            "message_id": str(uuid.uuid5(NAMESPACE, f"{enum}:{ev['symbol']}:{ev['trade_id']}")),
            "trade_id": ev["trade_id"],
            "symbol": ev["symbol"],
            "exchange": enum,
            "timestamp": ts,
            "price": Decimal(ev["price_wire"]),
            "quantity": Decimal(ev["qty_wire"]),
            "base_asset": base,
            "quote_currency": quote,
            "side": ev["taker"].upper(),  # the simulator's ground truth, not the wire flag
        }
    return expected


def published_trades(record_path: str, exchange: str,
                     pairs: dict[str, tuple[str, str]] | None = None) -> dict[tuple[str, str], dict]:
    """(symbol, trade_id) -> v3 fields of every trade the market published for each symbol
    a client received, from the first to the last trade any connection was sent (per
    symbol): what a complete history of the run holds, whatever the stream left out
    (drops, reconnects, a dead worker). Trades published after the last one sent are
    out: no client can know of them (they show up as a gap only once a later trade
    arrives). Times are the tape's µs, cut to ms for venues whose wire has only ms.
    ``pairs`` as for :func:`expected_trades`."""
    pairs = {**PAIRS, **(pairs or {})}
    events = read_record(record_path)
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for ev in events:
        if ev.get("ev") == "trade" and ev["exchange"] == exchange:
            tid = int(ev["trade_id"])
            first[ev["symbol"]] = min(tid, first.get(ev["symbol"], tid))
            last[ev["symbol"]] = max(tid, last.get(ev["symbol"], tid))
    expected: dict[tuple[str, str], dict] = {}
    enum = exchange.upper()
    for ev in events:
        if ev.get("ev") != "published" or ev["exchange"] != exchange:
            continue
        symbol = ev["symbol"]
        if symbol not in first or not first[symbol] <= int(ev["trade_id"]) <= last[symbol]:
            continue
        base, quote = pairs[symbol]
        expected[(symbol, ev["trade_id"])] = {
            "message_id": str(uuid.uuid5(NAMESPACE, f"{enum}:{symbol}:{ev['trade_id']}")),
            "trade_id": ev["trade_id"],
            "symbol": symbol,
            "exchange": enum,
            "timestamp": ev["time_us"] // 1000 * 1000 if exchange in MS_VENUES else ev["time_us"],
            "price": Decimal(ev["price_wire"]),
            "quantity": Decimal(ev["qty_wire"]),
            "base_asset": base,
            "quote_currency": quote,
            "side": ev["taker"].upper(),
        }
    return expected


def bad_frames(record_path: str, exchange: str) -> list[dict]:
    return [e for e in read_record(record_path) if e.get("ev") == "bad_frame" and e["exchange"] == exchange]


def unserved_ranges(record_path: str, exchange: str) -> dict[str, list[tuple[int, int]]]:
    """symbol -> the ids (as [first, last] ranges) of trades the market published between
    the first and the last trade any connection was sent, that no connection was sent
    and no REST answer listed: what no client could have recovered."""
    events = read_record(record_path)
    reached: dict[str, set[int]] = {}
    for ev in events:
        if ev.get("ev") == "trade" and ev["exchange"] == exchange:
            reached.setdefault(ev["symbol"], set()).add(int(ev["trade_id"]))
    span = {symbol: (min(ids), max(ids)) for symbol, ids in reached.items()}
    for ev in events:
        if ev.get("ev") == "rest" and ev["exchange"] == exchange and ev.get("count"):
            reached.setdefault(ev["symbol"], set()).update(range(int(ev["first_id"]), int(ev["last_id"]) + 1))
    out: dict[str, list[tuple[int, int]]] = {}
    for ev in events:
        if ev.get("ev") != "published" or ev["exchange"] != exchange or ev["symbol"] not in span:
            continue
        tid, (first, last) = int(ev["trade_id"]), span[ev["symbol"]]
        if first <= tid <= last and tid not in reached[ev["symbol"]]:
            ranges = out.setdefault(ev["symbol"], [])
            if ranges and ranges[-1][1] == tid - 1:
                ranges[-1] = (ranges[-1][0], tid)
            else:
                ranges.append((tid, tid))
    return out
