"""Time as Ollama writes and reads it: RFC 3339 timestamps and Go duration strings.

Timestamps (reference facts §1.4): ``created_at`` is UTC with up to nine fraction digits, trailing
zeros trimmed, and ``Z``; ``modified_at`` and ``expires_at`` are local time with a numeric offset
(Go prints ``Z`` whenever the offset is zero). Durations (§19.2): ``keep_alive`` strings go through
Go's ``time.ParseDuration``, whose error texts clients see verbatim in 400 responses.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

MAX_DURATION_NS = (1 << 63) - 1

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}


class DurationError(ValueError):
    """A string ``time.ParseDuration`` rejects; ``str()`` is Go's exact message."""


def _fraction(ns: int) -> str:
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return "." + frac if frac else ""


def _offset(delta: timedelta | None) -> str:
    seconds = int(delta.total_seconds()) if delta is not None else 0
    if seconds == 0:
        return "Z"
    sign = "+" if seconds > 0 else "-"
    seconds = abs(seconds)
    return f"{sign}{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def rfc3339_utc(ns: int | None = None) -> str:
    """``time.Now().UTC()`` marshalled: e.g. ``2025-10-26T17:15:24.097767Z``."""
    ns = time.time_ns() if ns is None else ns
    stamp = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S") + _fraction(ns) + "Z"


def rfc3339_local(ns: int | None = None) -> str:
    """A local time marshalled the way Go does: ``2024-06-04T14:38:31.83753-07:00``."""
    ns = time.time_ns() if ns is None else ns
    seconds = ns // 1_000_000_000
    try:
        stamp = datetime.fromtimestamp(seconds).astimezone()
    except (OverflowError, OSError, ValueError):
        # Beyond what the platform's localtime handles (keep_alive < 0 gives ~292 years): use UTC.
        stamp = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S") + _fraction(ns) + _offset(stamp.utcoffset())


def _quote(text: str) -> str:
    # The time package's own quoting: printable ASCII as is, everything else escaped.
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch < "\x7f":
            out.append(ch)
        else:
            for byte in ch.encode("utf-8"):
                out.append(f"\\x{byte:02x}")
    out.append('"')
    return "".join(out)


def parse_go_duration(text: str) -> int:
    """Nanoseconds of a Go duration string such as ``"1h30m"``, ``"-1s"`` or ``"0"``.

    Raises :class:`DurationError` with Go's message, e.g. ``time: missing unit in duration "10"``.
    """
    original = text
    invalid = DurationError(f"time: invalid duration {_quote(original)}")
    negative = False
    if text and text[0] in "+-":
        negative = text[0] == "-"
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise invalid
    total = 0
    while text:
        if not (text[0] == "." or text[0].isdigit()):
            raise invalid
        start = len(text)
        digits_end = 0
        while digits_end < len(text) and "0" <= text[digits_end] <= "9":
            digits_end += 1
        whole = int(text[:digits_end]) if digits_end else 0
        text = text[digits_end:]
        had_whole = start != len(text)
        fraction_digits = ""
        had_fraction = False
        if text.startswith("."):
            text = text[1:]
            end = 0
            while end < len(text) and "0" <= text[end] <= "9":
                end += 1
            fraction_digits = text[:end]
            had_fraction = end > 0
            text = text[end:]
        if not had_whole and not had_fraction:
            raise invalid
        unit_end = 0
        while unit_end < len(text) and not (text[unit_end] == "." or "0" <= text[unit_end] <= "9"):
            unit_end += 1
        if unit_end == 0:
            raise DurationError(f"time: missing unit in duration {_quote(original)}")
        unit = text[:unit_end]
        text = text[unit_end:]
        if unit not in _UNITS_NS:
            raise DurationError(f"time: unknown unit {_quote(unit)} in duration {_quote(original)}")
        scale = _UNITS_NS[unit]
        value = whole * scale
        if fraction_digits:
            value += int(int(fraction_digits) * (scale / 10 ** len(fraction_digits)))
        total += value
        if total > MAX_DURATION_NS + (1 if negative else 0):
            raise invalid
    return -total if negative else total
