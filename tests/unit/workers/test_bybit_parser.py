"""Bybit v5 spot parser on recorded-format frames (frames/bybit/), edge cases and properties."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from worker_fuzzing import REJECT_KINDS, byte_flips, dumps, json_values, structure_mutations

from k2.exchanges import venue
from workers.base import Parsed, UnknownSymbolError
from workers.exchanges.bybit import (
    MAX_ARGS_CHARS_PER_CONNECTION,
    Bybit,
    args_chars,
    connection_shards,
    pairs_from_instruments_info,
)
from workers.normalize import NormalizeError
from workers.symbols import Pair, SymbolTable, read_pairs, symbols_file

FRAMES = Path(__file__).with_name("frames") / "bybit"
RECORDED = [line for line in (FRAMES / "stream.jsonl").read_text().splitlines() if line]
RECEIVED = 1767225600200000
NAMESPACE = uuid.UUID("6f1c2b1e-5d0a-5b8e-9c3e-4b2a7f0d1e93")  # the contract's, written out
TABLE = SymbolTable.shipped()


def shipped_pairs() -> list[Pair]:
    """The pairs shipped in workers/exchanges/bybit_symbols.json."""
    return list(read_pairs(symbols_file(venue("bybit"))).values())
CONTROL_KINDS = {"ack", "subscribe_error", "exchange_error", "pong"}
ONE = RECORDED[0]


@pytest.fixture
def bybit() -> Bybit:
    return Bybit(["BTCUSDT", "ethusdt", "DOGEUSDT"], TABLE)


def item(**changes: object) -> str:
    """The first recorded frame with its one trade's fields changed (None deletes one)."""
    doc = json.loads(ONE)
    for key, value in changes.items():
        if value is None:
            del doc["data"][0][key]
        else:
            doc["data"][0][key] = value
    return json.dumps(doc)


def test_trade_record_is_exact(bybit):
    parsed = bybit.parse(ONE, RECEIVED)
    assert parsed.rejects == [] and parsed.control is None
    assert parsed.trades == [{
        "message_id": str(uuid.uuid5(NAMESPACE, "BYBIT:BTCUSDT:2290000000908760214")),
        "trade_id": "2290000000908760214",
        "symbol": "BTCUSDT",
        "exchange": "BYBIT",
        "timestamp": 1767225600120000,
        "price": Decimal("94250.10000000"),
        "quantity": Decimal("0.00210000"),
        "base_asset": "BTC",
        "quote_currency": "USDT",
        "side": "SELL",
        "ingestion_timestamp": RECEIVED,
        "vendor_data": {"event_time_us": "1767225600125000", "block_trade": "false", "rpi": "false",
                        "seq": "87416325577"},
    }]


def test_batch_keeps_order_sides_and_vendor_flags(bybit):
    parsed = bybit.parse(RECORDED[1].encode(), RECEIVED)
    assert [(t["trade_id"], t["price"], t["quantity"], t["side"], t["vendor_data"]["rpi"]) for t in parsed.trades] == [
        ("2280000000412000001", Decimal("3300.55"), Decimal("1.2"), "BUY", "false"),
        ("2280000000412000002", Decimal("3300.56"), Decimal("0.00045"), "BUY", "true"),
        ("2280000000412000003", Decimal("3300.5"), Decimal("14"), "SELL", "false"),
    ]
    assert {t["vendor_data"]["seq"] for t in parsed.trades[:2]} == {"87416325901"}  # one match, two fills


def test_block_trade_without_the_newer_fields(bybit):
    (trade,) = bybit.parse(RECORDED[2], RECEIVED).trades
    assert trade["vendor_data"] == {"event_time_us": "1767225602500000", "block_trade": "true"}
    assert (trade["symbol"], trade["base_asset"], trade["side"]) == ("DOGEUSDT", "DOGE", "BUY")


def test_empty_trade_message_carries_nothing(bybit):
    assert bybit.parse(RECORDED[3], RECEIVED) == Parsed()


