"""A scriptable raw-socket HTTP server for tests that need a *broken* server.

A real framework (starlette, uvicorn) refuses to send malformed HTTP, to stall between bytes on
purpose or to cut a chunked body in half; tests of the client, the suite and the reports need
all of that. :class:`ScriptedServer` parses just enough of each request (request line, headers,
body) and hands it to an async *handler* that writes whatever bytes it likes, with whatever
delays, through a :class:`Conn`.

Usage (``tests/`` is on ``sys.path`` under pytest's default import mode)::

    from fakeserver import Conn, Request, ScriptedServer, script, chunk, response_head

    async def handler(request: Request, conn: Conn) -> None:
        await conn.head(200, content_type="application/x-ndjson", chunked=True)
        await conn.chunk(b'{"done":fa')      # a line split across two chunks
        await conn.sleep(0.05)
        await conn.chunk(b'lse}\\n')
        await conn.end_chunks()

    with ScriptedServer(handler) as server:
        ...  # talk to server.url (http://127.0.0.1:<free port>)
        assert server.requests[0].path == "/api/generate"

    # Or as a list of steps: bytes are sent, numbers are sleeps, HANG / CLOSE / ABORT act.
    # HANG still reads (and drops) what the client sends; to stall a client's upload, sleep
    # instead: ScriptedServer(script(30), read_body=False).
    with ScriptedServer(script(response_head(200, {"Content-Length": "10"}), b"short", CLOSE)):
        ...

Behaviour:

* One task per connection. Each connection serves one request, then closes (so a body without
  ``Content-Length`` ends at close). Pass ``keep_alive=True`` to serve further requests on the
  same connection when the handler returns without closing.
* The handler runs on the server's own event loop in a background thread; use ``await
  conn.sleep()``, never ``time.sleep()``.
* ``server.requests`` lists every parsed request; ``server.errors`` holds tracebacks of handler
  exceptions (a client hanging up mid-write is not an error). Call
  ``server.assert_no_errors()`` at the end of a test to catch mistakes in the script itself.
* ``stop()`` (or leaving the ``with`` block) cancels every handler, including ones that
  :meth:`Conn.hang`, and closes every socket, in well under a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ABORT",
    "CLOSE",
    "HANG",
    "LAST_CHUNK",
    "Conn",
    "Handler",
    "Request",
    "ScriptedServer",
    "Step",
    "chunk",
    "ndjson_lines",
    "reply",
    "reply_json",
    "reply_ndjson",
    "response_head",
    "script",
]

NDJSON = "application/x-ndjson"
REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    301: "Moved Permanently",
    307: "Temporary Redirect",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
MAX_HEAD = 64 * 1024

#: The terminating chunk of a chunked body.
LAST_CHUNK = b"0\r\n\r\n"

HeaderArg = Mapping[str, str] | Sequence[tuple[str, str]] | None


# --------------------------------------------------------------------------------------------
# Byte builders: usable in script() steps or with Conn.send()


def response_head(
    status: int = 200, headers: HeaderArg = None, *, reason: str | None = None
) -> bytes:
    """``HTTP/1.1 <status> <reason>`` plus headers plus the blank line, as bytes.

    Headers are written exactly as given (no Content-Length or Date is added), so a test can
    produce any combination, including contradictory ones.
    """
    reason = REASONS.get(status, "Status") if reason is None else reason
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in items]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One chunk of a ``Transfer-Encoding: chunked`` body (empty data is skipped, since an
    empty chunk would end the body; use :data:`LAST_CHUNK` for that)."""
    if not data:
        return b""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def ndjson_lines(values: Iterable[object]) -> bytes:
    """Values serialised as compact NDJSON, one ``\\n``-terminated line each."""
    return b"".join(json.dumps(v, separators=(",", ":")).encode() + b"\n" for v in values)


# --------------------------------------------------------------------------------------------
# Request and connection


