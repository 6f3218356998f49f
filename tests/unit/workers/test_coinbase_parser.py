"""Coinbase Exchange parser on recorded-format frames (``frames/coinbase/``): matches,
controls, edge cases, REST pages and paging, product metadata, and a fuzz property.

Expected records are written out by hand from the frames; message ids come from
``uuid.uuid5`` over the contract's name, not from the code under test.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from worker_fuzzing import REJECT_KINDS, fuzz, json_values, structure_mutations

from k2.exchanges import venue
from workers.backfill import Done, Page, fetch_gap
from workers.base import Parsed
from workers.exchanges.coinbase import (
    PRODUCTS_PER_SUBSCRIBE,
    REST_MIN_INTERVAL_S,
    Coinbase,
    pairs_from_products,
)
from workers.normalize import NormalizeError
from workers.progress import Gap
from workers.rest_source import Got, Problem, Throttled
from workers.simulator.market import Tape
from workers.simulator.venues import coinbase as sim
from workers.stats import WorkerStats
from workers.symbols import Pair, SymbolTable, read_pairs, symbols_file

FRAMES = Path(__file__).with_name("frames") / "coinbase"
RECEIVED = 1767225600200000
NAMESPACE = uuid.UUID("6f1c2b1e-5d0a-5b8e-9c3e-4b2a7f0d1e93")  # the contract's, written out
CONTROL_KINDS = {"ack", "subscribe_error", "exchange_error", "heartbeat", "status", "pong", "server_shutdown"}
TABLE = SymbolTable.shipped()


def shipped_pairs() -> list[Pair]:
    """The pairs shipped in workers/exchanges/coinbase_symbols.json."""
    return list(read_pairs(symbols_file(venue("coinbase"))).values())


def frames() -> list[str]:
    return [line for line in (FRAMES / "ws.jsonl").read_text().splitlines() if line]


BTC, ETH, LAST, HEARTBEAT, ACK, SUB_ERROR, ERROR = frames()


def mid(symbol: str, trade_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"COINBASE:{symbol}:{trade_id}"))


@pytest.fixture
def coinbase() -> Coinbase:
    return Coinbase(["btc-usd", "ETH-USD"], TABLE)


def one_reject(coinbase: Coinbase, frame: str | bytes) -> str:
    """The kind of the single rejection of ``frame`` (of one trade, or of the frame)."""
    try:
        parsed = coinbase.parse(frame, RECEIVED)
    except NormalizeError as exc:
        return exc.kind
    assert parsed.trades == [] and parsed.control is None and len(parsed.rejects) == 1, parsed
    return parsed.rejects[0].kind


# trades ----------------------------------------------------------------------------------


def test_a_match_becomes_the_exact_record_with_the_takers_side(coinbase):
    parsed = coinbase.parse(BTC, RECEIVED)
    assert parsed.control is None and parsed.rejects == []
    assert parsed.trades == [{
        "message_id": mid("BTC-USD", "929248657"),
        "trade_id": "929248657",
        "symbol": "BTC-USD",
        "exchange": "COINBASE",
        "timestamp": 1767225600123456,
        "price": Decimal("94250.01000000"),
        "quantity": Decimal("0.00210000"),
        "base_asset": "BTC",
        "quote_currency": "USD",
        "side": "BUY",  # the maker sold: the taker bought
        "ingestion_timestamp": RECEIVED,
        "vendor_data": {
            "maker_side": "sell",
            "sequence": "112233445566",
            "maker_order_id": "ac928c66-ca53-498f-9c13-a110027a60e8",
            "taker_order_id": "132fb6ae-456b-4654-b4e0-d681ac05cea1",
            "type": "match",
        },
    }]


def test_a_buy_maker_is_a_sell_taker_and_short_decimals_and_times_are_exact(coinbase):
    (trade,) = coinbase.parse(ETH.encode(), RECEIVED).trades  # bytes frames too
    assert (trade["symbol"], trade["side"], trade["price"], trade["quantity"], trade["timestamp"]) == (
        "ETH-USD", "SELL", Decimal("3300.5"), Decimal("1.5"), 1767225601000000)
    assert (trade["base_asset"], trade["quote_currency"]) == ("ETH", "USD")


def test_last_match_is_a_trade_marked_as_such(coinbase):
    (trade,) = coinbase.parse(LAST, RECEIVED).trades
    assert (trade["trade_id"], trade["side"], trade["timestamp"]) == ("929248656", "SELL", 1767225600000001)
    assert trade["vendor_data"]["type"] == "last_match"
    assert trade["message_id"] == mid("BTC-USD", "929248656")  # equal to the match it repeats


def test_any_listed_product_parses_not_only_subscribed_ones(coinbase):
    frame = BTC.replace('"BTC-USD"', '"ETH-BTC"')
    (trade,) = coinbase.parse(frame, RECEIVED).trades
    assert (trade["symbol"], trade["base_asset"], trade["quote_currency"]) == ("ETH-BTC", "ETH", "BTC")


@pytest.mark.parametrize("text, value", [
    ("1.5e-05", Decimal("0.000015")),  # exponent form
    ("0.00000001", Decimal("0.00000001")),  # the finest decimal(18,8) holds
    ("9999999999.99999999", Decimal("9999999999.99999999")),  # the largest
    ("2.10000000000", Decimal("2.1")),  # trailing zeros past 8 places are not precision
    ("-0", Decimal("0")),
])
def test_odd_decimal_texts_keep_their_exact_value(coinbase, text, value):
    (trade,) = coinbase.parse(BTC.replace('"0.00210000"', f'"{text}"'), RECEIVED).trades
    assert trade["quantity"] == value


@pytest.mark.parametrize("old, new, kind", [
    ('"0.00210000"', '"0.000000001"', "decimal_out_of_range"),  # 9 places
    ('"94250.01"', '"12345678901"', "decimal_out_of_range"),  # 11 integer digits
    ('"94250.01"', '"1e999999999999"', "decimal_out_of_range"),
    ('"94250.01"', '" 94250.01"', "bad_decimal"),
    ('"94250.01"', '"NaN"', "bad_decimal"),
    ('"side":"sell"', '"side":"short"', "bad_trade"),
    ('"product_id":"BTC-USD"', '"product_id":"NOPE-USD"', "unknown_symbol"),
    ('"time":"2026-01-01T00:00:00.123456Z"', '"time":"soon"', "bad_timestamp"),
    ('"time":"2026-01-01T00:00:00.123456Z"', '"time":"2026-01-01T00:00:00"', "bad_timestamp"),  # no offset
    ('"trade_id":929248657', '"trade_id":-1', "bad_trade"),
    ('"trade_id":929248657', '"trade_id":9223372036854775808', "bad_trade"),  # past int64
    ('"trade_id":929248657', '"trade_id":99999999999999999999999', "bad_trade"),  # past uint64
    ('"trade_id":929248657', '"trade_id":"929248657"', "bad_trade"),  # wrong type
    ('"price":"94250.01"', '"price":94250.01', "bad_trade"),  # a JSON number, not the documented string
    ('"size":"0.00210000",', "", "bad_trade"),  # missing field
    ('"sequence":112233445566', '"sequence":null', "bad_trade"),
    ('"trade_id":929248657', '"trade_id":' + "9" * 5000, "number_out_of_range"),
])
def test_bad_trades_are_rejected_with_their_kind(coinbase, old, new, kind):
    frame = BTC.replace(old, new, 1)
    assert frame != BTC
    assert one_reject(coinbase, frame) == kind


@pytest.mark.parametrize("frame, kind", [
    ("<html><body>502 Bad Gateway</body></html>", "malformed_json"),
    (BTC[: len(BTC) // 2], "malformed_json"),
    ("", "malformed_json"),
    (b'{"type":"match","product_id":"\xff"}', "not_utf8"),
    ("[" + BTC + "]", "unexpected_frame"),  # Coinbase sends one object per message, never a batch
    ('"match"', "unexpected_frame"),
    ('{"type":"ticker","product_id":"BTC-USD","price":"94250.01"}', "unexpected_frame"),
    ('{"product_id":"BTC-USD"}', "unexpected_frame"),
    ("[" * 100_000 + "]" * 100_000, "too_deeply_nested"),
])
def test_unusable_frames_raise_with_their_kind(coinbase, frame, kind):
    with pytest.raises(NormalizeError) as err:
        coinbase.parse(frame, RECEIVED)
    assert err.value.kind == kind


# controls and subscribe --------------------------------------------------------------------


@pytest.mark.parametrize("frame, kind, detail", [
    (HEARTBEAT, "heartbeat", "BTC-USD last_trade_id=929248657"),
    (ACK, "ack", "matches: BTC-USD,ETH-USD; heartbeat: BTC-USD,ETH-USD"),
    (SUB_ERROR, "subscribe_error", "Failed to subscribe: NOPE-USD is not a valid product"),
    (ERROR, "exchange_error", "slow consumer: too many backed up messages (ErrSlowConsume)"),
    ('{"type":"heartbeat","product_id":"BTC-USD","last_trade_id":"x"}', "heartbeat",
     "BTC-USD last_trade_id=x"),  # an odd heartbeat still proves the connection alive
])
def test_control_frames(coinbase, frame, kind, detail):
    parsed = coinbase.parse(frame, RECEIVED)
    assert parsed.trades == [] and parsed.rejects == []
    assert (parsed.control.kind, parsed.control.detail) == (kind, detail)


def test_one_subscribe_for_both_channels_and_no_application_ping(coinbase):
    assert [json.loads(m) for m in coinbase.subscribe_messages()] == [
        {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channels": ["matches", "heartbeat"]}]
    assert coinbase.ping_message(1) is None
    assert coinbase.stream_url("wss://ws-feed.exchange.coinbase.com") == "wss://ws-feed.exchange.coinbase.com"
    assert (coinbase.name, coinbase.enum_symbol, coinbase.sequential_ids, coinbase.backfills,
            coinbase.sends_heartbeats) == ("coinbase", "COINBASE", True, True, True)


def test_many_products_are_split_across_subscribe_messages():
    pairs = [Pair(f"C{i:03d}-USD", f"C{i:03d}", "USD") for i in range(250)]
    exchange = Coinbase([p.symbol for p in pairs], TABLE.updated("coinbase", pairs))
    messages = [json.loads(m) for m in exchange.subscribe_messages()]
    assert [len(m["product_ids"]) for m in messages] == [100, 100, 50] and PRODUCTS_PER_SUBSCRIBE == 100
    assert [p for m in messages for p in m["product_ids"]] == [p.symbol for p in pairs]
    assert all(len(raw) < 2000 for raw in exchange.subscribe_messages())


def test_an_unknown_configured_product_names_the_known_ones():
    with pytest.raises(ValueError, match="coinbase symbol 'NOPE-USD' is not in the symbol table; known: "):
        Coinbase(["NOPE-USD"], TABLE)


# REST history --------------------------------------------------------------------------------

REST_BODY = (FRAMES / "rest_trades.json").read_bytes()


def test_a_rest_page_gives_the_streams_records(coinbase):
    page = coinbase.parse_rest_trades(REST_BODY, "BTC-USD", RECEIVED)
    assert page.rejects == [] and page.ids == [929248657, 929248656, 929248655]
    stream = coinbase.parse(BTC, RECEIVED).trades[0]
    rest = page.records[0]
    assert rest["vendor_data"] == {"maker_side": "sell", "source": "rest"}
    same = ("message_id", "trade_id", "symbol", "timestamp", "price", "quantity", "side")
    assert {k: rest[k] for k in same} == {k: stream[k] for k in same}
    assert [(r["side"], r["timestamp"]) for r in page.records[1:]] == [
        ("SELL", 1767225600000001), ("BUY", 1767225599900000)]


def test_one_bad_item_in_a_rest_page_keeps_the_others(coinbase):
    items = json.loads(REST_BODY)
    del items[1]["price"]
    items[2]["size"] = "0.000000001"
    page = coinbase.parse_rest_trades(json.dumps(items).encode(), "BTC-USD", RECEIVED)
    assert [r["trade_id"] for r in page.records] == ["929248657"]
    assert [e.kind for e, _ in page.rejects] == ["bad_trade", "decimal_out_of_range"]
    assert json.loads(page.rejects[0][1])["trade_id"] == 929248656  # the item, kept for the DLQ
    assert page.ids == [929248657, 929248656, 929248655]  # rejected items are paged over, not asked again


@pytest.mark.parametrize("body", [b'{"message":"NotFound"}', b"<html>", b"", b'"x"'])
def test_a_rest_body_that_is_not_an_array_is_a_bad_response(coinbase, body):
    with pytest.raises(NormalizeError) as err:
        coinbase.parse_rest_trades(body, "BTC-USD", RECEIVED)
    assert err.value.kind == "bad_rest_response"


def test_pages_are_asked_for_as_after_first_plus_limit(coinbase):
    source = coinbase.rest_source("https://api.exchange.coinbase.com/", 1000)
    gap = Gap(1, "BTC-USD", 100, 2599, "stream")
    base = "https://api.exchange.coinbase.com/products/BTC-USD/trades"
    assert source.request(gap, 100, source.start(gap)) == (f"{base}?after=1100&limit=1000", {})
    assert source.request(gap, 2100, None) == (f"{base}?after=2600&limit=500", {})
    assert source.latest_request("BTC-USD") == (f"{base}?limit=1", {})
    assert (source.min_interval_s, source.url_setting) == (REST_MIN_INTERVAL_S, "K2_COINBASE_REST_URL")
    assert coinbase.rest_source("http://x", 5000).page_limit == 1000  # the venue's most per page


def test_what_each_answer_means(coinbase):
    source = coinbase.rest_source("http://rest.test", 1000)
    gap = Gap(1, "BTC-USD", 929248655, 929248700, "stream")

    def answer(status, body, headers=None, next_id=929248655):
        return source.answer(status, headers or {}, body, gap, next_id, None, RECEIVED)

    got = answer(200, REST_BODY)
    assert isinstance(got, Got) and got.cursor is None and len(got.page.records) == 3
    behind = answer(200, REST_BODY, next_id=929248658)  # REST has not caught up with the stream
    assert isinstance(behind, Problem) and "no trades from id 929248658 yet" in behind.problem
    assert isinstance(answer(200, b"[]"), Problem)
    throttled = answer(429, b'{"message":"Public rate limit exceeded"}', {"Retry-After": "3"})
    assert isinstance(throttled, Throttled) and throttled.wait_s == 3.0
    assert answer(429, b"{}").wait_s == 1.0
    assert answer(404, b'{"message":"NotFound"}').problem == 'HTTP 404: {"message":"NotFound"}'
    assert answer(200, b"<html>").problem.startswith("bad_rest_response: ")
    unknown = source.answer(200, {}, REST_BODY, Gap(2, "NOPE-USD", 1, 2, "stream"), 1, None, RECEIVED)
    assert unknown.problem.startswith("unknown_symbol: ")
    latest = source.latest_answer(200, {}, REST_BODY, "BTC-USD", RECEIVED)
    assert isinstance(latest, Got) and max(latest.page.ids) == 929248657
    assert isinstance(source.latest_answer(200, {}, b"[]", "BTC-USD", RECEIVED), Problem)


def test_the_generic_backfill_pages_a_gap_from_the_simulated_history_exactly_once(coinbase):
    tape = Tape(["BTC-USD", "ETH-USD"], {"BTC-USD": "BTC", "ETH-USD": "ETH"}, 5, 2, archive_depth=5000)
    for i in range(6000):
        tape.next(1767225600000000 + i)
    archive = tape.archive["BTC-USD"]
    first, last = archive[10].trade_id, archive[-3].trade_id
    urls: list[str] = []

    def fetch(url: str, headers: dict, timeout: float):
        urls.append(url)
        path, _, query = url.removeprefix("http://rest.test").partition("?")
        reply = sim.rest_trades(path, {k: [v] for k, v in (p.split("=") for p in query.split("&"))}, tape)
        return reply.status, reply.headers, reply.body.encode()

    events = list(fetch_gap(Gap(1, "BTC-USD", first, last, "stream"), coinbase, "http://rest.test", 1000, fetch,
                            lambda s: True, WorkerStats("coinbase")))
    ids = [int(r["trade_id"]) for e in events if isinstance(e, Page) for r in e.page.records]
    assert sorted(ids) == list(range(first, last + 1)) and len(ids) == len(set(ids))  # each once
    assert isinstance(events[-1], Done) and len(urls) == -(-(last - first + 1) // 1000)


# symbol metadata -----------------------------------------------------------------------------


def test_products_metadata_keeps_only_tradable_products():
    doc = json.loads((FRAMES / "products.json").read_text())
    assert pairs_from_products(doc) == [
        Pair("BTC-USD", "BTC", "USD"), Pair("ETH-BTC", "ETH", "BTC"), Pair("USDT-USDC", "USDT", "USDC")]
    with pytest.raises(ValueError, match="not a JSON array"):
        pairs_from_products({"message": "Unauthorized"})


def test_shipped_symbols_are_wire_product_ids_of_their_base_and_quote():
    pairs = shipped_pairs()
    assert 20 <= len(pairs) <= 30 and len({p.symbol for p in pairs}) == len(pairs)
    assert all(p.symbol == f"{p.base}-{p.quote}" and p.symbol.isupper() for p in pairs)
    assert {"BTC-USD", "ETH-USD", "ETH-BTC", "BTC-EUR", "BTC-USDT"} <= {p.symbol for p in pairs}


# properties ------------------------------------------------------------------------------------


def check(coinbase: Coinbase, frame: str | bytes) -> Parsed | None:
    """The property: Parsed (trades with the contract's fields, a control or typed rejects)
    or a NormalizeError of a known kind; never another exception."""
    try:
        parsed = coinbase.parse(frame, RECEIVED)
    except NormalizeError as exc:
        assert exc.kind in REJECT_KINDS and 0 < len(str(exc)) <= 1000, (exc.kind, str(exc))
        return None
    assert isinstance(parsed, Parsed)
    assert all(r.kind in REJECT_KINDS and len(str(r)) <= 1000 for r in parsed.rejects), parsed.rejects
    if parsed.control is not None:
        assert parsed.control.kind in CONTROL_KINDS and len(parsed.control.detail) <= 1000
        assert not parsed.trades and not parsed.rejects
    else:
        assert len(parsed.trades) + len(parsed.rejects) == 1  # one trade per Coinbase message
    for record in parsed.trades:
        assert record["message_id"] == mid(record["symbol"], record["trade_id"])
        assert TABLE.lookup("coinbase", record["symbol"]) is not None and record["side"] in ("BUY", "SELL")
        assert all(record[f].as_tuple().exponent == -8 for f in ("price", "quantity"))
        assert all(type(k) is str and type(v) is str for k, v in record["vendor_data"].items())
    return parsed


def test_any_bytes_text_or_json_is_parsed_or_rejected(coinbase):
    inputs = st.one_of(st.binary(max_size=300), st.text(max_size=300),
                       json_values.map(lambda doc: json.dumps(doc)))
    assert fuzz("coinbase_any_input", "coinbase", inputs, lambda f: check(coinbase, f), 1000) >= 1000


def test_any_mutation_of_recorded_frames_is_parsed_or_rejected(coinbase):
    outcomes = {"trade": 0, "control": 0, "rejected": 0}

    def run(frame: bytes) -> None:
        parsed = check(coinbase, frame)
        outcomes["rejected" if parsed is None or parsed.rejects else "control" if parsed.control else "trade"] += 1

    mutated = structure_mutations([f.encode() for f in frames()])
    assert fuzz("coinbase_mutations", "coinbase", mutated, run, 2500) >= 2500
    assert all(count > 20 for count in outcomes.values()), outcomes  # past the JSON syntax, every outcome


decimals_8 = st.decimals(min_value=0, max_value=Decimal("9999999999.99999999"), places=8,
                         allow_nan=False, allow_infinity=False)


@settings(max_examples=300, derandomize=True, database=None)
@given(trade_id=st.integers(0, 2**63 - 1), price=decimals_8, size=decimals_8, maker=st.sampled_from(["buy", "sell"]),
       us=st.integers(0, 253402300799999999), product=st.sampled_from(sorted(p.symbol for p in shipped_pairs())),
       sequence=st.integers(0, 2**63 - 1))
def test_valid_matches_round_trip_exactly(trade_id, price, size, maker, us, product, sequence):
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    frame = json.dumps({"type": "match", "trade_id": trade_id, "sequence": sequence, "maker_order_id": "m",
                        "taker_order_id": "t", "time": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "product_id": product, "size": str(size), "price": str(price), "side": maker})
    (trade,) = Coinbase([product], TABLE).parse(frame, RECEIVED).trades
    base, quote = product.split("-")
    assert (trade["trade_id"], trade["symbol"], trade["timestamp"], trade["price"], trade["quantity"],
            trade["side"], trade["base_asset"], trade["quote_currency"]) == (
        str(trade_id), product, us, price, size, "SELL" if maker == "buy" else "BUY", base, quote)
    assert trade["vendor_data"]["sequence"] == str(sequence)