@pytest.mark.parametrize("line, kind, detail", [
    (4, "ack", "op=subscribe req_id=trade-1 ret_msg=subscribe"),
    (5, "subscribe_error", "op=subscribe req_id=trade-2 ret_msg=error:handler not found,topic:publicTrade.NOPEUSDT"),
    (6, "pong", "op=ping req_id=ping-1 ret_msg=pong"),
    (7, "pong", "op=pong req_id=ping-2 ret_msg=None"),
    (8, "ack", "op=unsubscribe req_id=unsub-1 ret_msg="),
    (9, "exchange_error", "op=resubscribe req_id=x-1 ret_msg=error:unknown op"),
])
def test_control_frames(bybit, line, kind, detail):
    parsed = bybit.parse(RECORDED[line], RECEIVED)
    assert parsed.trades == [] and parsed.rejects == []
    assert (parsed.control.kind, parsed.control.detail) == (kind, detail)


@pytest.mark.parametrize("price, size, want_price, want_size", [
    ("9.425010e4", "21E-4", "94250.1", "0.0021"),  # exponent forms are exact decimals
    ("94250.10000000000", "0.00210000", "94250.1", "0.0021"),  # zeros past the 8th place lose nothing
    ("0", "0.00000001", "0", "0.00000001"),
    ("9999999999.99999999", "1", "9999999999.99999999", "1"),  # the largest decimal(18,8)
])
def test_odd_decimal_forms_keep_their_exact_value(bybit, price, size, want_price, want_size):
    (trade,) = bybit.parse(item(p=price, v=size), RECEIVED).trades
    assert (trade["price"], trade["quantity"]) == (Decimal(want_price), Decimal(want_size))


@pytest.mark.parametrize("changes, kind", [
    ({"p": "94250.123456789"}, "decimal_out_of_range"),  # 9 decimals: never rounded
    ({"v": "10000000000"}, "decimal_out_of_range"),  # 11 integer digits
    ({"p": "1,5"}, "bad_decimal"),
    ({"p": "NaN"}, "bad_decimal"),
    ({"s": "NOPEUSDT"}, "unknown_symbol"),
    ({"S": "buy"}, "bad_trade"),
    ({"i": "d9cd8295-40dc-5dce-8deb-42882580a7ab"}, "bad_trade"),  # the derivatives' UUID form
    ({"i": "9223372036854775808"}, "bad_trade"),  # past a 64-bit id
    ({"i": "1" * 20}, "bad_trade"),
    ({"i": 2290000000908760214}, "bad_trade"),  # a number, not the documented string
    ({"T": "1767225600120"}, "bad_trade"),
    ({"T": 1.5}, "bad_trade"),
    ({"T": 253402300800000}, "bad_timestamp"),  # year 10000
    ({"T": -1}, "bad_timestamp"),
    ({"p": 94250.1}, "bad_trade"),  # a JSON number: Bybit sends strings
    ({"BT": "no"}, "bad_trade"),
    ({"i": None}, "bad_trade"),
    ({"S": None}, "bad_trade"),
])
def test_item_level_rejects_name_the_trade(bybit, changes, kind):
    parsed = bybit.parse(item(**changes), RECEIVED)
    assert parsed.trades == []
    assert [r.kind for r in parsed.rejects] == [kind]
    assert str(parsed.rejects[0]).startswith("data[0]: ")


def test_one_bad_trade_in_a_batch_keeps_its_neighbours(bybit):
    doc = json.loads(RECORDED[1])
    doc["data"][1]["p"] = 3300.56  # wrong type in the middle item
    doc["data"][2]["s"] = "NOPEUSDT"
    parsed = bybit.parse(json.dumps(doc), RECEIVED)
    assert [t["trade_id"] for t in parsed.trades] == ["2280000000412000001"]
    assert [(r.kind, str(r)[:7]) for r in parsed.rejects] == [("bad_trade", "data[1]"), ("unknown_symbol", "data[2]")]
    assert "$.p" in str(parsed.rejects[0])  # says which field


