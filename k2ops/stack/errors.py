"""Errors of the local stack: each names the service and says what to do."""

from k2.errors import K2Error


class StackError(K2Error, RuntimeError):
    """A service could not be set up, started or reached."""

    def __init__(self, service: str, problem: str, hint: str = "") -> None:
        self.service = service
        message = f"{service}: {problem}"
        if hint:
            message += f"\n  what to do: {hint}"
        super().__init__(message)
