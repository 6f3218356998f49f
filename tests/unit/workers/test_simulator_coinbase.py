"""The simulated Coinbase speaks what the Coinbase parser reads: a simulator frame parses
back to the tape's trade, each bad frame kind is rejected as intended, the REST history
answers from the same tape, and a session handles subscribes like the venue."""

from __future__ import annotations

import json
from decimal import Decimal
from types import SimpleNamespace

import pytest

from workers.exchanges.coinbase import Coinbase
from workers.normalize import NormalizeError
from workers.simulator.market import SimTrade, Tape
from workers.simulator.protocols import BAD_FRAME_KINDS
from workers.simulator.server import Recorder, SimulatorConfig
from workers.simulator.session import RateWindow
from workers.simulator.venues import coinbase as sim
from workers.symbols import SymbolTable

RECEIVED = 1767225600200000
PRODUCTS = ["BTC-USD", "ETH-USD"]
TABLE = SymbolTable.shipped()


def tape(trades: int = 400, depth: int = 1000) -> Tape:
    t = Tape(PRODUCTS, {"BTC-USD": "BTC", "ETH-USD": "ETH"}, 11, 2, archive_depth=depth)
    for i in range(trades):
        t.next(1767225600000000 + 1000 * i)
    return t


@pytest.fixture
def parser() -> Coinbase:
    return Coinbase(PRODUCTS, TABLE)


def as_tape_trade(record: dict) -> tuple:
    """A record in the tape's terms: what must survive simulator -> parser unchanged."""
    return (record["symbol"], int(record["trade_id"]), record["price"], record["quantity"],
            record["side"].lower(), record["timestamp"])


def expected(t: SimTrade) -> tuple:
    return t.symbol, t.trade_id, Decimal(t.price), Decimal(t.qty), t.taker, t.ts_us


def test_every_simulated_match_parses_back_to_its_tape_trade(parser):
    trades = [t for history in tape().history.values() for t in history]
    assert {t.taker for t in trades} == {"buy", "sell"} and len(trades) == 100
    for t in trades:
        for kind in ("match", "last_match"):
            (record,) = parser.parse(sim.match(t, kind), RECEIVED).trades
            assert as_tape_trade(record) == expected(t)
            assert record["vendor_data"]["type"] == kind
            assert record["vendor_data"]["maker_side"] != t.taker  # the wire carries the maker's side


def test_simulated_controls_parse_as_controls(parser):
    beat = parser.parse(sim.heartbeat("BTC-USD", 42, 1767225600000000), RECEIVED).control
    assert (beat.kind, beat.detail) == ("heartbeat", "BTC-USD last_trade_id=42")
    ack = parser.parse(sim.subscriptions({"matches": {"ETH-USD", "BTC-USD"}, "heartbeat": set()}), RECEIVED).control
    assert (ack.kind, ack.detail) == ("ack", "matches: BTC-USD,ETH-USD")
    err = parser.parse(sim.error("Failed to subscribe", "NOPE-USD is not a valid product"), RECEIVED).control
    assert (err.kind, err.detail) == ("subscribe_error", "Failed to subscribe: NOPE-USD is not a valid product")


REJECTIONS = {  # bad frame kind -> how the parser rejects it: a whole frame (raise) or one trade
    "truncated_json": ("frame", "malformed_json"),
    "not_json": ("frame", "malformed_json"),
    "oversize_decimal": ("trade", "decimal_out_of_range"),
    "unknown_symbol": ("trade", "unknown_symbol"),
}


@pytest.mark.parametrize("kind", BAD_FRAME_KINDS)
def test_each_bad_frame_kind_is_rejected_as_intended(parser, kind):
    t = SimTrade("BTC-USD", 929248657, "94250.01", "0.00210000", "sell", 1767225600123456)
    where, reject = REJECTIONS[kind]
    if where == "frame":
        with pytest.raises(NormalizeError) as err:
            parser.parse(sim.bad(kind, t), RECEIVED)
        assert err.value.kind == reject
    else:
        parsed = parser.parse(sim.bad(kind, t), RECEIVED)
        assert parsed.trades == [] and [r.kind for r in parsed.rejects] == [reject]


def test_every_bad_frame_kind_is_covered_and_unknown_kinds_are_refused():
    assert set(REJECTIONS) == set(BAD_FRAME_KINDS)
    with pytest.raises(ValueError, match="unknown bad frame kind"):
        sim.bad("nope", SimTrade("BTC-USD", 1, "1", "1", "buy", 0))


# REST ------------------------------------------------------------------------------------


def get(t: Tape, path: str, **query: object):
    return sim.rest_trades(path, {k: [str(v)] for k, v in query.items()}, t)


def test_after_before_and_latest_pages_list_newest_first_with_cursors():
    t = tape()
    archive = list(t.archive["BTC-USD"])
    newest = archive[-1].trade_id
    after = get(t, "/products/BTC-USD/trades", after=newest - 10, limit=5)
    assert [i["trade_id"] for i in json.loads(after.body)] == list(range(newest - 11, newest - 16, -1))
    assert after.headers == {"CB-BEFORE": str(newest - 11), "CB-AFTER": str(newest - 15)}
    before = get(t, "/products/BTC-USD/trades", before=newest - 10, limit=3)
    assert [i["trade_id"] for i in json.loads(before.body)] == [newest - 7, newest - 8, newest - 9]
    latest = get(t, "/products/BTC-USD/trades", limit=2)
    assert [i["trade_id"] for i in json.loads(latest.body)] == [newest, newest - 1]
    oldest = archive[0].trade_id
    assert json.loads(get(t, "/products/BTC-USD/trades", after=oldest).body) == []
    assert [i["trade_id"] for i in json.loads(get(t, "/products/BTC-USD/trades", after=oldest + 2).body)] == [
        oldest + 1, oldest]


