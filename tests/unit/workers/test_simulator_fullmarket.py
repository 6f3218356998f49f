"""The served full market on loopback: venue limits refuse a client the venue's way, the
control channel lists, delists and drops one connection, bursts are recorded (no Kafka;
clients are plain WebSocket/HTTP clients, not workers)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from k2.polling import wait_until
from simulator_expectations import recorded_simulators
from workers.simulator import SimulatorConfig, SimulatorThread, control, read_record
from workers.simulator.schedule import Bursts
from workers.simulator.server import Simulator


@pytest.fixture
def make_sim(tmp_path) -> Iterator:
    with recorded_simulators(tmp_path, seed=3) as make:
        yield make


def records(sim: SimulatorThread, ev: str) -> list[dict]:
    sim.call(sim.sim.recorder.flush)
    return [e for e in read_record(sim.record_path) if e.get("ev") == ev]


def get(sim: SimulatorThread, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{sim.port}{path}", timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def closed_with(ws: ClientConnection, timeout: float = 5.0) -> tuple[int | None, str | None]:
    """Read until the server closes; its close code and reason."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    except ConnectionClosed as exc:
        return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, None)
    except TimeoutError:
        pass
    raise AssertionError("the server did not close the connection")


def binance_streams(sim: SimulatorThread, count: int) -> list[str]:
    return [f"{s.lower()}@trade" for s in sim.sim.tapes["binance"].symbols[:count]]


def test_binance_closes_a_connection_past_1024_streams(make_sim):
    sim = make_sim(universe={"binance": 1100}, paused=True)
    streams = binance_streams(sim, 1100)
    with connect(f"ws://127.0.0.1:{sim.port}/stream") as ws:
        for at, req_id in ((0, 1), (500, 2)):
            ws.send(json.dumps({"method": "SUBSCRIBE", "params": streams[at : at + 500], "id": req_id}))
            assert json.loads(ws.recv(timeout=5)) == {"result": None, "id": req_id}
        ws.send(json.dumps({"method": "SUBSCRIBE", "params": streams[1000:1100], "id": 3}))  # 1,100 in all
        code, reason = closed_with(ws)
    assert code == 1008 and "1100 streams > 1024" in reason
    (limit,) = records(sim, "limit")
    assert (limit["exchange"], limit["limit"]) == ("binance", "streams_per_connection")
    # The same 1,100 in the URL: refused as soon as it opens (the URL itself is accepted: ~20 KB).
    with connect(f"ws://127.0.0.1:{sim.port}/stream?streams={'/'.join(streams)}") as ws:
        assert closed_with(ws)[0] == 1008
    with connect(f"ws://127.0.0.1:{sim.port}/stream?streams={'/'.join(streams[:1024])}") as ws:
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 9}))
        assert len(json.loads(ws.recv(timeout=5))["result"]) == 1024
    assert sim.call(sim.sim.stats)["limit_violations"]["binance"] == 2


def test_binance_closes_a_connection_past_5_messages_a_second(make_sim):
    sim = make_sim(paused=True)
    with connect(f"ws://127.0.0.1:{sim.port}/stream") as ws:
        for req_id in range(5):
            ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": req_id}))
            assert json.loads(ws.recv(timeout=5))["id"] == req_id
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 5}))
        assert closed_with(ws) == (1008, "Too many requests")
    assert records(sim, "limit")[0]["limit"] == "messages_per_second"


def test_coinbase_rejects_an_eleventh_subscription_to_a_product_and_channel(make_sim):
    sim = make_sim(paused=True)
    url = f"ws://127.0.0.1:{sim.port}/ws-feed"
    subscribe = json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches"]})
    with ExitStack() as stack:
        answers = []
        for ws in [stack.enter_context(connect(url)) for _ in range(11)]:
            ws.send(subscribe)
            answers.append(json.loads(ws.recv(timeout=5)))
    assert [a["type"] for a in answers] == ["subscriptions"] * 10 + ["error"]
    assert "the most is 10 per product and channel" in answers[-1]["reason"]


def test_okx_refuses_the_fourth_connection_in_a_second_with_connect_limits(make_sim):
    sim = make_sim(paused=True, connect_limits=True)
    url = f"ws://127.0.0.1:{sim.port}/ws/v5/business"
    with ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(connect(url))
        assert handshake(url) == 429
    wait_until(lambda: handshake(url) == 101, 5, "a token to come back", interval=0.4)
    assert records(sim, "limit")[0]["limit"] == "connects_per_ip"


def handshake(url: str) -> int:
    """The HTTP status a WebSocket handshake to ``url`` gets (101: connected)."""
    try:
        with connect(url):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


