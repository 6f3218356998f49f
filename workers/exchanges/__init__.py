"""The venues' worker modules, found through the registry (:mod:`k2.exchanges`).

One module per venue, ``workers/exchanges/<name>.py``, holding one
:class:`~workers.base.Exchange` subclass; helpers only it uses sit beside it as
``<name>_<what>.py`` and its shipped symbol metadata as ``<name>_symbols.json``. Nothing
outside this folder (and the simulator's ``venues``) names a venue: runtime code asks
:func:`exchange_class` for the class registered under a name.
"""

from __future__ import annotations

import importlib
import inspect
from functools import cache

from k2.errors import K2Error
from k2.exchanges import VENUES, Venue, venue
from workers.base import Exchange


class RegistrationError(K2Error, TypeError):
    """A venue's module does not match its registry line (names the module and the field)."""


@cache
def exchange_class(name: str) -> type[Exchange]:
    """The :class:`Exchange` subclass of the venue registered as ``name`` (KeyError if none)."""
    v = venue(name)
    module = importlib.import_module(v.module)
    found = [cls for _, cls in inspect.getmembers(module, inspect.isclass)
             if issubclass(cls, Exchange) and cls.__module__ == module.__name__ and not inspect.isabstract(cls)]
    if len(found) != 1:
        raise RegistrationError(f"{v.module} must define exactly one Exchange subclass, found "
                                f"{[c.__name__ for c in found]}")
    return _checked(found[0], v)


def _checked(cls: type[Exchange], v: Venue) -> type[Exchange]:
    """The registry line and the class say the same about the venue, or the class is refused."""
    expected = {"name": v.name, "enum_symbol": v.enum_symbol, "sequential_ids": v.contiguous_ids}
    wrong = {k: getattr(cls, k, None) for k, want in expected.items() if getattr(cls, k, None) != want}
    if wrong:
        raise RegistrationError(f"{cls.__module__}.{cls.__name__} disagrees with its line in k2/exchanges.py: "
                                + ", ".join(f"{k}={wrong[k]!r}, registry says {expected[k]!r}" for k in wrong))
    return cls


def exchange_classes() -> dict[str, type[Exchange]]:
    """Every registered venue's class, in registry order."""
    return {v.name: exchange_class(v.name) for v in VENUES}
