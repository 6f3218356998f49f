"""pyiceberg access to the same Iceberg catalog Spark uses (one convention, everywhere).

Spark's ``JdbcCatalog`` and pyiceberg's ``SqlCatalog`` share the catalog tables in
PostgreSQL when both use the same catalog *name* (``K2_CATALOG``).
"""

from __future__ import annotations

from pyiceberg.catalog.sql import SqlCatalog

from k2.settings import PlatformSettings, platform


def catalog(settings: PlatformSettings | None = None) -> SqlCatalog:
    s = settings or platform()
    return SqlCatalog(
        s.catalog_name,
        uri=s.pg_sqlalchemy_url(s.catalog_db),
        warehouse=s.warehouse,
    )
