"""Start, watch and stop one long-running service process.

Each service runs in its own session (process group) so ``down`` can stop it together
with any children. A pid file records the pid and the kernel's start time of the
process, so a recycled pid is never mistaken for the service. A pid file whose process
is gone means the service crashed (a clean stop removes the file).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from k2.stack.errors import StackError
from k2.stack.progress import say

RUNNING, STOPPED, CRASHED = "running", "stopped", "crashed"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has exited; its parent just has not reaped it
        return None
    return fields[19]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return True
        except Exception:  # noqa: BLE001 - a failing probe just means "not ready yet"
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


@dataclass
class Service:
    """A service process and how to tell it is ready."""

    name: str
    argv: Sequence[str]
    run_dir: Path
    log_file: Path
    address: str = ""
    env: dict[str, str] | None = None
    cwd: Path | None = None
    ports: Sequence[tuple[str, int]] = ()
    ready: Callable[[], bool] | None = None
    ready_timeout: float = 120.0
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 30.0
    run_as: str | None = None  # a user name to drop to when we are root (PostgreSQL)
    hint: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    # -- state ---------------------------------------------------------------
    def pid(self) -> int | None:
        """The pid if the recorded process is alive, else None."""
        try:
            pid_text, started = self.pid_file.read_text().split()
        except (OSError, ValueError):
            return None
        pid = int(pid_text)
        return pid if _start_time(pid) == started else None

    def state(self) -> str:
        if self.pid() is not None:
            return RUNNING
        return CRASHED if self.pid_file.exists() else STOPPED

    def is_ready(self) -> bool:
        if self.pid() is None:
            return False
        return self.ready() if self.ready else True

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> bool:
        """Start unless already running; wait until ready. Returns True if it started."""
        if self.pid() is not None:
            if not wait_for(self.is_ready, self.ready_timeout):
                raise StackError(self.name, "is running but not ready", self._log_hint())
            return False
        for host, port in self.ports:
            # A just-killed JVM can still hold its sockets for a moment after its main
            # thread is reaped, so give a port a few seconds before calling it taken.
            if not wait_for(lambda h=host, p=port: not port_in_use(h, p), 10, 0.5):
                raise StackError(
                    self.name,
                    f"port {host}:{port} is already in use by another process",
                    f"stop whatever listens there (`ss -ltnp | grep :{port}`) or set the "
                    "matching K2_*_PORT setting (see `k2 config`)",
                )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        argv = list(self.argv)
        if self.run_as and os.geteuid() == 0:
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        with open(self.log_file, "ab") as log:
            log.write(f"\n==== k2: starting {self.name} at {time.ctime()} ====\n".encode())
            log.flush()
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        started = _start_time(proc.pid)
        self.pid_file.write_text(f"{proc.pid} {started}\n")
        start = time.monotonic()

        def ready() -> bool:
            if proc.poll() is not None:
                raise _Exited(proc.returncode)
            return self.ready() if self.ready else True

        try:
            ok = _wait_ready(ready, self.ready_timeout)
        except _Exited as exc:
            self.pid_file.unlink(missing_ok=True)
            raise StackError(
                self.name, f"exited with code {exc.code} while starting", self._log_hint()
            ) from None
        if not ok:
            raise StackError(
                self.name, f"not ready after {self.ready_timeout:.0f}s", self._log_hint()
            )
        say(f"{self.name}: ready on {self.address or 'no port'} in {time.monotonic() - start:.1f}s")
        return True

    def stop(self) -> bool:
        """Stop the process group; SIGKILL after the timeout. Returns True if it was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        try:
            os.killpg(pid, self.stop_signal)
        except ProcessLookupError:
            pass
        if not wait_for(lambda: _start_time(pid) is None, self.stop_timeout, 0.2):
            say(f"{self.name}: did not stop in {self.stop_timeout:.0f}s, killing")
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_for(lambda: _start_time(pid) is None, 10, 0.2)
        self.pid_file.unlink(missing_ok=True)
        return True

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log yet)"

    def _log_hint(self) -> str:
        hint = f"see its log {self.log_file} (last lines below)"
        if self.hint:
            hint = f"{self.hint}; {hint}"
        return hint + "\n" + "\n".join("    | " + line for line in self.tail().splitlines())


class _Exited(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _wait_ready(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return True
        except _Exited:
            raise
        except Exception:  # noqa: BLE001 - probe failed: not ready yet
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)
