"""The bounded client against scripted (often broken) servers on 127.0.0.1.

Every test uses small bounds so it ends in well under two seconds; the timing assertions are
loose upper limits that prove "the read stopped promptly", not exact figures.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import pytest
from fakeserver import (
    ABORT,
    CLOSE,
    HANG,
    LAST_CHUNK,
    Conn,
    Handler,
    Request,
    ScriptedServer,
    Step,
    chunk,
    reply,
    reply_json,
    reply_ndjson,
    response_head,
    script,
)
from hypothesis import given
from hypothesis import strategies as st

from conformance.client import USER_AGENT, Bounds, Client, LineSplitter, check_reachable
from conformance.exchange import Exchange, StreamLine

P = ParamSpec("P")
T = TypeVar("T")

pytestmark = pytest.mark.timeout(20)

NDJSON_HEAD = response_head(
    200, {"Content-Type": "application/x-ndjson", "Transfer-Encoding": "chunked"}
)
#: Generous everywhere; each bound test lowers the one it exercises.
RELAXED = Bounds(
    connect_timeout=2.0,
    read_timeout=5.0,
    write_timeout=2.0,
    first_line_timeout=5.0,
    max_gap=5.0,
    total_timeout=10.0,
)


@contextmanager
def serve(handler: Handler) -> Iterator[tuple[ScriptedServer, Client]]:
    with ScriptedServer(handler) as server, Client(server.url, bounds=RELAXED) as client:
        yield server, client
    server.assert_no_errors()


def timed(fn: Callable[P, T], *args: P.args, **kw: P.kwargs) -> tuple[T, float]:
    """Call ``fn`` and return its result with the seconds it took."""
    start = time.monotonic()
    result = fn(*args, **kw)
    return result, time.monotonic() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- line splitting ------------------------------------------------------------------------------


@given(
    st.lists(st.binary(max_size=20).filter(lambda b: b"\n" not in b), max_size=8),
    st.booleans(),
    st.lists(st.integers(min_value=0, max_value=200), max_size=10),
)
def test_line_splitter_is_independent_of_chunk_boundaries(
    lines: list[bytes], trailing_newline: bool, cuts: list[int]
) -> None:
    data = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    points = sorted({min(c, len(data)) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    splitter = LineSplitter()
    got = [ln for piece in pieces for ln in splitter.feed(piece)]
    last = splitter.finish()
    if last is not None:
        got.append(last)
    expected = [ln.removesuffix(b"\r") for ln in data.split(b"\n")]
    if expected and expected[-1] == b"" and data.endswith(b"\n"):
        expected.pop()
    if data == b"":
        expected = []
    assert got == expected


def test_line_splitter_crlf_and_pending() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b'{"a":1}\r') == []
    assert splitter.pending == 8
    assert splitter.feed(b'\n\r\n{"b"') == [b'{"a":1}', b""]
    assert splitter.finish() == b'{"b"'
    assert splitter.finish() is None


async def split_mid_line(request: Request, conn: Conn) -> None:
    await conn.head(200, content_type="application/x-ndjson", chunked=True)
    pieces = [b'{"n":', b'1,"done":false}\n{"n"', b':2,"done":false}\n', b'{"n":3,"done":true}\n']
    for piece, pause in zip(pieces, [0.02, 0.02, 0.15, 0.0], strict=True):
        await conn.chunk(piece)
        await conn.sleep(pause)
    await conn.end_chunks()


def test_ndjson_lines_split_across_chunks() -> None:
    with serve(split_mid_line) as (_, client):
        ex = client.post("/api/generate", json={"model": "m", "prompt": "a"})
    assert ex.complete, ex.problem
    assert ex.status == 200 and ex.is_ndjson and ex.read_as_lines
    assert [v["n"] for v in ex.values] == [1, 2, 3]  # type: ignore[index]
    assert ex.lines[0].raw == b'{"n":1,"done":false}'
    assert ex.final == {"n": 3, "done": True}
    times = [line.at for line in ex.lines]
    assert times == sorted(times)
    assert ex.lines[2].at - ex.lines[1].at >= 0.1  # stamped on arrival, not at the end
    assert ex.headers_after is not None and ex.finished_after is not None
    assert ex.headers_after <= ex.first_line_after == times[0] <= ex.finished_after  # type: ignore[operator]
    assert len(ex.gaps) == 2 and all(g > 0 for g in ex.gaps)
    assert ex.body.count(b"\n") == 3 and not ex.truncated


def test_ndjson_from_a_raw_script_with_crlf_empty_and_unterminated_lines() -> None:
    handler = script(
        NDJSON_HEAD,
        chunk(b'{"a":1}\r\n\r\n{"done'),
        0.02,
        chunk(b'":true}'),  # last line has no newline
        LAST_CHUNK,
    )
    with serve(handler) as (_, client):
        ex = client.get("/api/pull")
    assert [(ln.raw, ln.parse_error) for ln in ex.lines] == [
        (b'{"a":1}', None),
        (b"", "empty line"),
        (b'{"done":true}', None),
    ]
    assert ex.final == {"done": True}


def test_garbage_lines_become_parse_errors() -> None:
    lines = [b"not json", b'{"a":', b"NaN", b"\xff\xfe", b"[1]", b'{"ok":true}']
    handler = script(NDJSON_HEAD, chunk(b"\n".join(lines) + b"\n"), LAST_CHUNK)
    with serve(handler) as (_, client):
        ex = client.post("/api/chat", json={})
    assert ex.complete
    assert [ln.parse_error is None for ln in ex.lines] == [False, False, False, False, True, True]
    assert ex.values == [[1], {"ok": True}]
    assert "not json" in (ex.lines[0].parse_error or "")
    assert ex.final is None


def test_error_line_after_200() -> None:
    handler = reply_ndjson([{"model": "m", "response": "a", "done": False}, {"error": "boom"}])
    with serve(handler) as (_, client):
        ex = client.post("/api/generate", json={"model": "m"})
    assert ex.status == 200
    assert ex.error_lines == [{"error": "boom"}]
    assert ex.final is None


def test_stream_forced_on_wrong_content_type() -> None:
    handler = reply(200, b'{"done":false}\n{"done":true}\n', content_type="text/plain")
    with serve(handler) as (_, client):
        forced = client.post("/api/generate", json={}, stream=True)
        natural = client.post("/api/generate", json={})
    assert forced.read_as_lines and len(forced.lines) == 2 and not forced.is_ndjson
    assert forced.final == {"done": True}
    assert natural.lines == [] and natural.body == b'{"done":false}\n{"done":true}\n'


def test_stream_false_reads_ndjson_whole() -> None:
    with serve(reply_ndjson([{"a": 1}, {"done": True}])) as (_, client):
        ex = client.post("/api/generate", json={}, stream=False)
    assert ex.is_ndjson and not ex.read_as_lines and ex.lines == []
    assert ex.body == b'{"a":1}\n{"done":true}\n'


def test_on_line_sees_lines_as_they_arrive() -> None:
    seen: list[tuple[StreamLine, float]] = []
    handler = reply_ndjson([{"i": 0}, {"i": 1}, {"done": True}], delay=0.15)
    with serve(handler) as (_, client):
        ex = client.post(
            "/api/chat", json={}, on_line=lambda ln: seen.append((ln, time.monotonic()))
        )
    assert [s[0] for s in seen] == ex.lines
    assert seen[1][1] - seen[0][1] >= 0.1  # the first callback did not wait for the whole body


# -- non-streamed bodies, verbs, request encoding -----------------------------------------------


def test_json_body() -> None:
    with serve(reply_json({"version": "0.9.0"})) as (_, client):
        ex = client.get("/api/version")
    assert ex.complete and ex.status == 200
    assert ex.content_type == "application/json" and not ex.is_ndjson
    assert ex.json() == ({"version": "0.9.0"}, None)
    assert ex.lines == [] and ex.first_line_after is None


def test_non_json_and_empty_bodies() -> None:
    with serve(reply(500, b"<html>Internal error</html>", content_type="text/html")) as (_, c):
        html = c.get("/api/tags")
    value, error = html.json()
    assert html.status == 500 and value is None and "<html>Internal" in (error or "")
    with serve(reply(200, b"")) as (_, c):
        empty = c.get("/api/tags")
    assert empty.json() == (None, "empty body")


def test_head() -> None:
    handler = script(response_head(200, {"Content-Type": "text/plain", "Content-Length": "17"}))
    with serve(handler) as (server, client):
        ex = client.head("/")
    assert ex.status == 200 and ex.body == b"" and ex.complete
    assert ex.headers["content-length"] == "17"
    assert server.requests[0].method == "HEAD"
    assert ex.curl().startswith("curl -I ")


def test_redirect_is_not_followed() -> None:
    handler = reply(307, b"", headers={"Location": "/api/tags"}, content_type=None)
    with serve(handler) as (server, client):
        ex = client.get("/api/tags/")
    assert ex.status == 307 and ex.headers["location"] == "/api/tags"
    assert len(server.requests) == 1


def test_request_is_sent_exactly_as_recorded() -> None:
    with serve(reply_json({})) as (server, client):
        ex = client.post("/api/generate", json={"prompt": "ünï <&>", "n": 1}, headers={"X-A": "b"})
        nul = client.post("/api/generate", json=None)
        raw = client.delete("/api/delete", content=b"{not json", headers={"Content-Type": "x/y"})
    first, second, third = server.requests
    assert first.body == ex.request_body == '{"prompt":"ünï <&>","n":1}'.encode()
    assert ex.request_json == {"prompt": "ünï <&>", "n": 1}
    assert first.header("content-type") == "application/json"
    assert first.header("user-agent") == USER_AGENT == ex.request_headers["User-Agent"]
    assert first.header("x-a") == "b" and ex.request_headers["X-A"] == "b"
    assert ex.path == "/api/generate" and ex.url == server.url + "/api/generate"
    assert second.body == b"null" and nul.request_json is None
    assert (third.method, third.body, third.header("content-type")) == (
        "DELETE",
        b"{not json",
        "x/y",
    )
    assert raw.request_json is None


def test_bad_arguments_raise() -> None:
    with Client("http://127.0.0.1:9") as client:
        with pytest.raises(ValueError, match="json or content"):
            client.post("/x", json={}, content=b"{}")
        with pytest.raises(TypeError):
            client.post("/x", content="text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="base_url"):
        Client("localhost:11434")
    with pytest.raises(ValueError, match="max_gap"):
        Bounds(max_gap=0)


def test_bounds_with_overrides() -> None:
    b = Bounds().with_overrides(max_gap=1.5, max_line_bytes=10)
    assert (b.max_gap, b.max_line_bytes, b.read_timeout) == (1.5, 10, 30.0)
    assert Bounds().max_total_bytes == 64 * 1024 * 1024
    with pytest.raises(TypeError):
        Bounds().with_overrides(nope=1)


# -- bounds -------------------------------------------------------------------------------------


def run_bounded(handler: Handler, **overrides: float) -> tuple[Exchange, float]:
    with serve(handler) as (_, client):
        return timed(
            client.post, "/api/generate", json={}, bounds=RELAXED.with_overrides(**overrides)
        )


def test_first_line_timeout_before_headers() -> None:
    ex, took = run_bounded(script(HANG), first_line_timeout=0.3)
    assert ex.bound == "first_line_timeout" and ex.status is None and ex.error is None
    assert "no response headers within 0.3 s" in (ex.problem or "")
    assert 0.25 < took < 1.0


def test_first_line_timeout_after_headers() -> None:
    ex, took = run_bounded(script(NDJSON_HEAD, HANG), first_line_timeout=0.3)
    assert ex.bound == "first_line_timeout" and ex.status == 200 and ex.truncated
    assert ex.lines == []
    assert took < 1.0


def test_first_line_timeout_with_bytes_trickling_in() -> None:
    async def handler(request: Request, conn: Conn) -> None:
        await conn.send(NDJSON_HEAD)
        for _ in range(100):
            await conn.chunk(b" ")
            await conn.sleep(0.05)

    ex, took = run_bounded(handler, first_line_timeout=0.3)
    assert ex.bound == "first_line_timeout"
    assert took < 1.0


def test_max_gap_on_silence() -> None:
    ex, took = run_bounded(script(NDJSON_HEAD, chunk(b'{"done":false}\n'), HANG), max_gap=0.3)
    assert ex.bound == "max_gap" and len(ex.lines) == 1
    assert "after line 1" in (ex.problem or "")
    assert took < 1.0


def test_max_gap_with_trickle_inside_a_line() -> None:
    async def handler(request: Request, conn: Conn) -> None:
        await conn.send(NDJSON_HEAD, chunk(b'{"done":false}\n'))
        for _ in range(100):
            await conn.chunk(b"x")
            await conn.sleep(0.05)

    ex, took = run_bounded(handler, max_gap=0.3)
    assert ex.bound == "max_gap" and len(ex.lines) == 1
    assert took < 1.0


def test_deadlines_move_with_each_line() -> None:
    """Lines keep coming for longer than first_line_timeout and max_gap: no bound fires until
    the server goes silent, then max_gap does (the watchdog reschedules, it does not fire the
    deadline it was first given)."""

    async def handler(request: Request, conn: Conn) -> None:
        await conn.send(NDJSON_HEAD)
        for i in range(12):
            await conn.chunk(b'{"i":%d}\n' % i)
            await conn.sleep(0.05)
        await conn.hang()

    ex, took = run_bounded(handler, first_line_timeout=0.2, max_gap=0.2)
    assert ex.bound == "max_gap" and len(ex.lines) == 12
    assert 0.7 < took < 1.5


def test_total_timeout_on_an_endless_stream() -> None:
    async def handler(request: Request, conn: Conn) -> None:
        await conn.send(NDJSON_HEAD)
        for i in range(1000):
            await conn.chunk(b'{"i":%d,"done":false}\n' % i)
            await conn.sleep(0.02)

    ex, took = run_bounded(handler, total_timeout=0.4)
    assert ex.bound == "total_timeout" and ex.truncated
    assert 5 < len(ex.lines) < 30
    assert took < 1.0


def test_total_timeout_on_a_trickled_whole_body() -> None:
    handler = script(
        response_head(200, {"Content-Type": "application/json", "Content-Length": "1000"}),
        *[step for _ in range(200) for step in (b"x", 0.02)],
    )
    ex, took = run_bounded(handler, total_timeout=0.3)
    assert ex.bound == "total_timeout" and 0 < len(ex.body) < 50
    assert took < 1.0


def test_max_line_bytes_on_a_growing_line() -> None:
    async def handler(request: Request, conn: Conn) -> None:
        await conn.send(NDJSON_HEAD, chunk(b'{"ok":1}\n'))
        for _ in range(100):
            await conn.chunk(b"a" * 4096)
        await conn.hang()

    ex, took = run_bounded(handler, max_line_bytes=10_000)
    assert ex.bound == "max_line_bytes" and len(ex.lines) == 1
    assert len(ex.body) < 20_000
    assert took < 1.0


def test_max_line_bytes_on_a_complete_line() -> None:
    huge = b'{"x":"' + b"a" * 50_000 + b'"}\n'
    ex, _ = run_bounded(
        script(NDJSON_HEAD, chunk(huge + b'{"done":true}\n'), LAST_CHUNK), max_line_bytes=1000
    )
    assert ex.bound == "max_line_bytes" and ex.lines == []
    assert "line 1 longer than 1000 bytes" in (ex.problem or "")


def test_max_total_bytes_on_a_stream_and_a_whole_body() -> None:
    async def endless(request: Request, conn: Conn) -> None:
        await conn.send(NDJSON_HEAD)
        for i in range(10_000):
            await conn.chunk(b'{"i":%d}\n' % i)

    ex, took = run_bounded(endless, max_total_bytes=5000)
    assert ex.bound == "max_total_bytes" and len(ex.body) == 5000
    assert 400 < len(ex.lines) < 700
    whole, _ = run_bounded(reply(200, b"[" + b"1," * 50_000 + b"1]"), max_total_bytes=1000)
    assert whole.bound == "max_total_bytes" and whole.body.startswith(b"[1,1,")
    assert len(whole.body) == 1000
    assert took < 1.5


def test_first_line_timeout_while_headers_trickle_in() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    ex, took = run_bounded(
        script(*[s for i in range(len(head)) for s in (head[i : i + 1], 0.05)]),
        first_line_timeout=0.3,
    )
    assert ex.bound == "first_line_timeout" and ex.status is None
    assert took < 1.0


def test_write_timeout_and_total_timeout_while_uploading() -> None:
    """A server that never reads the body: the upload stalls once the socket buffers are full."""
    body = b"x" * (32 << 20)
    with ScriptedServer(script(30), read_body=False) as server:
        with Client(server.url, bounds=RELAXED.with_overrides(write_timeout=0.3)) as client:
            ex, took = timed(client.post, "/api/blobs/sha256:00", content=body)
        assert ex.error == "WriteTimeout after 0.3 s" and ex.status is None
        assert took < 1.5
        with Client(server.url, bounds=RELAXED.with_overrides(total_timeout=0.3)) as client:
            ex, took = timed(client.post, "/api/blobs/sha256:00", content=body)
        assert ex.bound == "total_timeout" and ex.error is None
        assert took < 1.5


def test_read_timeout_when_the_server_never_answers() -> None:
    ex, took = run_bounded(script(HANG), read_timeout=0.3)
    assert ex.error == "ReadTimeout after 0.3 s" and ex.status is None and ex.bound is None
    assert 0.25 < took < 1.0


def test_read_timeout_mid_body() -> None:
    handler = script(
        response_head(200, {"Content-Type": "application/json", "Content-Length": "10"}), b"{", HANG
    )
    ex, took = run_bounded(handler, read_timeout=0.3)
    assert ex.error == "ReadTimeout after 0.3 s" and ex.status == 200
    assert ex.body == b"{" and ex.truncated
    assert took < 1.0


# -- transport failures -------------------------------------------------------------------------


def test_connection_refused_is_data() -> None:
    port = free_port()
    with Client(f"http://127.0.0.1:{port}", bounds=RELAXED) as client:
        ex = client.get("/api/version")
    assert ex.error == f"connection refused: http://127.0.0.1:{port}/api/version"
    assert ex.status is None and ex.finished_after is not None
    assert "connection refused" in (ex.json()[1] or "")


@pytest.mark.parametrize(
    ("steps", "fragment"),
    [
        ((NDJSON_HEAD, chunk(b'{"done":false}\n'), CLOSE), "protocol error"),
        ((NDJSON_HEAD, chunk(b'{"done":false}\n'), 0.05, ABORT), "error"),
        ((response_head(200, {"Content-Length": "100"}), b"short", CLOSE), "protocol error"),
    ],
    ids=["close-mid-stream", "reset-mid-stream", "short-content-length"],
)
def test_broken_body_is_an_error_with_what_arrived(steps: tuple[Step, ...], fragment: str) -> None:
    with serve(script(*steps)) as (_, client):
        ex = client.post("/api/generate", json={})
    assert ex.status == 200 and ex.truncated and fragment in (ex.error or "")
    assert ex.lines or ex.body == b"short"


@pytest.mark.parametrize(
    "steps",
    [(b"garbage\r\n\r\n", CLOSE), (CLOSE,), (b"HTTP/1.1 200 OK\r\nNo-Colon-Header\r\n\r\n", CLOSE)],
    ids=["not-http", "closed-without-answer", "malformed-header"],
)
def test_malformed_http_is_an_error(steps: tuple[Step, ...]) -> None:
    with serve(script(*steps)) as (_, client):
        ex = client.get("/")
    assert ex.status is None and ex.error and ex.error.startswith("protocol error")


def test_concurrent_requests_each_get_their_own_bounds() -> None:
    """The shared watchdog fires the right exchange and leaves the others alone."""

    async def handler(request: Request, conn: Conn) -> None:
        if request.path == "/hang":
            await conn.hang()
        else:
            await conn.ndjson([{"i": i} for i in range(5)] + [{"done": True}], delay=0.05)

    results: dict[int, Exchange] = {}
    with serve(handler) as (_, client):

        def work(i: int) -> None:
            path = "/hang" if i % 2 else "/ok"
            results[i] = client.get(
                path, bounds=RELAXED.with_overrides(first_line_timeout=0.2 + i / 50)
            )

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        took = time.monotonic() - start
    for i, ex in results.items():
        if i % 2:
            assert ex.bound == "first_line_timeout", i
        else:
            assert ex.complete and ex.final == {"done": True}, (i, ex.problem)
    assert len(results) == 8 and took < 1.5


def test_connections_are_fresh_unless_reuse_is_asked_for() -> None:
    with ScriptedServer(reply_json({}), keep_alive=True) as server:
        with Client(server.url, bounds=RELAXED) as fresh:
            assert fresh.get("/a").complete and fresh.get("/b").complete
        assert server.connections == 2
        with Client(server.url, bounds=RELAXED, reuse_connections=True) as reusing:
            assert reusing.get("/a").complete and reusing.get("/b").complete
        assert server.connections == 3
    server.assert_no_errors()


# -- check_reachable and the fake server itself -------------------------------------------------


def test_check_reachable() -> None:
    with ScriptedServer(reply(404, b"404 page not found", content_type="text/plain")) as server:
        assert check_reachable(server.url) is None
    port = free_port()
    assert check_reachable(f"http://127.0.0.1:{port}") == (
        f"connection refused: http://127.0.0.1:{port}/api/version"
    )
    assert "base_url" in (check_reachable("not a url") or "")
    with ScriptedServer(script(HANG)) as server:
        reason, took = timed(check_reachable, server.url, timeout=0.3)
    assert reason is not None and took < 1.0


def test_fake_server_records_requests_and_handler_errors() -> None:
    async def handler(request: Request, conn: Conn) -> None:
        if request.path == "/boom":
            raise RuntimeError("bug in the script")
        await conn.json({"got": request.json()})

    with ScriptedServer(handler) as server, Client(server.url, bounds=RELAXED) as client:
        ex = client.post("/echo?x=1", json={"a": [1]})
        broken = client.get("/boom")
    assert ex.json() == ({"got": {"a": [1]}}, None)
    assert [(r.method, r.path, r.target) for r in server.requests] == [
        ("POST", "/echo", "/echo?x=1"),
        ("GET", "/boom", "/boom"),
    ]
    assert broken.error is not None
    assert len(server.errors) == 1 and "bug in the script" in server.errors[0]
    with pytest.raises(AssertionError, match="handler raised"):
        server.assert_no_errors()


def test_fake_server_stops_promptly_with_hanging_handlers() -> None:
    server = ScriptedServer(script(HANG)).start()
    client_sock = socket.create_connection(("127.0.0.1", server.port))
    client_sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    while not server.requests:
        time.sleep(0.01)
    _, took = timed(server.stop)
    client_sock.close()
    assert took < 1.0


def test_json_helper_compacts_like_go() -> None:
    with serve(reply_json({"a": "<b>"})) as (_, client):
        ex = client.get("/")
    assert json.loads(ex.body) == {"a": "<b>"} and ex.headers["content-length"] == str(len(ex.body))
