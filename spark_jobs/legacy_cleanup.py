"""Drop the legacy v1/v2 tables (trades_v1/v2, quotes_v1/v2) with PURGE; --dry-run lists them.

Only names in ``k2.contracts.LEGACY_TABLES`` are ever dropped, and never a v3 table.

    spark-submit spark_jobs/legacy_cleanup.py [--namespace market_data] [--dry-run]
"""

from __future__ import annotations

import argparse
import sys

from k2.contracts import LEGACY_TABLES, all_tables
from k2.log import job_log
from spark_jobs.options import add_common, job_settings, table_id

JOB = "legacy_cleanup"

# A typo in the contracts must never turn this into a drop of live data.
assert not set(LEGACY_TABLES) & set(all_tables()), "a legacy table name collides with a v3 table"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common(parser)
    parser.add_argument("--dry-run", action="store_true", help="list what would be dropped; drop nothing")
    args = parser.parse_args(argv)
    settings = job_settings(JOB)

    from spark_jobs.session import spark_session
    from spark_jobs.tables import existing_tables

    log = job_log(JOB)
    spark = spark_session(JOB)
    try:
        present = existing_tables(spark, settings, args.namespace)
        doomed = [t for t in LEGACY_TABLES if t in present]
        for t in LEGACY_TABLES:
            if t not in present:
                log.info("table_absent", table=f"{args.namespace}.{t}", detail="nothing to do")
        for t in doomed:
            if args.dry_run:
                log.info("table_to_drop", table=f"{args.namespace}.{t}", dry_run=True,
                         detail="would be dropped with PURGE")
            else:
                spark.sql(f"DROP TABLE IF EXISTS {table_id(settings, t, args.namespace)} PURGE")
                log.info("table_dropped", table=f"{args.namespace}.{t}", detail="dropped with PURGE")
        kept = sorted(present - set(doomed))
        log.info("done", dry_run=args.dry_run, dropped=len(doomed), kept=kept)
        return 0
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
