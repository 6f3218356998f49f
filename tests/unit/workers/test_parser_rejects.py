"""Hostile frames that used to raise past the parsers now end as a typed reject or a control."""

import pytest

from workers.base import Control
from workers.exchanges.binance import Binance
from workers.exchanges.kraken import Kraken
from workers.normalize import NormalizeError
from workers.symbols import SymbolTable

TABLE = SymbolTable.shipped()
BINANCE_TRADE = (
    b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1767225600125000,"s":"BTCUSDT",'
    b'"t":5123456789,"p":"94250.01000000","q":"0.00210000","T":1767225600120000,"m":true,"M":true}}'
)
KRAKEN_TRADE = (
    b'{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"sell","price":94250.1,'
    b'"qty":0.0125,"ord_type":"market","trade_id":81234567,"timestamp":"2026-01-01T00:00:00.123456Z"}]}'
)


def binance():
    return Binance(["BTCUSDT"], TABLE)


def kraken():
    return Kraken(["BTC/USD"], TABLE)


@pytest.mark.parametrize(("make", "frame", "kind"), [
    # The typed decoder stops at a type error before it sees the truncation.
    (binance, b"1 x", "malformed_json"),
    (kraken, b'[1, {"a"', "malformed_json"),
    (binance, BINANCE_TRADE.replace(b"BTCUSDT", b"BTC\xffUSDT"), "not_utf8"),
    (kraken, KRAKEN_TRADE.replace(b"market", b"mar\xed\xa0\x80ket"), "not_utf8"),
    (binance, BINANCE_TRADE.decode().replace("BTCUSDT", "BTC\ud800USDT"), "not_utf8"),
    (binance, b"[" * 100_000 + b"]" * 100_000, "too_deeply_nested"),
    (kraken, b'{"channel":"status","data":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "too_deeply_nested"),
    (kraken, KRAKEN_TRADE.replace(b"94250.1", b"1e999999999999999999999"), "number_out_of_range"),
    (binance, b"9" * 4301, "number_out_of_range"),
    (binance, BINANCE_TRADE.replace(b'"94250.01000000"', b'"1e99999999999999999999"'), "decimal_out_of_range"),
    (binance, BINANCE_TRADE.replace(b"1767225600120000", b"99999999999999999999"), "bad_timestamp"),
    (kraken, KRAKEN_TRADE.replace(b"2026-01-01T00:00:00.123456Z", b"1969-12-31T23:59:59.5Z"), "bad_timestamp"),
    (kraken, KRAKEN_TRADE.replace(b"2026-01-01T00:00:00.123456Z", b"9999-12-31T23:59:59-23:59"), "bad_timestamp"),
    (kraken, KRAKEN_TRADE.replace(b"2026-01-01T00:00:00.123456Z", b"2026-01-01T00+05:00.123Z"), "bad_timestamp"),
    (binance, BINANCE_TRADE.replace(b"5123456789", b"9223372036854775808"), "bad_trade"),
    (kraken, KRAKEN_TRADE.replace(b"81234567", b"-1"), "bad_trade"),
])
def test_hostile_frames_are_typed_rejects(make, frame, kind):
    try:
        parsed = make().parse(frame, 1)
    except NormalizeError as exc:
        kinds = [exc.kind]
    else:
        kinds = [r.kind for r in parsed.rejects]
        assert parsed.trades == [] and parsed.control is None
    assert kinds == [kind]


@pytest.mark.parametrize(("frame", "control"), [
    (b'{"channel":"status","data":{"system":"online"}}', Control("status", "?")),
    (b'{"channel":"status","data":7}', Control("status", "?")),
    (b'{"channel":"status","data":[]}', Control("status", "?")),
    (b'{"channel":"status","data":[{"system":["online"]}]}', Control("status", "['online']")),
    (b'{"method":"subscribe","result":[1],"success":true}', Control("ack", "trade ?")),
    (b'{"method":"pong","req_id":{"a":1}}', Control("pong", "req_id={'a': 1}")),
])
def test_kraken_control_frames_of_unexpected_shape_are_still_controls(frame, control):
    assert kraken().parse(frame, 1).control == control


def test_errors_quote_only_the_start_of_huge_values():
    frame = BINANCE_TRADE.replace(b'"s":"BTCUSDT"', b'"s":"' + b"X" * 100_000 + b'"')
    (reject,) = binance().parse(frame, 1).rejects
    assert reject.kind == "unknown_symbol"
    assert len(str(reject)) < 200 and "(100000 chars)" in str(reject)
