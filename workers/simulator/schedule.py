"""The market's rate over time: a steady rate with periodic bursts.

``Bursts(factor=10, length_s=60, every_s=600, first_s=300)`` multiplies every venue's
rate by 10 for one minute, five minutes into the run and then every ten minutes: the
full-market benchmark's "10x bursts lasting one minute". The simulator records each
change (``ev: rate``) with its time, so a benchmark tells a burst's trades from the
steady state's by their exchange time alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from k2.errors import K2Error


class ScheduleError(K2Error, ValueError):
    """A burst schedule that cannot be read."""


@dataclass(frozen=True)
class Bursts:
    factor: float  # the rate is multiplied by this during a burst
    length_s: float  # how long each burst lasts
    every_s: float  # from one burst's start to the next's
    first_s: float = 0.0  # seconds after the start of the market that the first burst starts

    def __post_init__(self) -> None:
        if self.factor <= 0 or self.length_s <= 0 or self.every_s < self.length_s or self.first_s < 0:
            raise ScheduleError(f"bursts need factor > 0, length > 0, every >= length, first >= 0: {self}")

    def multiplier(self, elapsed_s: float) -> float:
        """The rate multiplier ``elapsed_s`` seconds after the market started."""
        if elapsed_s < self.first_s:
            return 1.0
        return self.factor if (elapsed_s - self.first_s) % self.every_s < self.length_s else 1.0

    def windows(self, seconds: float) -> list[tuple[float, float]]:
        """The bursts' (start, end) in seconds after the start, within ``seconds``."""
        out, start = [], self.first_s
        while start < seconds:
            out.append((start, min(start + self.length_s, seconds)))
            start += self.every_s
        return out

    @classmethod
    def parse(cls, text: str) -> Bursts:
        """``FACTOR:LENGTH_S:EVERY_S[:FIRST_S]``, e.g. ``10:60:600:300``."""
        parts = text.split(":")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ScheduleError(f"bursts {text!r}: write FACTOR:LENGTH_S:EVERY_S[:FIRST_S], e.g. 10:60:600:300") from None
        if len(values) not in (3, 4):
            raise ScheduleError(f"bursts {text!r}: write FACTOR:LENGTH_S:EVERY_S[:FIRST_S], e.g. 10:60:600:300")
        return cls(*values)
