"""The simulator's OKX: its frames parse to the tape's trades, its bad frames are rejected
as intended, its session answers subscribe/ping like OKX, and its REST serves the tape."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from decimal import Decimal
from types import SimpleNamespace

import pytest

from workers.exchanges import okx
from workers.exchanges.okx import Okx
from workers.normalize import NormalizeError
from workers.simulator.market import SimTrade, Tape
from workers.simulator.server import Recorder, SimulatorConfig
from workers.simulator.venues import okx as sim
from workers.symbols import SymbolTable

TABLE = SymbolTable.shipped()


def okx_tape(symbols: list[str], seed: int, archive_depth: int) -> Tape:
    """The simulated OKX market the server would build: prices on the venue's tick."""
    return Tape(symbols, {s: s.split("-")[0] for s in symbols}, seed, sim.PRICE_DECIMALS, archive_depth=archive_depth)
RECEIVED = 1767225602000000
TRADES = [
    SimTrade("BTC-USDT", 745519721, "94250.1", "0.00210000", "sell", 1767225600120999),
    SimTrade("ETH-USDT", 42, "3300.52", "1.25", "buy", 1767225600130000),
    SimTrade("PEPE-USDT", 9_000_000_000_000_000_001, "0.00000987", "1250000000", "buy", 1),
]


@pytest.fixture
def venue() -> Okx:
    return Okx(["BTC-USDT", "ETH-USDT", "PEPE-USDT"], TABLE)


def fields(record: dict) -> tuple:
    return (record["symbol"], record["trade_id"], record["price"], record["quantity"], record["side"],
            record["timestamp"])


@pytest.mark.parametrize("t", TRADES, ids=lambda t: t.symbol)
def test_simulator_push_parses_to_the_same_trade(venue, t):
    (record,) = venue.parse(sim.trade(t), RECEIVED).trades
    # OKX sends ms: the tape's µs are truncated on the wire, as on the real venue.
    assert fields(record) == (t.symbol, str(t.trade_id), Decimal(t.price), Decimal(t.qty), t.taker.upper(),
                              t.ts_us // 1000 * 1000)


def test_tape_trades_round_trip_through_frames(venue):
    tape = okx_tape(["BTC-USDT", "ETH-USDT"], 3, 100)
    trades = [tape.next(1767225600000000 + 777 * i) for i in range(200)]
    records = [r for t in trades for r in venue.parse(sim.trade(t), RECEIVED).trades]
    assert [fields(r) for r in records] == [
        (t.symbol, str(t.trade_id), Decimal(t.price), Decimal(t.qty), t.taker.upper(), t.ts_us // 1000 * 1000)
        for t in trades]


@pytest.mark.parametrize(("kind", "rejected"), [
    ("truncated_json", "malformed_json"),
    ("not_json", "malformed_json"),
])
def test_unreadable_bad_frames_are_rejected_whole(venue, kind, rejected):
    with pytest.raises(NormalizeError) as err:
        venue.parse(sim.bad(kind, TRADES[0]), RECEIVED)
    assert err.value.kind == rejected


@pytest.mark.parametrize(("kind", "rejected"), [
    ("oversize_decimal", "decimal_out_of_range"),
    ("unknown_symbol", "unknown_symbol"),
])
def test_bad_trades_are_rejected_alone(venue, kind, rejected):
    parsed = venue.parse(sim.bad(kind, TRADES[0]), RECEIVED)
    assert parsed.trades == [] and [r.kind for r in parsed.rejects] == [rejected]


def test_every_bad_frame_kind_is_built():
    from workers.simulator.protocols import BAD_FRAME_KINDS

    assert {kind: bool(sim.bad(kind, TRADES[1])) for kind in BAD_FRAME_KINDS} == dict.fromkeys(BAD_FRAME_KINDS, True)
    with pytest.raises(ValueError):
        sim.bad("nonsense", TRADES[1])


def test_control_frames_parse_as_controls(venue):
    arg = {"channel": "trades-all", "instId": "BTC-USDT"}
    controls = [venue.parse(f, RECEIVED).control for f in (
        sim.ack("subscribe", arg, "1", "0000002a"), sim.error("60018", "Wrong URL", "1", "0000002a"),
        sim.notice("0000002a"), sim.PONG)]
    assert [c.kind for c in controls] == ["ack", "subscribe_error", "server_shutdown", "pong"]


# the session -------------------------------------------------------------------------


class Transport:
    def __init__(self) -> None:
        self.frames: list[str] = []
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: bytes) -> None:
        n = data[1] & 0x7F
        start = 2 if n < 126 else 4 if n == 126 else 10
        self.frames.append(data[start:].decode())

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        self.closing = True


class Conn:
    def __init__(self) -> None:
        self.transport = Transport()
        self.closed_with: tuple[int, str] | None = None

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)
        self.transport.closing = True


def session(**cfg: object) -> sim.OkxSession:
    tape = okx_tape(["BTC-USDT", "ETH-USDT"], 2, 100)
    tasks: list[asyncio.Task] = []  # held, so the idle watch is not garbage-collected
    simulator = SimpleNamespace(cfg=SimulatorConfig(**cfg), recorder=Recorder(None), tapes={"okx": tape},
                                spawn=lambda coro: tasks.append(asyncio.ensure_future(coro)))
    return sim.OkxSession(simulator, Conn(), 42)


def sent(s: sim.OkxSession) -> list[str]:
    frames, s.conn.transport.frames = s.conn.transport.frames, []
    return frames


