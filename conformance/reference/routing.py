"""gin's router behaviour in front of the handlers (reference facts §1.1).

* Exact routes only; HEAD is served only where Ollama registers it (``/``, version, tags, blobs).
* Trailing slash: when the other spelling exists for the *same* method, GET gets a 301 and other
  methods a 307 to it (gin's ``RedirectTrailingSlash``).
* A known path with the wrong method: ``405 method not allowed`` with an ``Allow`` header from
  0.7 (v0.6.9-rc0); ``404 page not found`` before that. Both bodies are ``text/plain``.
* Handler crashes become a 500 with an empty body (gin's Recovery), never a dropped connection.
"""

from __future__ import annotations

import html
import logging
import traceback
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from . import (
    handlers_blobs,
    handlers_chat,
    handlers_create,
    handlers_embed,
    handlers_generate,
    handlers_models,
    handlers_transfer,
)
from .config import ReferenceConfig

Handler = Callable[[Request], Awaitable[Response]]

#: Method trees in the order gin creates them (first registration), which orders ``Allow``.
METHOD_ORDER = ("HEAD", "GET", "POST", "DELETE")
BLOB_PREFIX = "/api/blobs/"
BLOB_ROUTE = "/api/blobs/:digest"

ROUTES: dict[str, dict[str, Handler]] = {
    "/": {"HEAD": handlers_models.root, "GET": handlers_models.root},
    "/api/version": {"HEAD": handlers_models.version, "GET": handlers_models.version},
    "/api/pull": {"POST": handlers_transfer.pull},
    "/api/push": {"POST": handlers_transfer.push},
    "/api/tags": {"HEAD": handlers_models.tags, "GET": handlers_models.tags},
    "/api/show": {"POST": handlers_models.show},
    "/api/delete": {"DELETE": handlers_models.delete},
    "/api/create": {"POST": handlers_create.create},
    "/api/copy": {"POST": handlers_models.copy},
    BLOB_ROUTE: {"HEAD": handlers_blobs.head_blob, "POST": handlers_blobs.post_blob},
    "/api/ps": {"GET": handlers_models.ps},
    "/api/generate": {"POST": handlers_generate.generate},
    "/api/chat": {"POST": handlers_chat.chat},
    "/api/embed": {"POST": handlers_embed.embed},
    "/api/embeddings": {"POST": handlers_embed.embeddings},
}

log = logging.getLogger("conformance.reference")


def match(path: str) -> tuple[str, dict[str, str]] | None:
    """The route pattern ``path`` matches, with its parameters."""
    if path in ROUTES:
        return path, {}
    if path.startswith(BLOB_PREFIX):
        digest = path[len(BLOB_PREFIX) :]
        if digest and "/" not in digest:
            return BLOB_ROUTE, {"digest": digest}
    return None


def _plain(status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    response = Response(
        body, status_code=status, headers={"Content-Type": "text/plain", **(headers or {})}
    )
    return response


def _redirect(scope: Scope, target: str) -> Response:
    query = scope.get("query_string", b"").decode("latin-1")
    location = target + ("?" + query if query else "")
    method = scope["method"]
    status = 301 if method == "GET" else 307
    if method in ("GET", "HEAD"):
        text = "Moved Permanently" if status == 301 else "Temporary Redirect"
        body = f'<a href="{html.escape(location)}">{text}</a>.\n\n'.encode()
        headers = {"Location": location, "Content-Type": "text/html; charset=utf-8"}
        return Response(body if method == "GET" else b"", status_code=status, headers=headers)
    return Response(b"", status_code=status, headers={"Location": location})


def route_response(
    scope: Scope, config: ReferenceConfig
) -> tuple[Handler, dict[str, str]] | Response:
    """The handler for this request, or gin's redirect / 405 / 404 answer."""
    path, method = scope["path"], scope["method"]
    found = match(path)
    if found is not None and method in ROUTES[found[0]]:
        return ROUTES[found[0]][method], found[1]
    if method in METHOD_ORDER and path != "/":
        other = path[:-1] if path.endswith("/") else path + "/"
        alt = match(other)
        if alt is not None and method in ROUTES[alt[0]]:
            return _redirect(scope, other)
    if found is not None and config.at_least("0.6.9-rc0"):
        allowed = [m for m in METHOD_ORDER if m in ROUTES[found[0]] and m != method]
        if allowed:
            return _plain(405, b"405 method not allowed", {"Allow": ", ".join(allowed)})
    return _plain(404, b"404 page not found")


class Dispatcher:
    """The innermost ASGI app: routes, runs the handler, turns crashes into gin's empty 500."""

    def __init__(self, config: ReferenceConfig) -> None:
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        routed = route_response(scope, self.config)
        if isinstance(routed, Response):
            await routed(scope, receive, send)
            return
        handler, params = routed
        scope["path_params"] = params
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except Exception:
            log.error("handler crashed:\n%s", traceback.format_exc())
            response = Response(b"", status_code=500)
        await response(scope, receive, send)
