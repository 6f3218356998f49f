"""The simulator's full market: a generated universe per venue, its REST metadata, rates
and bursts, the record's cheap lines (pure parts; the served parts are in
test_simulator_fullmarket.py)."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.exchanges import exchange_class
from workers.simulator.market import SimTrade, Tape, decimal_text
from workers.simulator.schedule import Bursts, ScheduleError
from workers.simulator.server import Simulator, SimulatorConfig
from workers.simulator.session import Recorder
from workers.simulator.universe import UniverseError, generate, parse_sizes, split_rate
from workers.simulator.venues import protocol_classes

SEPARATORS = {"binance": "", "kraken": "/", "coinbase": "-", "bybit": "", "okx": "-"}  # restated, not read
UNIVERSE = {"binance": 300, "kraken": 200, "coinbase": 120, "bybit": 120, "okx": 120}


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator(SimulatorConfig(universe=UNIVERSE, seed=5))


def metadata(sim: Simulator, venue: str, **query: str) -> tuple[int, object]:
    market = sim.markets[venue]
    url = urllib.parse.urlsplit(exchange_class(venue).metadata_url("http://x", []))
    params = {**urllib.parse.parse_qs(url.query), **{k: [v] for k, v in query.items()}}
    params.pop("symbols", None)  # Binance's worker names its symbols; the whole universe is asked here
    reply = market.venue.answer(url.path, params, {})
    return reply.status, json.loads(reply.body)


def test_a_universe_has_the_size_asked_shipped_symbols_first_each_spelled_the_venues_way(sim):
    for venue, count in UNIVERSE.items():
        listings = list(sim.markets[venue].venue.listings.values())
        assert len(listings) == len({item.symbol for item in listings}) == count
        defaults = exchange_class(venue).default_symbols
        assert [item.symbol for item in listings[: len(defaults)]] == list(defaults)
        for item in listings:
            assert item.symbol == f"{item.base}{SEPARATORS[venue]}{item.quote}"
        assert sim.tapes[venue].symbols == [item.symbol for item in listings]  # all trading


def test_the_same_seed_gives_the_same_universe_and_another_seed_another():
    again = Simulator(SimulatorConfig(universe={"okx": 120}, seed=5)).markets["okx"].venue.listings
    other = Simulator(SimulatorConfig(universe={"okx": 120}, seed=6)).markets["okx"].venue.listings
    first = Simulator(SimulatorConfig(universe={"okx": 120}, seed=5)).markets["okx"].venue.listings
    assert list(again.values()) == list(first.values()) and list(other) != list(first)


def test_every_venues_metadata_lists_the_whole_universe_for_its_worker(sim):
    """What each worker module's own parser reads from the metadata its metadata_url names."""
    for venue in UNIVERSE:
        status, doc = metadata(sim, venue)
        assert status == 200, doc
        pairs = exchange_class(venue).pairs_from_metadata(doc)
        listed = sim.markets[venue].venue.listings.values()
        # Kraken's wsname says XBT for BTC, which the worker's parser maps back.
        assert {(p.symbol, p.base, p.quote) for p in pairs} == {(i.symbol, i.base, i.quote) for i in listed}


STATUS = {  # venue -> (symbol -> status) read from its metadata document, restated per venue's format
    "binance": lambda doc: {i["symbol"]: i["status"] for i in doc["symbols"]},
    "kraken": lambda doc: {i["wsname"].replace("XBT", "BTC"): i["status"] for i in doc["result"].values()},
    "coinbase": lambda doc: {i["id"]: i["status"] for i in doc},
    "bybit": lambda doc: {i["symbol"]: i["status"] for i in doc["result"]["list"]},
    "okx": lambda doc: {i["instId"]: i["state"] for i in doc["data"]},
}


def test_a_symbol_listed_not_trading_carries_the_venues_not_trading_status_then_opens():
    s = Simulator(SimulatorConfig(universe=dict.fromkeys(SEPARATORS, 10), seed=2))
    words = {"binance": ("BREAK", "TRADING"), "kraken": ("cancel_only", "online"),
             "coinbase": ("offline", "online"), "bybit": ("PreLaunch", "Trading"), "okx": ("preopen", "live")}
    for venue, (closed, trading) in words.items():
        symbol = f"NEWCOIN{SEPARATORS[venue]}USDT"
        s.list_symbol(venue, symbol, "NEWCOIN", "USDT", trading=False)
        assert symbol not in s.tapes[venue].listed
        assert STATUS[venue](metadata(s, venue)[1])[symbol] == closed
        s.list_symbol(venue, symbol, "NEWCOIN", "USDT")
        assert STATUS[venue](metadata(s, venue)[1])[symbol] == trading
        assert any(s.tapes[venue].next(1).symbol == symbol for _ in range(2000))


def test_delisting_removes_a_symbol_from_metadata_and_trading():
    s = Simulator(SimulatorConfig(universe={"coinbase": 20}, seed=2))
    gone = s.tapes["coinbase"].symbols[5]
    assert s.delist_symbol("coinbase", gone) and not s.delist_symbol("coinbase", gone)
    _, doc = metadata(s, "coinbase")
    assert gone not in {p["id"] for p in doc} and len(doc) == 19
    assert all(s.tapes["coinbase"].next(1).symbol != gone for _ in range(500))


