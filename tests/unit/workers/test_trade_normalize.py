import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.normalize import (
    MESSAGE_ID_NAMESPACE,
    NormalizeError,
    decimal_18_8,
    epoch_int_to_us,
    message_id,
    rfc3339_to_us,
)


@pytest.mark.parametrize(
    "args",
    [("BINANCE", "BTCUSDT", "5123456789"), ("KRAKEN", "BTC/USD", "81234567"), ("KRAKEN", "DOGE/EUR", "1")],
)
def test_message_id_is_uuid5_of_exchange_symbol_trade_id(args):
    expected = str(uuid.uuid5(MESSAGE_ID_NAMESPACE, ":".join(args)))
    assert message_id(*args) == expected


def test_message_id_namespace_is_fixed():
    # Changing the namespace would break deduplication against already-stored data.
    assert str(MESSAGE_ID_NAMESPACE) == "6f1c2b1e-5d0a-5b8e-9c3e-4b2a7f0d1e93"
    assert message_id("KRAKEN", "BTC/USD", "81234567") == "b3759a1e-042b-55ed-b27a-81f2774d8d9f"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("94250.01000000", "94250.01000000"),
        ("0.00000001", "0.00000001"),
        ("1.25e-5", "0.00001250"),
        ("1E+3", "1000.00000000"),
        ("9999999999.99999999", "9999999999.99999999"),
        ("0.100000000000", "0.10000000"),  # trailing zeros beyond scale 8 lose nothing
        ("0", "0E-8"),
    ],
)
def test_decimal_from_text_is_exact(text, expected):
    assert decimal_18_8(text, "price") == Decimal(expected)
    assert decimal_18_8(text, "price").as_tuple().exponent == -8


@given(
    integer=st.integers(min_value=0, max_value=10**10 - 1),
    places=st.text(alphabet="0123456789", max_size=8),
)
def test_any_plain_decimal_in_range_is_exact_at_scale_8(integer, places):
    # Wire text as venues send it ("94250.01", "0.00210000", "12"); the expected unscaled
    # value is built from the digits, not from Decimal.
    text = f"{integer}.{places}" if places else str(integer)
    value = decimal_18_8(text, "price")
    assert value.as_tuple().exponent == -8
    assert value.scaleb(8) == integer * 10**8 + int(places.ljust(8, "0"))


@pytest.mark.parametrize("text", ["\u0663", "1.\u0665", "\uff11\uff12"])  # Arabic-Indic, fullwidth digits
def test_non_ascii_digits_are_not_decimals(text):
    with pytest.raises(NormalizeError) as err:
        decimal_18_8(text, "price")
    assert err.value.kind == "bad_decimal"


@pytest.mark.parametrize(
    "text, kind, fragment",
    [
        ("0.000000001", "decimal_out_of_range", "more than 8 decimal places"),
        ("94250.123456789", "decimal_out_of_range", "more than 8 decimal places"),
        ("10000000000", "decimal_out_of_range", "more than 10 integer digits"),
        ("1e40", "decimal_out_of_range", "more than 10 integer digits"),
        ("1e100000", "decimal_out_of_range", "more than 10 integer digits"),
        ("NaN", "bad_decimal", "not a decimal number"),
        ("1_000", "bad_decimal", "not a decimal number"),
        (" 1.0", "bad_decimal", "not a decimal number"),
        ("", "bad_decimal", "not a decimal number"),
    ],
)
def test_decimal_rejects_instead_of_rounding(text, kind, fragment):
    with pytest.raises(NormalizeError) as err:
        decimal_18_8(text, "price p")
    assert err.value.kind == kind
    assert fragment in str(err.value)
    assert "price p" in str(err.value)


def test_decimal_rejects_float_and_non_finite():
    with pytest.raises(NormalizeError, match="not a decimal number"):
        decimal_18_8(0.1, "qty")  # type: ignore[arg-type]
    with pytest.raises(NormalizeError, match="finite"):
        decimal_18_8(Decimal("Infinity"), "qty")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-01-01T00:00:00.123456Z", 1767225600123456),
        ("2026-01-01T00:00:00.1Z", 1767225600100000),
        ("2026-01-01T00:00:00.123456789Z", 1767225600123456),  # ns truncated to µs
        ("2026-01-01T00:00:00Z", 1767225600000000),
        ("2026-01-01T01:00:00.5+01:00", 1767225600500000),
    ],
)
def test_rfc3339_to_microseconds(text, expected):
    assert rfc3339_to_us(text) == expected


@pytest.mark.parametrize("bad", ["2026-13-01T00:00:00.1Z", "yesterday", "2026-01-01T00:00:00.5", 17])
def test_rfc3339_rejects_bad_or_naive_times(bad):
    with pytest.raises(NormalizeError) as err:
        rfc3339_to_us(bad)
    assert err.value.kind == "bad_timestamp"


def test_epoch_int_units():
    assert epoch_int_to_us(1767225600120, 1000, "T") == 1767225600120000
    assert epoch_int_to_us(1767225600120000, 1, "T") == 1767225600120000
    for bad in (True, "1767225600120", -1, 1.5):
        with pytest.raises(NormalizeError):
            epoch_int_to_us(bad, 1000, "T")