@dataclass
class Request:
    """A request as the server parsed it."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> str | None:
        """The first header with this name (case-insensitive), or None."""
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return None

    def json(self) -> Any:
        """The body parsed as JSON (raises on invalid JSON: a test bug, not a server one)."""
        return json.loads(self.body)


class Conn:
    """The server side of one connection, for handlers to write to.

    Every ``send`` drains the transport, so bytes leave in the order and at the time the
    script says (asyncio sets ``TCP_NODELAY``, so small writes are not coalesced by Nagle).
    Writes to a client that has gone away are silently dropped.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.closed = False

    async def send(self, *parts: bytes) -> None:
        """Write raw bytes."""
        if self.closed:
            return
        for part in parts:
            if part:
                self.writer.write(part)
        try:
            await self.writer.drain()
        except ConnectionError:
            self.closed = True

    async def head(
        self,
        status: int = 200,
        headers: HeaderArg = None,
        *,
        reason: str | None = None,
        content_type: str | None = None,
        content_length: int | None = None,
        chunked: bool = False,
    ) -> None:
        """Send the status line and headers; the keyword arguments add common headers."""
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
        if content_type is not None:
            items.append(("Content-Type", content_type))
        if content_length is not None:
            items.append(("Content-Length", str(content_length)))
        if chunked:
            items.append(("Transfer-Encoding", "chunked"))
        await self.send(response_head(status, items, reason=reason))

    async def chunk(self, data: bytes) -> None:
        """Send one chunk of a chunked body."""
        await self.send(chunk(data))

    async def end_chunks(self) -> None:
        """Send the terminating zero-length chunk."""
        await self.send(LAST_CHUNK)

    async def respond(
        self,
        status: int = 200,
        body: bytes = b"",
        *,
        content_type: str | None = "application/json; charset=utf-8",
        headers: HeaderArg = None,
    ) -> None:
        """A complete, well-formed response with ``Content-Length``."""
        await self.head(status, headers, content_type=content_type, content_length=len(body))
        await self.send(body)

    async def json(self, value: object, status: int = 200, *, headers: HeaderArg = None) -> None:
        """A compact JSON response, as Ollama's ``c.JSON`` writes it (no trailing newline)."""
        body = json.dumps(value, separators=(",", ":")).encode()
        await self.respond(status, body, headers=headers)

    async def ndjson(
        self,
        values: Iterable[object],
        *,
        delay: float = 0.0,
        status: int = 200,
        content_type: str = NDJSON,
    ) -> None:
        """A chunked NDJSON stream, one line per chunk, ``delay`` seconds apart."""
        await self.head(status, content_type=content_type, chunked=True)
        for i, value in enumerate(values):
            if i and delay:
                await asyncio.sleep(delay)
            await self.chunk(ndjson_lines([value]))
        await self.end_chunks()

    async def trickle(self, data: bytes, *, delay: float, step: int = 1) -> None:
        """Send ``data`` ``step`` bytes at a time, ``delay`` seconds apart (raw, not chunked)."""
        for i in range(0, len(data), step):
            if i:
                await asyncio.sleep(delay)
            await self.send(data[i : i + step])

    async def sleep(self, seconds: float) -> None:
        """Pause the script."""
        await asyncio.sleep(seconds)

    async def hang(self) -> None:
        """Send nothing more; return when the client closes (or the server stops)."""
        with contextlib.suppress(ConnectionError):
            while await self.reader.read(65536):
                pass

    async def close(self) -> None:
        """Close the connection gracefully (FIN)."""
        if not self.closed:
            self.closed = True
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    def abort(self) -> None:
        """Reset the connection (RST): the client sees 'connection reset'."""
        self.closed = True
        self.writer.transport.abort()


Handler = Callable[[Request, Conn], Awaitable[None]]


# --------------------------------------------------------------------------------------------
# Canned handlers


