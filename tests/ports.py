"""A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick): for a test's own
server, or for a client that must find nothing there."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again on return
