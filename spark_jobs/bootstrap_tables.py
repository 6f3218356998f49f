"""Create (or verify) the K2 Iceberg namespace and its five tables. Idempotent.

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

    from spark_jobs.session import spark_session
    from spark_jobs.tables import create_all, table_defs, verify_all

    spark = spark_session("bootstrap_tables")
    try:
        if not args.verify:
            create_all(spark, args.namespace, say)
        problems = verify_all(spark, args.namespace)
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