def test_subscribe_acks_known_instruments_and_rejects_others(venue):
    s = session()
    message = okx.subscribe_messages(["BTC-USDT", "NOPE-USDT"])[0]
    asyncio.run(s.on_message(message))
    controls = [venue.parse(f, RECEIVED).control for f in sent(s)]
    assert [(c.kind, c.detail[:40]) for c in controls] == [
        ("ack", "subscribe trades-all BTC-USDT"),
        ("subscribe_error", "code=60018 msg=Wrong URL or channel:trad"),
    ]
    assert "NOPE-USDT" in controls[1].detail and s.subscribed == {"BTC-USDT"}
    asyncio.run(s.on_message('{"op":"unsubscribe","args":[{"channel":"trades-all","instId":"BTC-USDT"}]}'))
    assert venue.parse(sent(s)[0], RECEIVED).control.detail == "unsubscribe trades-all BTC-USDT"
    assert s.subscribed == set()


@pytest.mark.parametrize(("message", "code"), [
    ("{nope", "60012"),
    ('{"op":"login","args":[]}', "60019"),
    ('{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}', "60018"),
])
def test_bad_requests_get_okx_errors(venue, message, code):
    s = session()
    asyncio.run(s.on_message(message))
    (frame,) = sent(s)
    assert json.loads(frame)["code"] == code and venue.parse(frame, RECEIVED).control.kind in (
        "subscribe_error", "exchange_error")


def test_text_ping_gets_text_pong():
    s = session()
    asyncio.run(s.on_message("ping"))
    assert sent(s) == ["pong"]


def test_offer_pushes_subscribed_trades_one_per_frame_and_drops_on_request(venue):
    s = session(duplicate_rate=0.0)
    s.subscribed = {"ETH-USDT"}
    tape = s.sim.tapes["okx"]
    batch = [tape.next(1767225600000000 + i) for i in range(40)]
    eth = [t for t in batch if t.symbol == "ETH-USDT"]
    s.drop_next = 2
    s.offer(batch)
    records = [venue.parse(f, RECEIVED).trades[0] for f in sent(s)]
    assert [r["trade_id"] for r in records] == [str(t.trade_id) for t in eth[2:]]


def test_notice_comes_before_a_planned_close(venue):
    s = session(shutdown_grace_s=0.0)
    asyncio.run(s.notify_shutdown())
    assert venue.parse(sent(s)[0], RECEIVED).control.kind == "server_shutdown"
    assert s.conn.closed_with == (1001, "server shutdown") and s.closed


def test_an_idle_connection_is_closed_like_okx_does():
    async def scenario() -> tuple[int, str] | None:
        s = session()
        s.idle_close_s = 0.05
        await s.on_open()  # no subscription, no ping: OKX closes after 30 s (here 0.05 s)
        for _ in range(200):  # poll, at most 2 s
            if s.conn.closed_with:
                break
            await asyncio.sleep(0.01)
        return s.conn.closed_with

    assert asyncio.run(scenario()) == (4004, "No data received in 30s")


# REST ---------------------------------------------------------------------------------


def get(tape, path: str = okx.HISTORY_TRADES, **query: object):
    return sim.rest_trades(path, {k: [str(v)] for k, v in query.items()}, tape)


def test_history_trades_lists_ids_below_after_newest_first_like_the_stream():
    tape = okx_tape(["BTC-USDT"], 4, 50)
    trades = [tape.next(1767225600000000 + 1000 * i) for i in range(80)]
    archive = list(tape.archive["BTC-USDT"])
    after = archive[20].trade_id
    doc = json.loads(get(tape, instId="BTC-USDT", type=1, after=after, limit=5).body)
    assert doc["code"] == "0"
    assert [int(i["tradeId"]) for i in doc["data"]] == [after - 1 - k for k in range(5)]
    by_id = {t.trade_id: t for t in trades}
    for item in doc["data"]:
        live = json.loads(sim.trade(by_id[int(item["tradeId"])]))["data"][0]
        assert item == live  # same text on both paths
    oldest = json.loads(get(tape, instId="BTC-USDT", after=archive[2].trade_id, limit=100).body)["data"]
    assert [int(i["tradeId"]) for i in oldest] == [archive[1].trade_id, archive[0].trade_id]  # 50 kept, older gone
    newest = json.loads(get(tape, okx.RECENT_TRADES, instId="BTC-USDT", limit=2).body)["data"]
    assert [int(i["tradeId"]) for i in newest] == [archive[-1].trade_id, archive[-2].trade_id]
    before = json.loads(get(tape, instId="BTC-USDT", before=archive[-4].trade_id, limit=100).body)["data"]
    assert [int(i["tradeId"]) for i in before] == [t.trade_id for t in reversed(archive[-3:])]


@pytest.mark.parametrize(("query", "status", "code"), [
    ({}, 400, "50014"),
    ({"instId": "NOPE-USDT"}, 400, "51001"),
    ({"instId": "BTC-USDT", "limit": 101}, 400, "51000"),
    ({"instId": "BTC-USDT", "after": "x"}, 400, "50014"),
    ({"instId": "BTC-USDT", "type": 2, "after": 1}, 400, "51000"),
])
def test_rest_errors_look_like_okx(query, status, code):
    reply = get(okx_tape(["BTC-USDT"], 1, 10), **query)
    assert (reply.status, json.loads(reply.body)["code"]) == (status, code)
    assert sim.rate_limited().status == 429 and json.loads(sim.rate_limited().body)["code"] == "50011"
    parts = urllib.parse.urlsplit("/api/v5/market/nope")
    assert sim.rest_trades(parts.path, {}, okx_tape(["BTC-USDT"], 1, 10)).status == 404
