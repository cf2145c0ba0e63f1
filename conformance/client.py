"""HTTP client for talking to a server under test: bounded, timestamped, never raising.

Why not plain httpx: its read timeout bounds one socket read, so a server that trickles one byte
a second, or streams lines forever, or sends a 2 GB line, would hold a test run hostage. This
client reads the body itself, stamps every NDJSON line with its arrival time, and enforces the
:class:`Bounds` in two ways:

* on every chunk, in the reading thread (catches trickling servers);
* with a watchdog thread that shuts the socket down when the nearest deadline passes (catches a
  server that goes silent before the read timeout would fire).

Whatever the server does, :meth:`Client.request` returns an :class:`~conformance.exchange.Exchange`;
only bad arguments (programming errors) raise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import itertools
import json as jsonlib
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from conformance import __version__
from conformance.exchange import NDJSON_TYPE, Exchange, StreamLine, parse_json

__all__ = [
    "USER_AGENT",
    "Bounds",
    "Client",
    "LineSplitter",
    "check_reachable",
]

USER_AGENT: Final = f"ollama-conformance/{__version__}"
MiB: Final = 1024 * 1024


class _Unset:
    """Marker type for "no json argument": ``json=None`` must be able to send ``null``."""

    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Final = _Unset()


@dataclass(frozen=True)
class Bounds:
    """Limits on one exchange. Times in seconds, sizes in bytes.

    * ``connect_timeout``, ``write_timeout``: handed to httpx.
    * ``read_timeout``: the longest silence on the socket in any phase (waiting for headers or
      between chunks). Raise it for targets that load a model before sending the first byte.
    * ``first_line_timeout``: from sending the request to the first complete NDJSON line (for a
      body read whole: to the response headers), even if bytes keep trickling in.
    * ``max_gap``: the longest time between two complete NDJSON lines.
    * ``total_timeout``: the whole exchange, connect to last byte.
    * ``max_line_bytes``: the longest NDJSON line (an incomplete line counts as it grows).
    * ``max_total_bytes``: the most body bytes kept; reading stops there.
    """

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    write_timeout: float = 30.0
    first_line_timeout: float = 60.0
    max_gap: float = 30.0
    total_timeout: float = 300.0
    max_line_bytes: int = 8 * MiB
    max_total_bytes: int = 64 * MiB

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"Bounds.{f.name} must be a positive number, got {value!r}")

    def with_overrides(self, **overrides: Any) -> Bounds:
        """A copy with some fields replaced; unknown names raise TypeError."""
        return dataclasses.replace(self, **overrides)

    def httpx_timeout(self) -> httpx.Timeout:
        """The per-operation part of the bounds, as httpx understands it."""
        return httpx.Timeout(
            connect=self.connect_timeout,
            read=self.read_timeout,
            write=self.write_timeout,
            pool=self.connect_timeout,
        )


class LineSplitter:
    """Splits a byte stream into lines, whatever the chunk boundaries.

    Lines end at ``\\n``; one trailing ``\\r`` is removed (CRLF). The returned lines never
    contain the terminator. Data after the last ``\\n`` waits in :attr:`pending` until more
    arrives or :meth:`finish` is called at end of stream.
    """

    def __init__(self) -> None:
        self._pending = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of the line currently being received."""
        return len(self._pending)

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add a chunk; return the lines it completed."""
        self._pending += chunk
        if b"\n" not in chunk:  # cheap: a trickled line is not rescanned byte by byte
            return []
        *complete, rest = bytes(self._pending).split(b"\n")
        self._pending = bytearray(rest)
        return [_strip_cr(line) for line in complete]

    def finish(self) -> bytes | None:
        """The final unterminated line, or None when the stream ended with ``\\n``."""
        if not self._pending:
            return None
        line = _strip_cr(bytes(self._pending))
        self._pending.clear()
        return line


def _strip_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


def parse_line(raw: bytes) -> tuple[object | None, str | None]:
    """Parse one NDJSON line; empty lines are errors (NDJSON has no blank records)."""
    if not raw:
        return None, "empty line"
    return parse_json(raw)


# --------------------------------------------------------------------------------------------
# Watchdog


class _Watch:
    """The deadline of one exchange and the socket to shut down when it passes."""

    def __init__(self, dog: _Watchdog, seq: int) -> None:
        self._dog = dog
        self.seq = seq
        self.deadline = float("inf")
        self.reason: str | None = None
        #: The deadline of this watch's live heap entry (inf: none).
        self.scheduled = float("inf")
        self.fired: str | None = None
        self.sock: socket.socket | None = None
        self.active = True

    def attach(self, sock: socket.socket | None) -> None:
        """Remember the connection's socket; shut it at once if the deadline already passed."""
        if sock is None:
            return
        with self._dog.lock:
            self.sock = sock
            if self.fired is not None:
                _shutdown(sock)

    def arm(self, deadline: float, reason: str) -> None:
        """Set the deadline (absolute, ``time.monotonic``) and the bound it stands for."""
        self._dog.arm(self, deadline, reason)

    def stop(self) -> str | None:
        """Disarm; return the bound that fired, if any. Safe to call more than once."""
        return self._dog.release(self)


