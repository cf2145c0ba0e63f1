"""Reading the first JSON value of a request body with the errors of Go's ``json.Decoder``.

Ollama binds every body with gin's ``ShouldBindJSON``, i.e. ``json.NewDecoder(body).Decode``
(reference facts §1.3): only the first value counts, trailing bytes are ignored, an empty body is
``io.EOF`` and a body cut short is ``unexpected EOF``; a syntax error reads ``invalid character 'h'
looking for beginning of value``. Python's ``json`` module parses well-formed bodies quickly; when
it refuses one (or when Go and Python could disagree), a small byte-level scanner that mirrors Go's
state machine finds the error Go would report, and builds the value without recursion.
"""

from __future__ import annotations

import json
from typing import Any

#: Go's ``maxNestingDepth``.
MAX_DEPTH = 10000

_WHITESPACE = b" \t\r\n"


class EmptyBody(Exception):
    """The body held no JSON value at all (Go: ``io.EOF``)."""


class JSONSyntaxError(ValueError):
    """A body Go's decoder rejects; ``str()`` is the exact Go message."""


class GoFloat(float):
    """A JSON number with a fraction or exponent, remembering its literal text.

    Go reports a non-integer number bound to an ``int`` field as ``number 1.5`` using the text
    as written, so the literal must survive parsing.
    """

    raw: str

    def __new__(cls, text: str) -> GoFloat:
        obj = super().__new__(cls, text)
        obj.raw = text
        return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(name)  # NaN / Infinity are not JSON to Go


_DECODER = json.JSONDecoder(parse_float=GoFloat, parse_constant=_reject_constant)


def quote_char(byte: int) -> str:
    """Go's ``quoteChar``: how a byte is shown inside ``invalid character ...`` messages."""
    if byte == ord("'"):
        return "'\\''"
    if byte == ord('"'):
        return "'\"'"
    ch = chr(byte)
    escapes = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    escapes["\v"] = "\\v"
    escapes["\\"] = "\\\\"
    if ch in escapes:
        return "'" + escapes[ch] + "'"
    if byte < 0x20 or byte == 0x7F:
        return f"'\\x{byte:02x}'"
    if ch.isprintable():
        return "'" + ch + "'"
    return f"'\\u{byte:04x}'"


def _error(byte: int, context: str) -> JSONSyntaxError:
    return JSONSyntaxError(f"invalid character {quote_char(byte)} {context}")


def _unexpected_eof() -> JSONSyntaxError:
    return JSONSyntaxError("unexpected EOF")


def decode_first(data: bytes) -> Any:
    """The first JSON value in ``data``, as Go's ``Decoder.Decode`` would read it.

    Raises :class:`EmptyBody` for an empty or all-whitespace body and :class:`JSONSyntaxError`
    with Go's message otherwise.
    """
    start = 0
    while start < len(data) and data[start] in _WHITESPACE:
        start += 1
    if start == len(data):
        raise EmptyBody
    first = data[start]
    # A bare top-level number is where Python and Go disagree on where the value ends ("1." is
    # 1 to Python, unexpected EOF to Go), so such bodies always take the exact path.
    if first != ord("-") and not (ord("0") <= first <= ord("9")):
        try:
            text = data.decode("utf-8", errors="replace")
            value, _ = _DECODER.raw_decode(text, _char_index(data, start))
            return value
        except (ValueError, RecursionError):
            pass
    return _Scanner(data, start).parse()


def _char_index(data: bytes, byte_index: int) -> int:
    # Leading whitespace is ASCII, so byte and character offsets agree there.
    return byte_index