class _Action:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: script() step: stop sending and wait until the client goes away (reading and dropping
#: anything it still sends; a number step stalls without reading).
HANG = _Action("HANG")
#: script() step: close the connection (FIN).
CLOSE = _Action("CLOSE")
#: script() step: reset the connection (RST).
ABORT = _Action("ABORT")

Step = bytes | float | int | _Action


def script(*steps: Step) -> Handler:
    """A handler that plays ``steps``: bytes are sent, numbers are sleeps in seconds,
    :data:`HANG` / :data:`CLOSE` / :data:`ABORT` act. Whatever follows them is ignored."""

    async def handler(request: Request, conn: Conn) -> None:
        for step in steps:
            if isinstance(step, bytes | bytearray):
                await conn.send(bytes(step))
            elif isinstance(step, int | float):
                await asyncio.sleep(step)
            elif step is HANG:
                await conn.hang()
                return
            elif step is CLOSE:
                await conn.close()
                return
            elif step is ABORT:
                conn.abort()
                return
            else:
                raise TypeError(f"unknown script step {step!r}")

    return handler


def reply(
    status: int = 200,
    body: bytes = b"",
    *,
    content_type: str | None = "application/json; charset=utf-8",
    headers: HeaderArg = None,
) -> Handler:
    """A handler that answers every request with the same well-formed response."""

    async def handler(request: Request, conn: Conn) -> None:
        await conn.respond(status, body, content_type=content_type, headers=headers)

    return handler


def reply_json(value: object, status: int = 200) -> Handler:
    """A handler that answers every request with the same JSON document."""

    async def handler(request: Request, conn: Conn) -> None:
        await conn.json(value, status)

    return handler


def reply_ndjson(values: Sequence[object], *, delay: float = 0.0) -> Handler:
    """A handler that streams the same NDJSON values to every request."""

    async def handler(request: Request, conn: Conn) -> None:
        await conn.ndjson(values, delay=delay)

    return handler


# --------------------------------------------------------------------------------------------
# The server


class ScriptedServer:
    """An HTTP/1.1 server on 127.0.0.1 (a free port) that runs ``handler`` for each request.

    Start with ``with ScriptedServer(handler) as server:`` or ``start()`` / ``stop()``.
    ``read_body=False`` hands the request over before its body is read (the handler may read
    ``conn.reader`` itself, or never, to make the client's write stall).
    """

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        read_body: bool = True,
        keep_alive: bool = False,
    ) -> None:
        self.handler = handler
        self.host = host
        self.read_body = read_body
        self.keep_alive = keep_alive
        self.port = 0
        self.requests: list[Request] = []
        self.errors: list[str] = []
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> ScriptedServer:
        """Start serving in a background thread; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._serve, self.host, 0, limit=MAX_HEAD)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # surfaced by start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="scripted-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Cancel all handlers, close all sockets, stop the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        with contextlib.suppress(Exception):
            future.result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def assert_no_errors(self) -> None:
        """Fail if a handler raised (a bug in the test's script, not in the client)."""
        assert not self.errors, "handler raised:\n" + "\n".join(self.errors)

    # -- internals ------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        conn = Conn(reader, writer)
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    break
                self.requests.append(request)
                try:
                    await self.handler(request, conn)
                except (ConnectionError, asyncio.IncompleteReadError):
                    break
                except Exception:
                    self.errors.append(traceback.format_exc())
                    break
                if conn.closed or not self.keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            if not conn.closed:
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 1)

    async def _read_request(self, reader: asyncio.StreamReader) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None  # client connected and left without a request
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return None
        method, target, version = parts
        headers = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers.append((name.strip(), value.strip()))
        request = Request(method, target, version, headers)
        if self.read_body:
            request.body = await self._read_body(reader, request)
        return request

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, request: Request) -> bytes:
        length = request.header("content-length")
        if length is not None:
            return await reader.readexactly(int(length))
        if (request.header("transfer-encoding") or "").lower() == "chunked":
            body = bytearray()
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")  # (no trailers expected)
                    return bytes(body)
                body += await reader.readexactly(size)
                await reader.readexactly(2)
        return b""
