"""Local exchange simulator (``k2 simulate``): every registered venue's protocol on 127.0.0.1."""

from workers.simulator.server import Simulator, SimulatorConfig, SimulatorThread, read_record

__all__ = ["Simulator", "SimulatorConfig", "SimulatorThread", "read_record"]
