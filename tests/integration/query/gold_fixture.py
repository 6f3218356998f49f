"""A Gold-shaped Iceberg table (hour-partitioned like the real one) for the query tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
from pyiceberg.transforms import HourTransform

from k2.catalog import catalog
from k2.contracts import GOLD_TABLE
from k2.settings import platform

GOLD_SCHEMA = pa.schema([
    ("message_id", pa.string()), ("trade_id", pa.string()), ("symbol", pa.string()),
    ("exchange", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC")),
    ("price", pa.decimal128(18, 8)), ("quantity", pa.decimal128(18, 8)),
    ("base_asset", pa.string()), ("quote_currency", pa.string()), ("side", pa.string()),
])


def gold_rows(rows: list[tuple]) -> pa.Table:
    """Gold rows from (exchange, symbol, time, trade_id, price, quantity) tuples."""
    return pa.table({
        "message_id": [f"m-{r[0]}-{r[3]}" for r in rows], "trade_id": [r[3] for r in rows],
        "symbol": [r[1] for r in rows], "exchange": [r[0] for r in rows], "timestamp": [r[2] for r in rows],
        "price": [r[4] for r in rows], "quantity": [r[5] for r in rows],
        "base_asset": ["ETH" if r[1] == "ETHUSDT" else "BTC" for r in rows],
        "quote_currency": ["USD" if r[0] == "KRAKEN" else "USDT" for r in rows],
        "side": ["BUY"] * len(rows),
    }, schema=GOLD_SCHEMA)


@contextmanager
def gold_table(namespace: str, data: pa.Table) -> Iterator[str]:
    """Create ``<namespace>.gold_crypto_trades`` holding ``data``; yield the namespace, then drop both."""
    cat = catalog(platform())
    cat.create_namespace(namespace)
    table = cat.create_table(f"{namespace}.{GOLD_TABLE}", schema=data.schema)
    with table.update_spec() as spec:
        spec.add_field("timestamp", HourTransform(), "timestamp_hour")
    table.append(data)
    try:
        yield namespace
    finally:
        cat.purge_table(f"{namespace}.{GOLD_TABLE}")
        cat.drop_namespace(namespace)
