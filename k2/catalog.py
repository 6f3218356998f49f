"""pyiceberg access to the same Iceberg catalog Spark uses (one convention, everywhere).

Spark's ``JdbcCatalog`` and pyiceberg's ``SqlCatalog`` share the catalog tables in
PostgreSQL when both use the same catalog *name* (``K2_CATALOG``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from k2.settings import PlatformSettings

if TYPE_CHECKING:
    from pyiceberg.catalog.sql import SqlCatalog

# Spark's JdbcCatalog creates the catalog tables in Iceberg's original (v0) layout, which
# both sides share; pyiceberg warns about it on every load, which is noise here.
logging.getLogger("pyiceberg.catalog.sql").setLevel(logging.ERROR)


def catalog(s: PlatformSettings) -> SqlCatalog:
    # Imported here: SqlCatalog brings SQLAlchemy and pydantic, seconds that `k2 query`
    # (which reads the catalog row itself, see k2.iceberg_read) must not pay.
    from pyiceberg.catalog.sql import SqlCatalog

    properties = {"uri": s.pg_sqlalchemy_url(s.catalog_db), "warehouse": s.warehouse}
    if s.warehouse_on_s3:
        properties.update(
            {
                "s3.region": s.s3_region,
                "s3.access-key-id": s.s3_access_key_id.reveal(),
                "s3.secret-access-key": s.s3_secret_access_key.reveal(),
                "s3.force-virtual-addressing": str(not s.s3_path_style).lower(),
            }
        )
        if s.s3_endpoint:
            properties["s3.endpoint"] = s.s3_endpoint
    return SqlCatalog(s.catalog_name, **properties)


def create_documented_table(cat: SqlCatalog, identifier: str, schema, comment: str, docs: dict[str, str],
                            partition: tuple[str, object, str] | None = None):
    """Create a table the platform keeps through pyiceberg (the completeness job's) unless
    it exists: format v2, zstd, old metadata files deleted, ``comment`` and each column's
    doc; ``partition``: (source column, transform, name). Returns the table; idempotent,
    also when another process creates it at the same time."""
    from pyiceberg.exceptions import TableAlreadyExistsError

    if cat.table_exists(identifier):
        return _add_missing_columns(cat.load_table(identifier), schema, docs)
    try:
        table = cat.create_table(identifier, schema=schema, properties={
            "format-version": "2", "write.parquet.compression-codec": "zstd",
            "write.metadata.delete-after-commit.enabled": "true", "write.metadata.previous-versions-max": "20",
            "comment": comment})
    except TableAlreadyExistsError:
        return cat.load_table(identifier)
    if partition is not None:
        with table.update_spec() as spec:
            spec.add_field(*partition)
    with table.update_schema() as update:
        for name, doc in docs.items():
            update.update_column(name, doc=doc)
    return table


def _add_missing_columns(table, schema, docs: dict[str, str]):
    """A table created by an earlier release gets the columns added since (optional ones:
    their rows written before read as null), each with its doc."""
    have = {f.name for f in table.schema().fields}
    missing = [name for name in schema.names if name not in have]
    if not missing:
        return table
    with table.update_schema() as update:
        update.union_by_name(schema)
    with table.update_schema() as update:
        for name in missing:
            if name in docs:
                update.update_column(name, doc=docs[name])
    return table
