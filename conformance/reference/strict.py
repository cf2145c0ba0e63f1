"""Strict client mode: judge every request a client sends against the contract.

With ``--strict`` the reference server becomes a test double for *clients*: each request body
(and the blob digest in ``/api/blobs/:digest``) is validated with
``conformance.contract.validate(kind, body, version=...)``. Violations are printed to stderr,
optionally appended to a JSON-lines file, counted on the server state, and announced on the
offending response with ``X-Conformance-Violations: <n>``. The request is then served exactly as
Ollama would serve it, so a client under test sees no difference except the header.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .bodies import BindError, decode_json
from .state import ReferenceState

HEADER = "X-Conformance-Violations"

#: (method, path) → contract kind of the request body.
BODY_KINDS = {
    ("POST", "/api/generate"): "generate.request",
    ("POST", "/api/chat"): "chat.request",
    ("POST", "/api/embed"): "embed.request",
    ("POST", "/api/embeddings"): "embeddings.request",
    ("POST", "/api/create"): "create.request",
    ("POST", "/api/copy"): "copy.request",
    ("DELETE", "/api/delete"): "delete.request",
    ("POST", "/api/pull"): "pull.request",
    ("POST", "/api/push"): "push.request",
    ("POST", "/api/show"): "show.request",
}
BLOB_PREFIX = "/api/blobs/"


class StrictMiddleware:
    """Validates request bodies, then replays them to the app unchanged."""

    def __init__(self, app: ASGIApp, state: ReferenceState) -> None:
        self.app = app
        self.state = state
        self._warned: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        kind = BODY_KINDS.get((method, path))
        issues: list[dict[str, str]] = []
        replay = receive
        if kind is not None:
            body, replay = await _buffer(receive)
            issues = self._check_body(kind, body)
        elif path.startswith(BLOB_PREFIX) and method in ("HEAD", "POST"):
            kind = "blobs.digest"
            issues = self._validate(kind, path[len(BLOB_PREFIX) :])
        if not issues:
            await self.app(scope, replay, send)
            return
        self._report(method, path, kind or "", issues)

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append(HEADER, str(len(issues)))
            await send(message)

        await self.app(scope, replay, send_with_header)

    def _check_body(self, kind: str, body: bytes) -> list[dict[str, str]]:
        try:
            instance = decode_json(body)
        except BindError as exc:
            return [{"path": "$", "message": f"$: request body is not a JSON value: {exc}"}]
        return self._validate(kind, instance)

    def _validate(self, kind: str, instance: Any) -> list[dict[str, str]]:
        try:
            from conformance import contract

            found = contract.validate(kind, instance, version=self.state.config.version)
        except Exception as exc:
            if kind not in self._warned:
                self._warned.add(kind)
                print(f"strict: cannot validate {kind}: {exc}", file=sys.stderr)
            return []
        return [{"path": issue.path, "message": issue.message} for issue in found]

    def _report(self, method: str, path: str, kind: str, issues: list[dict[str, str]]) -> None:
        record = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "method": method,
            "path": path,
            "kind": kind,
            "issues": issues,
        }
        self.state.record_violation(record, len(issues))
        for issue in issues:
            print(f"strict: {method} {path} ({kind}): {issue['message']}", file=sys.stderr)
        log_path = self.state.config.strict_log
        if log_path is not None:
            with open(log_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")


async def _buffer(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole request body and return a ``receive`` that hands it out again."""
    chunks: list[bytes] = []
    more = True
    pending: list[Message] = []
    while more:
        message = await receive()
        if message["type"] != "http.request":
            pending.append(message)
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        if pending:
            return pending.pop(0)
        return await receive()

    return body, replay