def okx_client(sim: SimulatorThread, *symbols: str) -> ClientConnection:
    # A short close timeout: the simulator may have dropped the connection already.
    ws = connect(f"ws://127.0.0.1:{sim.port}/ws/v5/business", close_timeout=1).__enter__()  # closed by the test
    ws.send(json.dumps({"op": "subscribe", "args": [{"channel": "trades-all", "instId": s} for s in symbols]}))
    for _ in symbols:
        assert json.loads(ws.recv(timeout=5))["event"] == "subscribe"
    return ws


def trades_of(ws: ClientConnection, seconds: float) -> list[str]:
    """instIds of the trades received within ``seconds``."""
    out, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            doc = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            break
        out += [d["instId"] for d in doc.get("data", [])]
    return out


def test_list_trade_delist_and_drop_one_connection_over_the_control_channel(make_sim):
    sim = make_sim(universe={"okx": 50}, rate=400.0)
    status, answer = get(sim, "/_sim/list?exchange=okx&symbol=NEWX-USDT&base=NEWX&quote=USDT&price=2.5")
    assert (status, answer) == (200, {"listed": "NEWX-USDT", "trading": True})
    _, meta = get(sim, "/api/v5/public/instruments?instType=SPOT")
    assert {"instId": "NEWX-USDT", "baseCcy": "NEWX", "state": "live"}.items() <= next(
        d for d in meta["data"] if d["instId"] == "NEWX-USDT").items()
    new, old = okx_client(sim, "NEWX-USDT"), okx_client(sim, "BTC-USDT")
    try:
        wait_until(lambda: "NEWX-USDT" in trades_of(new, 0.5), 10, "trades of the new listing")
        assert get(sim, "/_sim/delist?exchange=okx&symbol=NEWX-USDT") == (200, {"delisted": "NEWX-USDT"})
        _, meta = get(sim, "/api/v5/public/instruments?instType=SPOT")
        assert "NEWX-USDT" not in {d["instId"] for d in meta["data"]} and len(meta["data"]) == 50
        trades_of(new, 0.3)  # what was in flight
        assert trades_of(new, 1.0) == []
        # One shard dropped: the one serving NEWX-USDT; the other goes on.
        status, answer = get(sim, "/_sim/disconnect?exchange=okx&symbol=NEWX-USDT")
        assert status == 200
        with pytest.raises(ConnectionClosed):
            trades_of(new, 5)
        assert "BTC-USDT" in trades_of(old, 2.0)
    finally:
        new.close()
        old.close()
    (event,) = [e for e in records(sim, "control") if e["kind"] == "disconnect_one"]
    assert event["conn"] == answer["disconnected"]
    assert get(sim, "/_sim/disconnect?exchange=okx&index=5")[0] == 400
    stats = get(sim, "/_sim/stats")[1]
    assert stats["listed"]["okx"] == 50 and stats["published"]["okx"] > 0 and stats["cpu_s"] > 0


def test_disconnect_one_by_index_leaves_the_others(make_sim):
    sim = make_sim(rate=200.0)
    clients = [okx_client(sim, "BTC-USDT") for _ in range(3)]
    try:
        conns = sorted(s.id for s in sim.call(sim.sim.sessions, "okx"))
        assert sim.call(sim.sim.disconnect_one, "okx", 1) == conns[1]
        with pytest.raises(ConnectionClosed):
            trades_of(clients[1], 5)
        assert all("BTC-USDT" in trades_of(c, 1.0) for c in (clients[0], clients[2]))
    finally:
        for c in clients:
            c.close()


@given(st.sampled_from(["stats", "list", "delist", "disconnect", "nope", ""]),
       st.dictionaries(st.sampled_from(["exchange", "symbol", "base", "quote", "index", "how", "trading", "price"]),
                       st.lists(st.text(max_size=12), min_size=1, max_size=2), max_size=6))
def test_a_bad_control_request_is_a_clear_error_never_a_crash(action, query):
    sim = Simulator(SimulatorConfig(symbols={"okx": ("BTC-USDT",)}))
    status, doc = control.answer(sim, control.PREFIX + action, query)
    assert status in (200, 400, 404)
    assert ("error" in doc) == (status != 200)


def test_bursts_multiply_the_rate_and_the_record_says_when(make_sim):
    sim = make_sim(rates={"okx": 100.0}, bursts=Bursts(10, 1.0, 1000, 1.0), symbols={"okx": ("BTC-USDT",)})
    wait_until(lambda: len(records(sim, "rate")) >= 2, 10, "a burst to start and end")
    up, down = records(sim, "rate")[:2]
    assert (up["multiplier"], down["multiplier"]) == (10, 1) and 0.8e6 < down["time_us"] - up["time_us"] < 1.5e6
    published = [e["time_us"] for e in records(sim, "published")]
    during = sum(up["time_us"] <= t < down["time_us"] for t in published)
    before = sum(t < up["time_us"] for t in published)
    assert during > 3 * before  # ~1,000 in the burst's second against ~100 in the second before


