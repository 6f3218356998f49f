"""Acting on a stream: stopping a stalled copy so its runner can start a fresh one."""

from __future__ import annotations

import logging
import os
import signal
import time

from k2.settings import PlatformSettings
from k2.streams import lock_holder

log = logging.getLogger("k2.airflow.babysitter")


def kill_stream(stream: str, pid: int, settings: PlatformSettings, timeout_s: float = 60) -> bool:
    """SIGKILL the stream's process group (spark-submit JVM and Python driver together).

    The checkpoint is designed for ``kill -9``, so there is no graceful path to wait
    for. If the stream shares our own process group (started by hand from this shell),
    only its pid is killed, never the babysitter itself. Returns True once the run lock
    is free.
    """
    try:
        group = os.getpgid(pid)
        if group == os.getpgid(0):
            os.kill(pid, signal.SIGKILL)
        else:
            os.killpg(group, signal.SIGKILL)
        log.info("%s: sent SIGKILL to pid %s (process group %s)", stream, pid, group)
    except ProcessLookupError:
        log.info("%s: pid %s already gone", stream, pid)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if lock_holder(stream, settings) is None:
            return True
        time.sleep(1)
    return False
