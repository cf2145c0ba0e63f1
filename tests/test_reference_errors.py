"""Every status code and error string of the reference facts, for the newest emulated release.

One row per fact, with the section of ``ollama-behaviour.md`` it comes from; the reference
server must answer exactly that status with exactly that ``{"error": ...}`` text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conformance.reference import ReferenceConfig, RunningServer, start_background

JSON_UTF8 = "application/json; charset=utf-8"
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
MISSING_DIGEST = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with start_background(ReferenceConfig(token_rate=0, load_time=0)) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def _gen(**fields: Any) -> dict[str, Any]:
    return {"model": "tiny-completion", "prompt": "hi", "stream": False, **fields}


def _chat(**fields: Any) -> dict[str, Any]:
    msgs = [{"role": "user", "content": "hi"}]
    return {"model": "tiny-completion", "messages": msgs, "stream": False, **fields}


# (id, method, path, body, status, error text); body: dict → JSON, bytes → raw.
CASES: list[tuple[str, str, str, Any, int, str]] = [
    # §1.3 body binding (Go encoding/json messages)
    ("empty-body", "POST", "/api/generate", b"", 400, "missing request body"),
    ("whitespace-body", "POST", "/api/chat", b" \n\t", 400, "missing request body"),
    ("truncated", "POST", "/api/generate", b'{"model":', 400, "unexpected EOF"),
    (
        "bad-first-char",
        "POST",
        "/api/generate",
        b"hello",
        400,
        "invalid character 'h' looking for beginning of value",
    ),
    (
        "trailing-comma",
        "POST",
        "/api/generate",
        b'{"a":1,}',
        400,
        "invalid character '}' looking for beginning of object key string",
    ),
    (
        "array-body",
        "POST",
        "/api/generate",
        b"[]",
        400,
        "json: cannot unmarshal array into Go value of type api.GenerateRequest",
    ),
    (
        "wrong-type",
        "POST",
        "/api/generate",
        b'{"prompt": 1}',
        400,
        "json: cannot unmarshal number into Go struct field GenerateRequest.prompt of type string",
    ),
    (
        "bad-base64",
        "POST",
        "/api/generate",
        _gen(images=["!!"]),
        400,
        "illegal base64 data at input byte 0",
    ),
    (
        "data-url-image",
        "POST",
        "/api/generate",
        _gen(images=["data:image/png;base64,AAAA"]),
        400,
        "illegal base64 data at input byte 4",
    ),
    (
        "options-not-object",
        "POST",
        "/api/generate",
        _gen(options=[1]),
        400,
        "json: cannot unmarshal array into Go struct field GenerateRequest.options of type "
        "map[string]interface {}",
    ),
    ("null-body-generate", "POST", "/api/generate", b"null", 404, "model '' not found"),
    ("null-body-chat", "POST", "/api/chat", b"null", 400, "model is required"),
    # §7.3 generate
    (
        "top-logprobs-high",
        "POST",
        "/api/generate",
        _gen(top_logprobs=21),
        400,
        "top_logprobs must be between 0 and 20",
    ),
    (
        "top-logprobs-low",
        "POST",
        "/api/generate",
        _gen(model="nope", top_logprobs=-1),
        400,
        "top_logprobs must be between 0 and 20",
    ),
    ("gen-empty-model", "POST", "/api/generate", _gen(model=""), 404, "model '' not found"),
    (
        "gen-invalid-name",
        "POST",
        "/api/generate",
        _gen(model="bad name!"),
        400,
        "invalid model name",
    ),
    ("gen-not-found", "POST", "/api/generate", _gen(model="nope"), 404, "model 'nope' not found"),
    (
        "gen-raw-system",
        "POST",
        "/api/generate",
        _gen(raw=True, system="s"),
        400,
        "raw mode does not support template, system, or context",
    ),
    (
        "gen-raw-context",
        "POST",
        "/api/generate",
        _gen(raw=True, context=[1, 2]),
        400,
        "raw mode does not support template, system, or context",
    ),
    (
        "gen-think-unsupported",
        "POST",
        "/api/generate",
        _gen(think=True),
        400,
        '"tiny-completion" does not support thinking',
    ),
    (
        "gen-think-level-unsupported",
        "POST",
        "/api/generate",
        _gen(think="high"),
        400,
        '"tiny-completion" does not support thinking',
    ),
    (
        "gen-embedding-model",
        "POST",
        "/api/generate",
        _gen(model="tiny-embed"),
        400,
        '"tiny-embed" does not support generate',
    ),
    (
        "gen-bad-template",
        "POST",
        "/api/generate",
        _gen(template="{{ .Prompt"),
        500,
        "template: :1: unclosed action",
    ),
    (
        "gen-suffix-without-insert",
        "POST",
        "/api/generate",
        _gen(suffix="x"),
        400,
        "registry.ollama.ai/library/tiny-completion:latest does not support insert",
    ),
    # §19.1 option types: 500, after the model lookup
    (
        "stop-string",
        "POST",
        "/api/generate",
        _gen(options={"stop": "x"}),
        500,
        'option "stop" must be of type array',
    ),
    (
        "stop-numbers",
        "POST",
        "/api/generate",
        _gen(options={"stop": [1]}),
        500,
        'option "stop" must be of an array of strings',
    ),
    (
        "temperature-string",
        "POST",
        "/api/generate",
        _gen(options={"temperature": "hot"}),
        500,
        'option "temperature" must be of type float32',
    ),
    (
        "num-predict-bool",
        "POST",
        "/api/generate",
        _gen(options={"num_predict": True}),
        500,
        'option "num_predict" must be of type integer',
    ),
    (
        "use-mmap-number",
        "POST",
        "/api/chat",
        _chat(options={"use_mmap": 1}),
        500,
        'option "use_mmap" must be of type boolean',
    ),
    (
        "option-error-after-lookup",
        "POST",
        "/api/generate",
        _gen(model="nope", options={"stop": "x"}),
        404,
        "model 'nope' not found",
    ),
    # §19.3 format: rejected by the runner after loading → 500
    (
        "format-xml",
        "POST",
        "/api/generate",
        _gen(format="xml"),
        500,
        'invalid format: "\\"xml\\""; expected "json" or a valid JSON Schema object',
    ),
    (
        "format-number-chat",
        "POST",
        "/api/chat",
        _chat(format=1),
        500,
        'invalid format: "1"; expected "json" or a valid JSON Schema object',
    ),
    # §19.2 keep_alive
    (
        "keep-alive-no-unit",
        "POST",
        "/api/generate",
        _gen(keep_alive="10"),
        400,
        'time: missing unit in duration "10"',
    ),
    (
        "keep-alive-garbage",
        "POST",
        "/api/generate",
        _gen(keep_alive="abc"),
        400,
        'time: invalid duration "abc"',
    ),
    (
        "keep-alive-unknown-unit",
        "POST",
        "/api/generate",
        _gen(keep_alive="10x"),
        400,
        'time: unknown unit "x" in duration "10x"',
    ),
    (
        "keep-alive-bool",
        "POST",
        "/api/chat",
        _chat(keep_alive=True),
        400,
        "Unsupported type: 'bool'",
    ),
    # §19.4 think values (0.32 wording, with "max")
    (
        "think-bad-string",
        "POST",
        "/api/generate",
        _gen(think="foo"),
        400,
        'invalid think value: "foo" (must be "high", "medium", "low", "max", true, or false)',
    ),
    (
        "think-bad-type",
        "POST",
        "/api/chat",
        _chat(think=5),
        400,
        'think must be a boolean or string ("high", "medium", "low", "max", true, or false)',
    ),
    # §8.3 chat
    ("chat-empty-model", "POST", "/api/chat", _chat(model=""), 400, "model is required"),
    ("chat-invalid-name", "POST", "/api/chat", _chat(model="a:"), 400, "invalid model name"),
    ("chat-not-found", "POST", "/api/chat", _chat(model="nope"), 404, "model 'nope' not found"),
    (
        "chat-tools-unsupported",
        "POST",
        "/api/chat",
        _chat(tools=TOOLS),
        400,
        "registry.ollama.ai/library/tiny-completion:latest does not support tools",
    ),
    (
        "chat-think-unsupported",
        "POST",
        "/api/chat",
        _chat(think=True),
        400,
        '"tiny-completion" does not support thinking',
    ),
    (
        "chat-embedding-model",
        "POST",
        "/api/chat",
        _chat(model="tiny-embed"),
        400,
        '"tiny-embed" does not support chat',
    ),
    (
        "chat-message-type",
        "POST",
        "/api/chat",
        _chat(messages=[{"role": "user", "content": 1}]),
        400,
        "json: cannot unmarshal number into Go struct field ChatRequest.messages.content "
        "of type string",
    ),
    # §9 embed
    (
        "embed-empty-model",
        "POST",
        "/api/embed",
        {"model": "", "input": "x"},
        404,
        "model '' not found",
    ),
    (
        "embed-invalid-name",
        "POST",
        "/api/embed",
        {"model": "-x", "input": "x"},
        400,
        "invalid model name",
    ),
    (
        "embed-input-number",
        "POST",
        "/api/embed",
        {"model": "tiny-embed", "input": 1},
        400,
        "invalid input type",
    ),
    (
        "embed-input-mixed",
        "POST",
        "/api/embed",
        {"model": "tiny-embed", "input": ["a", 1]},
        400,
        "invalid input type",
    ),
    (
        "embed-input-before-lookup",
        "POST",
        "/api/embed",
        {"model": "nope", "input": {}},
        400,
        "invalid input type",
    ),
    (
        "embed-not-found",
        "POST",
        "/api/embed",
        {"model": "nope", "input": "x"},
        404,
        'model "nope" not found, try pulling it first',
    ),
    (
        "embed-too-long",
        "POST",
        "/api/embed",
        {"model": "tiny-embed", "input": "word " * 600, "truncate": False},
        400,
        "the input length exceeds the context length",
    ),
    (
        "embed-generate-model",
        "POST",
        "/api/embed",
        {"model": "tiny-completion", "input": "x"},
        501,
        "This server does not support embeddings. Start it with `--embeddings`",
    ),
    # §10 embeddings
    (
        "embeddings-empty-model",
        "POST",
        "/api/embeddings",
        {"model": "", "prompt": "x"},
        400,
        "model is required",
    ),
    (
        "embeddings-invalid-name",
        "POST",
        "/api/embeddings",
        {"model": "a b", "prompt": "x"},
        400,
        "invalid model name",
    ),
    (
        "embeddings-not-found",
        "POST",
        "/api/embeddings",
        {"model": "nope", "prompt": "x"},
        404,
        'model "nope" not found, try pulling it first',
    ),
    # §6 show
    ("show-no-model", "POST", "/api/show", {}, 400, "model is required"),
    ("show-blank-model", "POST", "/api/show", {"model": "  "}, 400, "model is required"),
    ("show-invalid-name", "POST", "/api/show", {"model": "a/"}, 400, "invalid model name"),
    ("show-not-found", "POST", "/api/show", {"model": "foo"}, 404, "model 'foo:latest' not found"),
    # §12 copy
    (
        "copy-bad-source",
        "POST",
        "/api/copy",
        {"source": "bad name", "destination": "x"},
        400,
        'source "bad name" is invalid',
    ),
    (
        "copy-bad-destination",
        "POST",
        "/api/copy",
        {"source": "tiny-embed", "destination": "x:"},
        400,
        'destination "x:" is invalid',
    ),
    (
        "copy-missing-source",
        "POST",
        "/api/copy",
        {"source": "nope", "destination": "x"},
        404,
        'model "nope" not found',
    ),
    # §13 delete
    ("delete-no-model", "DELETE", "/api/delete", {}, 400, "model is required"),
    (
        "delete-invalid",
        "DELETE",
        "/api/delete",
        {"model": "bad name"},
        400,
        'name "bad name" is invalid',
    ),
    ("delete-not-found", "DELETE", "/api/delete", {"model": "nope"}, 404, "model 'nope' not found"),
    # §14 / §15 pull and push
    ("pull-invalid", "POST", "/api/pull", {"model": "a:"}, 400, "invalid model name"),
    (
        "pull-unknown",
        "POST",
        "/api/pull",
        {"model": "nope", "stream": False},
        500,
        "pull model manifest: file does not exist",
    ),
    ("push-no-model", "POST", "/api/push", {}, 400, "model is required"),
    # §11.3 create
    (
        "create-absolute-path",
        "POST",
        "/api/create",
        {"model": "x", "files": {"/etc/m.gguf": MISSING_DIGEST}},
        400,
        "file path must be relative",
    ),
    (
        "create-dotdot-path",
        "POST",
        "/api/create",
        {"model": "x", "files": {"../m.gguf": MISSING_DIGEST}},
        400,
        "file path must be relative",
    ),
    (
        "create-empty-digest",
        "POST",
        "/api/create",
        {"model": "x", "files": {"m.gguf": ""}},
        400,
        "invalid digest format",
    ),
    (
        "create-invalid-name",
        "POST",
        "/api/create",
        {"model": "", "from": "tiny-completion"},
        400,
        "invalid model name",
    ),
    (
        "create-old-modelfile",
        "POST",
        "/api/create",
        {"name": "x", "modelfile": "FROM y"},
        400,
        "neither 'from' or 'files' was specified",
    ),
    (
        "create-empty-files",
        "POST",
        "/api/create",
        {"model": "x", "files": {}, "stream": False},
        400,
        "unknown type",
    ),
    (
        "create-template-error",
        "POST",
        "/api/create",
        {"model": "x", "from": "tiny-completion", "template": "{{ .Prompt", "stream": False},
        400,
        "template error: template: :1: unclosed action",
    ),
    (
        "create-template-eof",
        "POST",
        "/api/create",
        {"model": "x", "from": "tiny-completion", "template": "{{ if .Prompt }}"},
        400,
        "template error: template: :1: unexpected EOF",
    ),
    (
        "create-template-function",
        "POST",
        "/api/create",
        {"model": "x", "from": "tiny-completion", "template": "{{ Prompt }}"},
        400,
        'template error: template: :1: function "Prompt" not defined',
    ),
    (
        "create-from-invalid",
        "POST",
        "/api/create",
        {"model": "x", "from": "a:", "stream": False},
        400,
        "invalid model name",
    ),
    (
        "create-from-unknown",
        "POST",
        "/api/create",
        {"model": "x", "from": "nope", "stream": False},
        500,
        "pull model manifest: file does not exist",
    ),
    (
        "create-missing-blob",
        "POST",
        "/api/create",
        {"model": "x", "files": {"m.gguf": MISSING_DIGEST}, "stream": False},
        500,
        "no such file or directory",
    ),
    (
        "create-bad-digest-gguf",
        "POST",
        "/api/create",
        {"model": "x", "files": {"m.gguf": "sha256:xyz"}, "stream": False},
        500,
        "invalid digest format",
    ),
    (
        "create-bad-digest-other",
        "POST",
        "/api/create",
        {"model": "x", "files": {"m.bin": "sha256:xyz"}, "stream": False},
        400,
        "unknown type",
    ),
    (
        "create-info-type",
        "POST",
        "/api/create",
        {"model": "x", "from": "tiny-completion", "info": {"model_family": 1}},
        400,
        'info field "model_family" must be a string',
    ),
    # §16 blobs
    ("blob-bad-digest", "POST", "/api/blobs/sha256:abc", b"x", 400, "invalid digest format"),
    (
        "blob-mismatch",
        "POST",
        f"/api/blobs/{MISSING_DIGEST}",
        b"hello",
        400,
        f'digest mismatch, expected "{MISSING_DIGEST}", '
        f'got "sha256:{hashlib.sha256(b"hello").hexdigest()}"',
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_error_status_and_text(
    http: httpx.Client, method: str, path: str, body: Any, status: int, message: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = http.request(method, path, content=content)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    if message.endswith("no such file or directory"):
        assert error.startswith("open ") and error.endswith(message)
    else:
        assert error == message


def test_error_bodies_are_compact_go_json(http: httpx.Client) -> None:
    response = http.post("/api/generate", content=b"")
    assert response.content == b'{"error":"missing request body"}'
    assert response.headers["content-type"] == JSON_UTF8


def test_stream_errors_before_output_use_a_real_status(http: httpx.Client) -> None:
    # §18.3, 0.12.6+: nothing written yet → real status and a plain application/json body.
    response = http.post("/api/create", json={"model": "x", "modelfile": "FROM y"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    response = http.post(
        "/api/generate", json={"model": "tiny-completion", "prompt": "x", "format": "xml"}
    )
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"


def test_stream_errors_after_output_are_a_last_line(http: httpx.Client) -> None:
    digest = "sha256:" + hashlib.sha256(b"not a gguf").hexdigest()
    assert http.post(f"/api/blobs/{digest}", content=b"not a gguf").status_code in (200, 201)
    response = http.post("/api/create", json={"model": "x", "files": {"m.gguf": digest}})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines == [{"status": "parsing GGUF"}, {"error": "supplied file was not in GGUF format"}]
    response = http.post(
        "/api/create", json={"model": "x", "files": {"m.gguf": digest}, "stream": False}
    )
    assert response.status_code == 400
    assert response.json() == {"error": "supplied file was not in GGUF format"}
    response = http.post("/api/pull", json={"model": "nope"})
    assert response.status_code == 200
    assert [json.loads(x) for x in response.text.splitlines()] == [
        {"status": "pulling manifest"},
        {"error": "pull model manifest: file does not exist"},
    ]


def test_push_of_a_missing_model(server: RunningServer, http: httpx.Client) -> None:
    lines = [
        json.loads(x) for x in http.post("/api/push", json={"model": "nope"}).text.splitlines()
    ]
    path = server.data_dir / "manifests" / "registry.ollama.ai" / "library" / "nope" / "latest"
    assert lines == [
        {"status": "retrieving manifest"},
        {"status": "couldn't retrieve manifest"},
        {"error": f"open {path}: no such file or directory"},
    ]
    response = http.post("/api/push", json={"model": "nope", "stream": False})
    assert response.status_code == 500
    assert response.json() == {"error": f"open {path}: no such file or directory"}


@pytest.mark.parametrize("endpoint", ["generate", "chat"])
def test_load_and_unload(http: httpx.Client, endpoint: str) -> None:
    empty: dict[str, Any] = {"prompt": ""} if endpoint == "generate" else {"messages": []}
    body = {"model": "Tiny-Completion", **empty}
    loaded = http.post(f"/api/{endpoint}", json=body).json()
    assert loaded["done"] is True and loaded["done_reason"] == "load"
    assert loaded["model"] == "Tiny-Completion"  # echoed as sent (§7.2)
    assert "total_duration" not in loaded
    assert any(m["name"] == "tiny-completion:latest" for m in http.get("/api/ps").json()["models"])
    unloaded = http.post(f"/api/{endpoint}", json={**body, "keep_alive": 0}).json()
    assert unloaded["done_reason"] == "unload"
    assert not any(
        m["name"] == "tiny-completion:latest" for m in http.get("/api/ps").json()["models"]
    )
    if endpoint == "chat":
        assert unloaded["message"] == {"role": "assistant", "content": ""}
    else:
        assert unloaded["response"] == ""


def test_copy_and_delete_success_are_empty_200(http: httpx.Client) -> None:
    response = http.post("/api/copy", json={"source": "tiny-embed", "destination": "embed-copy"})
    assert (response.status_code, response.content) == (200, b"")
    assert "content-type" not in response.headers
    response = http.post("/api/copy", json={"source": "ghost", "destination": "GHOST"})
    assert (response.status_code, response.content) == (200, b"")  # same path: no lookup (§12)
    response = http.request("DELETE", "/api/delete", json={"model": "EMBED-COPY"})
    assert (response.status_code, response.content) == (200, b"")


def test_images_on_a_non_vision_model_are_ignored(http: httpx.Client) -> None:
    # The issue asks for a 400; the oracle (§8.3, §20) says Ollama never rejects them.
    body = _chat(messages=[{"role": "user", "content": "what is this?", "images": ["aGVsbG8="]}])
    assert http.post("/api/chat", json=body).status_code == 200
    assert http.post("/api/generate", json=_gen(images=["aGVsbG8="])).status_code == 200


def test_roles_are_lower_cased_and_never_validated(http: httpx.Client) -> None:
    body = _chat(messages=[{"role": "WIZARD", "content": "hi"}, {"role": "User", "content": "x"}])
    assert http.post("/api/chat", json=body).status_code == 200


def test_unknown_options_are_ignored(http: httpx.Client) -> None:
    response = http.post(
        "/api/generate", json=_gen(options={"not_an_option": {"x": 1}, "seed": None})
    )
    assert response.status_code == 200
