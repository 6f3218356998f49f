"""Total JSON decoding of untrusted frames: a value, or a :class:`NormalizeError` with a reason.

msgspec signals bad input through several exception families, not one: ``DecodeError``
for syntax, ``ValidationError`` (a subclass) for a shape or a number out of range,
``UnicodeDecodeError`` for bytes that are not UTF-8 inside a string, ``RecursionError``
for deep nesting, and ``decimal`` errors raised by a ``float_hook=Decimal`` for
exponents no Decimal can hold. Parsers call :func:`decode` so that every one of those
becomes a dead letter with a specific kind instead of an exception that stops the worker.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from typing import TypeVar

import msgspec

from workers.normalize import NormalizeError, clip

T = TypeVar("T")

MALFORMED_JSON = "malformed_json"
NOT_UTF8 = "not_utf8"
TOO_DEEP = "too_deeply_nested"
NUMBER_OUT_OF_RANGE = "number_out_of_range"


# What a typed msgspec decoder may raise on hostile input. The fast paths catch these
# and hand the frame to their slow path, whose :func:`decode` names the reason.
DECODE_ERRORS = (msgspec.DecodeError, ValueError, RecursionError, ArithmeticError)


def as_bytes(frame: str | bytes) -> bytes:
    """The frame as bytes; a ``str`` holding lone surrogates cannot be UTF-8 and is rejected."""
    if isinstance(frame, bytes):
        return frame
    try:
        return frame.encode()
    except UnicodeEncodeError as exc:
        raise NormalizeError(NOT_UTF8, f"frame text is not encodable as UTF-8: {exc.reason}") from None


def decode(decoder: Callable[[bytes], T], frame: str | bytes) -> T:
    """``decoder(frame)`` for a generic decoder, every failure a NormalizeError naming why.

    A generic decoder accepts any JSON shape, so a ``ValidationError`` from it means a
    number it cannot represent (an integer past 4300 digits, a float past 1e308).
    """
    frame = as_bytes(frame)
    try:
        return decoder(frame)
    except msgspec.ValidationError as exc:
        raise NormalizeError(NUMBER_OUT_OF_RANGE, f"frame holds a number JSON decoding cannot represent: {exc}") from None
    except msgspec.DecodeError as exc:
        raise NormalizeError(MALFORMED_JSON, f"frame is not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise NormalizeError(NOT_UTF8, f"frame is not UTF-8: {exc.reason} at byte {exc.start}") from None
    except RecursionError:
        raise NormalizeError(TOO_DEEP, "frame nests JSON deeper than the decoder allows") from None
    except (decimal.DecimalException, OverflowError) as exc:
        raise NormalizeError(NUMBER_OUT_OF_RANGE, f"frame holds a number no decimal can represent: {exc!r}") from None


_JSON_NOUNS = {list: "array", dict: "object"}


def decode_rest_body(decoder: Callable[[bytes], object], body: bytes, shape: type[T], what: str) -> T:
    """A REST answer's JSON document, which must be a ``shape`` (list or dict); anything
    else, unreadable JSON included, is ``NormalizeError("bad_rest_response")``."""
    try:
        doc = decode(decoder, body)
    except NormalizeError as exc:
        raise NormalizeError("bad_rest_response", f"{exc.kind}: {exc}") from None
    if not isinstance(doc, shape):
        raise NormalizeError("bad_rest_response", f"{what} is not a JSON {_JSON_NOUNS[shape]}: {clip(doc)}")
    return doc
