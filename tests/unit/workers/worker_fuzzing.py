"""What the worker fuzz tests share: recorded frames, mutations, the budget and the runner.

The unit tier runs a fixed, seeded budget (each test has its own ``@seed``, no example
database), so a run is repeatable and a failure reproduces. ``make fuzz`` sets
``FUZZ_SCALE`` (budget multiplier) and optionally ``FUZZ_SEED`` (otherwise random and
printed) for a longer campaign over new ground; Hypothesis prints any failure minimized.
"""

from __future__ import annotations

import json
import os
import random
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from workers.base import Exchange
from workers.exchanges.binance import Binance
from workers.exchanges.bybit import Bybit
from workers.exchanges.coinbase import Coinbase
from workers.exchanges.kraken import Kraken
from workers.exchanges.okx import Okx
from workers.symbols import SymbolTable

FRAMES_DIR = Path(__file__).with_name("frames")
SCALE = int(os.environ.get("FUZZ_SCALE", "1"))
CAMPAIGN = SCALE > 1
CAMPAIGN_SEED = int(os.environ.get("FUZZ_SEED") or random.SystemRandom().randrange(2**32))


TABLE = SymbolTable.shipped()
# Every kind a parser may reject a frame or a trade with (the dead letter's error_kind).
REJECT_KINDS = {
    "malformed_json", "not_utf8", "too_deeply_nested", "number_out_of_range", "unexpected_frame",
    "bad_trade", "bad_decimal", "decimal_out_of_range", "bad_timestamp", "unknown_symbol",
}


def binance() -> Exchange:
    return Binance(["BTCUSDT", "ETHUSDT"], TABLE)


def kraken() -> Exchange:
    return Kraken(["BTC/USD", "ETH/USD"], TABLE)


def coinbase() -> Exchange:
    return Coinbase(["BTC-USD", "ETH-USD"], TABLE)


def bybit() -> Exchange:
    return Bybit(["BTCUSDT", "ETHUSDT"], TABLE)


def okx() -> Exchange:
    return Okx(["BTC-USDT", "ETH-USDT"], TABLE)


EXCHANGES = {"binance": binance, "kraken": kraken, "coinbase": coinbase, "bybit": bybit, "okx": okx}


def recorded_frames(exchange: str) -> list[bytes]:
    """One frame per line, as the exchange sends them (trades and every control kind):
    ``frames/<exchange>.jsonl``, or every ``frames/<exchange>/*.jsonl`` in name order."""
    single = FRAMES_DIR / f"{exchange}.jsonl"
    files = [single] if single.exists() else sorted((FRAMES_DIR / exchange).glob("*.jsonl"))
    return [line.encode() for path in files for line in path.read_text().splitlines() if line]


# running -----------------------------------------------------------------------------


@dataclass
class Tally:
    """Cases run per exchange and how long they took, for the summary ``make fuzz`` prints."""

    cases: int = 0
    seconds: float = 0.0

    def add(self, cases: int, seconds: float) -> None:
        self.cases += cases
        self.seconds += seconds


TALLIES: dict[str, Tally] = {}


def fuzz(name: str, group: str, strategy: st.SearchStrategy, check: Callable[[Any], None], examples: int) -> int:
    """Run ``check`` on ``examples`` (times FUZZ_SCALE) drawn values; returns the cases run."""
    calls = 0

    def body(value: Any) -> None:
        nonlocal calls
        calls += 1
        check(value)

    test_seed = zlib.crc32(name.encode()) ^ (CAMPAIGN_SEED if CAMPAIGN else 0)
    test = seed(test_seed)(
        settings(
            max_examples=examples * SCALE,
            database=None,
            deadline=None,
            derandomize=False,  # the explicit @seed above makes it deterministic
            phases=(Phase.explicit, Phase.generate, Phase.shrink),
            suppress_health_check=list(HealthCheck),
            print_blob=True,
        )(given(strategy)(body))
    )
    started = time.perf_counter()
    test()
    return record(name, group, calls, time.perf_counter() - started)


def sweep(name: str, group: str, cases: Iterable[tuple[str, Any]], check: Callable[[Any], None]) -> int:
    """Run ``check`` on every case (exhaustive, no sampling). Each case is one small change
    to a recorded frame, so a failure is already minimal: it is reported with its label."""
    started, count = time.perf_counter(), 0
    for label, case in cases:
        count += 1
        try:
            check(case)
        except Exception as exc:
            raise AssertionError(f"{group} {name}: {label}: {type(exc).__name__}: {exc}\ninput: {case!r:.2000}") from exc
    return record(name, group, count, time.perf_counter() - started)


def record(name: str, group: str, cases: int, seconds: float) -> int:
    TALLIES.setdefault(group, Tally()).add(cases, seconds)
    print(f"fuzz {group} {name}: {cases} cases in {seconds:.2f}s ({cases / max(seconds, 1e-9):,.0f}/s)"
          + (f" seed={CAMPAIGN_SEED}" if CAMPAIGN else ""))
    return cases


