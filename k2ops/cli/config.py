"""`k2 config`: every setting with its current value and documentation."""

from __future__ import annotations

import argparse
import sys

from k2 import config
from k2ops.cli.commands import add_command


def register(sub: argparse._SubParsersAction) -> None:
    add_command(sub, "config", run, "show every K2_* setting, its value and what it does",
                "Show every K2_* setting with its current value (secrets masked) and "
                "documentation. Exits 2 if a K2_* variable is set that no setting declares "
                "(usually a typo).")


def run(args: argparse.Namespace) -> int:
    config.import_settings_modules()
    for cls in config._REGISTRY:
        obj = config.load(cls)
        print(f"# {cls.__name__}: {cls.__doc__.strip().splitlines()[0] if cls.__doc__ else ''}")
        for env, value, doc in config.describe(obj):
            print(f"{env}={value}\n    {doc}")
        print()
    # The same check every entry point runs at start; here it also sets the exit code.
    unknown = config.check_unknown_variables("k2 config", stream=sys.stdout)
    return 2 if unknown else 0
