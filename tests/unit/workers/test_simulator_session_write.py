"""A client that goes away mid-write ends its session, never the simulated market."""

from __future__ import annotations

from types import SimpleNamespace

from workers.simulator.server import Session, SimulatorConfig


class HalfClosedTransport:
    """What asyncio's transport does after write_eof(): not closing yet, but write() raises."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.writes = 0

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.writes += 1
        raise self.error

    def get_write_buffer_size(self) -> int:
        return 0


def _session(transport) -> Session:
    sim = SimpleNamespace(cfg=SimulatorConfig(), recorder=None)
    return Session(sim, SimpleNamespace(transport=transport), 1)


def test_a_write_after_write_eof_closes_the_session_instead_of_raising():
    for error in (RuntimeError("Cannot call write() after write_eof()"), ConnectionResetError()):
        transport = HalfClosedTransport(error)
        session = _session(transport)
        assert session.write('{"e":"trade"}') is False
        assert session.closed
        assert session.write('{"e":"trade"}') is False  # not tried again
        assert transport.writes == 1