# mutations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """JSON text emitted verbatim: numbers no Python value writes (1e999999, 4301 digits)."""

    text: str


def dumps(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


DEEP_ARRAY = Raw("[" * 50_000 + "]" * 50_000)
DEEP_OBJECT = Raw('{"a":' * 5_000 + "1" + "}" * 5_000)
SPECIAL_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**40,
    Raw("9" * 4300), Raw("9" * 4301), Raw("1e308"), Raw("1e309"), Raw("-1e309"), Raw("5e-324"), Raw("1e-400"),
    Raw("1e999999999999999999999"), Raw("1E-999999999999999999999"), Raw("-0"), Raw("-0.0"), Raw("0.000000001"),
    Raw("9999999999.99999999"), Raw("10000000000"), Raw("1.000000000000000000000001"), Raw("0e0"),
    "", " ", "0", "-0", "NaN", "sNaN", "Infinity", "-Infinity", "1e99999999999999999999", "1e-99999999999999999999",
    "0x10", "1_000", " 1", "\uff19", "\u0000", "\ud83d\ude00", "x" * 5000, "9" * 5000,
    "trade", "serverShutdown", "heartbeat", "status", "subscribe", "pong", "snapshot", "update",
    "BTCUSDT", "btcusdt@trade", "!serverShutdown", "BTC/USD", "XBT/USD", "ETH/USD", "buy", "sell", "b", "online",
    "2026-01-01T00:00:00Z", "2026-01-01T00:00:00.123456789Z", "9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+23:59", "1969-12-31T23:59:59.999999Z", "2026-13-01T00:00:00Z",
    "2026-01-01T00+05:00.123Z", "2026-01-01", "T", [], {}, [None], [[]], [{}], {"": None}, DEEP_ARRAY, DEEP_OBJECT,
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
# Arbitrary JSON (json_values) costs Hypothesis ~5x a flat value per draw; random_json
# covers it, and the exhaustive sweep replaces every node with every special value.
values = st.one_of(st.sampled_from(SPECIAL_VALUES), st.integers(), st.text(max_size=20))


def paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every node's path in ``doc`` (the root included), keys and indexes."""
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += paths(value, (*prefix, index))
    return found


def swapped(value: Any) -> Any:
    """The same content in another JSON type: number <-> string, bool -> number, and so on."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return Raw(value) if value and value.lstrip("-").replace(".", "", 1).isdigit() else [value]
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    if isinstance(value, dict):
        return list(value.values())
    return "null"


def mutate(doc: Any, op: str, where: int, value: Any) -> Any:
    """``doc`` with one node changed by ``op``; ``where`` picks the node (modulo the count)."""
    targets = paths(doc)
    path = targets[where % len(targets)]
    if op == "replace":
        return _set(doc, path, value)
    if op == "swap":
        return _set(doc, path, swapped(_get(doc, path)))
    if op == "wrap":
        return _set(doc, path, [_get(doc, path)])
    if op == "delete" and path:
        parent = _get(doc, path[:-1])
        if isinstance(parent, dict):
            return _set(doc, path[:-1], {k: v for k, v in parent.items() if k != path[-1]})
        return _set(doc, path[:-1], [v for i, v in enumerate(parent) if i != path[-1]])
    if op == "add":
        node = _get(doc, path)
        if isinstance(node, dict):
            return _set(doc, path, {**node, "zz_unexpected": value})
        if isinstance(node, list):
            return _set(doc, path, [*node, value])
    if op == "duplicate":
        node = _get(doc, path)
        if isinstance(node, list):
            return _set(doc, path, node * 2)
    return _set(doc, path, value)


OPS = ("replace", "swap", "wrap", "delete", "add", "duplicate")


def _get(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _set(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: _set(doc[head], rest, value)}
    copy = list(doc)
    copy[head] = _set(doc[head], rest, value)
    return copy


def structure_mutations(frames: list[bytes]) -> st.SearchStrategy[bytes]:
    """Recorded frames with 1-3 structural mutations each, as JSON text bytes.

    Each mutation is 4 bytes of one ``binary`` recipe (operation, node, value): one draw
    instead of a dozen keeps Hypothesis near 1 ms per example, and shrinking the recipe
    towards zeros means fewer mutations, at the root, with the first special value. A
    value byte past the special values takes the example's one random value instead.
    """
    docs = [json.loads(frame) for frame in frames]

    def apply(case: tuple[Any, bytes, Any]) -> bytes:
        doc, recipe, random_value = case
        for at in range(0, len(recipe) - 3, 4):
            op = OPS[recipe[at] % len(OPS)]
            where = int.from_bytes(recipe[at + 1 : at + 3], "big")
            pick = recipe[at + 3]
            doc = mutate(doc, op, where, SPECIAL_VALUES[pick] if pick < len(SPECIAL_VALUES) else random_value)
        return dumps(doc).encode()

    return st.tuples(st.sampled_from(docs), st.binary(min_size=4, max_size=12), values).map(apply)


INVALID_UTF8 = [
    b"\xff", b"\xfe", b"\x80", b"\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xed\xbf\xbf",
    b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82", b"\xf0\x9f\x98", b"\xc3",
]


def invalid_utf8(frames: list[bytes]) -> st.SearchStrategy[bytes]:
    """Recorded frames with 1-3 invalid UTF-8 sequences written over or between their bytes;
    each edit is 3 bytes of one ``binary`` recipe (position, sequence, overwrite bit)."""

    def apply(case: tuple[bytes, bytes]) -> bytes:
        frame, recipe = case
        for at in range(0, len(recipe) - 2, 3):
            where = int.from_bytes(recipe[at : at + 2], "big") % (len(frame) + 1)
            bad = INVALID_UTF8[(recipe[at + 2] >> 1) % len(INVALID_UTF8)]
            frame = frame[:where] + bad + frame[where + (len(bad) if recipe[at + 2] & 1 else 0) :]
        return frame

    return st.tuples(st.sampled_from(frames), st.binary(min_size=3, max_size=9)).map(apply)


def byte_flips(frames: list[bytes]) -> st.SearchStrategy[bytes]:
    """Recorded frames with 1-4 bytes XORed: each flip is 3 drawn bytes (position, mask),
    one ``binary`` draw in all because per-flip draws cost Hypothesis several times more."""

    def apply(case: tuple[bytes, bytes]) -> bytes:
        frame, recipe = case
        data = bytearray(frame)
        for at in range(0, len(recipe) - 2, 3):
            data[int.from_bytes(recipe[at : at + 2], "big") % len(data)] ^= recipe[at + 2] or 0x20
        return bytes(data)

    return st.tuples(st.sampled_from(frames), st.binary(min_size=3, max_size=12)).map(apply)


# exhaustive sweeps: every position, every node --------------------------------------

INTERESTING_BYTES = b'\x00 "\\{}[],:-9e.\x7f\x80\xff'


def truncations(frames: list[bytes]) -> Iterator[tuple[str, bytes]]:
    """Every proper prefix of every recorded frame (the empty one included)."""
    for i, frame in enumerate(frames):
        for end in range(len(frame)):
            yield f"frame {i} cut to {end} bytes", frame[:end]


def single_bit_flips(frames: list[bytes]) -> Iterator[tuple[str, bytes]]:
    """Every recorded frame with each single bit flipped, one at a time."""
    for i, frame in enumerate(frames):
        for at in range(len(frame)):
            for bit in range(8):
                data = bytearray(frame)
                data[at] ^= 1 << bit
                yield f"frame {i} bit {bit} of byte {at} flipped", bytes(data)


def byte_edits(frames: list[bytes]) -> Iterator[tuple[str, bytes]]:
    """Every recorded frame with each byte deleted, and each JSON-significant or
    non-UTF-8 byte written over and inserted at every position."""
    for i, frame in enumerate(frames):
        for at in range(len(frame)):
            yield f"frame {i} byte {at} deleted", frame[:at] + frame[at + 1 :]
            for byte in INTERESTING_BYTES:
                b = bytes((byte,))
                yield f"frame {i} byte {at} set to {b!r}", frame[:at] + b + frame[at + 1 :]
                yield f"frame {i} {b!r} inserted at {at}", frame[:at] + b + frame[at:]


def single_mutations(frames: list[bytes]) -> Iterator[tuple[str, bytes]]:
    """Every node of every recorded frame replaced by every special value, type-swapped,
    wrapped, deleted, and every object given an unexpected key (one change per case)."""
    for i, frame in enumerate(frames):
        doc = json.loads(frame)
        for where, path in enumerate(paths(doc)):
            for op in ("swap", "wrap", "delete"):
                yield f"frame {i} {op} at {path}", dumps(mutate(doc, op, where, None)).encode()
            for index, value in enumerate(SPECIAL_VALUES):
                yield f"frame {i} {path} = special value {index}", dumps(mutate(doc, "replace", where, value)).encode()
            if isinstance(_get(doc, path), dict):
                yield f"frame {i} unexpected key at {path}", dumps(mutate(doc, "add", where, None)).encode()


def lone_surrogates(frames: list[bytes]) -> Iterator[tuple[str, str]]:
    """Recorded frames as ``str`` with a lone surrogate (unencodable as UTF-8) at each 7th position."""
    for i, frame in enumerate(frames):
        text = frame.decode()
        for at in range(0, len(text) + 1, 7):
            yield f"frame {i} surrogate at {at}", text[:at] + "\ud800" + text[at:]
