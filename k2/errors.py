"""The base of K2's own exceptions."""

from __future__ import annotations


class K2Error(Exception):
    """The base of every K2 domain error, so callers can catch K2's failures without
    catching bugs (a ``TypeError`` or ``KeyError`` from a mistake in the code is not one).

    Each subclass keeps the built-in base its callers already catch (``ValueError``,
    ``RuntimeError``...), so ``except K2Error`` is an addition, never a change of meaning.
    """
