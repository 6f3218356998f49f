"""``K2_<EXCHANGE>_SYMBOLS=all`` while running: the listing re-read, diffed, applied to the
venue, its symbol table and its shards; a failed read keeps the set; an unreadable listing
at start stops the worker with the code the supervisor restarts."""

from __future__ import annotations

import io
import json
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from k2.config import load
from k2.log import EventLog
from workers import run
from workers.exchanges.binance import Binance
from workers.exits import EXIT_UNAVAILABLE
from workers.listing import Listing, diff
from workers.settings import WorkerSettings, worker_settings
from workers.shards import ShardSet
from workers.stats import WorkerStats
from workers.symbols import ListingUnavailableError, Pair, SymbolTable


def pair(symbol: str) -> Pair:
    return Pair(symbol, symbol[:-4], "USDT")


def events(out: io.StringIO, name: str) -> list[dict]:
    return [e for e in map(json.loads, out.getvalue().splitlines()) if e["event"] == name]


@given(current=st.sets(st.sampled_from("ABCDEFGH")), listed=st.lists(st.sampled_from("ABCDEFGH"), unique=True))
def test_diff_splits_the_listing_into_new_and_gone(current, listed):
    new, gone = diff(current, [Pair(s, s, "Q") for s in listed])
    assert [p.symbol for p in new] == [s for s in listed if s not in current]  # listing order
    assert gone == sorted(current - set(listed))


class Fetches:
    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0

    def __call__(self) -> list[Pair]:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def following(fetch, symbols=("AAAAUSDT", "BBBBUSDT", "CCCCUSDT")):
    table = SymbolTable.shipped().updated("binance", [pair(s) for s in symbols])
    exchange = Binance(list(symbols), table)
    out = io.StringIO()
    s = load(WorkerSettings, {"K2_BINANCE_URLS": "ws://127.0.0.1:9"})
    shards = ShardSet(exchange, s, lambda f, k: (0, None), WorkerStats("binance"), EventLog(out), max_symbols=2)
    return exchange, shards, Listing(exchange, shards, fetch, 300.0, EventLog(out), now=0.0), out


def test_listings_and_delistings_are_applied_at_each_refresh_only():
    fetch = Fetches([pair("AAAAUSDT"), pair("CCCCUSDT"), pair("NEWWUSDT"), pair("NEXTUSDT")])
    exchange, shards, listing, out = following(fetch)
    listing.turn(299.0)
    assert fetch.calls == 0  # not due yet
    listing.turn(300.0)
    assert fetch.calls == 1
    assert sorted(exchange.pairs) == ["AAAAUSDT", "CCCCUSDT", "NEWWUSDT", "NEXTUSDT"]
    assert exchange.pair("NEWWUSDT") == Pair("NEWWUSDT", "NEWW", "USDT")  # normalization knows it
    # BBBBUSDT left shard 1, which then had room for NEWWUSDT; NEXTUSDT joined shard 2.
    assert [s.symbols for s in shards.shards] == [["AAAAUSDT", "NEWWUSDT"], ["CCCCUSDT", "NEXTUSDT"]]
    (listed,) = events(out, "symbols_listed")
    (delisted,) = events(out, "symbols_delisted")
    assert listed["symbols"] == ["NEWWUSDT", "NEXTUSDT"] and delisted["symbols"] == ["BBBBUSDT"]
    listing.turn(599.0)
    assert fetch.calls == 1


def test_a_failed_refresh_warns_and_keeps_the_current_symbols():
    fetch = Fetches(ListingUnavailableError("http://x/api/v3/exchangeInfo: URLError: timed out"))
    exchange, shards, listing, out = following(fetch)
    listing.turn(300.0)
    assert sorted(exchange.pairs) == ["AAAAUSDT", "BBBBUSDT", "CCCCUSDT"]
    assert [s.symbols for s in shards.shards] == [["AAAAUSDT", "BBBBUSDT"], ["CCCCUSDT"]]
    (warning,) = events(out, "symbols_refresh_failed")
    assert warning["level"] == "warning" and "timed out" in warning["error"]
    assert not events(out, "symbols_listed") and not events(out, "symbols_delisted")


def test_an_unchanged_listing_changes_nothing():
    fetch = Fetches([pair("CCCCUSDT"), pair("AAAAUSDT"), pair("BBBBUSDT")])
    exchange, shards, listing, out = following(fetch)
    listing.turn(300.0)
    assert [s.symbols for s in shards.shards] == [["AAAAUSDT", "BBBBUSDT"], ["CCCCUSDT"]]
    assert not events(out, "symbols_listed") and not events(out, "symbols_delisted")


def test_all_with_an_unreachable_listing_exits_for_a_restart_naming_the_setting_and_url(monkeypatch, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("K2_BINANCE_SYMBOLS", "all")
    monkeypatch.setenv("K2_BINANCE_REST_URL", dead)
    worker_settings.cache_clear()
    try:
        code = run.main(["binance"])
    finally:
        worker_settings.cache_clear()
    assert code == EXIT_UNAVAILABLE == 69
    (error,) = [e for e in map(json.loads, capsys.readouterr().err.splitlines())
                if e["event"] == "symbols_listing_unavailable"]
    assert "K2_BINANCE_SYMBOLS=all" in error["error"] and f"{dead}/api/v3/exchangeInfo" in error["error"]
    assert error["exit_code"] == 69


@pytest.mark.parametrize("value", ["all", "ALL"])
def test_all_is_accepted_alone_in_any_case(value):
    assert load(WorkerSettings, {"K2_OKX_SYMBOLS": value}).captures_all("okx")


def test_a_listing_that_drops_most_symbols_at_once_is_taken_for_a_broken_answer():
    captured = [f"S{i:03d}USDT" for i in range(30)]
    fetch = Fetches([pair(s) for s in captured[:10]])  # 20 of 30 gone in one refresh
    exchange, shards, listing, out = following(fetch, captured)
    listing.turn(300.0)
    assert sorted(exchange.pairs) == captured and len(shards.symbols) == 30
    (warning,) = events(out, "symbols_refresh_failed")
    assert "drops 20 of the 30" in warning["error"]
    assert not events(out, "symbols_delisted")
