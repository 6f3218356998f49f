"""Fuzzing both exchanges' WebSocket parsers: no input bytes raise anything but a typed reject.

The property, for every input: ``parse`` returns trades, a control event and/or typed
rejects, or raises :class:`NormalizeError` with a known kind and a short message; the
trades it returns satisfy the v3 contract (they encode to Avro and decode back equal).
Inputs: random bytes, random JSON, every truncation and every single-bit flip of the
recorded frames (``frames/*.jsonl``, every control kind included), random byte flips,
invalid UTF-8, lone surrogates, and structure-aware mutations of the recorded frames
(type swaps, nulls, huge and tiny numbers, deep nesting, deleted and unexpected keys).

Budget: at least 50,000 cases per exchange (``MIN_CASES``): exhaustive sweeps over the
recorded frames plus seeded Hypothesis examples; ``make fuzz`` multiplies the latter.
"""

from __future__ import annotations

import io
import json
import uuid
from decimal import Decimal

import fastavro
import pytest
from hypothesis import strategies as st
from worker_fuzzing import (
    EXCHANGES,
    INTERESTING_BYTES,
    REJECT_KINDS,
    SCALE,
    TABLE,
    TALLIES,
    byte_edits,
    byte_flips,
    dumps,
    fuzz,
    invalid_utf8,
    json_values,
    lone_surrogates,
    recorded_frames,
    single_bit_flips,
    single_mutations,
    structure_mutations,
    sweep,
    truncations,
)

from k2 import contracts
from workers.avro import TradeEncoder
from workers.base import Exchange, Parsed
from workers.normalize import NormalizeError

MIN_CASES = 50_000
RECEIVED_US = 1767225600200000
MAX_ERROR_CHARS = 1000
MESSAGE_ID_NAMESPACE = uuid.UUID("6f1c2b1e-5d0a-5b8e-9c3e-4b2a7f0d1e93")  # the contract's, written out
MAX_US = 253402300799999999  # 9999-12-31T23:59:59.999999Z
CONTROL_KINDS = {"ack", "subscribe_error", "exchange_error", "heartbeat", "status", "pong", "server_shutdown"}
SCHEMA = contracts.trade_schema()
PARSED_SCHEMA = fastavro.parse_schema(SCHEMA)
ENCODER = TradeEncoder(SCHEMA, 1)


def check_frame(exchange: Exchange, frame: str | bytes) -> Parsed | None:
    """The property; returns what parse gave (None for a whole-frame reject)."""
    try:
        parsed = exchange.parse(frame, RECEIVED_US)
    except NormalizeError as exc:
        assert exc.kind in REJECT_KINDS, (exc.kind, str(exc))
        assert 0 < len(str(exc)) <= MAX_ERROR_CHARS, len(str(exc))
        return None
    assert isinstance(parsed, Parsed)
    for reject in parsed.rejects:
        assert isinstance(reject, NormalizeError) and reject.kind in REJECT_KINDS, reject
        assert 0 < len(str(reject)) <= MAX_ERROR_CHARS
    if parsed.control is not None:
        assert parsed.control.kind in CONTROL_KINDS, parsed.control
        assert len(parsed.control.detail) <= MAX_ERROR_CHARS
        assert not parsed.trades and not parsed.rejects
    for record in parsed.trades:
        check_contract(exchange, record)
    if not (parsed.trades or parsed.rejects or parsed.control):
        # Only a trade frame with no items may carry nothing. (Its bytes may still hold
        # invalid UTF-8 in a field the parser skips, which changes nothing it records.)
        doc = json.loads(frame if isinstance(frame, str) else frame.decode("utf-8", "replace"))
        assert doc["data"] == [], frame
    return parsed


def check_contract(exchange: Exchange, record: dict) -> None:
    assert record["exchange"] == exchange.enum_symbol
    pair = TABLE.lookup(exchange.name, record["symbol"])
    assert pair is not None and (pair.base, pair.quote) == (record["base_asset"], record["quote_currency"])
    trade_id = record["trade_id"]
    assert trade_id.isascii() and trade_id.isdigit() and int(trade_id) < 2**63, trade_id
    name = f"{exchange.enum_symbol}:{record['symbol']}:{trade_id}"
    assert record["message_id"] == str(uuid.uuid5(MESSAGE_ID_NAMESPACE, name))
    for field in ("price", "quantity"):
        value = record[field]
        assert isinstance(value, Decimal) and value.is_finite(), value
        assert value.as_tuple().exponent == -8 and abs(value) < Decimal(10) ** 10, value
    assert 0 <= record["timestamp"] <= MAX_US and type(record["timestamp"]) is int
    assert record["side"] in ("BUY", "SELL")
    assert all(type(k) is str and type(v) is str for k, v in record["vendor_data"].items())
    encoded = ENCODER.encode(record)
    decoded = fastavro.schemaless_reader(io.BytesIO(encoded[5:]), PARSED_SCHEMA, None)
    assert decoded == record


@pytest.fixture(scope="module", autouse=True)
def summary():
    yield
    for group, tally in sorted(TALLIES.items()):
        print(f"fuzz total {group}: {tally.cases} cases in {tally.seconds:.1f}s "
              f"({tally.cases / max(tally.seconds, 1e-9):,.0f}/s)")


@pytest.fixture(params=sorted(EXCHANGES))
def name(request) -> str:
    return request.param


