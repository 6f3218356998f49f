"""The simulator's control channel over HTTP: GETs under ``/_sim/`` on its own port.

A simulator running in its own process (``k2 simulate``, the full-market benchmark) is
driven with these; in-process, call the same :class:`~workers.simulator.server.Simulator`
methods through ``SimulatorThread.call``. Each answers JSON (400 naming what is wrong):

* ``/_sim/stats``: CPU seconds, trades published per venue, connections, listings,
  limit violations, the rate multiplier (``Simulator.stats``);
* ``/_sim/list?exchange=okx&symbol=ABCD-USDT&base=ABCD&quote=USDT[&price=1.5][&trading=0]``;
* ``/_sim/delist?exchange=okx&symbol=ABCD-USDT``;
* ``/_sim/disconnect?exchange=binance&index=1`` or ``&symbol=BTCUSDT`` (one connection;
  ``how=abort|close|shutdown``, default abort);
* ``/_sim/pause?on=1`` (``on=0`` resumes): hold the market still, connections and REST
  going on (a benchmark's end: everything sent drains before the simulator stops);
* ``/_sim/spans``: each symbol's first and last trade id sent (``--record-spans-only``).

It listens where the simulator does (127.0.0.1 by default) and changes only the
simulated market.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from k2.errors import K2Error

if TYPE_CHECKING:
    from workers.simulator.server import Simulator

PREFIX = "/_sim/"


class ControlError(K2Error, ValueError):
    """A control request the simulator cannot carry out."""


def _one(query: Mapping[str, list[str]], name: str, default: str | None = None) -> str:
    values = query.get(name)
    if values:
        return values[0]
    if default is None:
        raise ControlError(f"parameter {name!r} is missing")
    return default


def _exchange(sim: Simulator, query: Mapping[str, list[str]]) -> str:
    exchange = _one(query, "exchange")
    if exchange not in sim.markets:
        raise ControlError(f"exchange {exchange!r} is not served; served: {', '.join(sim.markets)}")
    return exchange


def answer(sim: Simulator, path: str, query: Mapping[str, list[str]]) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON document) for one control GET."""
    action = path.removeprefix(PREFIX).strip("/")
    try:
        if action == "stats":
            return 200, sim.stats()
        if action == "pause":
            sim.pause(_one(query, "on", "1") not in ("0", "false"))
            return 200, {"paused": sim.cfg.paused}
        if action == "spans":
            return 200, {"spans": sim.sent_spans()}
        if action == "list":
            listing = sim.list_symbol(_exchange(sim, query), _one(query, "symbol"), _one(query, "base"),
                                      _one(query, "quote"), (query.get("price") or [None])[0],
                                      _one(query, "trading", "1") not in ("0", "false"))
            return 200, {"listed": listing.symbol, "trading": listing.trading}
        if action == "delist":
            exchange, symbol = _exchange(sim, query), _one(query, "symbol")
            if not sim.delist_symbol(exchange, symbol):
                raise ControlError(f"{symbol!r} is not listed on {exchange}")
            return 200, {"delisted": symbol}
        if action == "disconnect":
            exchange = _exchange(sim, query)
            symbol = (query.get("symbol") or [None])[0]
            index = None if symbol is not None else int(_one(query, "index", "0"))
            conn = sim.disconnect_one(exchange, index=index, symbol=symbol, how=_one(query, "how", "abort"))
            if conn is None:
                raise ControlError(f"no open {exchange} connection "
                                   + (f"serves {symbol!r}" if symbol else f"at index {index}"))
            return 200, {"disconnected": conn}
    except (ControlError, ValueError) as exc:
        return 400, {"error": str(exc)}
    return 404, {"error": f"unknown control {action!r}; known: stats, list, delist, disconnect, pause, spans"}
