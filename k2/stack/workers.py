"""The exchange workers under their supervisor (`k2 workers`), as a stack service.

Live exchanges by default; ``simulator=True`` (``make run OFFLINE=1``) runs the local
exchange simulator and points the workers at it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from k2.settings import PlatformSettings, env_for_children
from k2.stack.process import Service, port_in_use


def metrics_ports() -> dict[str, int]:
    from workers.settings import worker_settings

    ws = worker_settings()
    return {"binance": ws.binance_metrics_port, "kraken": ws.kraken_metrics_port}


def service(s: PlatformSettings, simulator: bool = False) -> Service:
    ports = metrics_ports()
    argv = [str(Path(sys.executable).parent / "k2"), "workers"]
    if simulator:
        argv.append("--simulator")
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
