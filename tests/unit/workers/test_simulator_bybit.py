"""The simulator's Bybit frames and session, read back by the worker's Bybit parser."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from types import SimpleNamespace

import pytest

from workers.exchanges.bybit import Bybit, pairs_from_instruments_info
from workers.normalize import NormalizeError
from workers.simulator import protocols
from workers.simulator.market import SimTrade, Tape
from workers.simulator.server import Recorder, SimulatorConfig
from workers.simulator.venues import bybit as sim
from workers.symbols import Pair, SymbolTable

TABLE = SymbolTable.shipped()
SYMBOLS = ["BTCUSDT", "ETHUSDT", "DOGEUSDT"]
RECEIVED = 1767225600200000


def tape(n: int = 200) -> tuple[Tape, list[SimTrade]]:
    t = Tape(SYMBOLS, {"BTCUSDT": "BTC", "ETHUSDT": "ETH", "DOGEUSDT": "DOGE"}, 11, 2)
    return t, [t.next(1767225600000000 + 137 * i) for i in range(n)]


def as_parsed(t: SimTrade) -> tuple:
    """What the parser must give for ``t``, from the simulator's own fields."""
    return (str(t.trade_id), t.symbol, Decimal(t.price), Decimal(t.qty), t.taker.upper(), t.ts_us // 1000 * 1000)


def fields(record: dict) -> tuple:
    return (record["trade_id"], record["symbol"], record["price"], record["quantity"], record["side"],
            record["timestamp"])


def test_trade_frames_parse_to_the_same_trades():
    exchange = Bybit(SYMBOLS, TABLE)
    _, trades = tape()
    for symbol in SYMBOLS:
        mine = [t for t in trades if t.symbol == symbol]
        parsed = exchange.parse(sim.trades_frame(mine), RECEIVED)
        assert parsed.rejects == [] and parsed.control is None
        assert [fields(r) for r in parsed.trades] == [as_parsed(t) for t in mine]
        assert {r["vendor_data"]["block_trade"] for r in parsed.trades} == {"false"}
    assert {t.taker for t in trades} == {"buy", "sell"}


def test_message_time_is_after_the_last_fill():
    t = SimTrade("BTCUSDT", 7, "94250.1", "0.0021", "sell", 1767225600123456)
    doc = json.loads(sim.trades_frame([t]))
    assert (doc["topic"], doc["type"], doc["ts"]) == ("publicTrade.BTCUSDT", "snapshot", 1767225600128)
    assert doc["data"] == [{"i": "7", "T": 1767225600123, "p": "94250.1", "v": "0.0021", "S": "Sell", "seq": 7,
                            "s": "BTCUSDT", "BT": False, "RPI": False}]


WHOLE_FRAME = {"truncated_json": "malformed_json", "not_json": "malformed_json"}
ONE_TRADE = {"oversize_decimal": "decimal_out_of_range", "unknown_symbol": "unknown_symbol"}


@pytest.mark.parametrize("kind", protocols.BAD_FRAME_KINDS)
def test_every_bad_frame_kind_is_rejected_as_intended(kind):
    exchange = Bybit(SYMBOLS, TABLE)
    _, (trade, *_) = tape(1)
    raw = sim.bad(kind, trade)
    if kind in WHOLE_FRAME:
        with pytest.raises(NormalizeError) as err:
            exchange.parse(raw, RECEIVED)
        assert err.value.kind == WHOLE_FRAME[kind]
    else:
        parsed = exchange.parse(raw, RECEIVED)
        assert parsed.trades == [] and [r.kind for r in parsed.rejects] == [ONE_TRADE[kind]]


def test_every_bad_frame_kind_is_covered():
    assert set(WHOLE_FRAME) | set(ONE_TRADE) == set(protocols.BAD_FRAME_KINDS)
    with pytest.raises(ValueError):
        sim.bad("no_such_kind", tape(1)[1][0])


@pytest.mark.parametrize("frame, kind", [
    (sim.pong("c1", "ping-3"), "pong"),
    (sim.subscribed("c1", "trade-1"), "ack"),
    (sim.unknown_topic("publicTrade.NOPEUSDT", "c1", "trade-2"), "subscribe_error"),
    (sim.answer("resubscribe", False, "error:unknown op resubscribe", "c1", None), "exchange_error"),
])
def test_answers_parse_to_their_control(frame, kind):
    parsed = Bybit(SYMBOLS, TABLE).parse(frame, RECEIVED)
    assert parsed.control.kind == kind and parsed.trades == []


def test_instruments_info_answer_parses_to_its_pairs():
    pairs = [("BTCUSDT", "BTC", "USDT"), ("ETHBTC", "ETH", "BTC")]
    assert pairs_from_instruments_info(json.loads(sim.instruments_info(pairs, 1))) == [Pair(*p) for p in pairs]


# the session ---------------------------------------------------------------------------


class CapturingTransport:
    """Keeps the text of every WebSocket frame the session writes."""

    def __init__(self) -> None:
        self.frames: list[str] = []

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes) -> None:
        assert data[0] == 0x81  # one unfragmented text frame
        n, at = data[1], 2
        if n == 126:
            n, at = int.from_bytes(data[2:4], "big"), 4
        elif n == 127:
            n, at = int.from_bytes(data[2:10], "big"), 10
        assert len(data) == at + n
        self.frames.append(data[at:].decode())


