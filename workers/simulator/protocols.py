"""Wire formats of the simulated exchanges (as in docs/exchanges.md).

Pure functions from simulator trades to frame text, plus the malformed frames the
simulator can inject. Frames are built with f-strings: they are the simulator's hot
path when benchmarking.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from workers.simulator.market import SimTrade

BAD_FRAME_KINDS = ("truncated_json", "not_json", "oversize_decimal", "unknown_symbol")


def rfc3339(ts_us: int) -> str:
    dt = datetime.fromtimestamp(ts_us // 1_000_000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ts_us % 1_000_000:06d}Z"


# Binance -------------------------------------------------------------------------


def binance_time(ts_us: int, microseconds: bool) -> int:
    return ts_us if microseconds else ts_us // 1000


def binance_trade(t: SimTrade, microseconds: bool, event_lag_us: int = 5000) -> str:
    T = binance_time(t.ts_us, microseconds)
    E = binance_time(t.ts_us + event_lag_us, microseconds)
    m = "true" if t.taker == "sell" else "false"  # buyer is maker <=> taker sold
    return (
        f'{{"stream":"{t.symbol.lower()}@trade","data":{{"e":"trade","E":{E},"s":"{t.symbol}",'
        f'"t":{t.trade_id},"p":"{t.price}","q":"{t.qty}","T":{T},"m":{m},"M":true}}}}'
    )


def binance_server_shutdown(now_us: int) -> str:
    return f'{{"stream":"!serverShutdown","data":{{"e":"serverShutdown","E":{now_us // 1000}}}}}'


def binance_bad(kind: str, t: SimTrade, microseconds: bool) -> str:
    good = binance_trade(t, microseconds)
    if kind == "truncated_json":
        return good[: len(good) // 2]
    if kind == "not_json":
        return "<html><body>502 Bad Gateway</body></html>"
    if kind == "oversize_decimal":
        return good.replace(f'"p":"{t.price}"', f'"p":"{t.price}123456789"')
    if kind == "unknown_symbol":
        return good.replace(f'"s":"{t.symbol}"', '"s":"NOPEUSDT"')
    raise ValueError(kind)


# Kraken --------------------------------------------------------------------------


def kraken_number(text: str, exponent: bool) -> str:
    """Decimal text as a JSON number, optionally in exponent form (as Kraken sometimes sends)."""
    if exponent and "." in text:
        digits = text.replace(".", "").lstrip("0") or "0"
        point = len(text.split(".")[1])
        return f"{digits}e-{point}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def kraken_item(t: SimTrade, exponent_qty: bool = False) -> str:
    return (
        f'{{"symbol":"{t.symbol}","side":"{t.taker}","price":{kraken_number(t.price, False)},'
        f'"qty":{kraken_number(t.qty, exponent_qty)},"ord_type":"market","trade_id":{t.trade_id},'
        f'"timestamp":"{rfc3339(t.ts_us)}"}}'
    )


def kraken_trades(items: list[str], snapshot: bool = False) -> str:
    kind = "snapshot" if snapshot else "update"
    return f'{{"channel":"trade","type":"{kind}","data":[{",".join(items)}]}}'


def kraken_status(connection_id: int) -> str:
    return json.dumps({"channel": "status", "type": "update", "data": [
        {"api_version": "v2", "connection_id": connection_id, "system": "online", "version": "2.0.10"}]})


HEARTBEAT = '{"channel":"heartbeat"}'


def kraken_ack(symbol: str, req_id: object, snapshot: bool, now_us: int) -> str:
    return json.dumps({
        "method": "subscribe",
        "result": {"channel": "trade", "symbol": symbol, "snapshot": snapshot},
        "success": True, "time_in": rfc3339(now_us), "time_out": rfc3339(now_us), "req_id": req_id,
    })


def kraken_error(method: str, error: str, req_id: object, now_us: int, symbol: str | None = None) -> str:
    doc: dict = {"error": error, "method": method, "req_id": req_id, "success": False,
                 "time_in": rfc3339(now_us), "time_out": rfc3339(now_us)}
    if symbol is not None:
        doc["symbol"] = symbol
    return json.dumps(doc)


def kraken_pong(req_id: object, now_us: int) -> str:
    return json.dumps({"method": "pong", "req_id": req_id, "time_in": rfc3339(now_us), "time_out": rfc3339(now_us)})


def kraken_bad(kind: str, t: SimTrade) -> str:
    good = kraken_trades([kraken_item(t)])
    if kind == "truncated_json":
        return good[: len(good) // 2]
    if kind == "not_json":
        return "<html><body>502 Bad Gateway</body></html>"
    if kind == "oversize_decimal":
        return good.replace(f'"price":{kraken_number(t.price, False)}', '"price":1.123456789', 1)
    if kind == "unknown_symbol":
        return good.replace(f'"symbol":"{t.symbol}"', '"symbol":"NOPE/USD"')
    raise ValueError(kind)
