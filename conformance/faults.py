"""Deliberately broken Ollama servers, to prove that the suite notices what it claims to check.

A conformance suite that passes against a good server proves little: a test that can never fail
passes too. So the project also runs the suite against servers that are wrong in one known way
each, and insists that the requirement written for that way of being wrong is graded FAIL (or
WARN for a SHOULD). Each :class:`Fault` here is one such defect and names the requirement ids
that must catch it.

The broken servers are the reference server (:func:`conformance.reference.app.create_app`) with a
thin ASGI layer in front, :class:`FaultyApp`, that rewrites what goes in or out:

* answers that are one JSON document are buffered whole and rewritten (status, headers, body);
* NDJSON streams are rewritten line by line as they pass, so a stream stays a stream;
* a few faults answer a request themselves or change the request before the server sees it.

The reference server is not modified; the faults are data, so a new one is a few lines.
``start_faulty_server("stream-no-final")`` gives a running server with ``.url``, built like
:func:`conformance.reference.server.start_background`.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from conformance.reference.config import ReferenceConfig

__all__ = [
    "FAULTS",
    "Fault",
    "FaultyApp",
    "FaultyServer",
    "Reply",
    "RequestInfo",
    "start_faulty_server",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

NDJSON = "application/x-ndjson"
JSON_UTF8 = "application/json; charset=utf-8"
DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")
STATISTICS = (*DURATIONS, "prompt_eval_count", "eval_count")
GENERATION_PATHS = frozenset({"/api/generate", "/api/chat"})


# --------------------------------------------------------------------------------------------
# What a fault sees


@dataclass
class RequestInfo:
    """The request as the fault layer saw it (the body was read whole before the app ran)."""

    method: str
    path: str
    body: bytes
    json: object | None

    @classmethod
    def read(cls, scope: Scope, body: bytes) -> RequestInfo:
        try:
            value: object | None = json.loads(body) if body.strip() else None
        except (ValueError, UnicodeDecodeError):
            value = None
        return cls(str(scope.get("method", "GET")).upper(), str(scope.get("path", "")), body, value)

    def field(self, name: str) -> object | None:
        """A top-level field of a JSON-object request body, else None."""
        return self.json.get(name) if isinstance(self.json, dict) else None


@dataclass
class Reply:
    """A whole (non-streamed) answer: status, headers as ASGI byte pairs, body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode("latin-1")
        for key, value in self.headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None

    @property
    def media_type(self) -> str:
        return (self.header("content-type") or "").split(";", 1)[0].strip().lower()

    def json(self) -> object | None:
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    def with_header(self, name: str, value: str | None) -> Reply:
        """A copy with ``name`` replaced (or removed when ``value`` is None)."""
        wanted = name.lower().encode("latin-1")
        headers = [(k, v) for k, v in self.headers if k.lower() != wanted]
        if value is not None:
            headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        return Reply(self.status, headers, self.body)

    def with_body(self, body: bytes, content_type: str | None = None) -> Reply:
        """A copy with a new body, its Content-Length (and optionally Content-Type) to match."""
        reply = Reply(self.status, list(self.headers), body)
        if content_type is not None:
            reply = reply.with_header("content-type", content_type)
        return reply.with_header("content-length", str(len(body)))

    def with_json(self, value: object, content_type: str = JSON_UTF8) -> Reply:
        return self.with_body(_dumps(value), content_type)


@dataclass
class StreamState:
    """What a line rewriter may remember between the lines of one stream."""

    request: RequestInfo
    index: int = 0  # lines seen so far
    memory: dict[str, Any] = field(default_factory=dict)


#: A stream line becomes zero or more lines: objects are re-encoded, bytes are sent as they are.
LineOut = list[object]
ObjectEdit = Callable[[dict[str, Any], RequestInfo], None]


