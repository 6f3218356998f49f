"""Registering one subcommand: its parser and the function it runs, in one call."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Handler = Callable[[argparse.Namespace], int]


def add_command(sub: argparse._SubParsersAction, name: str, func: Handler | None, help: str,
                description: str | None = None, *, epilog: str | None = None, raw: bool = False,
                **kwargs: object) -> argparse.ArgumentParser:
    """Add subcommand ``name`` to ``sub``, running ``func`` (None: it only groups actions).

    ``raw`` keeps the description's line breaks (a module docstring as description); an
    ``epilog`` (examples, one per line) always keeps them.
    """
    if raw or epilog is not None:
        kwargs["formatter_class"] = argparse.RawDescriptionHelpFormatter
    parser = sub.add_parser(name, help=help, description=description, epilog=epilog, **kwargs)
    if func is not None:
        parser.set_defaults(func=func)
    return parser