@pytest.mark.parametrize("frame, kind", [
    (ONE[: len(ONE) // 2], "malformed_json"),
    ("<html><body>502 Bad Gateway</body></html>", "malformed_json"),
    (b'{"topic":"publicTrade.BTCUSDT","ts":1,"data":["\xff"]}', "not_utf8"),
    ("[1,2]", "unexpected_frame"),
    ('{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[],"a":[]}}',
     "unexpected_frame"),
    ('{"topic":"orderbook.1.BTCUSDT","ts":1,"data":[]}', "unexpected_frame"),
    ('{"topic":"publicTrade.BTCUSDT","data":[]}', "bad_trade"),  # no message time
    ('{"hello":"world"}', "unexpected_frame"),
])
def test_unusable_frames_raise_with_kind(bybit, frame, kind):
    with pytest.raises(NormalizeError) as err:
        bybit.parse(frame, RECEIVED)
    assert err.value.kind == kind


def test_subscribe_requests_hold_at_most_ten_topics():
    symbols = sorted(p.symbol for p in shipped_pairs())
    messages = [json.loads(m) for m in Bybit(symbols, TABLE).subscribe_messages()]
    assert [len(m["args"]) for m in messages] == [10, 10, len(symbols) - 20]
    assert [m["req_id"] for m in messages] == ["trade-1", "trade-2", "trade-3"]
    assert {m["op"] for m in messages} == {"subscribe"}
    assert [a for m in messages for a in m["args"]] == [f"publicTrade.{s}" for s in symbols]


def test_ping_and_url(bybit):
    assert json.loads(bybit.ping_message(4)) == {"op": "ping", "req_id": "ping-4"}
    assert bybit.stream_url("wss://stream.bybit.com/v5/public/spot") == "wss://stream.bybit.com/v5/public/spot"
    assert bybit.symbols == ["BTCUSDT", "ETHUSDT", "DOGEUSDT"]


def test_unknown_configured_symbol_names_it():
    with pytest.raises(UnknownSymbolError, match="'NOPEUSDT'"):
        Bybit(["BTCUSDT", "NOPEUSDT"], TABLE)


def many(n: int) -> list[str]:
    return [f"TOKEN{i:05d}USDT" for i in range(n)]


def test_one_connection_takes_topics_up_to_its_args_limit_and_the_worker_shards_the_rest():
    names = many(2000)
    table = TABLE.updated("bybit", [Pair(s, s[:-4], "USDT") for s in names])
    # "publicTrade.TOKEN00000USDT" and a comma are 29 characters, plus 1 for the brackets
    # (a comma fewer): 1 + 29 * 724 = 20,997 fit in 21,000, one more topic does not.
    assert [len(s) for s in connection_shards(names[:724])] == [724]
    assert [len(s) for s in connection_shards(names[:725])] == [724, 1]
    assert len(Bybit(names, table).symbols) == 2000  # the venue holds them all; shards split them


def test_connection_shards_cover_every_symbol_in_order_within_the_limit():
    names = many(2000)
    shards = connection_shards(names)
    assert [len(s) for s in shards] == [724, 724, 552]
    assert [s for shard in shards for s in shard] == names
    assert all(args_chars(shard) <= MAX_ARGS_CHARS_PER_CONNECTION for shard in shards)
    assert args_chars(shards[0] + shards[1][:1]) > MAX_ARGS_CHARS_PER_CONNECTION  # each one is full
    assert connection_shards([]) == []


# symbol metadata ---------------------------------------------------------------------


def test_instruments_info_gives_trading_pairs_only():
    doc = json.loads((FRAMES / "instruments_info.json").read_text())
    assert pairs_from_instruments_info(doc) == [
        Pair("BTCUSDT", "BTC", "USDT"), Pair("1000000MOGUSDT", "1000000MOG", "USDT"), Pair("ETHBTC", "ETH", "BTC")]


@pytest.mark.parametrize("doc, message", [
    ({"retCode": 10001, "retMsg": "params error: Category is invalid", "result": {}}, "retCode=10001"),
    ({"retCode": 0, "result": {"category": "linear", "list": []}}, "not a spot list"),
    ({"retCode": 0, "result": {"category": "spot", "list": [{"symbol": "BTCUSDT", "status": "Trading"}]}},
     "without symbol/baseCoin/quoteCoin"),
    ({"retCode": 0, "result": {"category": "spot", "list": ["BTCUSDT"]}}, "without symbol"),
])
def test_instruments_info_errors_say_what_is_wrong(doc, message):
    with pytest.raises(ValueError, match=message):
        pairs_from_instruments_info(doc)


def test_shipped_symbols_are_wire_names_of_their_pair():
    pairs = shipped_pairs()
    assert len(pairs) >= 20 and len({p.symbol for p in pairs}) == len(pairs)
    assert all(p.symbol == p.base + p.quote and p.symbol.isupper() for p in pairs)


# properties ------------------------------------------------------------------------------


def check(exchange: Bybit, frame: str | bytes) -> None:
    """Any input: a Parsed holding valid records or typed rejects, or a typed NormalizeError."""
    try:
        parsed = exchange.parse(frame, RECEIVED)
    except NormalizeError as exc:
        assert exc.kind in REJECT_KINDS and 0 < len(str(exc)) <= 1000, (exc.kind, str(exc))
        return
    assert all(r.kind in REJECT_KINDS and len(str(r)) <= 1000 for r in parsed.rejects), parsed.rejects
    if parsed.control is not None:
        assert parsed.control.kind in CONTROL_KINDS and not parsed.trades and not parsed.rejects
    for record in parsed.trades:
        assert record["exchange"] == "BYBIT" and record["side"] in ("BUY", "SELL")
        assert TABLE.lookup("bybit", record["symbol"]) is not None
        assert record["trade_id"].isdigit() and int(record["trade_id"]) < 2**63
        assert record["price"].as_tuple().exponent == -8 and record["quantity"].as_tuple().exponent == -8
        assert 0 <= record["timestamp"] <= 253402300799999999
        assert all(type(v) is str for v in record["vendor_data"].values())


@settings(max_examples=300)
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_any_bytes_or_text(frame):
    check(Bybit(["BTCUSDT"], TABLE), frame)


@settings(max_examples=300)
@given(json_values.map(lambda doc: dumps(doc)))
def test_any_json_document(frame):
    check(Bybit(["BTCUSDT"], TABLE), frame)


@settings(max_examples=1000)
@given(structure_mutations([line.encode() for line in RECORDED]) | byte_flips([line.encode() for line in RECORDED]))
def test_any_mutation_of_a_recorded_frame(frame):
    check(Bybit(["BTCUSDT", "ETHUSDT", "DOGEUSDT"], TABLE), frame)


decimals = st.tuples(st.integers(0, 10**10 - 1), st.integers(0, 8), st.integers(0, 10**8 - 1)).map(
    lambda t: (f"{t[0]}.{t[2] % 10 ** t[1]:0{t[1]}d}" if t[1] else str(t[0])))
trades = st.fixed_dictionaries({
    "i": st.integers(0, 2**63 - 1).map(str),
    "T": st.integers(0, 253402300799999),
    "p": decimals,
    "v": decimals,
    "S": st.sampled_from(["Buy", "Sell"]),
    "s": st.sampled_from([p.symbol for p in shipped_pairs()]),
    "BT": st.booleans(),
})


@settings(max_examples=300)
@given(st.lists(trades, min_size=1, max_size=5), st.integers(0, 253402300799999))
def test_valid_frames_round_trip_exactly(items, ts):
    exchange = Bybit([p.symbol for p in shipped_pairs()], TABLE)
    frame = json.dumps({"topic": f"publicTrade.{items[0]['s']}", "type": "snapshot", "ts": ts, "data": items})
    parsed = exchange.parse(frame, RECEIVED)
    assert parsed.rejects == [] and parsed.control is None
    assert [(t["trade_id"], t["timestamp"], t["price"], t["quantity"], t["side"], t["symbol"], t["vendor_data"])
            for t in parsed.trades] == [
        (i["i"], i["T"] * 1000, Decimal(i["p"]), Decimal(i["v"]), i["S"].upper(), i["s"],
         {"event_time_us": str(ts * 1000), "block_trade": "true" if i["BT"] else "false"})
        for i in items]
