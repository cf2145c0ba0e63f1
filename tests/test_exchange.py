"""Exchange, StreamLine and curl rendering: pure data, no network (except one curl replay)."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess

import httpx
import pytest
from fakeserver import Conn, Request, ScriptedServer

from conformance.curl import curl_command
from conformance.exchange import Exchange, StreamLine, parse_json


def make(**kw: object) -> Exchange:
    base: dict[str, object] = {"method": "POST", "url": "http://h:1/api/x", "path": "/api/x"}
    base.update(kw)
    return Exchange(**base)  # type: ignore[arg-type]


def line(raw: bytes, at: float) -> StreamLine:
    value, error = parse_json(raw) if raw else (None, "empty line")
    return StreamLine(raw=raw, at=at, value=value, parse_error=error)


# -- parse_json / json() ------------------------------------------------------------------------


def test_parse_json_accepts_json() -> None:
    assert parse_json(b'{"a":[1,2.5,null]}') == ({"a": [1, 2.5, None]}, None)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty body"),
        (b"<html>oops</html>", "<html>oops"),
        (b'{"a":1}\n{"b":2}\n', "Extra data"),
        (b"NaN", "NaN"),
        (b'{"x": Infinity}', "Infinity"),
        (b"\xff garbage", "UnicodeDecodeError"),
        ('{"a":1}'.encode("utf-16"), "UnicodeDecodeError"),
        (b'\xef\xbb\xbf{"a":1}', "BOM"),
        (b"[" * 100_000, "not JSON"),
        (b"1" * 10_000, "not JSON"),
    ],
)
def test_parse_json_reports_errors_without_raising(data: bytes, fragment: str) -> None:
    value, error = parse_json(data)
    assert value is None
    assert error is not None and fragment in error


def test_json_error_names_first_bytes() -> None:
    _, error = make(status=200, body=b"Internal Server Error: stack trace ...").json()
    assert error is not None and "Internal Server Error" in error


def test_json_without_response_mentions_transport_error() -> None:
    _, error = make(error="connection refused: http://h:1/api/x").json()
    assert error == "no body: connection refused: http://h:1/api/x"


# -- classification ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "media", "ndjson"),
    [
        ("application/x-ndjson", "application/x-ndjson", True),
        ("Application/X-NDJSON; charset=utf-8", "application/x-ndjson", True),
        ("application/json; charset=utf-8", "application/json", False),
        (None, "", False),
    ],
)
def test_content_type(header: str | None, media: str, ndjson: bool) -> None:
    headers = httpx.Headers({"Content-Type": header} if header else {})
    ex = make(headers=headers)
    assert ex.content_type == media
    assert ex.is_ndjson is ndjson


def test_stream_views() -> None:
    ex = make(
        status=200,
        lines=[
            line(b'{"response":"a","done":false}', 0.1),
            line(b"garbage", 0.15),
            line(b'{"error":"boom"}', 0.3),
            line(b'{"response":"","done":true,"eval_count":1}', 0.6),
            line(b"", 0.7),
        ],
    )
    assert ex.values == [
        {"response": "a", "done": False},
        {"error": "boom"},
        {"response": "", "done": True, "eval_count": 1},
    ]
    assert ex.final == {"response": "", "done": True, "eval_count": 1}
    assert ex.error_lines == [{"error": "boom"}]
    assert [pl.raw for pl in ex.parse_errors] == [b"garbage", b""]
    assert ex.gaps == pytest.approx([0.05, 0.15, 0.3, 0.1])
    assert ex.complete


def test_final_needs_done_true_exactly() -> None:
    ex = make(lines=[line(b'{"done":false}', 0.1), line(b'{"done":"true"}', 0.2)])
    assert ex.final is None
    assert ex.gaps == pytest.approx([0.1])
    assert make().gaps == []


def test_problem_and_complete() -> None:
    assert make().problem is None
    assert not make().complete  # no status: nothing arrived
    assert make(status=200, error="ReadTimeout after 30.0 s").problem == "ReadTimeout after 30.0 s"
    ex = make(status=200, bound="max_gap", truncated=True)
    assert ex.problem == "max_gap exceeded"
    assert not ex.complete


def test_text_preview() -> None:
    assert make(body=b"hello").text_preview() == "hello"
    assert make(body=b"x" * 300).text_preview(10) == "x" * 10 + "…"
    assert make(body=b"\xff ok").text_preview() == "\\xff ok"


# -- curl ---------------------------------------------------------------------------------------

SENT_HEADERS = {
    "Host": "127.0.0.1:11434",
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate",
    "Connection": "keep-alive",
    "User-Agent": "ollama-conformance/0.1.0",
    "Content-Type": "application/json",
    "Content-Length": "40",
}


def test_curl_post_json_round_trips_through_shlex() -> None:
    body = b'{"model":"llama3.2","prompt":"it\'s \\"ok\\"\\n$HOME `x`"}'
    cmd = curl_command("POST", "http://127.0.0.1:11434/api/generate", SENT_HEADERS, body)
    assert shlex.split(cmd) == [
        "curl",
        "http://127.0.0.1:11434/api/generate",
        "-H",
        "User-Agent: ollama-conformance/0.1.0",
        "-H",
        "Content-Type: application/json",
        "-d",
        body.decode(),
    ]


def test_curl_get_has_no_method_flag() -> None:
    assert curl_command("GET", "http://h:1/api/tags", {}, None) == "curl http://h:1/api/tags"
    assert curl_command("get", "http://h:1/api/tags", {}, b"") == "curl http://h:1/api/tags"


def test_curl_head_uses_dash_i() -> None:
    assert shlex.split(curl_command("HEAD", "http://h:1/", {}, None)) == [
        "curl",
        "-I",
        "http://h:1/",
    ]


def test_curl_delete_with_body_and_post_without() -> None:
    words = shlex.split(
        curl_command("DELETE", "http://h:1/api/delete", {"Content-Type": "application/json"}, b"{}")
    )
    assert words[:3] == ["curl", "-X", "DELETE"]
    assert words[-2:] == ["-d", "{}"]
    assert shlex.split(curl_command("POST", "http://h:1/api/pull", {}, None))[:3] == [
        "curl",
        "-X",
        "POST",
    ]


def test_curl_without_content_type_removes_curls_default() -> None:
    words = shlex.split(curl_command("POST", "http://h:1/api/chat", {}, b"{bad json"))
    assert words[-4:] == ["-H", "Content-Type:", "-d", "{bad json"]


def test_curl_body_starting_with_at_is_raw() -> None:
    words = shlex.split(
        curl_command("POST", "http://h:1/x", {"Content-Type": "text/plain"}, b"@etc")
    )
    assert words[-2:] == ["--data-raw", "@etc"]


def test_curl_binary_body_reads_stdin_with_note() -> None:
    body = bytes(range(256))
    cmd = curl_command("POST", "http://h:1/api/blobs/sha256:ab", {}, body)
    assert "# body on stdin: 256 bytes, sha256:" in cmd
    words = shlex.split(cmd, comments=True)
    assert words[-2:] == ["--data-binary", "@-"]
    large = curl_command("POST", "http://h:1/x", {}, b"a" * 100, max_inline=10)
    assert "--data-binary @-" in large


def test_curl_globs_are_disabled_for_brackets() -> None:
    words = shlex.split(curl_command("GET", "http://[::1]:11434/api/tags", {}, None))
    assert words == ["curl", "-g", "http://[::1]:11434/api/tags"]


def test_exchange_curl_uses_recorded_request() -> None:
    ex = make(
        request_headers={"Content-Type": "application/json"},
        request_body=b'{"model":"m"}',
    )
    assert (
        ex.curl()
        == "curl http://h:1/api/x -H 'Content-Type: application/json' -d '{\"model\":\"m\"}'"
    )


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_command_replays_the_same_request() -> None:
    """The rendered command, run by a real shell and curl, sends the same body and headers."""

    async def handler(request: Request, conn: Conn) -> None:
        await conn.json({"ok": True})

    body = '{"prompt":"it\'s $HOME `id` \\n ünï"}'.encode()
    headers = {"Content-Type": "application/json", "X-Probe": "a b'c"}
    with ScriptedServer(handler) as server:
        cmd = curl_command("POST", server.url + "/api/generate?x=1", headers, body)
        subprocess.run(["bash", "-c", cmd + " -s -o /dev/null"], check=True, timeout=10)
    server.assert_no_errors()
    (seen,) = server.requests
    assert (seen.method, seen.target, seen.body) == ("POST", "/api/generate?x=1", body)
    assert seen.header("X-Probe") == "a b'c"
    assert seen.header("Content-Type") == "application/json"


# -- to_dict -----------------------------------------------------------------------------------


def test_to_dict_is_json_serialisable_and_truncates() -> None:
    lines = [line(b'{"i":%d}' % i, i / 100) for i in range(250)]
    ex = make(
        request_headers={"Content-Type": "application/json"},
        request_json={"t": (1, 2), "b": b"x"},
        request_body=b"\x00\xff",
        status=200,
        headers=httpx.Headers({"Content-Type": "application/x-ndjson"}),
        body=b"\xff" + b"a" * 10_000,
        lines=lines,
        bound="total_timeout",
        bound_detail="total_timeout: exchange still running after 1.0 s",
        truncated=True,
    )
    d = ex.to_dict(max_body=100, max_lines=20)
    text = json.dumps(d, allow_nan=False)
    assert "truncated: 9901 more bytes" in d["body"]
    assert d["body"].startswith("\\xff")
    assert d["body_bytes"] == 10_001
    assert d["line_count"] == 250
    assert len(d["lines"]) == 21
    assert d["lines"][10] == {"omitted_lines": 230}
    assert d["lines"][-1]["raw"] == '{"i":249}'
    assert d["request_json"] == {"t": [1, 2], "b": "b'x'"}
    assert d["headers"] == {"content-type": "application/x-ndjson"}
    assert d["curl"].startswith("curl http://h:1/api/x") and "--data-binary @-" in d["curl"]
    assert json.loads(text)["bound"] == "total_timeout"


def test_to_dict_of_failed_exchange() -> None:
    d = make(error="connection refused: http://h:1/api/x").to_dict()
    assert d["status"] is None and d["body"] == "" and d["lines"] == []
    assert json.loads(json.dumps(d, allow_nan=False))["error"].startswith("connection refused")
