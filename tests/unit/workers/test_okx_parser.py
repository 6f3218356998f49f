"""OKX ``trades-all`` parser on recorded-format frames (frames/okx/, written in the shape of
OKX's v5 docs), its controls, its subscribe messages, and its property: any input gives
``Parsed`` or a typed ``NormalizeError``, and valid pushes round-trip exactly."""

from __future__ import annotations

import io
import json
import uuid
from decimal import Decimal
from pathlib import Path

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from worker_fuzzing import REJECT_KINDS, byte_flips, json_values, structure_mutations

from k2 import contracts
from k2.exchanges import venue as registered
from workers.avro import TradeEncoder
from workers.base import Parsed, UnknownSymbolError
from workers.exchanges import okx
from workers.exchanges.okx import Okx
from workers.normalize import NormalizeError
from workers.symbols import Pair, SymbolTable, read_pairs, symbols_file

FRAMES = Path(__file__).with_name("frames") / "okx"
TABLE = SymbolTable.shipped()


def shipped_pairs() -> list[Pair]:
    """The pairs shipped in workers/exchanges/okx_symbols.json."""
    return list(read_pairs(symbols_file(registered("okx"))).values())
RECEIVED = 1767225602000000
NAMESPACE = uuid.UUID("6f1c2b1e-5d0a-5b8e-9c3e-4b2a7f0d1e93")  # the contract's, written out
CONTROL_KINDS = {"ack", "subscribe_error", "exchange_error", "heartbeat", "status", "pong", "server_shutdown"}


def lines(name: str) -> list[str]:
    return [line for line in (FRAMES / name).read_text().splitlines() if line]


TRADE_FRAMES = lines("trades_all.jsonl")
CONTROL_FRAMES = lines("controls.jsonl")


def push(**fields: str) -> str:
    """One push of BTC-USDT with the recorded first trade's fields, some replaced."""
    item = {"instId": "BTC-USDT", "tradeId": "745519721", "px": "94250.1", "sz": "0.00210000", "side": "sell",
            "source": "0", "ts": "1767225600120", **fields}
    return json.dumps({"arg": {"channel": "trades-all", "instId": "BTC-USDT"}, "data": [item]})


@pytest.fixture
def venue() -> Okx:
    return Okx(["BTC-USDT", "eth-usdt", "PEPE-USDT"], TABLE)


def test_recorded_trade_becomes_the_v3_record(venue):
    parsed = venue.parse(TRADE_FRAMES[0], RECEIVED)
    assert parsed.rejects == [] and parsed.control is None
    assert parsed.trades == [{
        "message_id": str(uuid.uuid5(NAMESPACE, "OKX:BTC-USDT:745519721")),
        "trade_id": "745519721",
        "symbol": "BTC-USDT",
        "exchange": "OKX",
        "timestamp": 1767225600120000,
        "price": Decimal("94250.1"),
        "quantity": Decimal("0.0021"),
        "base_asset": "BTC",
        "quote_currency": "USDT",
        "side": "SELL",
        "ingestion_timestamp": RECEIVED,
        "vendor_data": {"order_source": "0"},
    }]


def test_every_recorded_push_parses_with_exact_decimals(venue):
    trades = [t for frame in TRADE_FRAMES for t in venue.parse(frame.encode(), RECEIVED).trades]
    assert [(t["symbol"], t["trade_id"], t["price"], t["quantity"], t["side"], t["timestamp"]) for t in trades] == [
        ("BTC-USDT", "745519721", Decimal("94250.1"), Decimal("0.0021"), "SELL", 1767225600120000),
        ("ETH-USDT", "512233001", Decimal("3300.52"), Decimal("1.25"), "BUY", 1767225600130000),
        ("PEPE-USDT", "88410027", Decimal("0.00000987"), Decimal("1250000000"), "BUY", 1767225601000000),
        ("BTC-USDT", "745519722", Decimal("94250"), Decimal("0.1"), "BUY", 1767225601500000),
        ("BTC-USDT", "745519723", Decimal("94250.2"), Decimal("0.03"), "BUY", 1767225601500000),
    ]
    assert all(t["price"].as_tuple().exponent == -8 for t in trades)  # decimal(18,8) scale
    assert trades[2]["vendor_data"] == {"order_source": "1"}  # an Enhanced Liquidity Program order
    assert (trades[2]["base_asset"], trades[2]["quote_currency"]) == ("PEPE", "USDT")