def test_rest_items_are_the_stream_frames_trades(parser):
    t = tape()
    reply = get(t, "/products/ETH-USD/trades", limit=20)
    page = parser.parse_rest_trades(reply.body.encode(), "ETH-USD", RECEIVED)
    assert page.rejects == [] and len(page.records) == 20
    for record, trade in zip(page.records, reply.trades, strict=True):
        assert as_tape_trade(record) == expected(trade)
        (stream,) = parser.parse(sim.match(trade), RECEIVED).trades
        assert record["message_id"] == stream["message_id"]


@pytest.mark.parametrize("path, query, status, message", [
    ("/products/NOPE-USD/trades", {}, 404, "NotFound"),
    ("/products/BTC-USD/book", {}, 404, "route not found"),
    ("/products/BTC-USD/trades", {"limit": "1001"}, 400, "limit must be between 1 and 1000"),
    ("/products/BTC-USD/trades", {"after": "x"}, 400, "Invalid pagination parameter"),
])
def test_rest_errors_read_like_coinbase(path, query, status, message):
    reply = sim.rest_trades(path, {k: [v] for k, v in query.items()}, tape())
    assert (reply.status, json.loads(reply.body)) == (status, {"message": message})
    assert sim.rate_limited().status == 429


# session ---------------------------------------------------------------------------------


class Wire:
    """A transport that keeps what the session wrote, as text frames."""

    def __init__(self) -> None:
        self.data = b""

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.data += data

    def get_write_buffer_size(self) -> int:
        return 0

    def frames(self) -> list[str]:
        out, data = [], self.data
        while data:
            n, at = data[1] & 0x7F, 2
            if n == 126:
                n, at = int.from_bytes(data[2:4], "big"), 4
            out.append(data[at : at + n].decode())
            data = data[at + n :]
        self.data = b""
        return out


def session(t: Tape) -> tuple[sim.CoinbaseSession, Wire]:
    wire = Wire()
    fake = SimpleNamespace(cfg=SimulatorConfig(), recorder=Recorder(None), tapes={"coinbase": t},
                           spawn=lambda coro: coro.close(), sessions=lambda exchange: [],
                           client_messages={"coinbase": RateWindow(100, 1.0)})
    return sim.CoinbaseSession(fake, SimpleNamespace(transport=wire), 1), wire


def test_a_subscribe_is_acked_then_last_match_per_product_then_matches(parser):
    t = tape()
    s, wire = session(t)
    s.handle(json.dumps({"type": "subscribe", "product_ids": PRODUCTS, "channels": ["matches", "heartbeat"]}))
    ack, *last = [parser.parse(f, RECEIVED) for f in wire.frames()]
    assert ack.control.detail == "matches: BTC-USD,ETH-USD; heartbeat: BTC-USD,ETH-USD"
    assert [as_tape_trade(p.trades[0]) for p in last] == [expected(t.history[p][-1]) for p in PRODUCTS]
    batch = [t.next(1767225700000000) for _ in range(30)]
    s.offer(batch)
    assert [as_tape_trade(parser.parse(f, RECEIVED).trades[0]) for f in wire.frames()] == [expected(x) for x in batch]
    s.send_heartbeats(1767225700000000)
    beats = [parser.parse(f, RECEIVED).control.detail for f in wire.frames()]
    assert beats == [f"{p} last_trade_id={t.next_id[p] - 1}" for p in PRODUCTS]


def test_channel_objects_unsubscribe_and_dropped_trades():
    t = tape()
    s, wire = session(t)
    s.handle(json.dumps({"type": "subscribe", "channels": [{"name": "matches", "product_ids": ["ETH-USD"]}]}))
    assert json.loads(wire.frames()[0])["channels"] == [{"name": "matches", "product_ids": ["ETH-USD"]}]
    s.drop_next = 1
    eth = [x for x in (t.next(1767225700000000) for _ in range(40)) if x.symbol == "ETH-USD"]
    s.offer(eth)
    assert [json.loads(f)["trade_id"] for f in wire.frames()] == [x.trade_id for x in eth[1:]]  # the first left out
    s.handle(json.dumps({"type": "unsubscribe", "product_ids": ["ETH-USD"], "channels": ["matches"]}))
    assert json.loads(wire.frames()[0]) == {"type": "subscriptions", "channels": []}
    s.offer([t.next(1767225700000000) for _ in range(10)])
    assert wire.frames() == []


@pytest.mark.parametrize("request_, reason", [
    ({"type": "subscribe", "product_ids": ["BTC-USD", "NOPE-USD"], "channels": ["matches"]},
     "NOPE-USD is not a valid product"),
    ({"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["level3"]}, "level3 is not a valid channel"),
    ({"type": "subscribe", "channels": ["matches"]}, "You need to specify at least one product ID for channel matches"),
    ({"type": "subscribe", "product_ids": ["BTC-USD"]}, "No channels provided"),
    ({"type": "hello"}, "'hello' is not a valid message type"),
])
def test_a_bad_subscribe_is_refused_whole(parser, request_, reason):
    s, wire = session(tape())
    s.handle(json.dumps(request_))
    (frame,) = wire.frames()
    assert json.loads(frame)["reason"] == reason
    assert parser.parse(frame, RECEIVED).control.kind in ("subscribe_error", "exchange_error")
    assert s.channels == {"matches": set(), "heartbeat": set()}
    s.handle("not json")
    assert json.loads(wire.frames()[0])["message"] == "Malformed JSON"
