"""`k2 config`: every setting with its current value and documentation."""

from __future__ import annotations

import argparse
import importlib

from k2 import config

# Modules that declare settings classes; imported so `k2 config` knows all of them.
SETTINGS_MODULES = ("k2.settings", "workers.settings", "spark_jobs.options")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config",
        help="show every K2_* setting, its value and what it does",
        description="Show every K2_* setting with its current value (secrets masked) and "
        "documentation. Exits 2 if a K2_* variable is set that no setting declares "
        "(usually a typo).",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for name in SETTINGS_MODULES:
        importlib.import_module(name)
    for cls in config._REGISTRY:
        obj = config.load(cls)
        print(f"# {cls.__name__}: {cls.__doc__.strip().splitlines()[0] if cls.__doc__ else ''}")
        for env, value, doc in config.describe(obj):
            print(f"{env}={value}\n    {doc}")
        print()
    unknown = config.unknown_variables()
    if unknown:
        print("k2: unknown settings (typo?): " + ", ".join(unknown))
        return 2
    return 0
