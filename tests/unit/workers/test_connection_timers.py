"""The connection manager's timers on a fake clock: backoff, watchdog, rotation, pings.

Every connection is a socket pair whose exchange end the test writes frames into, so
nothing waits on the wall clock: the clock moves only when the test moves it, and each
timer is checked at its exact instant and just before it (``turn(0)`` never blocks).
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator

import pytest
import websocket

from k2.config import load
from k2.log import EventLog
from tests.fake_clock import FakeClock
from workers.base import Control
from workers.connection import BufferedReceive, ConnectionManager, Link
from workers.exchanges.binance import Binance
from workers.exchanges.kraken import Kraken
from workers.settings import WorkerSettings
from workers.simulator.server import ws_text_frame
from workers.stats import WorkerStats
from workers.symbols import SymbolTable

A, B = "ws://a.test", "ws://b.test"
T0 = 1000.0


class TopOfJitter:
    """The jitter at its top, so each backoff is exactly ``min(cap, base * 2**(n-1))``."""

    def uniform(self, low: float, high: float) -> float:
        return high


class Exchanges:
    """The connector: records each attempt and, unless refusing, hands back a link whose
    exchange end (``self.ends``) the test writes into."""

    def __init__(self, refuse: bool = False):
        self.refuse = refuse
        self.attempts: list[tuple[float, str, str]] = []  # (clock, endpoint, role)
        self.ends: list[socket.socket] = []
        self.links: list[Link] = []

    def __call__(self, link_id: int, endpoint: str, url: str, role: str, timeout_s: float, now: float) -> Link:
        self.attempts.append((now, endpoint, role))
        if self.refuse:
            raise ConnectionRefusedError(111, "Connection refused")
        ours, theirs = socket.socketpair()
        ws = websocket.WebSocket(skip_utf8_validation=True)
        ws.sock, ws.connected = ours, True
        ws.settimeout(1.0)
        link = Link(link_id, endpoint, url, ws, BufferedReceive(ws), opened_at=now, role=role)
        self.ends.append(theirs)
        self.links.append(link)
        return link

    def send(self, n: int, payload: bytes) -> None:
        """The exchange sends ``payload`` on connection ``n`` (0: the first opened)."""
        self.ends[n].sendall(ws_text_frame(payload))

    def close(self) -> None:
        for end in self.ends:
            end.close()


def handle(frame: bytes, link: Link) -> tuple[int, Control | None]:
    """A frame handler that knows three frames: a trade, a heartbeat and a shutdown notice."""
    if frame == b"trade":
        return 1, None
    if frame in (b"heartbeat", b"server_shutdown"):
        return 0, Control(frame.decode())
    return 0, None


class Harness:
    def __init__(self, exchange, exchanges: Exchanges, **env: str):
        self.clock = FakeClock(T0)
        self.exchanges = exchanges
        self.out = io.StringIO()
        self.stats = WorkerStats(exchange.name)
        settings = load(WorkerSettings, {f"K2_{k.upper()}": v for k, v in env.items()})
        self.manager = ConnectionManager(exchange, settings, handle, self.stats, EventLog(self.out),
                                         connector=exchanges, clock=self.clock, rng=TopOfJitter())

    def at(self, instant: float) -> None:
        """Move the clock to ``T0 + instant`` and run one turn there."""
        self.clock.set(T0 + instant)
        self.manager.turn(0)

    def events(self, name: str) -> list[dict]:
        return [e for e in map(json.loads, self.out.getvalue().splitlines()) if e["event"] == name]


@pytest.fixture
def exchanges() -> Iterator[Exchanges]:
    e = Exchanges()
    yield e
    e.close()


def binance(exchanges: Exchanges, **env: str) -> Harness:
    return Harness(Binance(["BTCUSDT"], SymbolTable.shipped()), exchanges, binance_urls=f"{A},{B}", **env)


def test_failed_connects_back_off_doubling_to_the_cap_and_alternate_endpoints():
    exchanges = Exchanges(refuse=True)
    h = binance(exchanges, workers_backoff_base_s="1", workers_backoff_cap_s="4")
    for step in range(49):  # every quarter second from 0 to 12 s
        h.at(step * 0.25)
    assert exchanges.attempts == [(T0 + 0, A, "active"), (T0 + 1, B, "active"), (T0 + 3, A, "active"),
                                  (T0 + 7, B, "active"), (T0 + 11, A, "active")]
    failed = h.events("connect_failed")
    assert [(e["attempt"], e["retry_in_s"], e["endpoint"], e["next_endpoint"]) for e in failed] == [
        (1, 1.0, A, B), (2, 2.0, B, A), (3, 4.0, A, B), (4, 4.0, B, A), (5, 4.0, A, B)]
    assert h.stats.errors["connect_failed"] == 5 and not h.stats.connected


def test_a_retry_waits_until_its_instant_and_not_a_moment_less():
    exchanges = Exchanges(refuse=True)
    h = binance(exchanges, workers_backoff_base_s="2", workers_backoff_cap_s="2")
    h.at(0)
    h.at(1.999)
    assert len(exchanges.attempts) == 1
    h.at(2)
    assert [t for t, _, _ in exchanges.attempts] == [T0, T0 + 2]


def test_after_a_working_connection_drops_the_first_retry_is_immediate(exchanges):
    h = binance(exchanges, workers_backoff_base_s="5", workers_backoff_cap_s="5")
    h.at(0)
    exchanges.send(0, b"trade")
    h.at(1)
    exchanges.ends[0].close()  # the exchange goes away without a close frame
    h.at(2)  # the read finds the connection lost
    h.at(2)  # same instant: reconnect with no backoff
    assert [(t, role) for t, _, role in exchanges.attempts] == [(T0, "active"), (T0 + 2, "active")]
    (closed,) = h.events("connection_closed")
    assert (closed["reason"], closed["trades"], closed["age_s"]) == ("connection_error", 1, 2.0)
    assert h.stats.reconnects == {"connection_error": 1}


def test_the_watchdog_replaces_a_connection_quiet_for_longer_than_its_limit(exchanges):
    h = binance(exchanges, workers_watchdog_s="5")
    h.at(0)
    exchanges.send(0, b"trade")
    h.at(2)  # last trade at 2
    exchanges.send(0, b"heartbeat")
    h.at(6)  # a heartbeat counts as life too: quiet since 6
    h.at(11)  # quiet exactly 5 s: not yet
    assert not exchanges.links[0].closed and len(exchanges.attempts) == 1
    h.at(11.001)
    assert exchanges.links[0].closed
    (closed,) = h.events("connection_closed")
    assert (closed["reason"], closed["detail"]) == ("stall", "no trade or heartbeat for 5.0s")
    assert h.stats.reconnects == {"stall": 1}
    h.at(11.001)  # it had delivered: the replacement is immediate, on the next endpoint
    assert exchanges.attempts[1:] == [(T0 + 11.001, B, "active")]


def test_a_connection_that_never_delivers_stalls_watchdog_seconds_after_it_opened(exchanges):
    h = binance(exchanges, workers_watchdog_s="5")
    h.at(0)
    h.at(5)
    assert not exchanges.links[0].closed
    h.at(5.5)
    assert exchanges.links[0].closed and h.stats.reconnects == {"stall": 1}


def test_rotation_opens_a_successor_at_the_lifetime_and_retires_the_old_after_the_overlap(exchanges):
    h = binance(exchanges, workers_connection_lifetime_s="100", workers_rotation_overlap_s="5",
                workers_watchdog_s="1000")
    h.at(0)
    exchanges.send(0, b"trade")
    h.at(99.999)
    assert len(exchanges.attempts) == 1
    h.at(100)
    assert exchanges.attempts[1:] == [(T0 + 100, A, "successor")]
    old, new = exchanges.links
    h.at(100.5)  # the old connection keeps reading while the successor has said nothing
    assert (old.role, new.role) == ("active", "successor")
    exchanges.send(1, b"trade")
    h.at(101)  # the successor's first trade ...
    h.at(101)  # ... promotes it; the old one stays for the overlap
    assert (old.role, new.role, old.retire_at) == ("retiring", "active", T0 + 106)
    (promoted,) = h.events("connection_promoted")
    assert (promoted["reason"], promoted["overlap_s"]) == ("rotation", 5.0)
    exchanges.send(0, b"trade")
    h.at(105.999)
    assert not old.closed and old.trades == 2  # trades in the overlap are still read
    h.at(106)
    assert old.closed and not new.closed
    (closed,) = h.events("connection_closed")
    assert (closed["reason"], closed["age_s"]) == ("rotated", 106.0)
    assert h.stats.reconnects == {"rotation": 1} and len(exchanges.attempts) == 2
    h.at(199.999)  # the successor's own lifetime counts from when it opened (100)
    assert len(exchanges.attempts) == 2
    h.at(200)
    assert exchanges.attempts[2:] == [(T0 + 200, A, "successor")]


def test_a_server_shutdown_notice_asks_for_a_successor_at_once(exchanges):
    h = binance(exchanges, workers_watchdog_s="1000")
    h.at(0)
    exchanges.send(0, b"server_shutdown")
    h.at(3)  # read the notice
    h.at(3)  # and open the successor, 23 h before any planned rotation
    assert exchanges.attempts[1:] == [(T0 + 3, A, "successor")]
    exchanges.send(1, b"trade")
    h.at(4)
    h.at(4)
    (promoted,) = h.events("connection_promoted")
    assert promoted["reason"] == "server_shutdown" and h.stats.reconnects == {"server_shutdown": 1}


def client_texts(end: socket.socket) -> list[str]:
    """The text frames a client has sent so far (client frames are masked, RFC 6455 §5.3)."""
    end.setblocking(False)
    data = b""
    try:
        while chunk := end.recv(65536):
            data += chunk
    except BlockingIOError:
        pass
    texts, i = [], 0
    while i < len(data):
        opcode, length = data[i] & 0x0F, data[i + 1] & 0x7F
        i += 2
        if length == 126:
            length, i = int.from_bytes(data[i:i + 2], "big"), i + 2
        elif length == 127:
            length, i = int.from_bytes(data[i:i + 8], "big"), i + 8
        mask, i = data[i:i + 4], i + 4
        payload = bytes(b ^ mask[k % 4] for k, b in enumerate(data[i:i + length]))
        i += length
        if opcode == 0x1:
            texts.append(payload.decode())
    return texts


def test_kraken_gets_an_application_ping_every_interval(exchanges):
    h = Harness(Kraken(["BTC/USD"], SymbolTable.shipped()), exchanges, kraken_urls=A,
                workers_kraken_ping_interval_s="10", workers_watchdog_s="1000")
    h.at(0)
    (subscribe,) = map(json.loads, client_texts(exchanges.ends[0]))
    assert subscribe["method"] == "subscribe"
    h.at(9.999)
    assert client_texts(exchanges.ends[0]) == []
    h.at(10)
    h.at(19.999)
    h.at(20)
    assert [json.loads(t) for t in client_texts(exchanges.ends[0])] == [
        {"method": "ping", "req_id": 1}, {"method": "ping", "req_id": 2}]


def test_binance_sends_no_application_ping(exchanges):
    h = binance(exchanges, workers_kraken_ping_interval_s="10", workers_watchdog_s="1000")
    h.at(0)
    assert client_texts(exchanges.ends[0]) == []  # Binance subscribes in the URL
    h.at(100)
    assert client_texts(exchanges.ends[0]) == []
