"""HTTP-level behaviour of the reference server: routing, methods, CORS, Host, encodings (§1-§5).

These are gin and net/http behaviours that clients and proxies notice: plain-text 404/405 with an
``Allow`` header, trailing-slash redirects, HEAD only where registered, the CORS and DNS-rebinding
guards, and byte-level JSON details (HTML escaping, no trailing newline, timestamp formats).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from conformance.reference import ReferenceConfig, RunningServer, start_background

UTC_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
LOCAL_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with start_background(ReferenceConfig(token_rate=0, load_time=0)) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def test_root_get_and_head(http: httpx.Client) -> None:
    response = http.get("/")
    assert (response.status_code, response.text) == (200, "Ollama is running")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    head = http.head("/")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == "17"
    assert "server" not in response.headers


@pytest.mark.parametrize("path", ["/api/version", "/api/tags"])
def test_head_registered_routes(http: httpx.Client, path: str) -> None:
    head = http.head(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == "application/json; charset=utf-8"


def test_version_body(http: httpx.Client) -> None:
    response = http.get("/api/version")
    assert response.content == b'{"version":"0.32.15"}'
    assert response.headers["content-type"] == "application/json; charset=utf-8"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/api/show", "POST"),
        ("GET", "/api/generate", "POST"),
        ("POST", "/api/tags", "HEAD, GET"),
        ("HEAD", "/api/ps", "GET"),
        ("POST", "/api/delete", "DELETE"),
        ("GET", f"/api/blobs/sha256:{'a' * 64}", "HEAD, POST"),
        ("OPTIONS", "/api/chat", "POST"),
        ("DELETE", "/", "HEAD, GET"),
    ],
)
def test_wrong_method_is_405_with_allow(
    http: httpx.Client, method: str, path: str, allow: str
) -> None:
    response = http.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.headers["content-type"] == "text/plain"
    if method != "HEAD":
        assert response.text == "405 method not allowed"


@pytest.mark.parametrize(
    "path", ["/api/nope", "/v2/tags", "/api/blobs/", "/api/blobs/a/b", "/API/TAGS"]
)
def test_unknown_route_is_plain_404(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    assert (response.status_code, response.text) == (404, "404 page not found")
    assert response.headers["content-type"] == "text/plain"


def test_trailing_slash_redirects(http: httpx.Client) -> None:
    get = http.get("/api/tags/?x=1")
    assert get.status_code == 301 and get.headers["location"] == "/api/tags?x=1"
    post = http.post("/api/generate/", json={})
    assert post.status_code == 307 and post.headers["location"] == "/api/generate"
    # No route with the other spelling for this method: plain 404.
    assert http.get("/api/generate/").status_code == 404


def test_old_release_answers_404_for_a_wrong_method() -> None:
    with start_background(ReferenceConfig(version="0.6.0", token_rate=0)) as old:
        response = httpx.get(old.url + "/api/show")
        assert (response.status_code, response.text) == (404, "404 page not found")
        assert "allow" not in response.headers


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost",
        "http://localhost:3000",
        "https://127.0.0.1:8443",
        "app://x",
        "vscode-webview://abc",
    ],
)
def test_allowed_origin_gets_cors_headers(http: httpx.Client, origin: str) -> None:
    response = http.get("/api/version", headers={"Origin": origin})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin
    assert "Origin" in response.headers.get_list("vary")
    preflight = http.options(
        "/api/chat", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204 and preflight.content == b""
    assert preflight.headers["access-control-max-age"] == "43200"
    assert "POST" in preflight.headers["access-control-allow-methods"]


@pytest.mark.parametrize("path", ["/api/version", "/api/nonexistent"])
def test_foreign_origin_is_403_everywhere(http: httpx.Client, path: str) -> None:
    response = http.get(path, headers={"Origin": "https://evil.example"})
    assert (response.status_code, response.content) == (403, b"")


def test_same_origin_is_not_cors(server: RunningServer, http: httpx.Client) -> None:
    host = f"127.0.0.1:{server.port}"
    response = http.get("/api/version", headers={"Origin": f"http://{host}"})
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    ("host", "status"),
    [("localhost", 200), ("127.0.0.1:1", 200), ("10.1.2.3", 200), ("box.local", 200),
     ("x.internal", 200), ("evil.example", 403), ("8.8.8.8", 403)],
)  # fmt: skip
def test_host_header_guard_on_loopback(http: httpx.Client, host: str, status: int) -> None:
    response = http.get("/api/version", headers={"Host": host})
    assert response.status_code == status
    if status == 403:
        assert response.content == b""


def test_options_for_named_host_is_204(http: httpx.Client) -> None:
    assert http.options("/api/chat", headers={"Host": "localhost"}).status_code == 204
    assert http.options("/api/chat").status_code == 405  # Host 127.0.0.1 falls through (§1.2)


def test_json_is_go_encoded(http: httpx.Client) -> None:
    show = http.post("/api/show", json={"model": "tiny-completion"})
    assert b"\\u003c|end|\\u003e" in show.content and b"<|end|>" not in show.content
    assert not show.content.endswith(b"\n")
    info = show.json()["model_info"]
    assert info["tokenizer.ggml.tokens"] is None  # arrays are null without verbose (§6)
    assert b'"llama.attention.layer_norm_rms_epsilon":0.00001' in show.content
    assert b'"llama.rope.freq_base":10000,' in show.content
    verbose = http.post("/api/show", json={"model": "tiny-completion", "verbose": True}).json()
    assert isinstance(verbose["model_info"]["tokenizer.ggml.tokens"], list)


def test_timestamps(http: httpx.Client) -> None:
    created = http.post(
        "/api/generate", json={"model": "tiny-completion", "prompt": "", "keep_alive": "1m"}
    ).json()["created_at"]
    assert UTC_STAMP.match(created)
    tags = http.get("/api/tags").json()["models"]
    assert all(LOCAL_STAMP.match(m["modified_at"]) for m in tags)
    ps = http.get("/api/ps").json()["models"]
    assert ps and all(LOCAL_STAMP.match(m["expires_at"]) for m in ps)


def test_tags_listing(http: httpx.Client) -> None:
    models = http.get("/api/tags").json()["models"]
    names = [m["name"] for m in models]
    assert {"tiny-completion:latest", "tiny-embed:latest", "tiny-tools:latest"} <= set(names)
    stamps = [m["modified_at"] for m in models]
    assert all(re.fullmatch(r"[0-9a-f]{64}", m["digest"]) for m in models)
    assert stamps == sorted(stamps, reverse=True) or len({s[:19] for s in stamps}) > 1
    entry = next(m for m in models if m["name"] == "tiny-tools:latest")
    assert entry["capabilities"] == ["completion", "tools"]
    assert set(entry["details"]) >= {"parent_model", "format", "family", "families"}


def test_streams_are_ndjson(http: httpx.Client) -> None:
    with http.stream(
        "POST", "/api/generate", json={"model": "tiny-completion", "prompt": "a"}
    ) as r:
        assert r.headers["content-type"] == "application/x-ndjson"
        raw = r.read()
    assert raw.endswith(b"\n")
    lines = [json.loads(line) for line in raw.splitlines()]
    assert [line["done"] for line in lines].count(True) == 1 and lines[-1]["done"] is True
    assert all("total_duration" not in line for line in lines[:-1])


def test_stream_false_create_pull_push_are_plain_json(http: httpx.Client) -> None:
    for path, body in [
        ("/api/create", {"model": "copy-of-tiny", "from": "tiny-completion", "stream": False}),
        ("/api/pull", {"model": "tiny-insert", "stream": False}),
        ("/api/push", {"model": "tiny-insert", "stream": False}),
    ]:
        response = http.post(path, json=body)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"  # §18.4
        assert response.json() == {"status": "success"}


def test_crash_is_a_bare_500(
    server: RunningServer, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conformance.reference import handlers_models

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(handlers_models, "_tags_entry", boom)
    response = http.get("/api/tags")
    assert (response.status_code, response.content) == (500, b"")
    assert http.get("/api/version").status_code == 200
