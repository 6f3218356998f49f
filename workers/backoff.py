"""Exponential backoff with jitter, for reconnects and for worker restarts."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """``base_s`` doubled per consecutive failure after the first, capped at ``cap_s``,
    times a random factor in [``floor``, 1] so that clients failing together do not all
    retry together."""

    base_s: float
    cap_s: float
    floor: float
    rng: random.Random

    def delay(self, failures: int) -> float:
        return min(self.cap_s, self.base_s * 2 ** max(0, failures - 1)) * self.rng.uniform(self.floor, 1.0)