# Hypothesis examples per test (times FUZZ_SCALE). Drawing an example costs Hypothesis
# ~1 ms, so the bulk of the unit tier's cases are the exhaustive sweeps below (~20 µs each).
RANDOM_BYTES = 2_000
RANDOM_JSON = 500
BYTE_FLIPS = 2_000
INVALID_UTF8 = 2_000
STRUCTURE = 2_500
HYPOTHESIS_EXAMPLES = RANDOM_BYTES + RANDOM_JSON + BYTE_FLIPS + INVALID_UTF8 + STRUCTURE


def test_recorded_frames_parse_to_trades_or_controls(name):
    exchange = EXCHANGES[name]()
    outcomes = [check_frame(exchange, frame) for frame in recorded_frames(name)]
    kinds = [p.control.kind if p.control else len(p.trades) for p in outcomes]
    assert kinds == {
        "binance": [1, 1, 1, "ack", "ack", "exchange_error", "server_shutdown", 1, 1, 1, "ack"],
        "kraken": [1, 2, "heartbeat", "status", "ack", "subscribe_error", "pong", "exchange_error"],
        "coinbase": [1, 1, 1, "heartbeat", "ack", "subscribe_error", "exchange_error"],
        "bybit": [1, 3, 1, 0, "ack", "subscribe_error", "pong", "pong", "ack", "exchange_error"],
        "okx": ["ack", "subscribe_error", "exchange_error", "server_shutdown", "ack", 1, 1, 1, 2],
    }[name]


def test_every_truncation_of_recorded_frames(name):
    exchange, frames = EXCHANGES[name](), recorded_frames(name)
    rejected = []

    def check(frame: bytes) -> None:
        rejected.append(check_frame(exchange, frame) is None)

    assert sweep("truncations", name, truncations(frames), check) == sum(map(len, frames))
    assert all(rejected)  # no proper prefix of a JSON object is JSON


def test_every_single_bit_flip_of_recorded_frames(name):
    exchange, frames = EXCHANGES[name](), recorded_frames(name)
    cases = sweep("bit_flips", name, single_bit_flips(frames), lambda f: check_frame(exchange, f))
    assert cases == 8 * sum(map(len, frames))


def test_every_byte_deleted_overwritten_and_inserted(name):
    exchange, frames = EXCHANGES[name](), recorded_frames(name)
    cases = sweep("byte_edits", name, byte_edits(frames), lambda f: check_frame(exchange, f))
    assert cases == (1 + 2 * len(INTERESTING_BYTES)) * sum(map(len, frames))


def test_every_node_of_recorded_frames_mutated(name):
    exchange, frames = EXCHANGES[name](), recorded_frames(name)
    outcomes = {"trades": 0, "control": 0, "rejects": 0, "rejected": 0}

    def check(frame: bytes) -> None:
        parsed = check_frame(exchange, frame)
        outcomes["rejected" if parsed is None else "trades" if parsed.trades
                 else "control" if parsed.control else "rejects"] += 1

    cases = sweep("node_mutations", name, single_mutations(frames), check)
    assert cases > 5_000
    # Every outcome is reached, so the property is exercised past the JSON syntax.
    assert all(count > 100 for count in outcomes.values()), outcomes


def test_lone_surrogates_in_text_frames(name):
    exchange = EXCHANGES[name]()
    kinds = []

    def check(text: str) -> None:
        with pytest.raises(NormalizeError) as info:
            exchange.parse(text, RECEIVED_US)
        kinds.append(info.value.kind)

    cases = sweep("lone_surrogates", name, lone_surrogates(recorded_frames(name)), check)
    assert len(kinds) == cases > 150 and set(kinds) == {"not_utf8"}


def test_random_bytes(name):
    exchange = EXCHANGES[name]()
    assert fuzz("random_bytes", name, st.binary(max_size=300), lambda f: check_frame(exchange, f),
                RANDOM_BYTES) >= RANDOM_BYTES * SCALE


def test_random_json_documents(name):
    exchange = EXCHANGES[name]()
    documents = json_values.map(lambda doc: dumps(doc).encode())
    assert fuzz("random_json", name, documents, lambda f: check_frame(exchange, f),
                RANDOM_JSON) >= RANDOM_JSON * SCALE


def test_random_byte_flips_of_recorded_frames(name):
    exchange = EXCHANGES[name]()
    assert fuzz("byte_flips", name, byte_flips(recorded_frames(name)), lambda f: check_frame(exchange, f),
                BYTE_FLIPS) >= BYTE_FLIPS * SCALE


def test_invalid_utf8_in_recorded_frames(name):
    exchange = EXCHANGES[name]()
    assert fuzz("invalid_utf8", name, invalid_utf8(recorded_frames(name)), lambda f: check_frame(exchange, f),
                INVALID_UTF8) >= INVALID_UTF8 * SCALE


def test_random_structure_mutations_of_recorded_frames(name):
    """1-3 mutations at once with random values: the combinations the sweep does not try."""
    exchange = EXCHANGES[name]()
    cases = fuzz("structure", name, structure_mutations(recorded_frames(name)),
                 lambda f: check_frame(exchange, f), STRUCTURE)
    assert cases >= STRUCTURE * SCALE


def test_cases_per_exchange_reach_the_minimum(name):
    """The unit tier's cases per exchange: the Hypothesis budgets plus the exhaustive sweeps."""
    frames = recorded_frames(name)
    sweeps = [truncations(frames), single_bit_flips(frames), byte_edits(frames), single_mutations(frames),
              lone_surrogates(frames)]
    assert HYPOTHESIS_EXAMPLES + sum(1 for cases in sweeps for _ in cases) >= MIN_CASES
