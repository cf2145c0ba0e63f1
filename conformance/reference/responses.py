"""How Ollama's handlers put bytes on the wire: JSON, errors, NDJSON streams (§1.4, §18).

* ``c.JSON`` → ``application/json; charset=utf-8``, no trailing newline.
* Errors → ``{"error": "..."}`` with the handler's status.
* Streams → ``application/x-ndjson``, one ``json.Marshal`` value plus ``\\n`` per line.
  From 0.12.6 an error that happens before anything was written becomes a real HTTP status
  with an ``application/json`` body; an error after output is one last ``{"error": ...}`` line and
  the stream stops. Before 0.12.6 the error is just another line (with its ``status`` when the
  producer set one) and the stream carries on (§18.3).
* ``stream: false`` on create/pull/push → exactly ``application/json`` (no charset), the last
  progress message, or the error with its status or 500 (§18.4; 0.6 returns on ``success``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response, StreamingResponse

from .config import ReferenceConfig
from .gojson import GoMap, dumps

log = logging.getLogger("conformance.reference")

JSON_UTF8 = "application/json; charset=utf-8"
JSON_PLAIN = "application/json"
NDJSON = "application/x-ndjson"
TEXT_UTF8 = "text/plain; charset=utf-8"


@dataclass
class StreamError:
    """An error produced while streaming; ``status`` is ``None`` when the producer gave none."""

    message: str
    status: int | None = None


Event = Mapping[str, Any] | StreamError


#: How much of a handler's output Go's net/http holds back before it must send the headers.
GO_BUFFER = 2048


def json_response(value: Any, status: int = 200, content_type: str = JSON_UTF8) -> Response:
    return sized_response(dumps(value), status, content_type)


def sized_response(body: bytes, status: int, content_type: str) -> Response:
    """A body framed the way net/http frames one ``c.JSON`` write.

    A body that fits net/http's 2 KiB buffer is still there when the handler returns, so it
    goes out with a ``Content-Length``; a longer one forces the headers out first and is sent
    chunked (real Ollama's ``/api/show`` answers carry no ``Content-Length``).
    """
    headers = {"Content-Type": content_type}
    if len(body) <= GO_BUFFER:
        return Response(body, status_code=status, media_type=None, headers=headers)
    return StreamingResponse(_once(body), status_code=status, headers=headers)


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


def error_response(message: str, status: int, content_type: str = JSON_UTF8) -> Response:
    return json_response({"error": message}, status, content_type)


def empty_response(status: int = 200) -> Response:
    """A handler that writes nothing: no body, no Content-Type (copy, delete, blob upload)."""
    response = Response(b"", status_code=status)
    if "content-type" in response.headers:
        del response.headers["content-type"]
    return response


def _error_line(error: StreamError, config: ReferenceConfig) -> bytes:
    if config.at_least("0.12.6") or error.status is None:
        return dumps({"error": error.message}) + b"\n"
    # Old releases marshal the whole gin.H, status included; map keys come out sorted.
    return dumps(GoMap(error=error.message, status=error.status)) + b"\n"


async def ndjson_stream(events: AsyncGenerator[Event, None], config: ReferenceConfig) -> Response:
    """Stream ``events`` as NDJSON with the emulated version's error semantics."""
    try:
        first = await anext(events)
    except StopAsyncIteration:
        return Response(b"", status_code=200, headers={"Content-Type": NDJSON})
    if isinstance(first, StreamError) and config.at_least("0.12.6"):
        # Written inside gin's c.Stream, which flushes after every step: chunked, however short.
        await events.aclose()
        text = dumps({"error": first.message})
        headers = {"Content-Type": JSON_PLAIN}
        return StreamingResponse(_once(text), status_code=first.status or 500, headers=headers)

    async def body() -> AsyncIterator[bytes]:
        item: Event | None = first
        try:
            while item is not None:
                if isinstance(item, StreamError):
                    yield _error_line(item, config)
                    if config.at_least("0.12.6"):
                        return
                else:
                    yield dumps(item) + b"\n"
                try:
                    item = await anext(events)
                except StopAsyncIteration:
                    item = None
                except Exception as exc:  # a bug must end the stream the way Ollama ends one
                    log.exception("stream producer failed")
                    item = StreamError(str(exc) or type(exc).__name__)
        finally:
            await events.aclose()

    return StreamingResponse(body(), status_code=200, headers={"Content-Type": NDJSON})


async def wait_for_stream(events: AsyncGenerator[Event, None], config: ReferenceConfig) -> Response:
    """``stream: false`` for create/pull/push: one ``application/json`` object (§18.4)."""
    last: Mapping[str, Any] | None = None
    old_style = not config.at_least("0.9.0")
    try:
        async for item in events:
            if isinstance(item, StreamError):
                return error_response(item.message, item.status or 500, JSON_PLAIN)
            last = item
            if old_style and item.get("status") == "success":
                return json_response(item, 200, JSON_PLAIN)
    finally:
        await events.aclose()
    if last is None or old_style:
        return error_response("unexpected end of progress response", 500, JSON_PLAIN)
    return json_response(last, 200, JSON_PLAIN)
