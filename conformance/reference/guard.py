"""The two middlewares Ollama runs before routing: CORS and the Host check (reference facts §1.2).

Both run for every request, known route or not, so a foreign ``Origin`` or ``Host`` is refused
with a bare 403 even on ``/api/nonexistent``. Allowed origins get ``Access-Control-Allow-Origin``
and ``Vary: Origin``; an allowed preflight (``OPTIONS``) is answered 204 by the middleware itself.
The Host check only acts when the server listens on a loopback address (DNS-rebinding guard).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import ReferenceConfig

_DEFAULT_HOSTS = ("localhost", "127.0.0.1", "0.0.0.0")
_DEFAULT_SCHEMES = ("app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*")
_ALLOW_METHODS = "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS"
_ALLOW_HEADERS = ",".join(
    [
        "Authorization",
        "Content-Type",
        "User-Agent",
        "Accept",
        "X-Requested-With",
        "Openai-Beta",
        "X-Stainless-Arch",
        "X-Stainless-Async",
        "X-Stainless-Custom-Poll-Interval",
        "X-Stainless-Helper-Method",
        "X-Stainless-Lang",
        "X-Stainless-Os",
        "X-Stainless-Package-Version",
        "X-Stainless-Poll-Helper",
        "X-Stainless-Retry-Count",
        "X-Stainless-Runtime",
        "X-Stainless-Runtime-Version",
        "X-Stainless-Timeout",
    ]
)
_PRIVATE_NETS = [
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
]


def default_origins(extra: Iterable[str] = ()) -> list[str]:
    """``OLLAMA_ORIGINS`` plus the built-in list (identical in every release)."""
    origins = list(extra)
    for host in _DEFAULT_HOSTS:
        for scheme in ("http", "https"):
            origins += [f"{scheme}://{host}", f"{scheme}://{host}:*"]
    return origins + list(_DEFAULT_SCHEMES)


def origin_allowed(origin: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if "*" in pattern:
            prefix, _, suffix = pattern.partition("*")
            if (
                origin.startswith(prefix)
                and origin.endswith(suffix)
                and len(origin) >= len(prefix) + len(suffix)
            ):
                return True
        elif pattern.lower() == origin:
            return True
    return False


def _split_host(host: str) -> str:
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def host_allowed(host_header: str) -> tuple[bool, bool]:
    """``(allowed, by_name)``: whether the Host passes, and whether it passed as a host name."""
    host = _split_host(host_header)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        ok = (
            address.is_loopback
            or address.is_unspecified
            or _is_private(address)
            or _is_local(address)
        )
        return ok, False
    name = host.lower()
    by_name = (
        name in ("", "localhost")
        or name == socket.gethostname().lower()
        or name.endswith((".localhost", ".local", ".internal"))
    )
    return by_name, by_name


def _is_private(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(address in net for net in _PRIVATE_NETS if net.version == address.version)


def _is_local(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        return False
    return any(info[4][0] == str(address) for info in infos)


def _listens_on_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class GuardMiddleware:
    """CORS (gin-contrib/cors v1.7.2 semantics) followed by ``allowedHostsMiddleware``."""

    def __init__(self, app: ASGIApp, config: ReferenceConfig) -> None:
        self.app = app
        self.origins = default_origins(config.origins)
        self.check_host = _listens_on_loopback(config.listen_host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method = scope["method"]
        host = headers.get("host", "")
        origin = headers.get("origin")
        add_cors: dict[str, str] = {}
        if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
            if not origin_allowed(origin, self.origins):
                await _bare(send, 403)
                return
            if method == "OPTIONS":
                await _bare(
                    send,
                    204,
                    [
                        ("Access-Control-Allow-Origin", origin),
                        ("Access-Control-Allow-Methods", _ALLOW_METHODS),
                        ("Access-Control-Allow-Headers", _ALLOW_HEADERS),
                        ("Access-Control-Max-Age", "43200"),
                        ("Vary", "Origin"),
                        ("Vary", "Access-Control-Request-Method"),
                        ("Vary", "Access-Control-Request-Headers"),
                    ],
                )
                return
            add_cors = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        if self.check_host:
            allowed, by_name = host_allowed(host)
            if not allowed:
                await _bare(send, 403, list(add_cors.items()))
                return
            if by_name and method == "OPTIONS":
                await _bare(send, 204, list(add_cors.items()))
                return
        if not add_cors:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for key, value in add_cors.items():
                    response_headers.append(key, value)
            await send(message)

        await self.app(scope, receive, send_with_cors)


async def _bare(send: Send, status: int, headers: list[tuple[str, str]] | None = None) -> None:
    """``AbortWithStatus``: a status and headers, no body."""
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or [])]
    raw.append((b"content-length", b"0"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": b""})