class _Scanner:
    """Go's JSON grammar with Go's error texts, building the value iteratively."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def _skip(self) -> None:
        data, pos = self.data, self.pos
        while pos < len(data) and data[pos] in _WHITESPACE:
            pos += 1
        self.pos = pos

    def _peek(self) -> int:
        if self.pos >= len(self.data):
            raise _unexpected_eof()
        return self.data[self.pos]

    def parse(self) -> Any:
        # Stack of open containers: (container, pending key or None).
        stack: list[tuple[Any, str | None]] = []
        value: Any = None
        while True:
            self._skip()
            c = self._peek()
            if c == ord("{") or c == ord("["):
                if len(stack) + 1 > MAX_DEPTH:
                    raise _error(c, "exceeded max depth")
                self.pos += 1
                self._skip()
                if c == ord("{"):
                    d = self._peek()
                    if d == ord("}"):
                        self.pos += 1
                        value = {}
                    elif d == ord('"'):
                        key = self._string()
                        self._colon()
                        stack.append(({}, key))
                        continue
                    else:
                        raise _error(d, "looking for beginning of object key string")
                else:
                    d = self._peek()
                    if d == ord("]"):
                        self.pos += 1
                        value = []
                    else:
                        stack.append(([], None))
                        continue
            else:
                value = self._scalar(top_level=not stack)
                if not stack:
                    return value
            # A value is complete: attach it and close as many containers as end here.
            while True:
                if not stack:
                    return value
                container, pending_key = stack[-1]
                if isinstance(container, dict):
                    assert pending_key is not None
                    container[pending_key] = value
                    self._skip()
                    d = self._peek()
                    if d == ord(","):
                        self.pos += 1
                        self._skip()
                        e = self._peek()
                        if e != ord('"'):
                            raise _error(e, "looking for beginning of object key string")
                        next_key = self._string()
                        self._colon()
                        stack[-1] = (container, next_key)
                        break
                    if d == ord("}"):
                        self.pos += 1
                        stack.pop()
                        value = container
                        continue
                    raise _error(d, "after object key:value pair")
                container.append(value)
                self._skip()
                d = self._peek()
                if d == ord(","):
                    self.pos += 1
                    break
                if d == ord("]"):
                    self.pos += 1
                    stack.pop()
                    value = container
                    continue
                raise _error(d, "after array element")

    def _colon(self) -> None:
        self._skip()
        c = self._peek()
        if c != ord(":"):
            raise _error(c, "after object key")
        self.pos += 1

    def _string(self) -> str:
        data = self.data
        start = self.pos
        pos = start + 1
        while True:
            if pos >= len(data):
                raise _unexpected_eof()
            c = data[pos]
            if c == ord('"'):
                break
            if c == ord("\\"):
                pos += 1
                if pos >= len(data):
                    raise _unexpected_eof()
                e = data[pos]
                if e == ord("u"):
                    for _ in range(4):
                        pos += 1
                        if pos >= len(data):
                            raise _unexpected_eof()
                        h = data[pos]
                        if chr(h) not in "0123456789abcdefABCDEF":
                            raise _error(h, "in \\u hexadecimal character escape")
                elif e not in b'"\\/bfnrt':
                    raise _error(e, "in string escape code")
            elif c < 0x20:
                raise _error(c, "in string literal")
            pos += 1
        self.pos = pos + 1
        raw = data[start : pos + 1].decode("utf-8", errors="replace")
        result: str = json.loads(raw)
        return result

    def _scalar(self, *, top_level: bool) -> Any:
        c = self._peek()
        if c == ord('"'):
            return self._string()
        if c == ord("-") or ord("0") <= c <= ord("9"):
            return self._number(top_level=top_level)
        for word, value in ((b"true", True), (b"false", False), (b"null", None)):
            if c == word[0]:
                self.pos += 1
                for expected in word[1:]:
                    got = self._peek()
                    if got != expected:
                        name = word.decode()
                        raise _error(got, f"in literal {name} (expecting '{chr(expected)}')")
                    self.pos += 1
                return value
        raise _error(c, "looking for beginning of value")

    def _number(self, *, top_level: bool) -> Any:
        data = self.data
        start = self.pos
        pos = start

        def at(i: int) -> int | None:
            return data[i] if i < len(data) else None

        def need_digit(i: int, context: str) -> None:
            b = at(i)
            if b is None:
                raise _unexpected_eof()
            if not ord("0") <= b <= ord("9"):
                raise _error(b, context)

        if at(pos) == ord("-"):
            pos += 1
            need_digit(pos, "in numeric literal")
        if at(pos) == ord("0"):
            pos += 1
        else:
            while (b := at(pos)) is not None and ord("0") <= b <= ord("9"):
                pos += 1
        is_float = False
        if at(pos) == ord("."):
            is_float = True
            pos += 1
            need_digit(pos, "after decimal point in numeric literal")
            while (b := at(pos)) is not None and ord("0") <= b <= ord("9"):
                pos += 1
        if at(pos) in (ord("e"), ord("E")):
            is_float = True
            pos += 1
            if at(pos) in (ord("+"), ord("-")):
                pos += 1
            need_digit(pos, "in exponent of numeric literal")
            while (b := at(pos)) is not None and ord("0") <= b <= ord("9"):
                pos += 1
        self.pos = pos
        text = data[start:pos].decode("ascii")
        del top_level  # a complete number ends the same way at top level and inside containers
        return GoFloat(text) if is_float else int(text)
