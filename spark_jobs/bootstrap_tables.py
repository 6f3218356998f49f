"""Create (or verify) the K2 Iceberg namespace, the pipeline's tables and the completeness
ledger (k2/ledger_store.py, created through pyiceberg). Idempotent.

    spark-submit spark_jobs/bootstrap_tables.py                 # create / converge
    spark-submit spark_jobs/bootstrap_tables.py --verify        # check only, exit 1 on problems
    spark-submit spark_jobs/bootstrap_tables.py --namespace k2test_abc
"""

from __future__ import annotations

import argparse
import sys

from spark_jobs.options import add_common


def say(message: str) -> None:
    print(f"[bootstrap_tables] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common(parser)
    parser.add_argument("--verify", action="store_true", help="only check; print a report")
    args = parser.parse_args(argv)

    from k2 import ledger_store
    from k2.catalog import catalog
    from spark_jobs.session import spark_session
    from spark_jobs.tables import create_all, table_defs, verify_all

    spark = spark_session("bootstrap_tables")
    try:
        cat = catalog()
        if not args.verify:
            create_all(spark, args.namespace, say)
            existed = cat.table_exists(ledger_store.identifier(args.namespace))
            ledger_store.create_table(cat, args.namespace)
            say(f"table {ledger_store.identifier(args.namespace)}: {'exists' if existed else 'created'}")
        problems = verify_all(spark, args.namespace)
        if not cat.table_exists(ledger_store.identifier(args.namespace)):
            problems.append(f"{ledger_store.identifier(args.namespace)}: missing (run bootstrap_tables)")
        for t in table_defs():
            bad = [p for p in problems if p.startswith(f"{args.namespace}.{t.name}:")]
            say(f"verify {args.namespace}.{t.name}: {'OK' if not bad else 'FAILED'}")
        for p in problems:
            say(f"problem: {p}")
        say(f"verify: {len(table_defs()) - len({p.split(':')[0] for p in problems})}/"
            f"{len(table_defs())} tables OK")
        return 1 if problems else 0
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
