"""JSON output byte-compatible with Go's ``encoding/json`` (what Ollama's gin handlers send).

Clients compare bodies byte for byte more often than one would hope, so the reference server
writes JSON the way ``json.Marshal`` does (reference facts §1.4): no spaces, no trailing newline,
``<``, ``>`` and ``&`` escaped as ``\\u003c``/``\\u003e``/``\\u0026``, U+2028/U+2029 escaped, floats
in Go's shortest form (``1`` not ``1.0``; ``1e-7`` not ``1e-07``), and float32 values (embeddings,
GGUF metadata) printed with float32 precision.

Python dicts are written in insertion order, standing in for Go structs whose fields have a fixed
order; :class:`GoMap` marks a Go ``map``, which ``json.Marshal`` writes with sorted keys.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Mapping
from decimal import Decimal
from typing import Any


class F32(float):
    """A float Go holds as ``float32``: rounded to float32, printed in float32 shortest form."""

    __slots__ = ()

    def __new__(cls, value: float = 0.0) -> F32:
        return super().__new__(cls, struct.unpack("<f", struct.pack("<f", float(value)))[0])


class GoMap(dict[str, Any]):
    """A JSON object that Go holds as a ``map``: keys are written in sorted order."""


_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _string(value: str) -> str:
    if _SURROGATE_RE.search(value):
        # Go has no lone surrogates: invalid UTF-8 is written as U+FFFD.
        value = _SURROGATE_RE.sub("\ufffd", value)
    text = json.dumps(value, ensure_ascii=False)
    return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], text)


def _float32_digits(value: float) -> str:
    """Shortest decimal that reads back as the same float32 (Go: FormatFloat(f, 'g', -1, 32))."""
    packed = struct.unpack("<f", struct.pack("<f", value))[0]
    for precision in range(1, 10):
        text = f"{packed:.{precision}g}"
        if struct.unpack("<f", struct.pack("<f", float(text)))[0] == packed:
            return text
    return repr(packed)


def format_float(value: float, *, bits: int = 64) -> str:
    """Go's encoding of a float64 (or float32 with ``bits=32``) as a JSON number."""
    if math.isnan(value) or math.isinf(value):
        # json.Marshal refuses these; callers never produce them, so this is a programming error.
        raise ValueError(f"Go's encoding/json cannot encode {value!r}")
    digits_text = _float32_digits(value) if bits == 32 else repr(float(value))
    dec = Decimal(digits_text)
    sign, digits, exponent = dec.as_tuple()
    assert isinstance(exponent, int)
    magnitude = abs(float(digits_text))
    # Strip trailing zeros from the digit string; they carry no information in shortest form.
    digit_str = "".join(str(d) for d in digits).rstrip("0") or "0"
    exp10 = exponent + len(digits) - 1  # decimal exponent of the first digit
    prefix = "-" if sign else ""
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        mantissa = digit_str[0] + ("." + digit_str[1:] if len(digit_str) > 1 else "")
        exp_text = f"{abs(exp10):02d}"
        if exp10 < 0 and exp_text.startswith("0"):
            exp_text = exp_text[1:]  # Go cleans e-07 up to e-7 (but keeps e+21)
        return f"{prefix}{mantissa}e{'-' if exp10 < 0 else '+'}{exp_text}"
    if magnitude == 0:
        return prefix + "0"
    if exp10 >= 0:
        integer = digit_str[: exp10 + 1].ljust(exp10 + 1, "0")
        fraction = digit_str[exp10 + 1 :]
    else:
        integer = "0"
        fraction = "0" * (-exp10 - 1) + digit_str
    return prefix + integer + ("." + fraction if fraction else "")


def format_float_v(value: float) -> str:
    """Go's ``%v`` of a float64 (shortest digits; exponent form below 1e-4 and from 1e+06)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign, digits, exponent = Decimal(repr(float(value))).as_tuple()
    assert isinstance(exponent, int)
    digit_str = "".join(str(d) for d in digits).rstrip("0") or "0"
    prefix = "-" if sign else ""
    if digit_str == "0":
        return prefix + "0"
    exp10 = exponent + len(digits) - 1
    if exp10 < -4 or exp10 >= 6:
        mantissa = digit_str[0] + ("." + digit_str[1:] if len(digit_str) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    return prefix + format_float(abs(value))


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, F32):
        return format_float(value, bits=32)
    if isinstance(value, float):
        return format_float(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _encode(value: Any, out: list[str]) -> None:
    # Iterative, so client-supplied values nested thousands deep (Go accepts 10000) still encode.
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Raw):
            out.append(item.text)
        elif isinstance(item, Mapping):
            pairs = sorted(item.items()) if isinstance(item, GoMap) else list(item.items())
            parts: list[Any] = [_Raw("{")]
            for index, (key, child) in enumerate(pairs):
                parts.append(_Raw(("," if index else "") + _string(str(key)) + ":"))
                parts.append(child)
            parts.append(_Raw("}"))
            stack.extend(reversed(parts))
        elif isinstance(item, list | tuple):
            parts = [_Raw("[")]
            for index, child in enumerate(item):
                if index:
                    parts.append(_Raw(","))
                parts.append(child)
            parts.append(_Raw("]"))
            stack.extend(reversed(parts))
        else:
            out.append(_scalar(item))


class _Raw:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def dumps(value: Any) -> bytes:
    """Encode ``value`` exactly as ``json.Marshal`` would (UTF-8, no trailing newline)."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")


def go_quote(text: str) -> str:
    """Go's ``%q`` / ``strconv.Quote``: used wherever Ollama formats a value with ``%q``."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_SHORT_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}
