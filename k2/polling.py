"""Poll for a condition with a timeout instead of sleeping a fixed time.

The one polling helper of the project: tests, the pipeline harness and the benchmarks
wait on it. Core module: it imports nothing of the project.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(probe: Callable[[], T], timeout: float, what: str, *, interval: float = 0.5) -> T:
    """Call ``probe`` every ``interval`` seconds and return its first truthy result.

    After ``timeout`` seconds raise :class:`TimeoutError` naming ``what`` was awaited and
    the probe's last value, so a failed wait says what never happened.
    """
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if last:
            return last
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}; last value {last!r}")
        time.sleep(min(interval, remaining))
