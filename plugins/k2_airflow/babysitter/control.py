"""Acting on a stream: stopping a stalled copy so its runner can start a fresh one."""

from __future__ import annotations

import logging

from k2.settings import PlatformSettings
from k2.streams import lock_holder, stop_stream

log = logging.getLogger("k2.airflow.babysitter")


def kill_stream(stream: str, pid: int, settings: PlatformSettings, timeout_s: float = 60) -> bool:
    """SIGKILL the stream's process group (see :func:`k2.streams.stop_stream`).

    ``pid`` is the lock holder the caller observed; if the lock has changed hands since,
    the new copy is left alone. Returns True once the run lock is free.
    """
    holder = lock_holder(stream, settings)
    if holder is None:
        log.info("%s: pid %s already gone", stream, pid)
        return True
    if holder != pid:
        log.info("%s: lock now held by pid %s, not %s; leaving it alone", stream, holder, pid)
        return False
    log.info("%s: sending SIGKILL to the process group of pid %s", stream, pid)
    return stop_stream(stream, settings, timeout_s)
