"""What one HTTP request produced, as plain data.

The suite, the benchmark and the reports all look at servers through :class:`Exchange`. A broken
server must never turn into an exception in the middle of a test run, so everything that can go
wrong (refused connections, timeouts, malformed JSON, a stream that stalls) is a field here and
the checks decide what it means.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from conformance.curl import curl_command

__all__ = ["Exchange", "StreamLine", "parse_json"]

NDJSON_TYPE = "application/x-ndjson"


def _reject_constant(name: str) -> Any:
    # Python accepts NaN/Infinity, JSON (and Go's encoding/json) does not; a server that emits
    # them is wrong, so they must show up as parse errors rather than as floats.
    raise ValueError(f"non-standard JSON constant {name}")


def _preview(data: bytes, n: int = 40) -> str:
    """A short, printable rendering of raw bytes for error messages."""
    head = data[:n]
    text = repr(head)
    return text + ("..." if len(data) > n else "")


def parse_json(data: bytes) -> tuple[object | None, str | None]:
    """Parse strict JSON; return ``(value, None)`` or ``(None, reason)``. Never raises.

    The reason names the first bytes so a report shows what the server actually sent.
    """
    if not data:
        return None, "empty body"
    try:
        # Decode explicitly: json.loads(bytes) would also accept UTF-16/32, which no Ollama
        # server sends and a conformance check must not let through.
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant), None
    except json.JSONDecodeError as exc:
        return None, f"not JSON ({exc.msg} at char {exc.pos}): {_preview(data)}"
    except (ValueError, RecursionError) as exc:
        # UnicodeDecodeError, over-long integers, NaN, absurd nesting.
        return None, f"not JSON ({type(exc).__name__}: {exc}): {_preview(data)}"


@dataclass
class StreamLine:
    """One line of an NDJSON body, stamped when it arrived.

    ``at`` is seconds since the request was sent, on the monotonic clock, so gaps and time to
    first token are immune to wall-clock jumps.
    """

    raw: bytes
    at: float
    value: object | None = None
    parse_error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the line parsed as JSON."""
        return self.parse_error is None


