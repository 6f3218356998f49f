"""Drop the legacy v1/v2 tables (trades_v1/v2, quotes_v1/v2) with PURGE; --dry-run lists them.

Only names in ``k2.contracts.LEGACY_TABLES`` are ever dropped, and never a v3 table.

    spark-submit spark_jobs/legacy_cleanup.py [--namespace market_data] [--dry-run]
"""

from __future__ import annotations

import argparse
import sys

from k2.contracts import LEGACY_TABLES, all_tables
from spark_jobs.maintenance import say
from spark_jobs.options import add_common, job_settings, table_id

JOB = "legacy_cleanup"

# A typo in the contracts must never turn this into a drop of live data.
assert not set(LEGACY_TABLES) & set(all_tables()), "a legacy table name collides with a v3 table"


def log(message: str) -> None:
    say(JOB, message)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common(parser)
    parser.add_argument("--dry-run", action="store_true", help="list what would be dropped; drop nothing")
    args = parser.parse_args(argv)
    settings = job_settings(JOB)

    from spark_jobs.session import spark_session
    from spark_jobs.tables import existing_tables

    spark = spark_session(JOB)
    try:
        present = existing_tables(spark, settings, args.namespace)
        doomed = [t for t in LEGACY_TABLES if t in present]
        for t in LEGACY_TABLES:
            if t not in present:
                log(f"{args.namespace}.{t}: absent, nothing to do")
        for t in doomed:
            if args.dry_run:
                log(f"{args.namespace}.{t}: would be dropped with PURGE (dry run)")
            else:
                spark.sql(f"DROP TABLE IF EXISTS {table_id(settings, t, args.namespace)} PURGE")
                log(f"{args.namespace}.{t}: dropped with PURGE")
        kept = sorted(present - set(doomed))
        log(f"{'would drop' if args.dry_run else 'dropped'} {len(doomed)} table(s); "
            f"kept {len(kept)}: {', '.join(kept) or '-'}")
        return 0
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