@pytest.mark.parametrize(("fields", "price", "quantity"), [
    ({"sz": "1.2e-3"}, "94250.1", "0.0012"),
    ({"px": "9.42501E+4", "sz": "0.00000001"}, "94250.1", "0.00000001"),
    ({"px": "9999999999.99999999", "sz": "0"}, "9999999999.99999999", "0"),
    ({"px": "0094250.10", "sz": "1.000000000000000000000"}, None, None),  # leading zeros: not a JSON-style number
])
def test_exponent_and_odd_decimals(venue, fields, price, quantity):
    parsed = venue.parse(push(**fields), RECEIVED)
    if price is None:
        assert [r.kind for r in parsed.rejects] == ["bad_decimal"]
        return
    (trade,) = parsed.trades
    assert (trade["price"], trade["quantity"]) == (Decimal(price), Decimal(quantity))


@pytest.mark.parametrize(("fields", "kind", "names"), [
    ({"px": "94250.123456789"}, "decimal_out_of_range", "px"),  # 9 decimals: never rounded
    ({"sz": "12345678901"}, "decimal_out_of_range", "sz"),  # 11 integer digits
    ({"sz": "1e999999"}, "decimal_out_of_range", "sz"),
    ({"px": "NaN"}, "bad_decimal", "px"),
    ({"px": ""}, "bad_decimal", "px"),
    ({"instId": "NOPE-USDT"}, "unknown_symbol", "NOPE-USDT"),
    ({"instId": "btc-usdt"}, "unknown_symbol", "btc-usdt"),  # the wire form is upper case; never guessed
    ({"side": "short"}, "bad_trade", "side"),
    ({"tradeId": "74551972x"}, "bad_trade", "tradeId"),
    ({"tradeId": "9" * 20}, "bad_trade", "tradeId"),  # past 64 bits
    ({"tradeId": "9223372036854775808"}, "bad_trade", "tradeId"),  # 2**63
    ({"tradeId": ""}, "bad_trade", "tradeId"),
    ({"ts": "1767225600120.5"}, "bad_timestamp", "ts"),
    ({"ts": "-1"}, "bad_timestamp", "ts"),
    ({"ts": "99999999999999999"}, "bad_timestamp", "ts"),
    ({"ts": "9999999999999999"}, "bad_timestamp", "ts"),  # 16 digits of ms: after year 9999
])
def test_item_level_rejects_name_the_field(venue, fields, kind, names):
    parsed = venue.parse(push(**fields), RECEIVED)
    assert parsed.trades == [] and parsed.control is None
    assert [r.kind for r in parsed.rejects] == [kind]
    assert names in str(parsed.rejects[0]) and str(parsed.rejects[0]).startswith("data[0]: ")


@pytest.mark.parametrize(("item", "kind"), [
    ({"tradeId": 745519721}, "bad_trade"),  # a number where OKX sends a string
    ({"px": 94250.1}, "bad_trade"),
    ({"ts": 1767225600120}, "bad_trade"),
    ({"side": None}, "bad_trade"),
])
def test_wrong_types_are_bad_trades(venue, item, kind):
    doc = json.loads(push())
    doc["data"][0].update(item)
    parsed = venue.parse(json.dumps(doc), RECEIVED)
    assert [r.kind for r in parsed.rejects] == [kind] and parsed.trades == []


@pytest.mark.parametrize("missing", ["instId", "tradeId", "px", "sz", "side", "ts"])
def test_missing_fields_are_bad_trades(venue, missing):
    doc = json.loads(push())
    del doc["data"][0][missing]
    parsed = venue.parse(json.dumps(doc), RECEIVED)
    assert [r.kind for r in parsed.rejects] == ["bad_trade"] and missing in str(parsed.rejects[0])


def test_source_is_optional(venue):
    doc = json.loads(push())
    del doc["data"][0]["source"]
    (trade,) = venue.parse(json.dumps(doc), RECEIVED).trades
    assert trade["vendor_data"] == {}


def test_one_bad_trade_in_a_push_keeps_the_others(venue):
    doc = json.loads(TRADE_FRAMES[3])
    doc["data"].insert(1, {**doc["data"][0], "tradeId": "x"})
    doc["data"].append("not a trade")
    parsed = venue.parse(json.dumps(doc), RECEIVED)
    assert [t["trade_id"] for t in parsed.trades] == ["745519722", "745519723"]
    assert [(r.kind, str(r)[:8]) for r in parsed.rejects] == [("bad_trade", "data[1]:"), ("bad_trade", "data[3]:")]


def test_empty_push_carries_nothing(venue):
    assert venue.parse('{"arg":{"channel":"trades-all","instId":"BTC-USDT"},"data":[]}', RECEIVED) == Parsed()


