"""One line per step on stderr, so long operations show where they are."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def say(message: str, source: str = "k2") -> None:
    """One line for a human on stderr, prefixed with the tool speaking (services and Spark
    jobs log JSON lines instead: k2/log.py)."""
    print(f"[{source}] {message}", file=sys.stderr, flush=True)


@contextmanager
def step(message: str) -> Iterator[None]:
    start = time.monotonic()
    say(f"{message} ...")
    yield
    say(f"{message}: done in {time.monotonic() - start:.1f}s")
