"""`k2 workers`: run worker processes (and optionally the simulator), restart them.

Each child is a separate process so one exchange's crash, memory ceiling or stuck
socket never affects the other. A child that exits for any reason while the
supervisor is running is restarted after ``min(cap, base * 2**(n-1))`` seconds with
jitter, where ``n`` counts consecutive short-lived runs (a child that ran for a minute
starts over at the base delay). SIGTERM/SIGINT are forwarded to every child, which
flush and exit; children still running after the grace period are killed.

A worker that exits with :data:`~workers.exits.EXIT_CONFIG` has a setting that no
restart can fix: it is not restarted, and the supervisor logs the error the worker
wrote to its ``--exit-reason-file`` and the setting it names. When no worker is left
running, the supervisor stops and exits with that code too.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from k2.log import EventLog
from workers.backoff import Backoff
from workers.exits import DESCRIPTIONS, EXIT_CONFIG, EXIT_OK

HEALTHY_RUN_S = 60.0  # a child that lived this long resets its restart backoff


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    restarts: int = 0
    history: list[int] = field(default_factory=list)  # exit codes, newest last
    stop_last: bool = False  # e.g. the simulator: workers flush before it goes away
    reason_file: Path | None = None  # where the child writes why it exits with EXIT_CONFIG
    gave_up: bool = False  # exited with a configuration error: not restarted


class Supervisor:
    def __init__(
        self,
        children: Sequence[Child],
        log: EventLog,
        *,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 60.0,
        grace_s: float = 40.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,  # when children start and restart (tests inject one)
    ):
        self.children = list(children)
        self.log = log
        self._backoff = Backoff(backoff_base_s, backoff_cap_s, 0.75, rng or random.Random())
        self.grace_s = grace_s
        self.clock = clock
        self.stopping = False
        self.exit_code = EXIT_OK

    def backoff(self, failures: int) -> float:
        return self._backoff.delay(failures)

    def start(self, child: Child) -> None:
        if child.reason_file is not None:
            child.reason_file.unlink(missing_ok=True)  # a reason left by an earlier run is not this one's
        child.process = subprocess.Popen(child.argv, env=child.env)
        child.started_at = self.clock()
        child.restart_at = None
        self.log.info("child_started", child=child.name, pid=child.process.pid, restarts=child.restarts)

    def check(self, now: float) -> None:
        """Notice exited children and restart those whose backoff has elapsed."""
        for child in self.children:
            proc = child.process
            if proc is not None and proc.poll() is not None:
                code = proc.returncode
                child.history.append(code)
                child.process = None
                if code == EXIT_CONFIG:
                    self._give_up(child, proc.pid)
                    continue
                ran = now - child.started_at
                child.failures = 1 if ran >= HEALTHY_RUN_S else child.failures + 1
                delay = self.backoff(child.failures)
                child.restart_at = now + delay
                self.log.warning("child_exited", child=child.name, pid=proc.pid, exit_code=code,
                                 ran_s=round(ran, 1), restart_in_s=round(delay, 2),
                                 reason=_describe_exit(code))
            if child.process is None and child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self.start(child)

    def _give_up(self, child: Child, pid: int) -> None:
        child.gave_up, child.restart_at = True, None
        error = _read_reason(child.reason_file)
        settings = sorted(set(re.findall(r"\bK2_[A-Z0-9_]+", error)))
        self.log.error("child_config_error", child=child.name, pid=pid, exit_code=EXIT_CONFIG, error=error,
                       settings=settings, action=f"fix {' and '.join(settings) or 'the settings'} (`k2 config` "
                       "shows them) and start again; the worker is not restarted")
        workers = [c for c in self.children if not c.stop_last]
        if all(c.gave_up for c in workers):
            self.log.error("supervisor_stopping", reason="every worker exited with a configuration error",
                           exit_code=EXIT_CONFIG)
            self.exit_code, self.stopping = EXIT_CONFIG, True

    def run(self, poll_s: float = 0.2) -> int:
        def on_signal(signum: int, _frame: object) -> None:
            if not self.stopping:
                self.log.info("supervisor_stopping", signal=signal.Signals(signum).name)
            self.stopping = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        for child in self.children:
            self.start(child)
        while not self.stopping:
            self.check(self.clock())
            time.sleep(poll_s)
        return self.shutdown()

    def shutdown(self) -> int:
        for last in (False, True):
            self._stop([c for c in self.children if c.stop_last == last])
        codes = {c.name: (c.process.returncode if c.process else None) for c in self.children}
        self.log.info("supervisor_stopped", exit_codes=codes)
        return self.exit_code

    def _stop(self, children: list[Child]) -> None:
        running = [c for c in children if c.process is not None and c.process.poll() is None]
        for child in running:
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for child in running:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log.error("child_killed", child=child.name, pid=child.process.pid,
                               reason=f"still running {self.grace_s}s after SIGTERM")
                child.process.kill()
                child.process.wait()


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return DESCRIPTIONS.get(code, "crashed")


def _read_reason(path: Path | None) -> str:
    try:
        return path.read_text().strip() if path is not None else ""
    except OSError:
        return ""  # the worker's own configuration_error log line still has it


def worker_child(exchange: str, env: Mapping[str, str]) -> Child:
    reason_file = Path(tempfile.gettempdir()) / f"k2-worker-{exchange}-{os.getpid()}.exit-reason"
    argv = [sys.executable, "-m", "workers.run", exchange, "--exit-reason-file", str(reason_file)]
    return Child(exchange, argv, dict(env), reason_file=reason_file)


def simulator_env(base: Mapping[str, str], port: int) -> dict[str, str]:
    """Environment that points the workers at a local simulator instead of the exchanges."""
    from workers.simulator.venues import protocol_classes

    env = dict(base)
    for name, protocol in protocol_classes().items():
        env[f"K2_{name.upper()}_URLS"] = protocol.ws_url("127.0.0.1", port)
        rest = protocol.rest_url("127.0.0.1", port)
        if rest is not None:  # the simulator's REST history (backfill), never the live venue's
            env[f"K2_{name.upper()}_REST_URL"] = rest
    env["K2_WORKERS_REFRESH_SYMBOLS"] = "false"
    return env


def default_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