@pytest.mark.parametrize(("index", "kind", "detail"), [
    (0, "ack", "subscribe trades-all BTC-USDT"),
    (1, "subscribe_error", "code=60018 msg=Wrong URL or channel:trades-all,instId:NOPE-USDT doesn't exist."),
    (2, "exchange_error", "code=60012 msg=Invalid request:"),
    (3, "server_shutdown", "code=64008 msg=The connection will soon be closed for a service upgrade."),
    (4, "ack", "unsubscribe trades-all ETH-USDT"),
])
def test_recorded_controls(venue, index, kind, detail):
    parsed = venue.parse(CONTROL_FRAMES[index], RECEIVED)
    assert parsed.trades == [] and parsed.rejects == []
    assert parsed.control.kind == kind and parsed.control.detail.startswith(detail)


@pytest.mark.parametrize("frame", ["pong", b"pong"])
def test_text_pong_answers_the_text_ping(venue, frame):
    assert venue.parse(frame, RECEIVED).control.kind == "pong"
    assert venue.ping_message(7) == "ping"


@pytest.mark.parametrize(("frame", "kind"), [
    ('{"arg":{"channel":"trades-all","instId":"BTC-USDT"},"data":[{"instId"', "malformed_json"),
    ("<html><body>502 Bad Gateway</body></html>", "malformed_json"),
    ("ping", "malformed_json"),
    (b"\xff\xfe", "malformed_json"),
    (b'{"event":"\xff"}', "not_utf8"),
    ("\ud800", "not_utf8"),
    ("[1,2]", "unexpected_frame"),
    ('"pong"', "unexpected_frame"),  # JSON text is not the keepalive reply
    ('{"event":"login","code":"0","msg":""}', "unexpected_frame"),
    # The aggregated public channel is not what the worker subscribes: its ids are not the fills'.
    ('{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":"1",'
     '"sz":"1","side":"buy","ts":"1","count":"3","seqId":1}]}', "unexpected_frame"),
    ('{"arg":{"channel":"trades-all","instId":"BTC-USDT"},"data":{"instId":"BTC-USDT"}}', "unexpected_frame"),
    ('{"data":[]}', "unexpected_frame"),
    ("[" * 10_000 + "]" * 10_000, "too_deeply_nested"),
])
def test_unusable_frames_raise_with_kind(venue, frame, kind):
    with pytest.raises(NormalizeError) as err:
        venue.parse(frame, RECEIVED)
    assert err.value.kind == kind


def test_oversize_values_are_clipped_in_errors(venue):
    parsed = venue.parse(push(px="9" * 5000, side="x" * 5000), RECEIVED)
    assert [r.kind for r in parsed.rejects] == ["bad_trade"] and len(str(parsed.rejects[0])) < 300
    with pytest.raises(NormalizeError) as err:
        venue.parse('{"event":"' + "e" * 5000 + '"}', RECEIVED)
    assert len(str(err.value)) < 300
    huge = venue.parse('{"event":"error","code":"1","msg":"' + "m" * 5000 + '"}', RECEIVED).control
    assert len(huge.detail) < 300


# subscribing --------------------------------------------------------------------------


def test_subscribe_message_names_every_symbol_once(venue):
    (message,) = venue.subscribe_messages()
    assert json.loads(message) == {"id": "1", "op": "subscribe", "args": [
        {"channel": "trades-all", "instId": "BTC-USDT"},
        {"channel": "trades-all", "instId": "ETH-USDT"},
        {"channel": "trades-all", "instId": "PEPE-USDT"},
    ]}
    assert venue.stream_url(okx.WS_URL) == "wss://ws.okx.com:8443/ws/v5/business"


def test_subscribe_messages_stay_within_64_kb():
    symbols = [f"COIN{i}-USDT" for i in range(4000)]
    messages = okx.subscribe_messages(symbols)
    assert len(messages) == 4  # ~47 bytes an argument: ~1,390 fit one 64 KB request
    assert all(len(m.encode()) <= 64 * 1024 for m in messages)
    assert [json.loads(m)["id"] for m in messages] == ["1", "2", "3", "4"]
    named = [a["instId"] for m in messages for a in json.loads(m)["args"]]
    assert named == symbols


def test_shards_respect_the_per_connection_choice():
    shards = okx.connection_shards([f"S{i}" for i in range(450)])
    assert [len(s) for s in shards] == [200, 200, 50]
    assert okx.connection_shards([]) == []


