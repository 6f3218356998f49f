"""Typed settings from environment variables, declared once with a default and a doc.

Every runtime (CLI, workers, Spark jobs, DAGs) reads its settings through a frozen
dataclass whose fields are declared with :func:`setting`. Values come from ``K2_*``
environment variables; a malformed value fails at start-up with an error that names
the variable and says what it expects. ``k2 config`` prints every declared setting with
its value and documentation, and flags ``K2_*`` variables that nothing declares
(almost always a typo), so a misspelt setting never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any, TypeVar

from k2.errors import K2Error
from k2.secret import MASK, Secret

PREFIX = "K2_"
# A secret setting may also be given as a file: K2_<NAME>_FILE=/run/secrets/... (compose
# secrets), read when K2_<NAME> itself is unset. The value is the file's text without its
# final newline.
FILE_SUFFIX = "_FILE"

# Modules that declare settings classes, by name and imported only when the full set is
# needed: every runtime's environment carries variables meant for the others (a worker
# inherits K2_<STREAM>_TRIGGER, a Spark job K2_WORKERS_*), so "unknown" must mean
# "declared by no runtime", not "not declared by me".
SETTINGS_MODULES = ("k2.settings", "k2.log_settings", "workers.settings", "spark_jobs.options",
                    "spark_jobs.maintenance")

T = TypeVar("T")

# Every settings class registered here, so unknown K2_* variables can be detected.
_REGISTRY: list[type] = []


class SettingsError(K2Error, ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


def setting(env: str, default: Any, doc: str, *, secret: bool = False) -> Any:
    """Declare a dataclass field read from ``K2_<env>``, defaulting to ``default``.

    ``default`` may be a callable taking the partially-built values dict (for defaults
    derived from other settings, such as paths under ``K2_HOME``). A ``secret`` field is
    loaded as a :class:`~k2.secret.Secret`, so the settings object never prints its value,
    and may be read from the file named by ``K2_<env>_FILE`` instead (compose secrets).
    """
    return dataclasses.field(
        default=None,
        metadata={"env": PREFIX + env, "default": default, "doc": doc, "secret": secret},
    )


def register(cls: type[T]) -> type[T]:
    """Class decorator: mark a frozen settings dataclass as known to ``k2 config``."""
    _REGISTRY.append(cls)
    return cls


def _convert(raw: str, typ: Any, env: str) -> Any:
    typ_name = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    typ_name = typ_name.replace(" ", "")
    try:
        if typ_name == "int":
            return int(raw)
        if typ_name == "float":
            return float(raw)
        if typ_name == "bool":
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected one of true/false/1/0/yes/no/on/off")
        if typ_name in ("tuple[str,...]", "Tuple[str,...]"):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw
    except ValueError as exc:
        raise SettingsError(f"{env}={raw!r} is not a valid {typ_name}: {exc}") from None


def load(cls: type[T], environ: Mapping[str, str] | None = None) -> T:
    """Build ``cls`` from ``environ`` (default ``os.environ``), validating every value."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        meta = field.metadata
        env = meta["env"]
        if env in environ and environ[env] != "":
            values[field.name] = _convert(environ[env], field.type, env)
        elif meta["secret"] and environ.get(env + FILE_SUFFIX):
            values[field.name] = _read_secret_file(env + FILE_SUFFIX, environ[env + FILE_SUFFIX])
        else:
            default = meta["default"]
            values[field.name] = default(values) if callable(default) else default
        if meta["secret"] and not isinstance(values[field.name], Secret):
            values[field.name] = Secret(values[field.name])
    obj = cls(**values)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate()
    return obj