def _shutdown(sock: socket.socket) -> None:
    # shutdown (unlike close) wakes a recv/send blocked in another thread.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread per Client that fires the deadlines of all exchanges in flight.

    Deadlines mostly move later (each NDJSON line pushes the gap deadline), so moving one later
    touches nothing but the watch: the thread wakes at the old time, sees the new deadline and
    reschedules. Only a deadline that moves *earlier* than the next wake-up notifies the thread.
    A fast token stream therefore costs no thread switch per line, and the heap holds about one
    entry per exchange in flight.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._wake = threading.Condition(self.lock)
        self._heap: list[tuple[float, int, _Watch]] = []
        self._next_wake = float("inf")
        self._seq = itertools.count()
        self._active = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self) -> _Watch:
        with self.lock:
            if self._closed:
                raise RuntimeError("Client is closed")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="conformance-watchdog", daemon=True
                )
                self._thread.start()
            self._active += 1
            return _Watch(self, next(self._seq))

    def arm(self, watch: _Watch, deadline: float, reason: str) -> None:
        with self.lock:
            if not watch.active or watch.fired is not None:
                return
            watch.deadline = deadline
            watch.reason = reason
            if deadline < watch.scheduled:
                watch.scheduled = deadline
                heapq.heappush(self._heap, (deadline, watch.seq, watch))
                if deadline < self._next_wake:
                    self._wake.notify()

    def release(self, watch: _Watch) -> str | None:
        with self.lock:
            if watch.active:
                watch.active = False
                self._active -= 1
                if len(self._heap) > 64 + 2 * self._active:
                    # Finished exchanges leave entries that would otherwise linger until
                    # their (possibly minutes-away) deadlines.
                    self._heap = [e for e in self._heap if self._live(e)]
                    heapq.heapify(self._heap)
            return watch.fired

    def close(self) -> None:
        with self.lock:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    @staticmethod
    def _live(entry: tuple[float, int, _Watch]) -> bool:
        deadline, _, watch = entry
        return watch.active and watch.fired is None and deadline == watch.scheduled

    def _run(self) -> None:
        with self.lock:
            while not self._closed:
                now = time.monotonic()
                while self._heap:
                    entry = self._heap[0]
                    deadline, _, watch = entry
                    if not self._live(entry):
                        heapq.heappop(self._heap)
                    elif deadline > now:
                        break
                    elif watch.deadline > now:  # moved later since scheduled
                        heapq.heapreplace(self._heap, (watch.deadline, watch.seq, watch))
                        watch.scheduled = watch.deadline
                    else:
                        heapq.heappop(self._heap)
                        watch.scheduled = float("inf")
                        watch.fired = watch.reason
                        if watch.sock is not None:
                            _shutdown(watch.sock)
                self._next_wake = self._heap[0][0] if self._heap else float("inf")
                self._wake.wait(None if not self._heap else max(0.0, self._next_wake - now))


