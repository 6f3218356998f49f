"""What the venues' simulated REST histories share: the reply.

Each venue's handler (``workers/simulator/venues/<name>.py``) answers from the same tape
its WebSocket sessions are fed from, so a trade's id, price and qty text, time and side
are identical on both paths. Handlers are pure (request in, :class:`RestReply` out) so
they are unit-tested without a server.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workers.simulator.market import SimTrade


@dataclass
class RestReply:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    trades: list[SimTrade] = field(default_factory=list)  # what the body lists (for the record)
