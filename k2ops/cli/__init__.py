"""The `k2` command line. Each area registers its own subcommands.

Subcommand modules expose ``register(subparsers)`` and are imported lazily by name so
that `k2 --help` stays fast and one area's missing optional dependency cannot break
the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from k2.config import SettingsError, check_unknown_variables

# module path -> registers these subcommands
SUBCOMMAND_MODULES = (
    "k2ops.platform",
    "k2ops.stack.cli",
    "k2ops.cli.config",
    "k2ops.cli.query",
    "k2ops.cli.sql",
    "k2ops.cli.completeness",
    "k2ops.cli.streams",
    "k2ops.bench.cli",
    "workers.cli",
)

# Commands that must start fast (`k2 query` answers in under a second, process start
# included): only their own module is imported, not every area's (asyncio, urllib, ...).
# tests/unit/k2/test_cli_imports.py checks each module registers exactly its command.
FAST_COMMANDS = {"query": "k2ops.cli.query", "sql": "k2ops.cli.sql"}


def build_parser(modules: tuple[str, ...] = SUBCOMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="k2",
        description=(
            "K2 crypto market-data platform: exchange workers -> Kafka -> Spark streams -> "
            "Iceberg (Bronze/Silver/Gold), run by Airflow. Settings come from K2_* "
            "environment variables (see `k2 config`)."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            # Keep the rest of the CLI usable; say what is broken when it is used.
            broken = sub.add_parser(name.split(".")[0], help=f"(unavailable: {exc})")
            broken.set_defaults(func=_unavailable(name, exc))
            continue
        module.register(sub)
    return parser


def _unavailable(name: str, exc: ImportError):
    def run(args: argparse.Namespace) -> int:
        print(f"k2: {name} cannot be loaded: {exc}; run `make setup`", file=sys.stderr)
        return 2

    return run


# Wrappers whose arguments belong to the wrapped tool, options included (argparse's
# REMAINDER would still try to parse a leading `--conf` or `--help` itself).
PASSTHROUGH = ("airflow", "spark-submit")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    fast = FAST_COMMANDS.get(argv[0]) if argv else None
    parser = build_parser((fast,) if fast else SUBCOMMAND_MODULES)
    if argv[:1] and argv[0] in PASSTHROUGH:
        args = parser.parse_args(argv[:1])
        args.args = argv[1:]
    else:
        args = parser.parse_args(argv)
    try:
        if args.command != "config":  # `k2 config` reports them itself, with its exit code
            check_unknown_variables(f"k2 {args.command}")
        return int(args.func(args) or 0)
    except SettingsError as exc:
        print(f"k2: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