# --------------------------------------------------------------------------------------------
# Client

LineCallback = Callable[[StreamLine], None]


class Client:
    """A bounded HTTP client for one target.

    Use as a context manager. ``request`` and the verb helpers return an
    :class:`~conformance.exchange.Exchange` and do not raise for anything the server does.

    By default every request uses a fresh connection (``reuse_connections=False``): a broken
    server cannot leave bytes on a kept-alive connection that poison the next exchange, and the
    watchdog can reach the socket while still waiting for headers. With reuse enabled, a reused
    connection's wait for headers is bounded by ``read_timeout`` only.

    Environment proxies are ignored unless ``trust_env=True``: a proxy between the suite and the
    target would change what is being measured.
    """

    def __init__(
        self,
        base_url: str,
        *,
        bounds: Bounds | None = None,
        headers: Mapping[str, str] | None = None,
        reuse_connections: bool = False,
        max_connections: int | None = None,
        trust_env: bool = False,
    ) -> None:
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise ValueError(f"base_url is not a valid URL: {base_url!r} ({exc})") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http(s) URL with a host, got {base_url!r}")
        self.base_url = str(url).rstrip("/")
        self.bounds = bounds or Bounds()
        default_headers = {"User-Agent": USER_AGENT}
        default_headers.update(headers or {})
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=default_headers,
            timeout=self.bounds.httpx_timeout(),
            follow_redirects=False,
            trust_env=trust_env,
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=None if reuse_connections else 0,
            ),
        )
        self._watchdog = _Watchdog()

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Close connections and stop the watchdog thread."""
        self._http.close()
        self._watchdog.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- verbs ------------------------------------------------------------------------------

    def get(self, path: str, **kwargs: Any) -> Exchange:
        """GET ``path``; see :meth:`request`."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Exchange:
        """POST ``path``; see :meth:`request`."""
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Exchange:
        """DELETE ``path`` (Ollama's /api/delete takes a JSON body); see :meth:`request`."""
        return self.request("DELETE", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> Exchange:
        """HEAD ``path``; see :meth:`request`."""
        return self.request("HEAD", path, **kwargs)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: object = _UNSET,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool | None = None,
        bounds: Bounds | None = None,
        on_line: LineCallback | None = None,
    ) -> Exchange:
        """Send one request and read the answer within the bounds.

        ``json`` is serialised compactly (``json=None`` sends ``null``) with
        ``Content-Type: application/json``; ``content`` sends raw bytes (use it for deliberately
        malformed bodies). ``stream`` says how to *read* the body, not what to ask for: None
        splits lines when the server declares ``application/x-ndjson``, True always splits, False
        never does. ``on_line`` is called in this thread with each line as it arrives (e.g. for
        time to first token); its exceptions propagate, as they are the caller's bugs.
        """
        if not isinstance(json, _Unset) and content is not None:
            raise ValueError("pass json or content, not both")
        if content is not None and not isinstance(content, bytes | bytearray):
            raise TypeError(f"content must be bytes, got {type(content).__name__}")
        bounds = bounds or self.bounds
        body: bytes | None = None
        request_json: object | None = None
        extra: dict[str, str] = {}
        if not isinstance(json, _Unset):
            body = jsonlib.dumps(
                json, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode("utf-8")
            request_json = json
            extra["Content-Type"] = "application/json"
        elif content is not None:
            body = bytes(content)
        if headers:
            extra.update(headers)

        def trace(event: str, info: dict[str, Any]) -> None:
            # httpx hands the new connection's stream over here, before anything is sent, so
            # the watchdog can cut a server that never sends headers.
            if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
                stream = info.get("return_value")
                if stream is not None:
                    watch.attach(stream.get_extra_info("socket"))

        request = self._http.build_request(
            method.upper(),
            path,
            content=body,
            headers=extra,
            timeout=bounds.httpx_timeout(),
            extensions={"trace": trace},
        )
        exchange = Exchange(
            method=request.method,
            url=str(request.url),
            path=request.url.raw_path.decode("ascii", errors="replace"),
            request_headers={
                k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers.raw
            },
            request_json=request_json,
            request_body=body,
        )
        # Created only now: a bad path raised above without leaking a watch.
        watch = self._watchdog.watch()
        reader = _Reader(exchange, bounds, watch, stream, on_line)
        try:
            reader.run(self._http, request)
        finally:
            watch.stop()
        return exchange


class _Reader:
    """Reads one response into an Exchange, enforcing the bounds."""

    def __init__(
        self,
        exchange: Exchange,
        bounds: Bounds,
        watch: _Watch,
        stream: bool | None,
        on_line: LineCallback | None,
    ) -> None:
        self.ex = exchange
        self.bounds = bounds
        self.watch = watch
        self.stream = stream
        self.on_line = on_line
        self.t0 = 0.0
        self.last_line_at: float | None = None

    # Deadlines ----------------------------------------------------------------------------

    def deadline(self) -> tuple[float, str]:
        """The nearest absolute deadline now, and the bound it stands for."""
        b = self.bounds
        options = [(self.t0 + b.total_timeout, "total_timeout")]
        if self.ex.headers_after is None or (self.ex.read_as_lines and self.last_line_at is None):
            options.append((self.t0 + b.first_line_timeout, "first_line_timeout"))
        elif self.ex.read_as_lines and self.last_line_at is not None:
            options.append((self.t0 + self.last_line_at + b.max_gap, "max_gap"))
        return min(options)

    def rearm(self) -> None:
        self.watch.arm(*self.deadline())

    def describe(self, bound: str) -> str:
        b = self.bounds
        lines = len(self.ex.lines)
        match bound:
            case "first_line_timeout":
                what = "no complete line" if self.ex.read_as_lines else "no response headers"
                return f"first_line_timeout: {what} within {b.first_line_timeout} s"
            case "max_gap":
                return f"max_gap: no new line within {b.max_gap} s after line {lines}"
            case "total_timeout":
                return f"total_timeout: exchange still running after {b.total_timeout} s"
            case "max_line_bytes":
                return f"max_line_bytes: line {lines + 1} longer than {b.max_line_bytes} bytes"
            case "max_total_bytes":
                return f"max_total_bytes: body longer than {b.max_total_bytes} bytes"
        return bound

    def stop_at(self, bound: str) -> None:
        if self.ex.bound is None:
            self.ex.bound = bound
            self.ex.bound_detail = self.describe(bound)
        self.ex.truncated = True

    def now(self) -> float:
        return time.monotonic() - self.t0

    # Reading ------------------------------------------------------------------------------

    def run(self, http: httpx.Client, request: httpx.Request) -> None:
        ex = self.ex
        ex.sent_at = time.time()
        self.t0 = time.monotonic()
        self.rearm()
        try:
            response = http.send(request, stream=True)
        except httpx.HTTPError as exc:
            self.fail(exc, request)
            ex.finished_after = self.now()
            return
        try:
            ex.headers_after = self.now()
            ex.status = response.status_code
            ex.headers = response.headers
            stream = response.extensions.get("network_stream")
            if stream is not None:
                self.watch.attach(stream.get_extra_info("socket"))
            ex.read_as_lines = (
                self.stream if self.stream is not None else ex.content_type == NDJSON_TYPE
            )
            if ex.method == "HEAD":
                ex.read_as_lines = False
            if self.watch.fired is None and ex.headers_after > self.bounds.first_line_timeout:
                self.stop_at("first_line_timeout")
            else:
                self.rearm()
                self.read_body(response, request)
        finally:
            # Disarm before the connection can go back to the pool, so a late firing cannot
            # shut a socket that another exchange is already using.
            self.watch.stop()
            response.close()
            ex.finished_after = self.now()

    def read_body(self, response: httpx.Response, request: httpx.Request) -> None:
        ex = self.ex
        b = self.bounds
        body = bytearray()
        splitter = LineSplitter() if ex.read_as_lines else None
        chunks = response.iter_bytes()
        try:
            while True:
                try:
                    chunk = next(chunks)
                except StopIteration:
                    break
                except httpx.HTTPError as exc:
                    fired = self.watch.stop()
                    if fired is not None:
                        self.stop_at(fired)
                    else:
                        self.fail(exc, request)
                        ex.truncated = True
                    return
                now = self.now()
                deadline, bound = self.deadline()
                if now + self.t0 > deadline:
                    self.stop_at(bound)
                    return
                room = b.max_total_bytes - len(body)
                over = len(chunk) > room
                if over:
                    chunk = chunk[:room]
                body += chunk
                if splitter is not None:
                    for raw in splitter.feed(chunk):
                        if len(raw) > b.max_line_bytes:
                            self.stop_at("max_line_bytes")
                            return
                        self.add_line(raw, now)
                    if splitter.pending > b.max_line_bytes:
                        self.stop_at("max_line_bytes")
                        return
                if over:
                    self.stop_at("max_total_bytes")
                    return
            # Clean end of body. A close-delimited body also ends "cleanly" when the watchdog
            # shut the socket, so the watchdog has the last word.
            fired = self.watch.stop()
            if fired is not None:
                self.stop_at(fired)
                return
            if splitter is not None:
                last = splitter.finish()
                if last is not None:
                    if len(last) > b.max_line_bytes:
                        self.stop_at("max_line_bytes")
                        return
                    self.add_line(last, self.now())
        finally:
            ex.body = bytes(body)

    def add_line(self, raw: bytes, at: float) -> None:
        value, error = parse_line(raw)
        line = StreamLine(raw=raw, at=at, value=value, parse_error=error)
        self.ex.lines.append(line)
        if self.ex.first_line_after is None:
            self.ex.first_line_after = at
        self.last_line_at = at
        self.rearm()
        if self.on_line is not None:
            self.on_line(line)

    def fail(self, exc: httpx.HTTPError, request: httpx.Request) -> None:
        """Turn a transport exception into Exchange.error (or a bound, if ours caused it)."""
        fired = self.watch.stop()
        if fired is not None:
            self.stop_at(fired)
            return
        self.ex.error = describe_error(exc, str(request.url), self.bounds)


def describe_error(exc: httpx.HTTPError, url: str, bounds: Bounds) -> str:
    """One line naming the transport problem, in words a report reader understands."""
    detail = str(exc) or type(exc).__name__
    match exc:
        case httpx.ConnectTimeout():
            return f"ConnectTimeout after {bounds.connect_timeout} s: {url}"
        case httpx.ConnectError() if "refused" in detail.lower():
            return f"connection refused: {url}"
        case httpx.ConnectError():
            return f"cannot connect ({detail}): {url}"
        case httpx.ReadTimeout():
            return f"ReadTimeout after {bounds.read_timeout} s"
        case httpx.WriteTimeout():
            return f"WriteTimeout after {bounds.write_timeout} s"
        case httpx.PoolTimeout():
            return f"PoolTimeout after {bounds.connect_timeout} s"
        case httpx.RemoteProtocolError():
            return f"protocol error: {detail}"
        case httpx.ReadError():
            return f"read error: {detail}"
        case httpx.WriteError():
            return f"write error: {detail}"
    return f"{type(exc).__name__}: {detail}"


def check_reachable(base_url: str, timeout: float = 3.0) -> str | None:
    """None if an HTTP server answers at ``base_url``, else a one-line reason.

    Any HTTP status counts as reachable: whether it is an Ollama server is for the suite to
    judge. Used by the CLI to exit with code 2 before running anything.
    """
    try:
        bounds = Bounds(
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
            first_line_timeout=timeout,
            max_gap=timeout,
            total_timeout=timeout,
        )
        client = Client(base_url, bounds=bounds)
    except ValueError as exc:
        return str(exc)
    with client:
        exchange = client.get("/api/version")
    if exchange.status is None:
        return exchange.problem or f"no answer from {base_url}"
    return None
