"""`k2 workers` and `k2 simulate` subcommands.

Also runnable as ``python -m workers.cli workers|simulate ...``: the supervisor starts the
simulator that way, so the runtime never goes through the operator CLI (k2ops)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from workers.settings import EXCHANGE_NAMES

DEFAULT_SIMULATOR_PORT = 18765
DEFAULT_SIMULATOR_RATE = 20.0  # trades/s per exchange: `k2 workers --simulator`, `k2 up --simulator`


def register(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser(
        "workers",
        help="run the exchange workers (Binance, Kraken) under a restarting supervisor",
        description=(
            "Run one worker process per exchange: exchange WebSocket -> normalized v3 "
            "trade -> Avro -> Kafka (market.crypto.trades.<exchange>), bad frames to the "
            "DLQ topic. A supervisor restarts a worker that exits, with backoff, and "
            "forwards SIGTERM/SIGINT (workers flush before exiting). Live exchanges are "
            "the default; --simulator runs the local exchange simulator and points the "
            "workers at it. Settings: `k2 config` (K2_BINANCE_*, K2_KRAKEN_*, K2_WORKERS_*). "
            "Metrics and /health: http://127.0.0.1:9101 (Binance), :9102 (Kraken)."
        ),
    )
    w.add_argument(
        "--exchange",
        action="append",
        choices=EXCHANGE_NAMES,
        help="run only this exchange (repeatable; default: all)",
    )
    w.add_argument("--simulator", action="store_true", help="start the local simulator and use it")
    w.add_argument("--simulator-port", type=int, default=DEFAULT_SIMULATOR_PORT, help="simulator port (default %(default)s)")
    w.add_argument("--simulator-rate", type=float, default=DEFAULT_SIMULATOR_RATE,
                   help="simulated trades/s per exchange (default %(default)s)")
    w.set_defaults(func=run_workers)

    s = sub.add_parser(
        "simulate",
        help="run the local exchange simulator (Binance combined streams + Kraken v2)",
        description=(
            "A WebSocket server on 127.0.0.1 speaking Binance's combined-stream protocol at "
            "/stream?streams=... and Kraken's v2 protocol at /v2, with configurable symbols, "
            "rate, faults and a seed. Point workers at it with "
            "K2_BINANCE_URLS=ws://127.0.0.1:PORT K2_KRAKEN_URLS=ws://127.0.0.1:PORT/v2. "
            "--record writes every trade and bad frame sent, one JSON object per line."
        ),
    )
    s.add_argument("--host", default="127.0.0.1", help="bind address (default %(default)s)")
    s.add_argument("--port", type=int, default=DEFAULT_SIMULATOR_PORT, help="port, 0 for any free one (default %(default)s)")
    s.add_argument("--binance-symbols", default="BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,XRPUSDT,DOGEUSDT")
    s.add_argument("--kraken-symbols", default="BTC/USD,ETH/USD,SOL/USD,XRP/USD,DOGE/USD,BTC/EUR")
    s.add_argument("--rate", type=float, default=20.0, help="trades/s per exchange; 0 = as fast as clients read")
    s.add_argument("--kraken-batch", type=int, default=5, help="most trades per Kraken message")
    s.add_argument("--malformed-rate", type=float, default=0.0, help="chance per trade frame of an extra malformed frame")
    s.add_argument("--duplicate-rate", type=float, default=0.0, help="chance per trade frame of sending it twice")
    s.add_argument("--lifetime", type=float, help="close each connection after this many seconds (Binance: 24 h)")
    s.add_argument("--shutdown-after", type=float, help="Binance: send serverShutdown after this many seconds, then close")
    s.add_argument("--disconnect-after", type=float, help="drop each connection abruptly after this many seconds")
    s.add_argument("--stall-after", type=float, help="stop sending data and heartbeats after this many seconds ...")
    s.add_argument("--stall-for", type=float, default=0.0, help="... for this many seconds (a silent stall)")
    s.add_argument("--seed", type=int, default=1, help="seed of prices, sides and faults (default %(default)s)")
    s.add_argument("--record", help="write everything sent to this JSON-lines file")
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
            "--binance-symbols", ",".join(settings.binance_symbols),
            "--kraken-symbols", ",".join(settings.kraken_symbols),
        ], env, stop_last=True))
    for exchange in args.exchange or EXCHANGE_NAMES:
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
    from workers.simulator import Simulator, SimulatorConfig

    def symbols(text: str) -> tuple[str, ...]:
        return tuple(s.strip() for s in text.split(",") if s.strip())

    cfg = SimulatorConfig(
        host=args.host, port=args.port, binance_symbols=symbols(args.binance_symbols),
        kraken_symbols=symbols(args.kraken_symbols), rate=args.rate, kraken_batch=args.kraken_batch,
        malformed_rate=args.malformed_rate, duplicate_rate=args.duplicate_rate, lifetime_s=args.lifetime,
        shutdown_after_s=args.shutdown_after, disconnect_after_s=args.disconnect_after,
        stall_after_s=args.stall_after, stall_for_s=args.stall_for, seed=args.seed, record=args.record,
    )

    async def main() -> None:
        sim = Simulator(cfg)
        port = await sim.start()
        print(json.dumps({
            "event": "simulator_listening", "port": port,
            "binance_url": f"ws://{args.host}:{port}", "kraken_url": f"ws://{args.host}:{port}/v2",
            "record": args.record,
        }), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await sim.stop()

    asyncio.run(main())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.cli")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
