"""`k2 workers` and `k2 simulate` subcommands.

Also runnable as ``python -m workers.cli workers|simulate ...``: the supervisor starts the
simulator that way, so the runtime never goes through the operator CLI (k2ops)."""

from __future__ import annotations

import argparse
import sys

from k2.exchanges import names

DEFAULT_SIMULATOR_PORT = 18765
DEFAULT_SIMULATOR_RATE = 20.0  # trades/s per exchange: `k2 workers --simulator`, `k2 up --simulator`


def _labels() -> str:
    from workers.exchanges import exchange_classes

    return ", ".join(cls.label() for cls in exchange_classes().values())


def register(sub: argparse._SubParsersAction) -> None:
    from workers.exchanges import exchange_classes
    from workers.settings import FIRST_METRICS_PORT

    venues = exchange_classes()
    setting_groups = ", ".join(f"K2_{name.upper()}_*" for name in venues)
    ports = ", ".join(f"{FIRST_METRICS_PORT + i} ({cls.label()})" for i, cls in enumerate(venues.values()))
    w = sub.add_parser(
        "workers",
        help=f"run the exchange workers ({_labels()}) under a restarting supervisor",
        description=(
            "Run one worker process per exchange: exchange WebSocket -> normalized v3 "
            "trade -> Avro -> Kafka (market.crypto.trades.<exchange>), bad frames to the "
            "DLQ topic. A supervisor restarts a worker that exits, with backoff, and "
            "forwards SIGTERM/SIGINT (workers flush before exiting). Live exchanges are "
            "the default; --simulator runs the local exchange simulator and points the "
            f"workers at it. Settings: `k2 config` ({setting_groups}, K2_WORKERS_*). "
            f"Metrics and /health on 127.0.0.1 ports {ports}."
        ),
    )
    w.add_argument(
        "--exchange",
        action="append",
        choices=names(),
        help="run only this exchange (repeatable; default: all)",
    )
    w.add_argument("--simulator", action="store_true", help="start the local simulator and use it")
    w.add_argument("--simulator-port", type=int, default=DEFAULT_SIMULATOR_PORT, help="simulator port (default %(default)s)")
    w.add_argument("--simulator-rate", type=float, default=DEFAULT_SIMULATOR_RATE,
                   help="simulated trades/s per exchange (default %(default)s)")
    w.set_defaults(func=run_workers)

    from workers.simulator.venues import protocol_classes

    paths = ", ".join(f"{venues[n].label()} at {p.ws_paths[0] or '/'}" for n, p in protocol_classes().items())
    url_settings = " ".join(f"K2_{n.upper()}_URLS=ws://127.0.0.1:PORT{p.ws_paths[0]}"
                            for n, p in protocol_classes().items())
    s = sub.add_parser(
        "simulate",
        help=f"run the local exchange simulator ({_labels()})",
        description=(
            f"A WebSocket server on 127.0.0.1 speaking each venue's protocol ({paths}), with "
            "configurable symbols (or a generated full-market --universe), rate and bursts, faults and a seed, "
            "their REST trade histories and metadata, and a control channel (GET /_sim/stats|list|delist|"
            "disconnect). "
            f"Point workers at it with {url_settings}. "
            "--record writes every trade and bad frame sent, one JSON object per line."
        ),
    )
    from workers.simulator.cli import add_arguments

    add_arguments(s, DEFAULT_SIMULATOR_PORT)
    s.set_defaults(func=run_simulate)


def run_workers(args: argparse.Namespace) -> int:
    from k2.log import EventLog
    from workers.settings import worker_settings
    from workers.supervisor import Child, Supervisor, default_env, simulator_env, worker_child

    settings = worker_settings()  # fail fast on bad settings, before starting anything
    env = default_env()
    children: list[Child] = []
    if args.simulator:
        env = simulator_env(env, args.simulator_port)
        children.append(Child("simulator", [
            sys.executable, "-m", "workers.cli", "simulate", "--port", str(args.simulator_port),
            "--rate", str(args.simulator_rate),
            *(arg for name in names() for arg in (f"--{name}-symbols", ",".join(settings.symbols(name)))),
        ], env, stop_last=True))
    for exchange in args.exchange or names():
        children.append(worker_child(exchange, env))
    supervisor = Supervisor(
        children,
        EventLog(component="supervisor"),
        backoff_base_s=settings.restart_backoff_base_s,
        backoff_cap_s=settings.restart_backoff_cap_s,
        grace_s=settings.flush_timeout_s + 10.0,
    )
    return supervisor.run()


def run_simulate(args: argparse.Namespace) -> int:
    from workers.simulator.cli import run

    return run(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.cli")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
