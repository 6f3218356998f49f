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


def definitions(catalog: Catalog, tables: list[str]) -> dict[str, tuple | None]:
    """Table -> what bootstrap defines: identity (uuid), format, schema, partitioning, sort
    order and properties (None: no such table). Data commits leave it unchanged, so it
    tells "re-created or re-defined" apart from "a stream wrote to it"."""
    from pyiceberg.exceptions import NoSuchTableError

    out: dict[str, tuple | None] = {}
    for table in tables:
        try:
            loaded = catalog.load_table(contracts.qualified(table))
        except NoSuchTableError:
            out[table] = None
            continue
        meta = loaded.metadata
        out[table] = (str(meta.table_uuid), meta.format_version, meta.current_schema_id, str(loaded.schema()),
                      str(loaded.spec()), str(loaded.sort_order()), tuple(sorted(loaded.properties.items())))
    return out


def purge_table(catalog: Catalog, table: str) -> str:
    """Drop the table and delete its files; ``purged`` or ``absent``."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        catalog.purge_table(contracts.qualified(table))
    except NoSuchTableError:
        return "absent"
    return "purged"
