"""A string that never prints its value: passwords, keys and tokens in settings."""

from __future__ import annotations

MASK = "********"


class Secret:
    """Wraps a secret string so ``repr``, ``str``, f-strings and logs show a mask.

    Settings dataclasses hold every password, key and token as a ``Secret``; their
    ``repr`` (in a traceback, a log line, a debugger) then never carries the value. Code
    that really needs the value (a connection URL, a child's environment, an HTTP login)
    calls :meth:`reveal` at that one spot.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret wraps a str, not {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """The value itself: call it only where the value leaves for its consumer."""
        return self._value

    def __bool__(self) -> bool:
        # "Is it set?" is a question callers ask (e.g. generate one unless configured).
        return self._value != ""

    def __repr__(self) -> str:
        # An empty secret shows as empty: "not set" is not itself a secret, and it is what
        # someone debugging a failed login needs to see.
        return f"Secret('{MASK if self._value else ''}')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self):  # pickling keeps the value (e.g. settings sent to a subprocess)
        return (Secret, (self._value,))
