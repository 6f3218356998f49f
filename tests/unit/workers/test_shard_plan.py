"""The shard planner and the pacer: pure logic, each venue's declared limits.

Expectations are restated from the venues' documents (1,024 streams, 21,000 characters,
5 messages a second...), not read back from the planner.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.exchanges import exchange_classes
from workers.exchanges.binance import Binance
from workers.shard_plan import ShardingError, SlidingWindow, place, plan_shards
from workers.symbols import Pair, SymbolTable

VENUES = exchange_classes()

# Symbols in each venue's own format (what the planner and Bybit's weight see).
SYMBOL_FORMATS = {
    "binance": st.from_regex(r"[A-Z0-9]{2,10}(USDT|BTC|FDUSD)", fullmatch=True),
    "kraken": st.from_regex(r"[A-Z0-9]{2,10}/(USD|EUR|USDT)", fullmatch=True),
    "coinbase": st.from_regex(r"[A-Z0-9]{2,10}-(USD|EUR|USDC)", fullmatch=True),
    "bybit": st.from_regex(r"[A-Z0-9]{2,25}(USDT|USDC)", fullmatch=True),
    "okx": st.from_regex(r"[A-Z0-9]{2,10}-(USDT|USDC)", fullmatch=True),
}


def unit(_symbol: str) -> int:
    return 1


def test_each_venue_declares_its_documented_per_connection_limit():
    # Binance: "a single connection can listen to a maximum of 1024 streams"; Bybit: the
    # args of a connection total at most 21,000 characters; OKX and Coinbase document no
    # cap (K2's 200 and 500); Kraken neither (K2's 250).
    assert VENUES["binance"].limits.per_connection == 1024
    assert VENUES["bybit"].limits.per_connection == 21_000 - 1
    assert VENUES["okx"].limits.per_connection == 200
    assert VENUES["coinbase"].limits.per_connection == 500
    assert VENUES["kraken"].limits.per_connection == 250
    # Binance allows 5 incoming messages a second per connection (pongs count) and 300
    # connection attempts per 5 minutes per IP; OKX 480 subscribes an hour, 3 connects a second.
    binance, okx = VENUES["binance"].limits, VENUES["okx"].limits
    assert binance.messages.count / binance.messages.window_s < 5
    assert (binance.connects.count, binance.connects.window_s) == (300, 300.0)
    assert (okx.messages.count, okx.messages.window_s) == (480, 3600.0)
    assert (okx.connects.count, okx.connects.window_s) == (3, 1.0)


@pytest.mark.parametrize("name", sorted(VENUES))
def test_a_full_market_fits_each_venue_within_its_limits(name):
    cls = VENUES[name]
    symbols = [f"T{i:05d}X" for i in range(3000)]
    shards = plan_shards(symbols, cls.symbol_weight, cls.limits.per_connection)
    assert [s for shard in shards for s in shard] == symbols
    assert all(sum(cls.symbol_weight(s) for s in shard) <= cls.limits.per_connection for shard in shards)
    if name == "binance":
        assert [len(s) for s in shards] == [1024, 1024, 952]


@given(data=st.data())
def test_planned_shards_hold_every_symbol_once_in_order_within_the_limits(data):
    name = data.draw(st.sampled_from(sorted(VENUES)))
    cls = VENUES[name]
    symbols = data.draw(st.lists(SYMBOL_FORMATS[name], max_size=600, unique=True))
    cap = data.draw(st.none() | st.integers(1, 300))
    shards = plan_shards(symbols, cls.symbol_weight, cls.limits.per_connection, cap)
    assert [s for shard in shards for s in shard] == symbols
    assert all(shard for shard in shards)
    for shard in shards:
        assert sum(cls.symbol_weight(s) for s in shard) <= cls.limits.per_connection
        assert cap is None or len(shard) <= cap
    if cls.symbol_weight(symbols[0] if symbols else "X") == 1 and all(cls.symbol_weight(s) == 1 for s in symbols):
        per = min(cls.limits.per_connection, cap or cls.limits.per_connection)
        assert len(shards) == math.ceil(len(symbols) / per)  # unit weights: as few shards as possible


def test_bybit_weighs_a_symbol_by_the_characters_its_topic_adds():
    bybit = VENUES["bybit"]
    names = [f"TOKEN{i:05d}USDT" for i in range(725)]
    shards = plan_shards(names, bybit.symbol_weight, bybit.limits.per_connection)
    assert [len(s) for s in shards] == [724, 1]
    assert len(json.dumps([f"publicTrade.{s}" for s in shards[0]], separators=(",", ":"))) <= 21_000
    assert len(json.dumps([f"publicTrade.{s}" for s in names], separators=(",", ":"))) > 21_000


def test_a_symbol_heavier_than_a_connection_is_refused_by_name():
    with pytest.raises(ShardingError, match="'HUGE'"):
        plan_shards(["A", "HUGE"], lambda s: 10 if s == "HUGE" else 1, 5)


@given(
    existing=st.lists(st.lists(st.integers(0, 10_000), min_size=1, max_size=8), max_size=6),
    new=st.lists(st.integers(10_001, 20_000), max_size=40, unique=True),
    capacity=st.integers(1, 10),
)
def test_placing_listings_moves_no_placed_symbol_and_stays_within_limits(existing, new, capacity):
    existing = [[f"S{n}" for n in shard[:capacity]] for shard in existing]
    listed = [f"N{n}" for n in new]
    added, fresh = place(existing, listed, unit, capacity)
    placed = [s for adds in added.values() for s in adds] + [s for shard in fresh for s in shard]
    assert sorted(placed) == sorted(listed)
    for index, adds in added.items():
        assert len(existing[index]) + len(adds) <= capacity
    assert all(0 < len(shard) <= capacity for shard in fresh)
    if fresh:  # a new shard only when no existing one had room
        assert all(len(existing[i]) + len(added.get(i, [])) == capacity for i in range(len(existing)))


def test_placing_fills_the_first_shard_with_room():
    added, fresh = place([["A", "B"], ["C"]], ["X", "Y", "Z", "W"], unit, 3)
    assert added == {0: ["X"], 1: ["Y", "Z"]}
    assert fresh == [["W"]]


def test_the_window_paces_to_the_documented_count_with_an_injected_clock():
    binance_messages = SlidingWindow(4, 1.0)
    now = 100.0
    sent = []
    while now < 103.0:
        if binance_messages.take(now):
            sent.append(now)
        now = round(now + 0.01, 2)
    assert len(sent) == 12  # 4 in each of 3 seconds
    assert all(sum(1 for t in sent if start <= t < start + 1.0) <= 4 for start in sent)
    assert binance_messages.wait(103.0) == 0.0


@given(gaps=st.lists(st.floats(0.0, 2.0), max_size=200), count=st.integers(1, 6), window=st.floats(0.1, 3.0))
def test_no_window_ever_holds_more_than_the_allowed_count(gaps, count, window):
    rate = SlidingWindow(count, window)
    now, taken = 0.0, []
    for gap in gaps:
        now += gap
        wait = rate.wait(now)
        if rate.take(now):
            assert wait == 0.0
            taken.append(now)
        else:
            assert wait > 0 and rate.take(now + wait)
            taken.append(now + wait)
            now += wait
    for i, start in enumerate(taken):
        assert sum(1 for t in taken[i:] if t < start + window) <= count


def test_a_full_binance_shard_names_200_streams_in_its_url_and_subscribes_the_rest_by_message():
    symbols = [f"T{i:05d}USDT" for i in range(1024)]
    table_pairs = [Pair(s, s[:-4], "USDT") for s in symbols]
    binance = Binance(symbols, SymbolTable.shipped().updated("binance", table_pairs), microseconds=False)
    url = binance.stream_url("wss://stream.binance.com:9443")
    in_url = url.split("streams=", 1)[1].split("/")
    assert len(in_url) == 200 and len(url) < 8004  # the URL limit users measured
    requests = [json.loads(m) for m in binance.subscribe_messages()]
    assert [r["method"] for r in requests] == ["SUBSCRIBE"] * 5
    assert all(len(r["params"]) <= 200 for r in requests)
    assert in_url + [p for r in requests for p in r["params"]] == [f"{s.lower()}@trade" for s in symbols]
    assert binance.subscribe_messages(symbols[:200]) == []  # a small shard: the URL alone