@dataclass
class Exchange:
    """One request and everything observed while reading its answer.

    ``error`` is a transport problem (refused connection, read timeout, malformed HTTP, a
    connection closed mid-body). ``bound`` names the :class:`~conformance.client.Bounds` field
    that stopped the read (``first_line_timeout``, ``max_gap``, ``total_timeout``,
    ``max_line_bytes``, ``max_total_bytes``); when it is set, ``truncated`` is true and ``body`` /
    ``lines`` hold what arrived before the stop. Times ``*_after`` are seconds since the request
    was sent (monotonic); ``sent_at`` is wall-clock for the report.

    ``body`` is the body after any ``Content-Encoding`` was undone (httpx offers gzip and
    deflate; Ollama compresses nothing), and ``lines`` never include their ``\n`` / ``\r\n``.

    Beyond the raw record: ``bound_detail`` is a sentence for the report ("max_gap: no new line
    within 30.0 s after line 12"), ``read_as_lines`` says whether the body was split into
    ``lines`` (NDJSON declared, or forced by the caller), and :attr:`problem` gives the one line
    to show when the exchange is not :attr:`complete`.
    """

    method: str
    url: str
    path: str
    request_headers: dict[str, str] = field(default_factory=dict)
    request_json: object | None = None
    request_body: bytes | None = None
    status: int | None = None
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    body: bytes = b""
    lines: list[StreamLine] = field(default_factory=list)
    sent_at: float = 0.0
    headers_after: float | None = None
    first_line_after: float | None = None
    finished_after: float | None = None
    error: str | None = None
    bound: str | None = None
    bound_detail: str | None = None
    truncated: bool = False
    read_as_lines: bool = False

    # -- classification -------------------------------------------------------------------

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-case ('' when absent)."""
        value = self.headers.get("content-type", "")
        return value.split(";", 1)[0].strip().lower()

    @property
    def is_ndjson(self) -> bool:
        """True when the server declared ``application/x-ndjson``."""
        return self.content_type == NDJSON_TYPE

    @property
    def complete(self) -> bool:
        """True when a response arrived and was read to its end."""
        return self.status is not None and self.error is None and self.bound is None

    @property
    def problem(self) -> str | None:
        """One line saying why the exchange is not complete, or None."""
        if self.error is not None:
            return self.error
        if self.bound is not None:
            return self.bound_detail or f"{self.bound} exceeded"
        return None

    # -- body -----------------------------------------------------------------------------

    def json(self) -> tuple[object | None, str | None]:
        """The whole body parsed as one JSON document: ``(value, None)`` or ``(None, reason)``."""
        if self.error is not None and not self.body:
            return None, f"no body: {self.error}"
        return parse_json(self.body)

    @property
    def values(self) -> list[object]:
        """The parsed objects of the stream, in order, skipping lines that failed to parse."""
        return [line.value for line in self.lines if line.parse_error is None]

    @property
    def final(self) -> dict[str, Any] | None:
        """The last stream object with ``"done": true``, or None."""
        for value in reversed(self.values):
            if isinstance(value, dict) and value.get("done") is True:
                return value
        return None

    @property
    def error_lines(self) -> list[dict[str, Any]]:
        """Stream objects that carry an ``error`` key (errors reported after a 200)."""
        return [v for v in self.values if isinstance(v, dict) and "error" in v]

    @property
    def parse_errors(self) -> list[StreamLine]:
        """Lines that were not valid JSON (including empty lines)."""
        return [line for line in self.lines if line.parse_error is not None]

    @property
    def gaps(self) -> list[float]:
        """Seconds between consecutive lines."""
        return [b.at - a.at for a, b in zip(self.lines, self.lines[1:], strict=False)]

    def text_preview(self, n: int = 200) -> str:
        """The first ``n`` characters of the body, undecodable bytes escaped."""
        text = self.body.decode("utf-8", errors="backslashreplace")
        return text if len(text) <= n else text[:n] + "…"

    # -- reproduction and reporting ---------------------------------------------------------

    def curl(self) -> str:
        """A shell command that sends this request (see :func:`~conformance.curl.curl_command`)."""
        return curl_command(self.method, self.url, self.request_headers, self.request_body)

    def to_dict(self, *, max_body: int = 4096, max_lines: int = 100) -> dict[str, Any]:
        """A JSON-serialisable summary for reports.

        Bodies longer than ``max_body`` bytes are cut with a marker saying how much is missing;
        for long streams the first and last lines are kept (the final object matters most) with
        a marker entry in between.
        """
        lines = [_line_dict(line, max_body) for line in self.lines]
        if len(lines) > max_lines:
            head = max_lines // 2
            tail = max_lines - head
            omitted = len(lines) - head - tail
            lines = [*lines[:head], {"omitted_lines": omitted}, *lines[len(lines) - tail :]]
        return {
            "method": self.method,
            "url": self.url,
            "path": self.path,
            "request_headers": dict(self.request_headers),
            "request_json": _jsonable(self.request_json),
            "request_body": None
            if self.request_body is None
            else _clip(self.request_body, max_body),
            "status": self.status,
            "headers": dict(self.headers.items()),
            "content_type": self.content_type,
            "body": _clip(self.body, max_body),
            "body_bytes": len(self.body),
            "lines": lines,
            "line_count": len(self.lines),
            "sent_at": self.sent_at,
            "headers_after": self.headers_after,
            "first_line_after": self.first_line_after,
            "finished_after": self.finished_after,
            "error": self.error,
            "bound": self.bound,
            "bound_detail": self.bound_detail,
            "truncated": self.truncated,
            "curl": self.curl(),
        }


def _clip(data: bytes, limit: int) -> str:
    text = data[:limit].decode("utf-8", errors="backslashreplace")
    if len(data) > limit:
        text += f"… [truncated: {len(data) - limit} more bytes]"
    return text


def _line_dict(line: StreamLine, limit: int) -> dict[str, Any]:
    return {"at": round(line.at, 6), "raw": _clip(line.raw, limit), "parse_error": line.parse_error}


def _jsonable(value: object) -> object:
    """Round-trip through json so odd objects (tuples, bytes) cannot break the report."""
    try:
        return json.loads(json.dumps(value, default=repr))
    except (TypeError, ValueError):
        return repr(value)
