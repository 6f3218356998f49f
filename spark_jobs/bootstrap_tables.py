"""Create (or verify) the K2 Iceberg namespace, the pipeline's tables and the completeness
job's (k2/ledger_store.py, k2/unrecoverable.py, k2/loss_windows.py, created through pyiceberg). Idempotent.

    spark-submit spark_jobs/bootstrap_tables.py                 # create / converge
    spark-submit spark_jobs/bootstrap_tables.py --verify        # check only, exit 1 on problems
    spark-submit spark_jobs/bootstrap_tables.py --namespace k2test_abc
"""

from __future__ import annotations

import argparse
import sys

from k2.log import job_log
from spark_jobs.options import add_common, job_settings

JOB = "bootstrap_tables"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common(parser)
    parser.add_argument("--verify", action="store_true", help="only check; print a report")
    args = parser.parse_args(argv)
    settings = job_settings("bootstrap_tables")

    from k2 import ledger_store, loss_windows, unrecoverable
    from k2.catalog import catalog
    from spark_jobs.session import spark_session
    from spark_jobs.tables import create_all, table_defs, verify_all

    log = job_log(JOB)
    spark = spark_session(JOB)
    try:
        cat = catalog(settings)
        completeness = (ledger_store, unrecoverable, loss_windows)  # their tables are defined with pyiceberg
        if not args.verify:
            create_all(spark, settings, args.namespace, log)
            for module in completeness:
                existed = cat.table_exists(module.identifier(args.namespace))
                module.create_table(cat, args.namespace)
                log.info("table_ready", table=module.identifier(args.namespace), created=not existed,
                         detail="exists" if existed else "created")
        problems = verify_all(spark, settings, args.namespace)
        problems += [f"{module.identifier(args.namespace)}: missing (run bootstrap_tables)"
                     for module in completeness if not cat.table_exists(module.identifier(args.namespace))]
        for t in table_defs():
            bad = [p for p in problems if p.startswith(f"{args.namespace}.{t.name}:")]
            log.event("info" if not bad else "error", "table_verified", table=f"{args.namespace}.{t.name}",
                      ok=not bad)
        for p in problems:
            log.error("problem", detail=p)
        log.info("verified", tables_ok=len(table_defs()) - len({p.split(':')[0] for p in problems}),
                 tables=len(table_defs()))
        return 1 if problems else 0
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
