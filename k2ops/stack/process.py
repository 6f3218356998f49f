"""Start, watch and stop one long-running service process.

Each service runs in its own session (process group) so ``down`` can stop it together
with any children. A pid file records the pid and the kernel's start time of the
process, so a recycled pid is never mistaken for the service. A pid file whose process
is gone means the service crashed (a clean stop removes the file).

Logs rotate by size, the same way for every service: the service's stdout and stderr
go into a pipe read by a small writer process (``python -m k2ops.stack.process LOG MAX
BACKUPS``, :func:`pump`) that appends to ``$K2_HOME/logs/<service>.log`` and rotates it
to ``.log.1`` .. ``.log.N`` at ``K2_LOG_MAX_MB``, keeping ``K2_LOG_BACKUPS`` files. One
mechanism covers the JVMs (Kafka, registry, Spark daemons), PostgreSQL, Airflow and
the workers alike, including what a JVM prints outside log4j (GC warnings, crashes),
and no service has to reopen its file. The writer runs in its own session, so the
signals that stop a service do not reach it: it writes the service's last words and
exits when the last process holding the pipe (the service and any children) is gone.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from k2.errors import K2Error
from k2.polling import wait_until
from k2ops.stack.errors import StackError
from k2ops.stack.progress import say

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
    """True once ``check()`` holds, False after ``timeout`` (the caller says what failed)."""
    def ready() -> bool:
        try:
            return bool(check())
        except Exception:  # noqa: BLE001 - a failing probe just means "not ready yet"
            return False

    try:
        return wait_until(ready, timeout, "a service to be ready", interval=interval)
    except TimeoutError:
        return False


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
    # Rotation of log_file; None: K2_LOG_MAX_MB and K2_LOG_BACKUPS (read at start).
    log_max_bytes: int | None = None
    log_backups: int | None = None

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
        writer = self._start_log_writer()
        try:
            proc = subprocess.Popen(
                argv,
                stdout=writer.stdin,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        finally:
            writer.stdin.close()  # only the service (and its children) hold the pipe now
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
            _drained(writer)  # so the hint below shows the service's last lines
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

    def _start_log_writer(self) -> subprocess.Popen:
        """The rotating writer the service's output is piped to (see the module doc)."""
        max_bytes, backups = self.log_max_bytes, self.log_backups
        if max_bytes is None or backups is None:
            from k2.log_settings import log_settings

            max_bytes = log_settings().max_bytes if max_bytes is None else max_bytes
            backups = log_settings().backups if backups is None else backups
        writer = subprocess.Popen(
            [sys.executable, "-m", "k2ops.stack.process", str(self.log_file), str(max_bytes), str(backups)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert writer.stdin is not None
        writer.stdin.write(f"\n==== k2: starting {self.name} at {time.ctime()} ====\n".encode())
        writer.stdin.flush()
        return writer

    def tail(self, lines: int = 20) -> str:
        # Just after a rotation the current file holds little; the previous one the rest.
        text = []
        for path in (self.log_file.with_name(self.log_file.name + ".1"), self.log_file):
            try:
                text += path.read_text(errors="replace").splitlines()
            except OSError:
                continue
        return "\n".join(text[-lines:]) if text else "(no log yet)"

    def _log_hint(self) -> str:
        hint = f"see its log {self.log_file} (last lines below)"
        if self.hint:
            hint = f"{self.hint}; {hint}"
        return hint + "\n" + "\n".join("    | " + line for line in self.tail().splitlines())


class _Exited(K2Error):
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


def _drained(writer: subprocess.Popen, timeout: float = 5.0) -> None:
    """Wait until the log writer has written everything (it exits at end of input)."""
    try:
        writer.wait(timeout)
    except subprocess.TimeoutExpired:  # a child of the service still holds the pipe
        pass


class RotatingLog:
    """Append bytes to ``path``; past ``max_bytes`` move it to ``.1`` (``.1`` to ``.2``, ...).

    At most ``backups`` old files are kept. A rotation happens at a line end when the
    data allows, so a line is not split across two files.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")  # noqa: SIM115 - kept open across writes, closed by close()
        self._size = self._file.tell()

    def write(self, data: bytes) -> None:
        while data:
            room = self.max_bytes - self._size
            if len(data) <= room:
                self._append(data)
                return
            cut = data.rfind(b"\n", 0, max(room, 0))
            if cut < 0 and self._size > 0:
                self.rotate()  # the next line starts a fresh file
                continue
            if cut < 0:  # one line longer than a whole file: keep it whole
                end = data.find(b"\n")
                cut = len(data) - 1 if end < 0 else end
            self._append(data[: cut + 1])
            self.rotate()
            data = data[cut + 1 :]

    def rotate(self) -> None:
        self._file.close()
        for n in range(self.backups - 1, 0, -1):
            older = self._numbered(n)
            if older.exists():
                older.replace(self._numbered(n + 1))
        self.path.replace(self._numbered(1))
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._size = 0

    def close(self) -> None:
        self._file.close()

    def reopen(self) -> None:
        """After a failed write or rotation: open ``path`` afresh if possible."""
        try:
            self._file.close()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115
            self._size = self._file.tell()
        except OSError:
            pass  # still failing; the next write tries again

    def _numbered(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def _append(self, data: bytes) -> None:
        self._file.write(data)
        self._file.flush()  # `k2 stack logs -f` and crash hints read the file while we run
        self._size += len(data)


def pump(source: int, log: RotatingLog, chunk: int = 65536) -> None:
    """Copy everything from the file descriptor ``source`` into ``log`` until end of input."""
    while True:
        data = os.read(source, chunk)
        if not data:
            log.close()
            return
        try:
            log.write(data)
        except (OSError, ValueError):
            # Disk full or folder removed: drop this chunk and start over on the file.
            # The writer must not die: the service would then fail writing to its pipe.
            log.reopen()


if __name__ == "__main__":
    # The log writer of one service: python -m k2ops.stack.process LOG MAX_BYTES BACKUPS
    _path, _max_bytes, _backups = sys.argv[1:4]
    pump(sys.stdin.fileno(), RotatingLog(Path(_path), int(_max_bytes), int(_backups)))