def test_a_starved_loop_skips_what_it_cannot_publish_rather_than_publishing_it_in_one_lump(make_sim):
    sim = make_sim(rates={"okx": 1000.0}, symbols={"okx": ("BTC-USDT",)})
    wait_until(lambda: sim.call(sim.sim.stats)["published"]["okx"] > 200, 10, "the market to trade")
    sim.call(time.sleep, 3.0)  # the loop held for three seconds, as by a busy machine
    wait_until(lambda: sim.call(sim.sim.stats)["behind"]["okx"] >= 1700, 10, "the skipped seconds counted")
    ticks = {}
    for e in records(sim, "published"):
        ticks[e["time_us"]] = ticks.get(e["time_us"], 0) + 1
    assert max(ticks.values()) <= 1000  # no tick published more than 1 s of the rate


def test_at_a_fixed_rate_a_slow_reader_is_dropped_and_the_others_go_on(make_sim, monkeypatch):
    from workers.simulator import server

    monkeypatch.setattr(server, "SLOW_CONSUMER_BYTES", 200_000)
    sim = make_sim(rates={"okx": 3000.0}, symbols={"okx": ("BTC-USDT", "ETH-USDT")})
    slow, fast = okx_client(sim, "BTC-USDT"), okx_client(sim, "BTC-USDT")
    got: list[str] = []
    done = threading.Event()

    def read_all_along() -> None:  # ``fast`` reads all along, in its own thread
        while not done.is_set():
            got.extend(trades_of(fast, 0.2))

    reader = threading.Thread(target=read_all_along, daemon=True)
    reader.start()
    try:
        # ``slow`` never reads: its socket fills, then the simulator's buffer past the bound.
        (dropped,) = wait_until(lambda: [e for e in records(sim, "limit") if e["limit"] == "slow_consumer"], 120,
                                "the slow reader dropped")
        seen = len(got)
        wait_until(lambda: len(got) > seen + 100, 10, "the other reader still served")
        assert reader.is_alive()  # it was not dropped
        with pytest.raises(ConnectionClosed):
            trades_of(slow, 30)
    finally:
        done.set()
        reader.join(5)
        slow.close()
        fast.close()


def test_pause_holds_the_market_while_connections_drain_and_spans_say_what_was_sent(make_sim):
    sim = make_sim(rates={"okx": 500.0}, symbols={"okx": ("BTC-USDT", "ETH-USDT")}, record_sent=False)
    client = okx_client(sim, "BTC-USDT")
    try:
        received = trades_of(client, 1.0)
        assert get(sim, "/_sim/pause?on=1") == (200, {"paused": True})
        published = get(sim, "/_sim/stats")[1]["published"]["okx"]
        received += trades_of(client, 1.0)  # what was in flight
        assert trades_of(client, 1.0) == [] and get(sim, "/_sim/stats")[1]["published"]["okx"] == published
        assert get(sim, "/_sim/stats")[1]["unsent_bytes"]["okx"] == 0
        (span,) = get(sim, "/_sim/spans")[1]["spans"]
        assert span[:2] == ["okx", "BTC-USDT"] and span[3] - span[2] + 1 == received.count("BTC-USDT")
        assert get(sim, "/_sim/pause?on=0")[1] == {"paused": False}
        assert "BTC-USDT" in trades_of(client, 1.0)
    finally:
        client.close()


def test_a_reader_of_the_record_can_leave_out_the_line_per_trade(tmp_path):
    from workers.simulator.market import SimTrade
    from workers.simulator.session import Recorder

    path = tmp_path / "record.jsonl"
    recorder = Recorder(str(path), sent_lines=False)
    recorder.write(ev="rate", multiplier=10.0, time_us=1)
    recorder.published("binance", [SimTrade("BTCUSDT", i, "1.5", "0.1", "buy", 10 + i) for i in range(3)])
    recorder.write(ev="limit", exchange="okx", rule="subscribes per hour", time_us=2)
    recorder.published("okx", [SimTrade("BTC-USDT", 7, "2.5", "0.2", "sell", 20)])
    recorder.close()
    with path.open("a") as f:
        f.write('{"ev":"rate","multipl')  # a line the simulator had not finished when killed

    everything = read_record(path)
    assert [e["ev"] for e in everything] == ["rate", "published", "published", "published", "limit", "published"]
    assert everything[3] == {"ev": "published", "exchange": "binance", "symbol": "BTCUSDT", "trade_id": "2",
                             "price_wire": "1.5", "qty_wire": "0.1", "taker": "buy", "time_us": 12}
    assert read_record(path, skip=("published", "trade")) == [
        {"ev": "rate", "multiplier": 10.0, "time_us": 1},
        {"ev": "limit", "exchange": "okx", "rule": "subscribes per hour", "time_us": 2}]
