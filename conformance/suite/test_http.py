"""HTTP plumbing every Ollama client relies on: routing, methods, body parsing, CORS and Host rules.

Clients (and the proxies in front of servers) depend on these details more than on any single
endpoint: a 405 instead of a 404 tells a client it used the wrong verb, a JSON error for a bad body
tells it what was wrong, and the CORS and Host rules decide whether a browser page can reach the
server at all. The routing facts are gin's (Ollama's router); the body facts are Go's JSON decoder,
whose error wording Ollama passes through.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from conformance.client import Client
from conformance.exchange import Exchange
from conformance.suite import scratch
from conformance.suite.scratch import ABSENT_MODEL, ScratchModels, expect_error
from conformance.target import Target, is_scratch_model
from conformance.verdict import (
    assume,
    assume_json_object,
    assume_status,
    check,
    expect_content_type,
    expect_json_object,
    expect_status,
    not_implemented_if_missing,
)

UNKNOWN_ROUTE = "/api/conformance-no-such-route"
NOT_FOUND_TEXT = b"404 page not found"
NOT_ALLOWED_TEXT = b"405 method not allowed"
#: A well-formed blob digest nobody holds (only the route matters for the method checks).
ANY_DIGEST = "sha256:" + "0" * 64
#: In Ollama's built-in CORS allow-list (``http://localhost`` and its ports).
ALLOWED_ORIGIN = "http://localhost"
#: ``.invalid`` can never be a real host, so no operator has allowed it on purpose.
FOREIGN = "conformance.invalid"
#: Bounded generation: a few tokens, deterministic.
SHORT = {"num_predict": 3, "temperature": 0, "seed": 42}


@pytest.fixture(autouse=True, scope="module")
def _audited(request: pytest.FixtureRequest, client: Client, target: Target) -> scratch.Audit:
    """Take the safety snapshot before this module can change anything (see scratch.audit)."""
    return scratch.audit(request.config, client, target)


@pytest.fixture
def scratch_models(
    request: pytest.FixtureRequest, client: Client, api_version: str
) -> Iterator[ScratchModels]:
    """Scratch models for one test, deleted when it ends (pass or fail)."""
    models = ScratchModels(client, request.config, api_version)
    yield models
    models.close()


def _allow(exchange: Exchange) -> set[str]:
    """The methods of the ``Allow`` header, upper-case."""
    raw = exchange.headers.get("allow") or ""
    return {m.strip().upper() for m in raw.split(",") if m.strip()}


def _installed_model(target: Target) -> str | None:
    """A model the target already has (the completion model if any): safe to read, never changed."""
    chosen = target.model_for("completion") or target.model_for("embedding")
    if chosen:
        return chosen
    for model in target.models:
        if not model.is_cloud and not is_scratch_model(model.name):
            return model.name
    return None


# --------------------------------------------------------------------------------------------
# Unknown routes and wrong methods


@pytest.mark.requirement("http.route.unknown-404")
def test_unknown_route_answers_404(client: Client) -> None:
    expect_status(client.get(UNKNOWN_ROUTE), 404)


@pytest.mark.requirement("http.route.unknown-body")
def test_unknown_route_body_is_gin_text(client: Client) -> None:
    exchange = client.get(UNKNOWN_ROUTE)
    assume_status(exchange, 404)
    check(
        exchange.body == NOT_FOUND_TEXT,
        expected=f"body {NOT_FOUND_TEXT.decode()!r}",
        actual=f"body {exchange.text_preview(120)!r}",
        exchange=exchange,
    )
    expect_content_type(exchange, "text/plain")


def _expect_405(exchange: Exchange, *methods: str, body: bool = True) -> None:
    """405 (a wrong method is not a missing endpoint), the text body, and Allow listing methods."""
    __tracebackhide__ = True
    expect_status(exchange, 405, missing_is_not_implemented=False)
    if body:
        check(
            exchange.body == NOT_ALLOWED_TEXT,
            expected=f"body {NOT_ALLOWED_TEXT.decode()!r}",
            actual=f"body {exchange.text_preview(120)!r}",
            exchange=exchange,
        )
    allowed = _allow(exchange)
    check(
        set(methods) <= allowed,
        expected="an Allow header listing " + " and ".join(methods),
        actual=f"Allow: {exchange.headers.get('allow')!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("http.method.wrong-405")
def test_get_show_answers_405(client: Client) -> None:
    _expect_405(client.get("/api/show"), "POST")


@pytest.mark.requirement("http.method.wrong-405.pre-0-6-9-rc0")
def test_get_show_answers_404_before_0_6_9(client: Client) -> None:
    exchange = client.get("/api/show")
    expect_status(exchange, 404)
    check(
        exchange.body == NOT_FOUND_TEXT,
        expected=f"body {NOT_FOUND_TEXT.decode()!r}",
        actual=f"body {exchange.text_preview(120)!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("http.method.delete-only")
def test_post_delete_answers_405_and_keeps_the_model(
    client: Client, scratch_models: ScratchModels
) -> None:
    name = scratch_models.model()
    exchange = client.post("/api/delete", json={"model": name})
    _expect_405(exchange, "DELETE", body=False)
    show = client.post("/api/show", json={"model": name})
    check(
        show.status == 200,
        expected=f"{name} still installed after the refused POST (/api/show 200)",
        actual=f"/api/show answered {show.status}",
        exchange=show,
    )


@pytest.mark.requirement("http.method.generate-post-only")
def test_get_generate_answers_405(client: Client) -> None:
    _expect_405(client.get("/api/generate"), "POST", body=False)


@pytest.mark.requirement("http.method.chat-post-only")
def test_get_chat_answers_405(client: Client) -> None:
    _expect_405(client.get("/api/chat"), "POST", body=False)


@pytest.mark.requirement("http.method.ps-no-head")
def test_head_ps_answers_405(client: Client) -> None:
    expect_status(client.head("/api/ps"), 405, missing_is_not_implemented=False)


@pytest.mark.requirement("http.method.tags-get-only")
def test_post_tags_answers_405(client: Client) -> None:
    _expect_405(client.post("/api/tags"), "GET", "HEAD", body=False)


@pytest.mark.requirement("http.method.blobs-no-get")
def test_get_blob_answers_405(client: Client) -> None:
    _expect_405(client.get(f"/api/blobs/{ANY_DIGEST}"), "HEAD", "POST", body=False)


# --------------------------------------------------------------------------------------------
# Trailing slashes (the client never follows redirects, so the redirect itself is seen)


@pytest.mark.requirement("http.trailing-slash.get")
def test_trailing_slash_get_redirects_301(client: Client) -> None:
    exchange = client.get("/api/tags/")
    expect_status(exchange, 301, missing_is_not_implemented=False)
    location = exchange.headers.get("location")
    check(
        location == "/api/tags",
        expected="Location: /api/tags",
        actual=f"Location: {location!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("http.trailing-slash.post")
def test_trailing_slash_post_redirects_307(client: Client) -> None:
    exchange = client.post("/api/show/", json={"model": ABSENT_MODEL})
    expect_status(exchange, 307, missing_is_not_implemented=False)
    location = exchange.headers.get("location")
    check(
        location == "/api/show",
        expected="Location: /api/show",
        actual=f"Location: {location!r}",
        exchange=exchange,
    )


# --------------------------------------------------------------------------------------------
# Content types


@pytest.mark.requirement("http.content-type.request-ignored")
@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain"])
def test_request_content_type_is_ignored(client: Client, target: Target, content_type: str) -> None:
    model = _installed_model(target) or ABSENT_MODEL
    body = f'{{"model":"{model}"}}'.encode()
    reference = client.post("/api/show", json={"model": model})
    assume(reference.complete, f"the application/json request got no answer: {reference.problem}")
    other = client.post("/api/show", content=body, headers={"Content-Type": content_type})
    ref_value, _ = reference.json()
    value, error = other.json()
    check(
        other.status == reference.status and value == ref_value,
        expected=f"the same answer as with application/json: status {reference.status}, "
        f"body {reference.text_preview(80)!r}",
        actual=f"status {other.status}, body "
        + (repr(other.text_preview(80)) if error is None else error),
        exchange=other,
    )


def _json_answers() -> list[object]:
    """Requests whose non-streamed answers are JSON (successes and errors)."""

    def show(client: Client, target: Target, model_for: Callable[[str], str]) -> Exchange:
        model = _installed_model(target)
        assume(model is not None, "the target has no installed model to show")
        return client.post("/api/show", json={"model": model})

    def generate(client: Client, target: Target, model_for: Callable[[str], str]) -> Exchange:
        body = {
            "model": model_for("completion"),
            "prompt": "a",
            "raw": True,
            "stream": False,
            "options": SHORT,
        }
        return client.post("/api/generate", json=body)

    def chat(client: Client, target: Target, model_for: Callable[[str], str]) -> Exchange:
        body = {
            "model": model_for("completion"),
            "messages": [{"role": "user", "content": "a"}],
            "stream": False,
            "options": SHORT,
        }
        return client.post("/api/chat", json=body)

    def embed(client: Client, target: Target, model_for: Callable[[str], str]) -> Exchange:
        return client.post("/api/embed", json={"model": model_for("embedding"), "input": "a"})

    def embeddings(client: Client, target: Target, model_for: Callable[[str], str]) -> Exchange:
        return client.post("/api/embeddings", json={"model": model_for("embedding"), "prompt": "a"})

    cases: list[tuple[str, Callable[[Client, Target, Callable[[str], str]], Exchange]]] = [
        ("version", lambda c, t, m: c.get("/api/version")),
        ("tags", lambda c, t, m: c.get("/api/tags")),
        ("ps", lambda c, t, m: c.get("/api/ps")),
        ("show", show),
        ("generate", generate),
        ("chat", chat),
        ("embed", embed),
        ("embeddings", embeddings),
        ("error-404", lambda c, t, m: c.post("/api/show", json={"model": ABSENT_MODEL})),
        ("error-400", lambda c, t, m: c.post("/api/generate", content=b"")),
    ]
    return [pytest.param(fn, id=name) for name, fn in cases]


@pytest.mark.requirement("http.content-type.json-response")
@pytest.mark.parametrize("send", _json_answers())
def test_json_answers_declare_application_json(
    client: Client,
    target: Target,
    model_for: Callable[[str], str],
    send: Callable[[Client, Target, Callable[[str], str]], Exchange],
) -> None:
    exchange = send(client, target, model_for)
    assume(exchange.complete, f"no complete answer: {exchange.problem}")
    not_implemented_if_missing(exchange)
    value, _ = exchange.json()
    assume(value is not None, "the answer is not JSON (judged by the endpoint's own requirements)")
    expect_content_type(exchange, "application/json")


# --------------------------------------------------------------------------------------------
# Request bodies


@pytest.mark.requirement("http.body.unknown-fields")
def test_unknown_fields_are_ignored(client: Client, model_for: Callable[[str], str]) -> None:
    body = {
        "model": model_for("completion"),
        "prompt": "a",
        "raw": True,
        "stream": False,
        "options": SHORT,
    }
    plain = client.post("/api/generate", json=body)
    assume_status(plain, 200)
    plain_value = assume_json_object(plain)
    extended = client.post("/api/generate", json={**body, "conformance_unknown": 1})
    check(
        extended.status == plain.status,
        expected=f"status {plain.status}, as without the unknown field",
        actual=f"status {extended.status}; body {extended.text_preview(120)!r}",
        exchange=extended,
    )
    value = expect_json_object(extended)
    check(
        set(value) == set(plain_value),
        expected=f"the same fields as without it: {sorted(plain_value)}",
        actual=f"fields {sorted(value)}",
        exchange=extended,
    )


def _missing(method: str, path: str, requirement: Any) -> Any:
    return pytest.param(method, path, id=path.rsplit("/", 1)[-1], marks=requirement)


#: One case per endpoint, each with its own requirement (written out so tools can find them).
MISSING_BODY_CASES = [
    _missing("POST", "/api/generate", pytest.mark.requirement("http.body.missing.generate")),
    _missing("POST", "/api/chat", pytest.mark.requirement("http.body.missing.chat")),
    _missing("POST", "/api/embed", pytest.mark.requirement("http.body.missing.embed")),
    _missing("POST", "/api/embeddings", pytest.mark.requirement("http.body.missing.embeddings")),
    _missing("POST", "/api/show", pytest.mark.requirement("http.body.missing.show")),
    _missing("POST", "/api/create", pytest.mark.requirement("http.body.missing.create")),
    _missing("POST", "/api/copy", pytest.mark.requirement("http.body.missing.copy")),
    _missing("DELETE", "/api/delete", pytest.mark.requirement("http.body.missing.delete")),
    _missing("POST", "/api/pull", pytest.mark.requirement("http.body.missing.pull")),
    _missing("POST", "/api/push", pytest.mark.requirement("http.body.missing.push")),
]


@pytest.mark.parametrize(("method", "path"), MISSING_BODY_CASES)
def test_empty_body_is_missing_request_body(client: Client, method: str, path: str) -> None:
    # Every parameter carries its own requirement marker (http.body.missing.<endpoint>).
    before = scratch.tags_by_name(client.get("/api/tags"))
    exchange = client.request(method, path, content=b"")
    expect_error(exchange, 400, "missing request body")
    if path in ("/api/create", "/api/delete") and before is not None:
        listed = scratch.tags_by_name(client.get("/api/tags"))
        assume(listed is not None, "/api/tags gave no model list after the request")
        after = listed or {}
        check(
            set(after) == set(before),
            expected="the installed models unchanged",
            actual=f"added {scratch.names_in(set(after) - set(before))}, "
            f"removed {scratch.names_in(set(before) - set(after))}",
            exchange=exchange,
        )


MALFORMED = [pytest.param(b'{"model":', id="cut-short"), pytest.param(b"hello", id="not-json")]


@pytest.mark.requirement("http.body.malformed")
@pytest.mark.parametrize("body", MALFORMED)
def test_malformed_json_answers_400_error(client: Client, body: bytes) -> None:
    expect_error(client.post("/api/generate", content=body), 400)


@pytest.mark.requirement("http.body.malformed-message")
@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b'{"model":', "unexpected EOF", id="cut-short"),
        pytest.param(b"hello", "invalid character 'h' looking for beginning of value", id="hello"),
    ],
)
def test_malformed_json_message_is_go_decoder_wording(
    client: Client, body: bytes, message: str
) -> None:
    exchange = client.post("/api/generate", content=body)
    assume_status(exchange, 400)
    expect_error(exchange, 400, message)


@pytest.mark.requirement("http.body.not-object")
def test_array_body_answers_400(client: Client) -> None:
    expect_error(client.post("/api/chat", content=b"[]"), 400)


@pytest.mark.requirement("http.body.wrong-type")
def test_wrong_field_type_answers_400_before_lookup(client: Client) -> None:
    # The model does not exist: a 404 would mean the server looked it up before decoding.
    exchange = client.post("/api/generate", json={"model": ABSENT_MODEL, "prompt": 1})
    expect_error(exchange, 400)


@pytest.mark.requirement("http.body.wrong-type-message")
def test_wrong_field_type_message_is_go_decoder_wording(client: Client) -> None:
    exchange = client.post("/api/generate", json={"model": "x", "prompt": 1})
    assume_status(exchange, 400)
    expect_error(
        exchange,
        400,
        "json: cannot unmarshal number into Go struct field GenerateRequest.prompt of type string",
    )


# --------------------------------------------------------------------------------------------
# CORS and the Host guard


@pytest.mark.requirement("http.cors.allowed-origin")
def test_allowed_origin_gets_cors_headers(client: Client) -> None:
    exchange = client.get("/api/version", headers={"Origin": ALLOWED_ORIGIN})
    expect_status(exchange, 200)
    allow_origin = exchange.headers.get("access-control-allow-origin")
    vary = exchange.headers.get("vary") or ""
    check(
        allow_origin == ALLOWED_ORIGIN and "origin" in vary.lower(),
        expected=f"Access-Control-Allow-Origin: {ALLOWED_ORIGIN} and a Vary header naming Origin",
        actual=f"Access-Control-Allow-Origin: {allow_origin!r}, Vary: {vary!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("http.cors.preflight")
def test_cors_preflight_answers_204(client: Client) -> None:
    exchange = client.request(
        "OPTIONS",
        "/api/chat",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    expect_status(exchange, 204, missing_is_not_implemented=False)
    allow_methods = exchange.headers.get("access-control-allow-methods")
    allow_headers = exchange.headers.get("access-control-allow-headers")
    methods = {m.strip().upper() for m in (allow_methods or "").split(",")}
    headers = {h.strip().lower() for h in (allow_headers or "").split(",")}
    check(
        "POST" in methods and "content-type" in headers,
        expected="Access-Control-Allow-Methods with POST and Access-Control-Allow-Headers with "
        "Content-Type",
        actual=f"Access-Control-Allow-Methods: {allow_methods!r}, "
        f"Access-Control-Allow-Headers: {allow_headers!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("http.cors.foreign-origin")
def test_foreign_origin_is_refused(client: Client) -> None:
    origin = f"http://{FOREIGN}"
    exchange = client.get("/api/version", headers={"Origin": origin})
    allowed = exchange.headers.get("access-control-allow-origin")
    assume(
        not (exchange.status == 200 and allowed in (origin, "*")),
        f"the server allows {origin} explicitly (OLLAMA_ORIGINS widened by its operator)",
    )
    expect_status(exchange, 403, missing_is_not_implemented=False)
    check(
        exchange.body == b"",
        expected="status 403 with an empty body",
        actual=f"body {exchange.text_preview(120)!r}",
        exchange=exchange,
    )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@pytest.mark.requirement("http.host.foreign")
def test_foreign_host_header_is_refused(client: Client) -> None:
    url = httpx.URL(client.base_url)
    assume(
        _is_loopback(url.host),
        f"the target is reached at {url.host}, not a loopback address; the guard only acts there",
    )
    exchange = client.get("/api/version", headers={"Host": FOREIGN})
    check(
        exchange.status == 403 and exchange.body == b"",
        expected=f"status 403 with an empty body for Host: {FOREIGN} (the DNS-rebinding guard; "
        "a server listening on a non-loopback address, e.g. OLLAMA_HOST=0.0.0.0, has it off)",
        actual=f"status {exchange.status}; body {exchange.text_preview(120)!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("http.host.localhost")
def test_localhost_host_header_is_served(client: Client) -> None:
    url = httpx.URL(client.base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    exchange = client.get("/api/version", headers={"Host": f"localhost:{port}"})
    expect_status(exchange, 200)