def test_unknown_configured_symbol_names_it():
    with pytest.raises(UnknownSymbolError, match="'NOPE-USDT'"):
        Okx(["BTC-USDT", "NOPE-USDT"], TABLE)


# metadata -----------------------------------------------------------------------------


def test_instruments_answer_gives_live_spot_pairs_as_on_the_wire():
    doc = json.loads((FRAMES / "instruments_spot.json").read_text())
    assert okx.pairs_from_instruments(doc) == [Pair("BTC-USDT", "BTC", "USDT"), Pair("ETH-BTC", "ETH", "BTC")]
    assert Pair("NEWCOIN-USDT", "NEWCOIN", "USDT") in okx.pairs_from_instruments(doc, ("live", "preopen"))
    with pytest.raises(ValueError, match="50011"):
        okx.pairs_from_instruments({"code": "50011", "msg": "Too Many Requests", "data": []})


def test_shipped_metadata_is_twenty_spot_pairs_named_base_dash_quote():
    pairs = shipped_pairs()
    assert len(pairs) == 20 and len({p.symbol for p in pairs}) == 20
    assert all(p.symbol == f"{p.base}-{p.quote}" for p in pairs)
    assert Pair("ETH-BTC", "ETH", "BTC") in pairs


# the property -------------------------------------------------------------------------

# The v3 schema as it will be once OKX is added: the enum gains a symbol (BACKWARD compatible).
SCHEMA = contracts.trade_schema()
for _field in SCHEMA["fields"]:
    if _field["name"] == "exchange" and "OKX" not in _field["type"]["symbols"]:
        _field["type"]["symbols"].append("OKX")
PARSED_SCHEMA = fastavro.parse_schema(SCHEMA)
ENCODER = TradeEncoder(SCHEMA, 1)
VENUE = Okx(["BTC-USDT"], TABLE)


def check(frame: str | bytes) -> None:
    """Parsed or a typed NormalizeError, never another exception; records fit the contract."""
    try:
        parsed = VENUE.parse(frame, RECEIVED)
    except NormalizeError as exc:
        assert exc.kind in REJECT_KINDS and 0 < len(str(exc)) <= 1000, exc
        return
    assert isinstance(parsed, Parsed)
    assert all(r.kind in REJECT_KINDS and len(str(r)) <= 1000 for r in parsed.rejects)
    if parsed.control is not None:
        assert parsed.control.kind in CONTROL_KINDS and not parsed.trades and not parsed.rejects
    for record in parsed.trades:
        assert TABLE.lookup("okx", record["symbol"]) is not None
        assert record["message_id"] == str(uuid.uuid5(NAMESPACE, f"OKX:{record['symbol']}:{record['trade_id']}"))
        encoded = ENCODER.encode(record)
        assert fastavro.schemaless_reader(io.BytesIO(encoded[5:]), PARSED_SCHEMA, None) == record


ALL_FRAMES = [f.encode() for f in TRADE_FRAMES + CONTROL_FRAMES]


@settings(max_examples=500, derandomize=True, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_any_text_or_bytes_is_parsed_or_rejected(frame):
    check(frame)


@settings(max_examples=500, derandomize=True, deadline=None)
@given(structure_mutations(ALL_FRAMES))
def test_any_json_mutation_of_a_recorded_frame_is_parsed_or_rejected(frame):
    check(frame)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.one_of(byte_flips(ALL_FRAMES), json_values.map(lambda doc: json.dumps(doc).encode())))
def test_byte_flips_and_random_json_are_parsed_or_rejected(frame):
    check(frame)


decimals = st.decimals(min_value=Decimal("0"), max_value=Decimal("9999999999.99999999"), places=8,
                       allow_nan=False, allow_infinity=False)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(trade_id=st.integers(0, 2**63 - 1), price=decimals, qty=decimals, side=st.sampled_from(["buy", "sell"]),
       ts_ms=st.integers(0, 253402300799999), symbol=st.sampled_from([p.symbol for p in shipped_pairs()]))
def test_valid_pushes_round_trip_exactly(trade_id, price, qty, side, ts_ms, symbol):
    venue = Okx([symbol], TABLE)
    text = push(instId=symbol, tradeId=str(trade_id), px=str(price), sz=str(qty), side=side, ts=str(ts_ms))
    (trade,) = venue.parse(text, RECEIVED).trades
    assert (trade["trade_id"], trade["price"], trade["quantity"], trade["side"], trade["timestamp"], trade["symbol"]) \
        == (str(trade_id), price, qty, side.upper(), ts_ms * 1000, symbol)
    check(text)
