"""``k2 simulate``'s options and run: the argument parser's part the simulator owns.

``workers/cli.py`` registers the subcommand and hands the parser and the parsed
arguments to :func:`add_arguments` and :func:`run`, so a simulator option is added
here, beside what it configures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from k2.exchanges import names
from workers.simulator.schedule import Bursts, ScheduleError
from workers.simulator.server import Simulator, SimulatorConfig
from workers.simulator.universe import UniverseError, parse_sizes, split_rate
from workers.simulator.venues import protocol_classes


def add_arguments(s: argparse.ArgumentParser, default_port: int) -> None:
    from workers.exchanges import exchange_classes

    s.add_argument("--host", default="127.0.0.1", help="bind address (default %(default)s)")
    s.add_argument("--port", type=int, default=default_port, help="port, 0 for any free one (default %(default)s)")
    for name, cls in exchange_classes().items():
        s.add_argument(f"--{name}-symbols", default=",".join(cls.default_symbols),
                       help=f"{cls.label()} symbols to serve (default %(default)s)")
    s.add_argument("--universe", default="",
                   help="full market: VENUE=COUNT,... generated symbols per venue, spelled the venue's way and "
                        "listed by its REST metadata (the benchmark's: "
                        + ",".join(f"{name}={p.full_market_symbols}" for name, p in protocol_classes().items())
                        + "); replaces --VENUE-symbols for those venues")
    s.add_argument("--rate", type=float, default=20.0, help="trades/s per exchange; 0 = as fast as clients read")
    s.add_argument("--total-rate", type=float,
                   help="aggregate trades/s over the --universe venues, shared in proportion to their symbols "
                        "(instead of --rate for them)")
    s.add_argument("--bursts", help="rate bursts FACTOR:LENGTH_S:EVERY_S[:FIRST_S], e.g. 10:60:600:300 "
                                    "(10x for 60 s, every 600 s, the first 300 s in)")
    s.add_argument("--batch", type=int, default=5, help="most trades per message, on venues that batch them")
    s.add_argument("--malformed-rate", type=float, default=0.0, help="chance per trade frame of an extra malformed frame")
    s.add_argument("--duplicate-rate", type=float, default=0.0, help="chance per trade frame of sending it twice")
    s.add_argument("--lifetime", type=float, help="close each connection after this many seconds")
    s.add_argument("--shutdown-after", type=float,
                   help="send the venue's shutdown notice (where it has one) after this many seconds, then close")
    s.add_argument("--disconnect-after", type=float, help="drop each connection abruptly after this many seconds")
    s.add_argument("--stall-after", type=float, help="stop sending data and heartbeats after this many seconds ...")
    s.add_argument("--stall-for", type=float, default=0.0, help="... for this many seconds (a silent stall)")
    s.add_argument("--connect-limits", action="store_true",
                   help="refuse (HTTP 429) connections past each venue's new-connections-per-IP rate")
    s.add_argument("--seed", type=int, default=1, help="seed of prices, sides and faults (default %(default)s)")
    s.add_argument("--record", help="write everything sent to this JSON-lines file")
    s.add_argument("--record-spans-only", action="store_true",
                   help="with --record: no line per trade sent, only each symbol's first and last id sent "
                        "(published trades are still listed); for full-market rates")


def config(args: argparse.Namespace) -> SimulatorConfig:
    """The simulator configuration ``args`` describe (``UniverseError``/``ScheduleError`` if unreadable)."""
    venues = names()

    def symbols(text: str) -> tuple[str, ...]:
        return tuple(s.strip() for s in text.split(",") if s.strip())

    universe = parse_sizes(args.universe, venues)
    if args.total_rate is not None and not universe:
        raise UniverseError("--total-rate shares a rate among the --universe venues: give --universe")
    return SimulatorConfig(
        host=args.host, port=args.port, symbols={name: symbols(getattr(args, f"{name}_symbols")) for name in venues},
        universe=universe, rate=args.rate,
        rates=split_rate(args.total_rate, universe) if args.total_rate is not None else {},
        bursts=Bursts.parse(args.bursts) if args.bursts else None, batch=args.batch,
        malformed_rate=args.malformed_rate, duplicate_rate=args.duplicate_rate, lifetime_s=args.lifetime,
        shutdown_after_s=args.shutdown_after, disconnect_after_s=args.disconnect_after,
        stall_after_s=args.stall_after, stall_for_s=args.stall_for, seed=args.seed, record=args.record,
        record_sent=not args.record_spans_only, connect_limits=args.connect_limits,
    )


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config(args)
    except (UniverseError, ScheduleError) as exc:
        print(f"k2 simulate: {exc}", flush=True)
        return 2

    async def main() -> None:
        sim = Simulator(cfg)
        port = await sim.start()
        urls = {f"{name}_url": m.venue.ws_url(args.host, port) for name, m in sim.markets.items()}
        print(json.dumps({"event": "simulator_listening", "port": port, **urls, "record": args.record,
                          "listed": {name: len(m.venue.listings) for name, m in sim.markets.items()},
                          "rates": cfg.rates or cfg.rate}), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await sim.stop()

    asyncio.run(main())
    return 0