@dataclass(frozen=True)
class Fault:
    """One deliberate defect, and the requirements that must catch it.

    Hooks (all optional) run in this order for requests that ``applies`` to:
    ``answer`` may answer the request itself; ``request`` may replace the request body;
    ``status`` may change the status and headers of any answer as it starts (streams stay
    streams); ``reply`` rewrites a whole non-NDJSON answer; ``line`` rewrites each NDJSON object
    and ``end`` may add lines when the stream ends.
    """

    name: str
    summary: str
    catches: tuple[str, ...]
    applies: Callable[[RequestInfo], bool] = lambda request: True
    answer: Callable[[RequestInfo], Reply | None] | None = None
    request: Callable[[RequestInfo], bytes] | None = None
    status: Callable[[RequestInfo, Reply], Reply] | None = None
    reply: Callable[[RequestInfo, Reply], Reply] | None = None
    line: Callable[[StreamState, object], LineOut] | None = None
    end: Callable[[StreamState], LineOut] | None = None
    #: "MUST" when a MUST requirement catches it (the run exits 1), "SHOULD" when only warnings.
    level: str = "MUST"


# --------------------------------------------------------------------------------------------
# The ASGI layer


class FaultyApp:
    """ASGI middleware that applies one :class:`Fault` to an app's traffic."""

    def __init__(self, app: ASGIApp, fault: Fault | str) -> None:
        self.app = app
        self.fault = FAULTS[fault] if isinstance(fault, str) else fault

    def __getattr__(self, name: str) -> Any:
        # ``app.state`` and friends of the wrapped Starlette app stay reachable.
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        request = RequestInfo.read(scope, body)
        fault = self.fault
        if not fault.applies(request):
            await self.app(scope, _replay(body, receive), send)
            return
        if fault.answer is not None:
            reply = fault.answer(request)
            if reply is not None:
                await _send_reply(send, reply)
                return
        if fault.request is not None:
            body = fault.request(request)
            scope = dict(scope)
            scope["headers"] = [
                (k, str(len(body)).encode() if k.lower() == b"content-length" else v)
                for k, v in scope.get("headers", [])
            ]
        await self.app(scope, _replay(body, receive), _Rewriter(fault, request, send).send)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, upstream: Receive) -> Receive:
    """The (possibly rewritten) body once, then the real channel (which reports a disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await upstream()

    return receive


async def _send_reply(send: Send, reply: Reply) -> None:
    await send({"type": "http.response.start", "status": reply.status, "headers": reply.headers})
    await send({"type": "http.response.body", "body": reply.body, "more_body": False})


class _Rewriter:
    """The ``send`` handed to the app: passes, buffers or rewrites what the app sends."""

    def __init__(self, fault: Fault, request: RequestInfo, send: Send) -> None:
        self.fault = fault
        self.request = request
        self.downstream = send
        self.mode = "pass"
        self.start: Reply | None = None
        self.buffer = bytearray()
        self.state = StreamState(request)

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            await self._start(message)
        elif kind == "http.response.body" and self.mode != "pass":
            await self._body(message)
        else:
            await self.downstream(message)

    async def _start(self, message: Message) -> None:
        fault = self.fault
        reply = Reply(int(message["status"]), list(message.get("headers", [])), b"")
        streamed = reply.media_type == NDJSON
        if fault.status is not None:
            reply = fault.status(self.request, reply)
        if streamed and fault.line is not None and reply.media_type == NDJSON:
            self.mode = "lines"
        elif not streamed and fault.reply is not None:
            self.mode = "buffer"
            self.start = reply
            return
        headers = reply.headers
        if self.mode == "lines":  # line rewriting changes the length
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
        await self.downstream(
            {"type": "http.response.start", "status": reply.status, "headers": headers}
        )

    async def _body(self, message: Message) -> None:
        chunk = bytes(message.get("body", b""))
        more = bool(message.get("more_body", False))
        if self.mode == "buffer":
            self.buffer += chunk
            if not more:
                assert self.start is not None and self.fault.reply is not None
                reply = Reply(self.start.status, self.start.headers, bytes(self.buffer))
                await _send_reply(self.downstream, self.fault.reply(self.request, reply))
            return
        self.buffer += chunk
        out = bytearray()
        while b"\n" in self.buffer:
            raw, _, rest = bytes(self.buffer).partition(b"\n")
            self.buffer = bytearray(rest)
            out += self._rewrite(raw)
        if not more:
            if self.buffer:
                out += self._rewrite(bytes(self.buffer))
                self.buffer.clear()
            if self.fault.end is not None:
                out += _encode(self.fault.end(self.state))
        if out or not more:
            await self.downstream(
                {"type": "http.response.body", "body": bytes(out), "more_body": more}
            )

    def _rewrite(self, raw: bytes) -> bytes:
        assert self.fault.line is not None
        try:
            value: object = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            value = raw  # not JSON: the rewriter sees the bytes
        lines = self.fault.line(self.state, value)
        self.state.index += 1
        return _encode(lines)


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _encode(lines: Iterable[object]) -> bytes:
    out = bytearray()
    for item in lines:
        out += item if isinstance(item, bytes) else _dumps(item)
        out += b"\n"
    return bytes(out)


# --------------------------------------------------------------------------------------------
# Building blocks for faults


def _on(*paths: str, method: str | None = None) -> Callable[[RequestInfo], bool]:
    def applies(request: RequestInfo) -> bool:
        return (method is None or request.method == method) and any(
            request.path == p or (p.endswith("/") and request.path.startswith(p)) for p in paths
        )

    return applies


def _generation(request: RequestInfo) -> bool:
    return request.method == "POST" and request.path in GENERATION_PATHS


def _each_object(edit: ObjectEdit) -> dict[str, Any]:
    """Hooks that apply ``edit`` to every generate/chat object: stream lines and whole bodies."""

    def line(state: StreamState, value: object) -> LineOut:
        if isinstance(value, dict) and "error" not in value:
            edit(value, state.request)
        return [value]

    def reply(request: RequestInfo, answer: Reply) -> Reply:
        value = answer.json()
        if answer.status != 200 or not isinstance(value, dict) or "error" in value:
            return answer
        edit(value, request)
        return answer.with_json(value, answer.header("content-type") or JSON_UTF8)

    return {"applies": _generation, "line": line, "reply": reply}


def _final_only(edit: ObjectEdit) -> ObjectEdit:
    def apply(value: dict[str, Any], request: RequestInfo) -> None:
        if value.get("done") is True:
            edit(value, request)

    return apply


def _chunks_only(edit: ObjectEdit) -> ObjectEdit:
    def apply(value: dict[str, Any], request: RequestInfo) -> None:
        if value.get("done") is False:
            edit(value, request)

    return apply


def _durations(change: Callable[[int], object]) -> ObjectEdit:
    def apply(value: dict[str, Any], request: RequestInfo) -> None:
        for key in DURATIONS:
            if isinstance(value.get(key), int):
                value[key] = change(value[key])

    return apply


def _negative_eval_count(value: dict[str, Any], request: RequestInfo) -> None:
    if isinstance(value.get("eval_count"), int):
        value["eval_count"] = -max(1, value["eval_count"])


def _total_below_a_part(value: dict[str, Any], request: RequestInfo) -> None:
    parts = [value[k] for k in DURATIONS[1:] if isinstance(value.get(k), int)]
    if parts and isinstance(value.get("total_duration"), int):
        value["total_duration"] = max(parts) // 2


def _total_below_sum(value: dict[str, Any], request: RequestInfo) -> None:
    # Every part stays <= total (so only the SHOULD about the sum breaks), the sum exceeds it.
    total = value.get("total_duration")
    if isinstance(total, int) and total > 2_000_000:
        value["prompt_eval_duration"] = total
        value["eval_duration"] = total


def _created_at(change: Callable[[str], str]) -> ObjectEdit:
    def apply(value: dict[str, Any], request: RequestInfo) -> None:
        stamp = value.get("created_at")
        if isinstance(stamp, str):
            value["created_at"] = change(stamp)

    return apply


def _to_offset(stamp: str) -> str:
    """The same instant written in +02:00 instead of Z (still valid RFC 3339)."""
    if not stamp.endswith("Z"):
        return stamp
    head, _, fraction = stamp[:-1].partition(".")
    moment = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC)
    local = moment.astimezone(dt.timezone(dt.timedelta(hours=2)))
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{fraction}" if fraction else "") + "+02:00"


def _done_reason(value: dict[str, Any], request: RequestInfo) -> None:
    if value.get("done_reason") in ("stop", "length"):
        value["done_reason"] = "finished"


def _drop_done_reason(value: dict[str, Any], request: RequestInfo) -> None:
    value.pop("done_reason", None)


def _add_statistics(value: dict[str, Any], request: RequestInfo) -> None:
    value.update(
        total_duration=1_000_000,
        load_duration=1_000,
        prompt_eval_count=1,
        prompt_eval_duration=1_000,
        eval_count=1,
        eval_duration=1_000,
    )


def _string_arguments(value: dict[str, Any], request: RequestInfo) -> None:
    message = value.get("message")
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), dict):
            function["arguments"] = json.dumps(function["arguments"])


def _drop_message(value: dict[str, Any], request: RequestInfo) -> None:
    value.pop("message", None)


def _drop_finals(state: StreamState, value: object) -> LineOut:
    return [] if isinstance(value, dict) and value.get("done") is True else [value]


def _line_after_final(state: StreamState, value: object) -> LineOut:
    if not (isinstance(value, dict) and value.get("done") is True):
        return [value]
    extra: dict[str, Any] = {"model": value.get("model"), "created_at": value.get("created_at")}
    if state.request.path == "/api/chat":
        extra["message"] = {"role": "assistant", "content": ""}
    else:
        extra["response"] = ""
    extra["done"] = False
    return [value, extra]


def _two_finals(state: StreamState, value: object) -> LineOut:
    if isinstance(value, dict) and value.get("done") is True:
        return [value, dict(value)]
    return [value]


def _garbage_first(state: StreamState, value: object) -> LineOut:
    if state.index == 0:
        return [b"\x00\xff{garbage", value]
    return [value]


def _json_to_ndjson_content_type(request: RequestInfo, answer: Reply) -> Reply:
    if answer.media_type == NDJSON:
        return answer.with_header("content-type", JSON_UTF8)
    return answer


def _status(old: int, new: int) -> Callable[[RequestInfo, Reply], Reply]:
    def change(request: RequestInfo, answer: Reply) -> Reply:
        if answer.status == old:
            return Reply(new, answer.headers, answer.body)
        return answer

    return change


def _mismatch_accepted(request: RequestInfo, answer: Reply) -> Reply:
    value = answer.json()
    message = value.get("error") if isinstance(value, dict) else None
    if answer.status == 400 and isinstance(message, str) and "mismatch" in message:
        empty = Reply(201, [(k, v) for k, v in answer.headers if k.lower() != b"content-type"], b"")
        return empty.with_body(b"")
    return answer


def _error_as_text(request: RequestInfo, answer: Reply) -> Reply:
    value = answer.json()
    if answer.status >= 400 and isinstance(value, dict) and isinstance(value.get("error"), str):
        return answer.with_body(value["error"].encode("utf-8"), "text/plain; charset=utf-8")
    return answer


def _unknown_route_ok(request: RequestInfo, answer: Reply) -> Reply:
    if answer.status == 404 and answer.body.startswith(b"404 page not found"):
        return Reply(200, answer.headers, b"").with_json({})
    return answer


def _wrong_method_404(request: RequestInfo, answer: Reply) -> Reply:
    if answer.status != 405:
        return answer
    reply = Reply(404, answer.headers, b"").with_header("allow", None)
    body = b"" if request.method == "HEAD" else b"404 page not found"
    return reply.with_body(body, "text/plain")


def _version_with_v(request: RequestInfo, answer: Reply) -> Reply:
    value = answer.json()
    if (
        request.method == "GET"
        and isinstance(value, dict)
        and isinstance(value.get("version"), str)
    ):
        return answer.with_json({**value, "version": "v" + value["version"]})
    return answer


def _ignore_stream_false(request: RequestInfo) -> bytes:
    if isinstance(request.json, dict) and request.json.get("stream") is False:
        return _dumps({k: v for k, v in request.json.items() if k != "stream"})
    return request.body


def _details_as_text(request: RequestInfo, answer: Reply) -> Reply:
    value = answer.json()
    if answer.status == 200 and isinstance(value, dict) and isinstance(value.get("details"), dict):
        return answer.with_json({**value, "details": json.dumps(value["details"])})
    return answer


def _tags_null(request: RequestInfo, answer: Reply) -> Reply:
    if request.method == "GET" and answer.status == 200:
        return answer.with_json({"models": None})
    return answer


def _copy_fails(request: RequestInfo) -> Reply | None:
    return Reply(500, [], b"").with_json({"error": "copy failed"})


def _missing_delete_ok(request: RequestInfo, answer: Reply) -> Reply:
    if answer.status != 404:
        return answer
    headers = [(k, v) for k, v in answer.headers if k.lower() != b"content-type"]
    return Reply(200, headers, b"").with_body(b"")


def _flat_embeddings(request: RequestInfo, answer: Reply) -> Reply:
    value = answer.json()
    if not isinstance(value, dict):
        return answer
    vectors = value.get("embeddings")
    if answer.status == 200 and isinstance(vectors, list) and vectors:
        return answer.with_json({**value, "embeddings": vectors[0]})
    return answer


def _scaled_embeddings(request: RequestInfo, answer: Reply) -> Reply:
    value = answer.json()
    if not isinstance(value, dict):
        return answer
    vectors = value.get("embeddings")
    if answer.status == 200 and isinstance(vectors, list):
        scaled = [[3 * x for x in v] if isinstance(v, list) else v for v in vectors]
        return answer.with_json({**value, "embeddings": scaled})
    return answer


def _plural_embedding_key(request: RequestInfo, answer: Reply) -> Reply:
    value = answer.json()
    if answer.status == 200 and isinstance(value, dict) and "embedding" in value:
        rest = {k: v for k, v in value.items() if k != "embedding"}
        return answer.with_json({**rest, "embeddings": value["embedding"]})
    return answer


# --------------------------------------------------------------------------------------------
# The registry


def _fault(name: str, summary: str, catches: Iterable[str], **hooks: Any) -> Fault:
    return Fault(name=name, summary=summary, catches=tuple(catches), **hooks)


_FAULT_LIST: tuple[Fault, ...] = (
    _fault(
        "stream-content-type-json",
        "generate/chat streams are labelled application/json instead of application/x-ndjson",
        ["streaming.generate.content-type", "streaming.chat.content-type"],
        applies=_generation,
        status=_json_to_ndjson_content_type,
    ),
    _fault(
        "stream-no-final",
        "generate/chat streams end without their done:true object",
        [
            "streaming.generate.single-final",
            "streaming.chat.single-final",
            "properties.timing.no-hang",
        ],
        applies=_generation,
        line=_drop_finals,
    ),
    _fault(
        "stream-line-after-final",
        "a done:false line follows the final object of generate/chat streams",
        ["streaming.generate.single-final", "streaming.chat.single-final"],
        applies=_generation,
        line=_line_after_final,
    ),
    _fault(
        "stream-two-finals",
        "generate/chat streams carry their final done:true object twice",
        ["streaming.generate.single-final", "streaming.chat.single-final"],
        applies=_generation,
        line=_two_finals,
    ),
    _fault(
        "stream-stats-on-chunks",
        "statistics (durations, counts) on done:false lines",
        ["streaming.generate.stats-final-only", "streaming.chat.stats-final-only"],
        applies=_generation,
        line=_each_object(_chunks_only(_add_statistics))["line"],
    ),
    _fault(
        "stream-garbage-line",
        "a line of bytes that is not JSON at the start of generate/chat streams",
        [
            "streaming.generate.lines",
            "streaming.chat.lines",
            "properties.generate.valid-requests",
            "properties.chat.valid-requests",
        ],
        applies=_generation,
        line=_garbage_first,
    ),
    _fault(
        "durations-milliseconds",
        "durations in milliseconds (nanoseconds divided by 1e6)",
        ["durations.generate.nanoseconds", "durations.chat.nanoseconds"],
        **_each_object(_final_only(_durations(lambda ns: ns // 1_000_000))),
    ),
    _fault(
        "durations-float",
        "durations as fractional numbers",
        [
            "durations.generate.integers",
            "durations.chat.integers",
            "properties.generate.valid-requests",
            "properties.chat.valid-requests",
        ],
        **_each_object(_final_only(_durations(lambda ns: ns + 0.5))),
    ),
    _fault(
        "eval-count-negative",
        "eval_count below zero",
        [
            "durations.generate.counts",
            "properties.generate.valid-requests",
            "properties.chat.valid-requests",
        ],
        **_each_object(_final_only(_negative_eval_count)),
    ),
    _fault(
        "total-below-part",
        "total_duration smaller than one of its parts",
        ["durations.generate.total-ge-parts", "durations.chat.total-ge-parts"],
        **_each_object(_final_only(_total_below_a_part)),
    ),
    _fault(
        "total-below-sum",
        "total_duration at least every part but smaller than their sum",
        ["durations.generate.total-ge-sum"],
        level="SHOULD",
        **_each_object(_final_only(_total_below_sum)),
    ),
    _fault(
        "created-at-no-zone",
        "created_at without a zone (the trailing Z removed)",
        [
            "timestamps.generate.rfc3339",
            "timestamps.chat.rfc3339",
            "properties.generate.valid-requests",
            "properties.chat.valid-requests",
        ],
        **_each_object(_created_at(lambda s: s.removesuffix("Z"))),
    ),
    _fault(
        "created-at-offset",
        "created_at written with a +02:00 offset instead of in UTC",
        ["timestamps.generate.utc", "timestamps.chat.utc"],
        level="SHOULD",
        **_each_object(_created_at(_to_offset)),
    ),
    _fault(
        "done-reason-finished",
        'done_reason "finished" instead of "stop"/"length"',
        [
            "done_reason.value.known",
            "properties.generate.valid-requests",
            "properties.chat.valid-requests",
        ],
        **_each_object(_final_only(_done_reason)),
    ),
    _fault(
        "done-reason-missing",
        "no done_reason on the final object",
        [
            "done_reason.generate.length",
            "done_reason.chat.length",
            "properties.generate.valid-requests",
            "properties.chat.valid-requests",
        ],
        **_each_object(_final_only(_drop_done_reason)),
    ),
    _fault(
        "chat-chunk-no-message",
        "done:false chat lines without their message object",
        ["streaming.chat.chunks-not-done", "properties.chat.valid-requests"],
        applies=_on("/api/chat", method="POST"),
        line=_each_object(_chunks_only(_drop_message))["line"],
    ),
    _fault(
        "tool-arguments-string",
        "tool call arguments as a JSON-encoded string instead of an object",
        ["chat.tools.call-shape"],
        **_each_object(_string_arguments),
    ),
    _fault(
        "missing-model-200",
        "status 200 instead of 404 for a model that does not exist (show, generate)",
        [
            "errors.show.not-found",
            "errors.generate.model-not-found",
            "properties.names.generate",
        ],
        applies=_on("/api/show", "/api/generate", method="POST"),
        status=_status(404, 200),
    ),
    _fault(
        "blob-digest-mismatch-accepted",
        "201 instead of 400 for an upload whose bytes do not match the digest",
        ["blobs.post.mismatch"],
        applies=_on("/api/blobs/", method="POST"),
        reply=_mismatch_accepted,
    ),
    _fault(
        "blob-head-missing-200",
        "HEAD of a blob the server does not hold answers 200",
        ["blobs.head.absent"],
        applies=_on("/api/blobs/", method="HEAD"),
        status=_status(404, 200),
    ),
    _fault(
        "blob-head-bad-digest-404",
        "HEAD with a malformed digest answers 404 instead of 400",
        ["blobs.head.invalid-digest", "properties.blobs.digests"],
        applies=_on("/api/blobs/", method="HEAD"),
        status=_status(400, 404),
    ),
    _fault(
        "show-bad-name-500",
        "/api/show answers 500 instead of 400 for a name that is not valid",
        ["errors.show.invalid-name-status", "properties.names.show"],
        applies=_on("/api/show", method="POST"),
        status=_status(400, 500),
    ),
    _fault(
        "show-details-string",
        "/api/show gives details as a JSON-encoded string instead of an object",
        [
            "models.show.fields",
            "properties.show.valid-requests",
            "properties.openapi.positive",
        ],
        applies=_on("/api/show", method="POST"),
        reply=_details_as_text,
    ),
    _fault(
        "embed-flat-vector",
        "/api/embed answers one flat vector instead of a list of vectors",
        ["embed.response.shape", "properties.embed.valid-requests"],
        applies=_on("/api/embed", method="POST"),
        reply=_flat_embeddings,
    ),
    _fault(
        "embed-not-normalised",
        "/api/embed vectors three times unit length",
        ["embed.vector.normalized"],
        level="SHOULD",
        applies=_on("/api/embed", method="POST"),
        reply=_scaled_embeddings,
    ),
    _fault(
        "embeddings-plural-key",
        '/api/embeddings answers {"embeddings": [...]} instead of {"embedding": [...]}',
        ["embeddings.response.shape", "properties.embeddings.valid-requests"],
        applies=_on("/api/embeddings", method="POST"),
        reply=_plural_embedding_key,
    ),
    _fault(
        "error-plain-text",
        'error answers as plain text instead of {"error": "..."}',
        [
            "errors.body.shape",
            "http.body.malformed",
            "properties.body.invalid-types",
            "properties.body.random-bytes",
        ],
        reply=_error_as_text,
    ),
    _fault(
        "unknown-route-json-200",
        "an undefined path answers 200 with a JSON object",
        ["http.route.unknown-404"],
        reply=_unknown_route_ok,
    ),
    _fault(
        "wrong-method-404",
        "a wrong method on a known path answers 404 although the version claims 405 (>= 0.7)",
        [
            "http.method.wrong-405",
            "http.method.generate-post-only",
            "http.method.chat-post-only",
            "http.method.ps-no-head",
        ],
        reply=_wrong_method_404,
    ),
    _fault(
        "version-leading-v",
        "/api/version reports v0.32.15 instead of 0.32.15",
        ["version.get.format", "properties.openapi.positive"],
        applies=_on("/api/version", method="GET"),
        reply=_version_with_v,
    ),
    _fault(
        "nonstream-ignored",
        "stream:false is ignored: generate/chat answer an NDJSON stream anyway",
        ["streaming.generate.nonstream-json", "streaming.chat.nonstream-json"],
        applies=_generation,
        request=_ignore_stream_false,
    ),
    _fault(
        "tags-models-null",
        '/api/tags answers {"models": null} instead of an array',
        ["models.tags.status"],
        applies=_on("/api/tags", method="GET"),
        reply=_tags_null,
    ),
    _fault(
        "copy-500",
        "/api/copy answers 500 and copies nothing",
        ["lifecycle.copy.success"],
        applies=_on("/api/copy", method="POST"),
        answer=_copy_fails,
    ),
    _fault(
        "delete-missing-200",
        "deleting a model that does not exist answers 200",
        ["lifecycle.delete.not-found"],
        applies=_on("/api/delete", method="DELETE"),
        reply=_missing_delete_ok,
    ),
)

#: Every fault by name.
FAULTS: dict[str, Fault] = {fault.name: fault for fault in _FAULT_LIST}


# --------------------------------------------------------------------------------------------
# Running a faulty server


class FaultyServer:
    """The reference server behind :class:`FaultyApp`, in a daemon thread; ``.url`` to use it."""

    def __init__(self, fault: Fault | str, config: ReferenceConfig, host: str, port: int) -> None:
        from conformance.reference.app import create_app
        from conformance.reference.server import _bind, _url, _uvicorn_server

        config.listen_host = host
        self.fault = FAULTS[fault] if isinstance(fault, str) else fault
        self.config = config
        self._sock = _bind(host, port)
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self.url = _url(host, self.port)
        self.inner = create_app(config)
        self.state = self.inner.state.reference
        self.app = FaultyApp(self.inner, self.fault)
        self._server = _uvicorn_server(self.app)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            daemon=True,
            name=f"faulty-ollama-{self.fault.name}-{self.port}",
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the faulty server ({self.fault.name}) did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        """Shut down and remove the server's temporary model directory."""
        if self._thread.is_alive():
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._sock.close()
        self.state.close()

    def __enter__(self) -> FaultyServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_faulty_server(
    fault: Fault | str,
    config: ReferenceConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> FaultyServer:
    """Start the reference server with ``fault`` applied; returns once it accepts connections."""
    return FaultyServer(fault, config or ReferenceConfig(), host, port)
