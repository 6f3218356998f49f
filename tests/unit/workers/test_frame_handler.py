"""FrameHandler: every frame ends as produced trades, a control event or a dead letter."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from hypothesis import strategies as st
from worker_fuzzing import (
    REJECT_KINDS,
    SCALE,
    binance,
    byte_flips,
    fuzz,
    kraken,
    recorded_frames,
    structure_mutations,
)

from k2 import contracts
from k2.log import EventLog
from workers.avro import TradeEncoder
from workers.base import Parsed
from workers.dlq import DeadLetters
from workers.run import FrameHandler
from workers.stats import WorkerStats

LIMIT = 4096
TRADE = recorded_frames("binance")[0]


class FakeLink:
    endpoint = "ws://peer"


class FakeSink:
    def __init__(self):
        self.produced: list[tuple[str, bytes, bytes]] = []

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        self.produced.append((topic, key, value))


class Handled:
    """A FrameHandler over a fake sink, with what it produced, dead-lettered and logged."""

    def __init__(self, exchange):
        self.sink, self.dlq, self.log, self.stats = FakeSink(), [], io.StringIO(), WorkerStats(exchange.name)
        log = EventLog(self.log)
        dead_letters = DeadLetters(exchange.name, lambda key, value: self.dlq.append(json.loads(value)), log)
        dead_letters.by_kind = self.stats.dead_letters
        self.handler = FrameHandler(exchange, TradeEncoder(contracts.trade_schema(), 7), self.sink, "trades",
                                    dead_letters, self.stats, max_frame_bytes=LIMIT, log=log)

    def __call__(self, frame: bytes):
        return self.handler(frame, FakeLink())

    def events(self, name: str) -> list[dict]:
        return [e for e in map(json.loads, self.log.getvalue().splitlines()) if e["event"] == name]


def test_trades_are_produced_and_rejects_dead_lettered_with_their_kind():
    h = Handled(binance())
    assert h(TRADE) == (1, None)
    assert h(b"{") == (0, None)
    assert [(t, k) for t, k, _ in h.sink.produced] == [("trades", b"BTCUSDT")]
    assert h.sink.produced[0][2][:5] == b"\x00\x00\x00\x00\x07"  # Confluent header, schema id 7
    assert [d["error_kind"] for d in h.dlq] == ["malformed_json"]
    assert (h.stats.frames, h.stats.trades, dict(h.stats.dead_letters)) == (2, 1, {"malformed_json": 1})


def test_a_frame_over_the_limit_is_dead_lettered_unparsed_with_length_and_hash():
    h = Handled(binance())
    frame = TRADE + b" " * LIMIT
    assert h(frame) == (0, None)
    (letter,) = h.dlq
    assert letter["error_kind"] == "frame_too_large" and "K2_WORKERS_MAX_FRAME_BYTES=4096" in letter["error"]
    assert (letter["raw_length"], letter["raw_sha256"]) == (len(frame), hashlib.sha256(frame).hexdigest())
    assert h.sink.produced == []


def test_a_frame_refused_by_the_connection_is_dead_lettered_with_its_announced_length():
    h = Handled(binance())
    h.handler.oversize(FakeLink(), 2**40, b"xyz")
    (letter,) = h.dlq
    assert (letter["error_kind"], letter["raw"], letter["raw_length"], letter["raw_sha256"]) == (
        "frame_too_large", "xyz", 2**40, None)
    assert h.stats.frames == 1


class Buggy:
    """An exchange whose parser has a bug for frames starting with ``!``, and one whose
    record the encoder cannot take for frames starting with ``?``."""

    name, enum_symbol = "binance", "BINANCE"

    def __init__(self):
        self.real = binance()

    def parse(self, frame: bytes, received_us: int) -> Parsed:
        if frame.startswith(b"!"):
            return {}["missing"]
        parsed = self.real.parse(frame.lstrip(b"?"), received_us)
        if frame.startswith(b"?"):
            parsed.trades.append({**parsed.trades[0], "exchange": "NOPE"})
        return parsed


def test_an_unexpected_exception_dead_letters_the_frame_as_parser_bug_and_the_worker_goes_on():
    h = Handled(Buggy())
    results = [h(b"!1"), h(b"!2"), h(b"?" + TRADE), h(TRADE)]
    assert results == [(0, None), (0, None), (0, None), (1, None)]
    assert [d["error_kind"] for d in h.dlq] == ["parser_bug"] * 3
    assert h.dlq[0]["error"].startswith("KeyError at test_frame_handler.py:") and h.dlq[0]["raw"] == "!1"
    assert h.dlq[2]["error"].startswith("KeyError at avro.py:")
    assert len(h.sink.produced) == 1  # the "?" frame's good trade was not produced without its neighbour
    assert h.stats.dead_letters["parser_bug"] == 3 and h.stats.trades == 1
    assert [e["kind"].split("@")[0] for e in h.events("parser_bug")] == ["KeyError", "KeyError"]  # once per site


def test_producer_errors_are_not_swallowed_as_parser_bugs():
    h = Handled(binance())

    def fail(topic: str, key: bytes, value: bytes) -> None:
        raise BufferError("queue full")

    h.handler.produce = fail
    with pytest.raises(BufferError):
        h(TRADE)


@pytest.mark.parametrize("make", [binance, kraken], ids=["binance", "kraken"])
def test_fuzzed_frames_all_end_as_trades_controls_or_dead_letters(make):
    exchange = make()
    frames = recorded_frames(exchange.name)
    strategy = st.one_of(structure_mutations(frames), byte_flips(frames), st.binary(max_size=LIMIT + 100))

    def check(frame: bytes) -> None:
        h = Handled(exchange)
        trades, control = h(frame)
        assert len(h.sink.produced) == trades == h.stats.trades
        assert all(d["error_kind"] in REJECT_KINDS | {"frame_too_large"} and d["error"] for d in h.dlq), h.dlq
        assert h.stats.dead_letters["parser_bug"] == 0
        assert trades or control or h.dlq or json.loads(frame)["data"] == []

    assert fuzz("frame_handler", exchange.name, strategy, check, 500) >= 500 * SCALE
