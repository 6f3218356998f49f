"""The exchange workers under their supervisor (`k2 workers`), as a stack service.

Live exchanges by default; ``simulator=True`` (``make run OFFLINE=1``) runs the local
exchange simulator and points the workers at it, at ``simulator_rate`` trades/s per
exchange (``k2 up --simulator --simulator-rate 50``; default that of `k2 workers`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from k2.settings import PlatformSettings, env_for_children
from k2ops.stack.process import Service, port_in_use


def metrics_ports() -> dict[str, int]:
    from k2.exchanges import names
    from workers.settings import worker_settings

    ws = worker_settings()
    return {name: ws.metrics_port(name) for name in names()}


@dataclass(frozen=True)
class WorkersMode:
    """What the workers read: the live exchanges, or the simulator at ``rate``."""

    simulator: bool
    rate: float | None = None  # simulator trades/s per exchange; None for live exchanges

    def describe(self) -> str:
        return f"the simulator at {self.rate:g} trades/s per exchange" if self.simulator else "the live exchanges"


def mode_of(argv: Sequence[str]) -> WorkersMode:
    """The mode a `k2 workers ...` command line runs in (the service's argv, or its
    /proc cmdline): the same defaults as `k2 workers` itself."""
    from workers.cli import DEFAULT_SIMULATOR_RATE

    if "--simulator" not in argv:
        return WorkersMode(simulator=False)
    rate = DEFAULT_SIMULATOR_RATE
    for i, arg in enumerate(argv):
        if arg == "--simulator-rate" and i + 1 < len(argv):
            rate = float(argv[i + 1])
        elif arg.startswith("--simulator-rate="):
            rate = float(arg.split("=", 1)[1])
    return WorkersMode(simulator=True, rate=rate)


def running_mode(s: PlatformSettings) -> WorkersMode | None:
    """How the running workers service was started; None when it is not running."""
    pid = service(s).pid()
    if pid is None:
        return None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:  # it exited just now
        return None
    return mode_of(argv)


def service(s: PlatformSettings, simulator: bool = False, simulator_rate: float | None = None) -> Service:
    ports = metrics_ports()
    argv = [str(Path(sys.executable).parent / "k2"), "workers"]
    if simulator:
        argv.append("--simulator")
        if simulator_rate is not None:
            argv += ["--simulator-rate", f"{simulator_rate:g}"]
    return Service(
        name="workers",
        argv=argv,
        run_dir=s.run_dir,
        log_file=s.logs_dir / "workers.log",
        address=", ".join(f"{ex} http://{s.bind_host}:{p}/metrics" for ex, p in ports.items()),
        env=env_for_children(s),
        ports=[(s.bind_host, p) for p in ports.values()],
        # Up means both workers serve metrics; data health is on each /health endpoint.
        ready=lambda: all(port_in_use(s.bind_host, p) for p in ports.values()),
        ready_timeout=60,
        stop_timeout=45,  # workers flush their producer queue on SIGTERM
    )
