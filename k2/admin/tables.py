"""Iceberg objects through pyiceberg: what exists, and purging legacy tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

from k2 import contracts

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog


def existing_tables(catalog: Catalog, namespace: str = contracts.NAMESPACE) -> list[str]:
    from pyiceberg.exceptions import NoSuchNamespaceError

    try:
        return sorted(ident[-1] for ident in catalog.list_tables(namespace))
    except NoSuchNamespaceError:
        return []


def namespace_exists(catalog: Catalog, namespace: str = contracts.NAMESPACE) -> bool:
    return (namespace,) in {tuple(ns) for ns in catalog.list_namespaces()}


def metadata_locations(catalog: Catalog, tables: list[str]) -> dict[str, str | None]:
    """Table -> current metadata file; an unchanged location means no commit happened."""
    from pyiceberg.exceptions import NoSuchTableError

    out: dict[str, str | None] = {}
    for table in tables:
        try:
            out[table] = catalog.load_table(contracts.qualified(table)).metadata_location
        except NoSuchTableError:
            out[table] = None
    return out


def purge_table(catalog: Catalog, table: str) -> str:
    """Drop the table and delete its files; ``purged`` or ``absent``."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        catalog.purge_table(contracts.qualified(table))
    except NoSuchTableError:
        return "absent"
    return "purged"