class ClosingConnection(SimpleNamespace):
    """The server connection as the session uses it: a transport, and a close that is recorded."""

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


def session(t: Tape) -> tuple[sim.BybitSession, CapturingTransport]:
    transport = CapturingTransport()
    simulator = SimpleNamespace(cfg=SimulatorConfig(), recorder=Recorder(None), tapes={"bybit": t})
    return sim.BybitSession(simulator, ClosingConnection(transport=transport), 3), transport


def send(s: sim.BybitSession, request: dict) -> None:
    asyncio.run(s.on_message(json.dumps(request)))


def test_subscribe_then_trades_of_subscribed_symbols_only():
    t, _ = tape(0)
    s, transport = session(t)
    send(s, {"op": "subscribe", "args": ["publicTrade.BTCUSDT", "publicTrade.ETHUSDT"], "req_id": "trade-1"})
    assert json.loads(transport.frames.pop()) == {"success": True, "ret_msg": "subscribe", "conn_id": "sim-bybit-3",
                                                  "req_id": "trade-1", "op": "subscribe"}
    batch = [t.next(1767225600000000 + i) for i in range(60)]
    s.offer(batch)
    assert len(transport.frames) == 2  # one message per symbol per tick
    exchange = Bybit(SYMBOLS, TABLE)
    got = [fields(r) for frame in transport.frames for r in exchange.parse(frame, RECEIVED).trades]
    want = [as_parsed(x) for symbol in ("BTCUSDT", "ETHUSDT") for x in batch if x.symbol == symbol]
    assert sorted(got) == sorted(want) and len(got) == len(want) > 0
    assert not any(x[1] == "DOGEUSDT" for x in got)


def test_a_request_with_an_unknown_topic_subscribes_nothing():
    t, _ = tape(0)
    s, transport = session(t)
    send(s, {"op": "subscribe", "args": ["publicTrade.BTCUSDT", "publicTrade.NOPEUSDT"], "req_id": "trade-1"})
    answer = json.loads(transport.frames.pop())
    assert (answer["success"], answer["ret_msg"]) == (False, "error:handler not found,topic:publicTrade.NOPEUSDT")
    assert s.subscribed == set()


def test_more_than_ten_topics_in_one_request_is_refused():
    t, _ = tape(0)
    s, transport = session(t)
    send(s, {"op": "subscribe", "args": ["publicTrade.BTCUSDT"] * 11})
    answer = json.loads(transport.frames.pop())
    assert (answer["success"], answer["ret_msg"], answer["req_id"]) == (False, "error:args size 11 > 10", "")
    assert s.subscribed == set()


def test_ping_pong_unsubscribe_and_unknown_ops():
    t, _ = tape(0)
    s, transport = session(t)
    send(s, {"op": "ping", "req_id": "ping-1"})
    send(s, {"op": "subscribe", "args": ["publicTrade.BTCUSDT"]})
    send(s, {"op": "unsubscribe", "args": ["publicTrade.BTCUSDT"], "req_id": "u"})
    send(s, {"op": "resubscribe"})
    asyncio.run(s.on_message("not json"))
    kinds = [Bybit(SYMBOLS, TABLE).parse(f, RECEIVED).control.kind for f in transport.frames]
    assert kinds == ["pong", "ack", "ack", "exchange_error", "exchange_error"]
    assert s.subscribed == set()


def test_dropped_trades_are_left_out():
    t, _ = tape(0)
    s, transport = session(t)
    send(s, {"op": "subscribe", "args": [f"publicTrade.{x}" for x in SYMBOLS]})
    transport.frames.clear()
    s.drop_next = 2
    batch = [t.next(1767225600000000 + i) for i in range(10)]
    s.offer(batch)
    exchange = Bybit(SYMBOLS, TABLE)
    got = {r["trade_id"] for frame in transport.frames for r in exchange.parse(frame, RECEIVED).trades}
    assert got == {str(x.trade_id) for x in batch[2:]} and s.drop_next == 0


def test_idle_connection_is_closed_without_ping_or_data():
    t, _ = tape(0)
    s, _transport = session(t)
    s.idle_cutoff_s = 0.05
    asyncio.run(asyncio.wait_for(s._idle_cutoff(), 2.0))
    assert s.closed and s.conn.closed_with == (1000, "no ping-pong and no data for too long")


def test_a_ping_keeps_an_idle_connection_open():
    t, _ = tape(0)
    s, transport = session(t)
    s.idle_cutoff_s = 0.3

    async def ping_twice_then_idle() -> float:
        watcher = asyncio.get_running_loop().create_task(s._idle_cutoff())
        started = asyncio.get_running_loop().time()
        for _ in range(2):
            await asyncio.sleep(0.2)
            await s.on_message('{"op":"ping"}')
        await asyncio.wait_for(watcher, 2.0)
        return asyncio.get_running_loop().time() - started

    assert asyncio.run(ping_twice_then_idle()) > 0.6  # the last ping at 0.4 s plus the 0.3 s cutoff
    assert len(transport.frames) == 2 and s.closed
