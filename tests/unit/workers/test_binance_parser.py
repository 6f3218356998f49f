"""Binance parser on recorded-format combined-stream frames."""

from decimal import Decimal

import pytest

from workers.base import UnknownSymbolError
from workers.exchanges.binance import Binance
from workers.normalize import NormalizeError
from workers.symbols import SymbolTable

TRADE_M_TRUE = (
    '{"stream":"btcusdt@trade","data":{"e":"trade","E":1767225600125,"s":"BTCUSDT",'
    '"t":5123456789,"p":"94250.01000000","q":"0.00210000","T":1767225600120,"m":true,"M":true}}'
)
TRADE_M_FALSE_US = (
    '{"stream":"ethusdt@trade","data":{"e":"trade","E":1767225600125001,"s":"ETHUSDT",'
    '"t":42,"p":"3300.5","q":"1.25e-3","T":1767225600120999,"m":false,"M":true}}'
)
RECEIVED = 1767225600200000


@pytest.fixture
def binance_ms():
    return Binance(["BTCUSDT", "ethusdt"], SymbolTable.shipped(), microseconds=False)


@pytest.fixture
def binance_us():
    return Binance(["BTCUSDT", "ETHUSDT"], SymbolTable.shipped(), microseconds=True)


def test_trade_with_buyer_maker_is_taker_sell(binance_ms):
    parsed = binance_ms.parse(TRADE_M_TRUE, RECEIVED)
    assert parsed.rejects == [] and parsed.control is None
    assert parsed.trades == [
        {
            "message_id": "674774fa-a967-5477-a629-af0b3d460f45",
            "trade_id": "5123456789",
            "symbol": "BTCUSDT",
            "exchange": "BINANCE",
            "timestamp": 1767225600120000,
            "price": Decimal("94250.01000000"),
            "quantity": Decimal("0.00210000"),
            "base_asset": "BTC",
            "quote_currency": "USDT",
            "side": "SELL",
            "ingestion_timestamp": RECEIVED,
            "vendor_data": {"event_time_us": "1767225600125000", "buyer_is_maker": "true"},
        }
    ]


def test_trade_with_buyer_taker_in_microseconds(binance_us):
    (trade,) = binance_us.parse(TRADE_M_FALSE_US.encode(), RECEIVED).trades
    assert trade["side"] == "BUY"
    assert trade["timestamp"] == 1767225600120999
    assert trade["quantity"] == Decimal("0.00125000")
    assert (trade["base_asset"], trade["quote_currency"]) == ("ETH", "USDT")
    assert trade["vendor_data"]["buyer_is_maker"] == "false"


def test_stream_url_is_combined_and_lower_case(binance_us, binance_ms):
    assert (
        binance_us.stream_url("wss://stream.binance.com:9443/")
        == "wss://stream.binance.com:9443/stream?streams=btcusdt@trade/ethusdt@trade&timeUnit=MICROSECOND"
    )
    assert binance_ms.stream_url("ws://127.0.0.1:1").endswith("streams=btcusdt@trade/ethusdt@trade")
    assert binance_us.subscribe_messages() == [] and binance_us.ping_message(1) is None


@pytest.mark.parametrize(
    "frame, kind",
    [
        ('{"result":null,"id":1}', "ack"),
        ('{"code":2,"msg":"Invalid request: unknown stream"}', "exchange_error"),
        ('{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1767225600000}}', "server_shutdown"),
    ],
)
def test_control_frames(binance_ms, frame, kind):
    parsed = binance_ms.parse(frame, RECEIVED)
    assert parsed.control is not None and parsed.control.kind == kind
    assert parsed.trades == [] and parsed.rejects == []


def test_exchange_error_text_is_reported(binance_ms):
    control = binance_ms.parse('{"code":2,"msg":"Invalid request: x"}', RECEIVED).control
    assert control.detail == "code=2 msg=Invalid request: x"


@pytest.mark.parametrize(
    "frame, kind",
    [
        ('{"stream":"btcusdt@trade","data":{"e":"trade"', "malformed_json"),
        ("not json", "malformed_json"),
        ("[1,2]", "unexpected_frame"),
        ('{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1}}', "unexpected_frame"),
        (
            '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":"7",'
            '"p":"1","q":"1","T":1,"m":true}}',
            "bad_trade",
        ),
        ('{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT"}}', "bad_trade"),
    ],
)
def test_unusable_frames_raise_with_kind(binance_ms, frame, kind):
    with pytest.raises(NormalizeError) as err:
        binance_ms.parse(frame, RECEIVED)
    assert err.value.kind == kind


def test_bad_field_error_names_the_field(binance_ms):
    frame = (
        '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":"7",'
        '"p":"1","q":"1","T":1,"m":true}}'
    )
    with pytest.raises(NormalizeError, match=r"\$\.t"):
        binance_ms.parse(frame, RECEIVED)


@pytest.mark.parametrize(
    "price, qty, kind",
    [
        ("94250.010000001", "1", "decimal_out_of_range"),
        ("1", "12345678901.5", "decimal_out_of_range"),
        ("1,5", "1", "bad_decimal"),
    ],
)
def test_oversize_or_bad_decimals_are_rejected_not_rounded(binance_ms, price, qty, kind):
    frame = (
        '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":7,'
        f'"p":"{price}","q":"{qty}","T":1,"m":true,"M":true}}}}'
    )
    parsed = binance_ms.parse(frame, RECEIVED)
    assert parsed.trades == []
    assert [r.kind for r in parsed.rejects] == [kind]


def test_unknown_symbol_on_the_wire_is_rejected(binance_ms):
    frame = TRADE_M_TRUE.replace("BTCUSDT", "FOOBAR")
    assert [r.kind for r in binance_ms.parse(frame, RECEIVED).rejects] == ["unknown_symbol"]


def test_unknown_configured_symbol_names_it():
    with pytest.raises(UnknownSymbolError, match="'NOPEUSDT'"):
        Binance(["BTCUSDT", "NOPEUSDT"], SymbolTable.shipped())
