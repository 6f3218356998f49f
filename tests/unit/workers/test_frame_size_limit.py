"""Reading a real websocket-client connection over a socket pair: K2_WORKERS_MAX_FRAME_BYTES
and how much one turn reads."""

from __future__ import annotations

import io
import json
import socket

import pytest
import websocket

from k2.config import load
from k2.log import EventLog
from workers.connection import (
    BUSY_READ_BYTES,
    MAX_FRAMES_PER_TURN,
    MAX_TRADES_PER_TURN,
    BufferedReceive,
    ConnectionManager,
    Link,
    limit_frames,
)
from workers.exchanges.binance import Binance
from workers.settings import WorkerSettings
from workers.simulator.server import ws_text_frame
from workers.stats import WorkerStats
from workers.symbols import SymbolTable

LIMIT = 4096


def ws_frame(opcode: int, payload: bytes, fin: bool) -> bytes:
    """A server frame with a 16-bit length (every payload here is 126-65535 bytes)."""
    return bytes(((0x80 if fin else 0) | opcode, 126)) + len(payload).to_bytes(2, "big") + payload


class Peer:
    """A connected WebSocket whose server side the test writes frames into."""

    def __init__(self):
        ours, self.theirs = socket.socketpair()
        ws = websocket.WebSocket(skip_utf8_validation=True)
        ws.sock, ws.connected = ours, True
        ws.settimeout(1.0)
        self.link = Link(1, "ws://peer", "ws://peer/stream", ws, BufferedReceive(ws), opened_at=0.0, role="active")
        self.frames: list[bytes] = []
        self.oversize: list[tuple[int, bytes]] = []
        self.trades_per_frame = 0
        self.log = io.StringIO()
        self.stats = WorkerStats("binance")
        settings = load(WorkerSettings, {"K2_WORKERS_MAX_FRAME_BYTES": str(LIMIT)})
        self.manager = ConnectionManager(
            Binance(["BTCUSDT"], SymbolTable.shipped()), settings, self.handle, self.stats, EventLog(self.log),
            clock=lambda: 0.0, on_oversize=lambda link, length, received: self.oversize.append((length, received)),
        )
        self.manager.links.append(self.link)
        limit_frames(self.link, LIMIT)

    def handle(self, frame: bytes, link: Link) -> tuple[int, None]:
        self.frames.append(frame)
        return self.trades_per_frame, None

    def events(self, name: str) -> list[dict]:
        return [e for e in map(json.loads, self.log.getvalue().splitlines()) if e["event"] == name]


@pytest.fixture
def peer():
    p = Peer()
    yield p
    p.theirs.close()


def test_a_frame_announcing_more_than_the_limit_is_not_read_and_the_link_is_replaced(peer):
    huge = ws_text_frame(b"x" * 1_000_000)
    peer.theirs.sendall(ws_text_frame(b'{"ok":1}') + ws_text_frame(b"y" * LIMIT) + huge[:5000])
    peer.manager.turn()
    assert peer.frames == [b'{"ok":1}', b"y" * LIMIT]  # up to the limit is fine
    ((length, received),) = peer.oversize
    assert length == 1_000_000 and set(received) == {ord("x")} and 0 < len(received) <= LIMIT
    assert peer.link.closed and peer.stats.reconnects == {"frame_too_large": 1}
    (event,) = peer.events("frame_too_large")
    assert (event["length"], event["limit"]) == (1_000_000, LIMIT) and "K2_WORKERS_MAX_FRAME_BYTES" in event["action"]


def test_an_announced_length_of_2_to_the_63_does_not_allocate(peer):
    peer.theirs.sendall(b"\x81\x7f" + (2**63 - 1).to_bytes(8, "big") + b"zz")
    peer.manager.turn()
    assert peer.oversize == [(2**63 - 1, b"zz")] and peer.frames == []


def test_a_fragmented_message_growing_past_the_limit_is_refused(peer):
    part = b"f" * 3000
    peer.theirs.sendall(ws_frame(0x1, part, fin=False) + ws_frame(0x0, part, fin=False) + ws_frame(0x0, part, fin=True))
    peer.manager.turn()
    assert peer.oversize == [(6000, part)] and peer.frames == []
    assert peer.link.closed


def test_a_fragmented_message_within_the_limit_is_delivered_whole(peer):
    part = b"g" * 1500
    peer.theirs.sendall(ws_frame(0x1, part, fin=False) + ws_frame(0x0, part, fin=True))
    peer.manager.turn()
    assert peer.frames == [part * 2] and peer.oversize == [] and not peer.link.closed


@pytest.mark.parametrize("trades_per_frame", [1, 7, 500, 5000])
def test_a_turn_ends_after_a_bounded_number_of_trades_and_the_next_turns_read_the_rest(peer, trades_per_frame):
    """Producer acknowledgements are served between turns, so a turn must not read
    unboundedly many trades even when each frame holds many (Bybit, OKX)."""
    peer.trades_per_frame = trades_per_frame
    frames = [b"%06d" % i for i in range(3 * MAX_FRAMES_PER_TURN)]
    peer.theirs.sendall(b"".join(ws_text_frame(f) for f in frames))
    per_turn = []
    while len(peer.frames) < len(frames) and len(per_turn) < 10_000:
        before = len(peer.frames)
        peer.manager.turn()
        per_turn.append(len(peer.frames) - before)
    assert peer.frames == frames and not peer.link.closed
    most = min(MAX_FRAMES_PER_TURN, max(1, -(-MAX_TRADES_PER_TURN // trades_per_frame)))
    assert max(per_turn) == most
    assert all(n > 0 for n in per_turn)  # buffered frames are read on the next turn, without waiting on select


def test_a_large_socket_read_marks_the_connection_busy_and_a_small_one_quiet(peer):
    frame = ws_text_frame(b"z" * 200)
    burst = frame * (BUSY_READ_BYTES // len(frame) + 10)  # a little more than one busy read
    peer.theirs.sendall(burst)
    peer.manager.turn()
    assert peer.link.reader.more_waiting  # the worker reads on without its read-interval pause
    while peer.link.has_buffered():
        peer.manager.turn()
    peer.theirs.sendall(frame * 3)
    peer.manager.turn()
    assert not peer.link.reader.more_waiting
    assert len(peer.frames) == burst.count(b"z" * 200) + 3  # every frame read, none twice