def test_binance_exchange_info_filters_by_symbols_and_refuses_an_unknown_one(sim):
    venue = sim.markets["binance"].venue
    ok = venue.answer("/api/v3/exchangeInfo", {"symbols": ['["BTCUSDT","ETHUSDT"]']}, {})
    assert [s["symbol"] for s in json.loads(ok.body)["symbols"]] == ["BTCUSDT", "ETHUSDT"]
    bad = venue.answer("/api/v3/exchangeInfo", {"symbols": ['["BTCUSDT","NOPEUSDT"]']}, {})
    assert (bad.status, json.loads(bad.body)["code"]) == (400, -1121)


def test_parse_sizes_and_split_rate():
    venues = list(SEPARATORS)
    sizes = parse_sizes("binance=2000, kraken=1000,coinbase=500,bybit=500,okx=500", venues)
    assert sizes == {"binance": 2000, "kraken": 1000, "coinbase": 500, "bybit": 500, "okx": 500}
    rates = split_rate(4500, sizes)
    assert rates["binance"] == 2000 and rates["okx"] == 500 and sum(rates.values()) == 4500


@given(st.text(max_size=40))
def test_a_bad_universe_text_is_a_clear_error_never_a_crash(text):
    try:
        sizes = parse_sizes(text, list(SEPARATORS))
    except UniverseError as exc:
        assert "universe entry" in str(exc)
    else:
        assert set(sizes) <= set(SEPARATORS) and all(n >= 0 for n in sizes.values())


@given(st.text(max_size=30))
def test_a_bad_burst_schedule_is_a_clear_error_never_a_crash(text):
    try:
        bursts = Bursts.parse(text)
    except ScheduleError as exc:
        assert "bursts" in str(exc)
    else:
        assert bursts.factor > 0 and bursts.every_s >= bursts.length_s > 0


def test_bursts_multiply_the_rate_for_their_length_every_period():
    b = Bursts.parse("10:60:600:300")
    assert [b.multiplier(t) for t in (0, 299.9, 300, 359.9, 360, 899, 900, 959)] == [1, 1, 10, 10, 1, 1, 10, 10]
    assert b.windows(1800) == [(300, 360), (900, 960), (1500, 1560)]


def test_generated_prices_are_decimal_text_within_the_contract():
    listings = generate("okx", "-", ("USDT", "BTC"), 300, 9, [])
    tape = Tape([i.symbol for i in listings], {i.symbol: i.base for i in listings}, 1, 1,
                prices={i.symbol: i.price for i in listings})
    for _ in range(5000):
        t = tape.next(1)
        whole, _, frac = t.price.partition(".")
        assert float(t.price) > 0 and len(whole) <= 10 and len(frac) <= 8
        assert len(t.qty.partition(".")[2]) == 8


@pytest.mark.parametrize(("units", "scale", "text"), [(0, 2, "0.00"), (5, 3, "0.005"), (123456, 2, "1234.56"),
                                                      (7, 0, "7"), (100000000, 8, "1.00000000")])
def test_decimal_text(units, scale, text):
    assert decimal_text(units, scale) == text


def test_the_records_fast_lines_are_the_json_they_replace(tmp_path):
    path = tmp_path / "r.jsonl"
    rec = Recorder(str(path))
    t = SimTrade("AB-USD", 42, "1.50", "0.00100000", "sell", 1767225600123456)
    rec.published("coinbase", [t])
    rec.trade("coinbase", 3, t, "1.5", "1e-3", 1767225600123, "ms", "update")
    rec.trade("okx", 4, t, "1.50", "0.001", "2026-01-01T00:00:00.123456Z", "rfc3339", "snapshot")
    rec.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {"ev": "published", "exchange": "coinbase", "symbol": "AB-USD", "trade_id": "42",
                        "price_wire": "1.50", "qty_wire": "0.00100000", "taker": "sell",
                        "time_us": 1767225600123456}
    assert lines[1]["time_wire"] == 1767225600123 and lines[1]["qty_wire"] == "1e-3" and lines[1]["conn"] == 3
    assert lines[2]["time_wire"] == "2026-01-01T00:00:00.123456Z" and lines[2]["frame"] == "snapshot"


def test_spans_only_keeps_each_symbols_first_and_last_id_sent(tmp_path):
    path = tmp_path / "r.jsonl"
    rec = Recorder(str(path), sent_lines=False)
    for tid in (7, 5, 9, 6):
        rec.trade("bybit", 1, SimTrade("ABUSDT", tid, "1", "1", "buy", 1), "1", "1", 1, "ms", "update")
    rec.close()
    (line,) = [json.loads(x) for x in path.read_text().splitlines()]
    assert line == {"ev": "sent_span", "exchange": "bybit", "symbol": "ABUSDT", "first_id": 5, "last_id": 9}


def test_every_venue_names_its_separator():
    assert {name: p.separator for name, p in protocol_classes().items()} == SEPARATORS


def test_the_full_listing_a_worker_reads_for_all_is_the_trading_universe():
    """``K2_<EXCHANGE>_SYMBOLS=all``: each worker's listing_url and trading_pairs over the
    simulator's metadata give exactly the symbols trading, not one listed but closed."""
    s = Simulator(SimulatorConfig(universe=dict.fromkeys(SEPARATORS, 40), seed=4))
    for venue, separator in SEPARATORS.items():
        s.list_symbol(venue, f"NEWCOIN{separator}USDT", "NEWCOIN", "USDT", trading=False)
        s.delist_symbol(venue, s.tapes[venue].symbols[3])
        cls = exchange_class(venue)
        url = urllib.parse.urlsplit(cls.listing_url("http://x"))
        reply = s.markets[venue].venue.answer(url.path, urllib.parse.parse_qs(url.query), {})
        pairs = cls.trading_pairs(json.loads(reply.body))
        assert {p.symbol for p in pairs} == set(s.tapes[venue].symbols) and len(pairs) == 39
