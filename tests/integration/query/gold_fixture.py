"""A Gold-shaped Iceberg table (hour-partitioned like the real one) for the query tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
from pyiceberg.transforms import HourTransform

from k2.catalog import catalog
from k2.contracts import GOLD_TABLE
from k2.settings import platform


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
