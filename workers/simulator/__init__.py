"""Local exchange simulator (``k2 simulate``): Binance and Kraken v2 protocols on 127.0.0.1."""

from workers.simulator.server import Simulator, SimulatorConfig, SimulatorThread, read_record

__all__ = ["Simulator", "SimulatorConfig", "SimulatorThread", "read_record"]