def _read_secret_file(env: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().removesuffix("\n").removesuffix("\r")
    except OSError as exc:
        raise SettingsError(f"{env}={path!r} cannot be read: {exc.strerror}") from None


def describe(obj: Any) -> list[tuple[str, str, str]]:
    """(variable, shown value, doc) for each field; secrets are masked."""
    rows = []
    for field in dataclasses.fields(obj):
        meta = field.metadata
        value = getattr(obj, field.name)
        if isinstance(value, tuple):
            value = ",".join(value)
        if meta["secret"]:
            shown = MASK if value else ""
        else:
            shown = str(value)
        rows.append((meta["env"], shown, meta["doc"]))
    return rows


def import_settings_modules() -> None:
    """Import every module of :data:`SETTINGS_MODULES` so all settings are registered."""
    for name in SETTINGS_MODULES:
        importlib.import_module(name)


def known_variables() -> set[str]:
    fields = [f for cls in _REGISTRY for f in dataclasses.fields(cls)]
    return ({f.metadata["env"] for f in fields}
            | {f.metadata["env"] + FILE_SUFFIX for f in fields if f.metadata["secret"]})


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """``K2_*`` variables set in the environment that no settings class declares."""
    environ = os.environ if environ is None else environ
    known = known_variables()
    return sorted(k for k in environ if k.startswith(PREFIX) and k not in known)


def closest_known(name: str, known: Iterable[str]) -> str | None:
    """The declared variable ``name`` most likely misspells, or None if none is close."""
    matches = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
    return matches[0] if matches else None


def _unknown_message(name: str, closest: str | None) -> str:
    hint = f"did you mean {closest}?" if closest else "no setting has a similar name"
    return f"{name} is not a K2 setting and is ignored ({hint}); `k2 config` lists every setting"


@register
@dataclasses.dataclass(frozen=True)
class CheckSettings:
    """How entry points treat ``K2_*`` variables that no setting declares."""

    strict: bool = setting(
        "STRICT_SETTINGS",
        False,
        "Refuse to start (a configuration error: `k2` exits 2, a worker 78) when a K2_* variable is "
        "set that no setting declares, instead of warning and going on. For generated environments.",
    )


def check_unknown_variables(who: str, environ: Mapping[str, str] | None = None, *,
                            warn: Callable[[str, str | None, str], None] | None = None,
                            stream: IO[str] | None = None) -> list[str]:
    """The check every entry point runs at start: warn about each unknown ``K2_*`` variable.

    A typo in a setting otherwise falls back to the default without a word. By default each
    one is reported and the caller goes on (one environment serves every runtime, and a
    stale variable should not take a service down); with ``K2_STRICT_SETTINGS=true`` this
    raises a :class:`SettingsError` naming them all instead, which every entry point turns
    into a configuration error. ``warn(variable, closest_known_or_None, message)`` reports
    one variable in the caller's log format; without it a line ``<who>: warning: <message>``
    goes to ``stream`` (stderr). Returns the messages.
    """
    environ = os.environ if environ is None else environ
    strict = load(CheckSettings, environ).strict
    stream = sys.stderr if stream is None else stream

    def report(variable: str, closest: str | None, message: str) -> None:
        if warn is not None:
            warn(variable, closest, message)
        else:
            print(f"{who}: warning: {message}", file=stream, flush=True)

    if not unknown_variables(environ):  # all known to the settings already loaded: no imports
        return []
    try:
        # Every runtime's settings, or real settings of another runtime would look like typos
        # (imported only now: the workers' pull in every venue module, too slow for `k2 query`).
        import_settings_modules()
    except ImportError as exc:
        if strict:
            raise SettingsError(f"{who}: K2_* variables cannot be checked ({exc})") from exc
        report("", None, f"K2_* variables not checked ({exc})")
        return []
    known = known_variables()
    found = [(name, closest_known(name, known)) for name in unknown_variables(environ)]
    messages = [_unknown_message(name, closest) for name, closest in found]
    if messages and strict:
        raise SettingsError(f"unknown K2_* variables are an error with {PREFIX}STRICT_SETTINGS on: "
                            + "; ".join(messages))
    for (name, closest), message in zip(found, messages, strict=True):
        report(name, closest, message)
    return messages


def require(condition: bool, env: str, message: str) -> None:
    """Raise a :class:`SettingsError` naming ``env`` unless ``condition`` holds."""
    if not condition:
        raise SettingsError(f"{PREFIX}{env}: {message}")


Validator = Callable[[Any], None]
