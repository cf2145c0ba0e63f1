"""Behaviour that follows the emulated Ollama release (reference facts §25 and sections cited)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conformance.reference import ReferenceConfig, start_background


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, httpx.Client]]:
    versions = ["0.6.0", "0.9.0", "0.12.0", "0.12.11", "0.20.0", "0.32.15"]
    running = [
        start_background(ReferenceConfig(version=v, token_rate=0, load_time=0)) for v in versions
    ]
    clients = {
        v: httpx.Client(base_url=r.url, timeout=10) for v, r in zip(versions, running, strict=True)
    }
    try:
        yield clients
    finally:
        for client in clients.values():
            client.close()
        for server in running:
            server.stop()


def _post(client: httpx.Client, path: str, body: Any) -> tuple[int, Any]:
    response = client.post(path, json=body)
    if response.headers.get("content-type") == "application/x-ndjson":
        return response.status_code, [json.loads(x) for x in response.text.splitlines() if x]
    return response.status_code, response.json()


def _err(message: str) -> dict[str, str]:
    return {"error": message}


CHAT = [{"role": "user", "content": "hi"}]

# (id, version, path, body, status, expected JSON)
CASES: list[tuple[str, str, str, Any, int, Any]] = [
    ("version", "0.9.0", "/api/version", None, 200, {"version": "0.9.0"}),
    # generate: invalid name 404 until v0.17.7, 400 from v0.17.8-rc0 (§7.3, git tag scan)
    (
        "gen-invalid-0.12",
        "0.12.11",
        "/api/generate",
        {"model": "a:", "prompt": "x"},
        404,
        _err("model 'a:' not found"),
    ),
    (
        "gen-invalid-0.20",
        "0.20.0",
        "/api/generate",
        {"model": "a:", "prompt": "x"},
        400,
        _err("invalid model name"),
    ),
    (
        "gen-blank-0.12",
        "0.12.0",
        "/api/generate",
        {"model": "  ", "prompt": "x"},
        404,
        _err("model '  ' not found"),
    ),
    (
        "gen-blank-0.32",
        "0.32.15",
        "/api/generate",
        {"model": "  ", "prompt": "x"},
        404,
        _err("model '' not found"),
    ),
    # chat: not-found wording changed in v0.12.0-rc0; invalid name in v0.17.8-rc0 (§8.3)
    (
        "chat-missing-0.9",
        "0.9.0",
        "/api/chat",
        {"model": "nope", "messages": CHAT},
        404,
        _err('model "nope" not found, try pulling it first'),
    ),
    (
        "chat-missing-0.12",
        "0.12.0",
        "/api/chat",
        {"model": "nope", "messages": CHAT},
        404,
        _err("model 'nope' not found"),
    ),
    (
        "chat-invalid-0.12",
        "0.12.11",
        "/api/chat",
        {"model": "a:", "messages": CHAT},
        400,
        _err("model is required"),
    ),
    (
        "chat-unload-missing-0.9",
        "0.9.0",
        "/api/chat",
        {"model": "nope", "messages": [], "keep_alive": 0},
        404,
        _err("model 'nope' not found"),
    ),
    # show: invalid name 500 before v0.17.8-rc0; not-found text changed at 0.30 (§6)
    ("show-invalid-0.12", "0.12.11", "/api/show", {"model": "a:"}, 500, _err("invalid model path")),
    (
        "show-missing-0.20",
        "0.20.0",
        "/api/show",
        {"model": "foo"},
        404,
        _err("model 'foo' not found"),
    ),
    # delete "" (§13)
    ("delete-empty-0.12", "0.12.11", "/api/delete", {"model": ""}, 400, _err('name "" is invalid')),
    # embeddings legacy invalid name (§10)
    (
        "embeddings-invalid-0.12",
        "0.12.0",
        "/api/embeddings",
        {"model": "a:", "prompt": "x"},
        400,
        _err("model is required"),
    ),
    # embed: missing name through the scheduler before v0.17.8-rc0 (§9.2)
    (
        "embed-empty-0.12",
        "0.12.0",
        "/api/embed",
        {"model": "", "input": "x"},
        404,
        _err('model "" not found, try pulling it first'),
    ),
    # embed truncation texts (§9)
    (
        "embed-long-0.9",
        "0.9.0",
        "/api/embed",
        {"model": "tiny-embed", "input": "w " * 600, "truncate": False},
        400,
        _err("input length exceeds maximum context length"),
    ),
    (
        "embed-long-0.12",
        "0.12.11",
        "/api/embed",
        {"model": "tiny-embed", "input": "w " * 600, "truncate": False},
        400,
        _err("input exceeds maximum context length"),
    ),
    # think (§19.4, §7.3 steps 8-9)
    (
        "think-string-0.9",
        "0.9.0",
        "/api/generate",
        {"model": "tiny-thinking", "prompt": "x", "think": "high"},
        400,
        _err(
            "json: cannot unmarshal string into Go struct field GenerateRequest.think of type bool"
        ),
    ),
    (
        "think-capability-0.9",
        "0.9.0",
        "/api/chat",
        {"model": "tiny-completion", "messages": CHAT, "think": True},
        400,
        _err("registry.ollama.ai/library/tiny-completion:latest does not support thinking"),
    ),
    (
        "think-level-0.12",
        "0.12.0",
        "/api/generate",
        {"model": "tiny-thinking", "prompt": "x", "think": "high"},
        400,
        _err('think value "high" is not supported for this model'),
    ),
    (
        "think-max-0.20",
        "0.20.0",
        "/api/generate",
        {"model": "tiny-thinking", "prompt": "x", "think": "max"},
        400,
        _err('invalid think value: "max" (must be "high", "medium", "low", true, or false)'),
    ),
    (
        "think-type-0.12",
        "0.12.0",
        "/api/generate",
        {"model": "tiny-thinking", "prompt": "x", "think": 1},
        400,
        _err('think must be a boolean or string ("high", "medium", "low")'),
    ),
    # format before 0.12.6: an NDJSON error line with HTTP 200 (§19.3, §18.3)
    (
        "format-stream-0.12",
        "0.12.0",
        "/api/generate",
        {"model": "tiny-completion", "prompt": "x", "format": "x"},
        200,
        [_err('invalid format: "\\"x\\""; expected "json" or a valid JSON Schema object')],
    ),
    # create errors carry their status inside the line before 0.12.6 (§11.3, §18.3)
    (
        "create-neither-0.12",
        "0.12.0",
        "/api/create",
        {"model": "x"},
        200,
        [{"error": "neither 'from' or 'files' was specified", "status": 400}],
    ),
    (
        "create-neither-0.12.11",
        "0.12.11",
        "/api/create",
        {"model": "x"},
        400,
        _err("neither 'from' or 'files' was specified"),
    ),
    (
        "create-empty-digest-0.12",
        "0.12.11",
        "/api/create",
        {"model": "x", "files": {"a.gguf": ""}},
        200,
        [{"status": "parsing GGUF"}, _err("invalid digest format")],
    ),
]


@pytest.mark.parametrize(
    ("version", "path", "body", "status", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_version_dependent_answers(
    servers: dict[str, httpx.Client], version: str, path: str, body: Any, status: int, expected: Any
) -> None:
    client = servers[version]
    if body is None:
        response = client.get(path)
        assert (response.status_code, response.json()) == (status, expected)
        return
    if path == "/api/delete":
        response = client.request("DELETE", path, json=body)
        assert (response.status_code, response.json()) == (status, expected)
        return
    assert _post(client, path, body) == (status, expected)


def test_unload_truncates_seconds_before_0_12(servers: dict[str, httpx.Client]) -> None:
    body = {"model": "tiny-completion", "prompt": "", "keep_alive": "500ms"}
    assert _post(servers["0.9.0"], "/api/generate", body)[1]["done_reason"] == "unload"
    assert _post(servers["0.32.15"], "/api/generate", body)[1]["done_reason"] == "load"


def test_thinking_default_changed_in_0_12_5(servers: dict[str, httpx.Client]) -> None:
    body = {"model": "tiny-thinking", "prompt": "x", "stream": False}
    assert "thinking" not in _post(servers["0.12.0"], "/api/generate", body)[1]
    assert _post(servers["0.12.11"], "/api/generate", body)[1]["thinking"]
    assert "thinking" not in _post(servers["0.12.11"], "/api/generate", {**body, "think": False})[1]


def test_embedding_with_a_generate_model(servers: dict[str, httpx.Client]) -> None:
    body = {"model": "tiny-completion", "input": "x"}
    status, result = _post(servers["0.20.0"], "/api/embed", body)
    assert status == 200 and len(result["embeddings"][0]) == 16
    assert _post(servers["0.32.15"], "/api/embed", body)[0] == 501


def test_tags_ps_and_show_fields_by_version(servers: dict[str, httpx.Client]) -> None:
    old_tags = servers["0.20.0"].get("/api/tags").json()["models"][0]
    new_tags = servers["0.32.15"].get("/api/tags").json()["models"][0]
    assert "capabilities" not in old_tags and "context_length" not in old_tags["details"]
    assert new_tags["capabilities"] and new_tags["details"]["context_length"] == 2048
    for version, has_ctx in (("0.9.0", False), ("0.12.0", True)):
        client = servers[version]
        client.post("/api/generate", json={"model": "tiny-completion", "prompt": ""})
        entry = client.get("/api/ps").json()["models"][0]
        assert ("context_length" in entry) is has_ctx
    show_06 = servers["0.6.0"].post("/api/show", json={"model": "tiny-completion"}).json()
    assert "capabilities" not in show_06 and "tensors" not in show_06
    assert isinstance(show_06["model_info"]["tokenizer.ggml.tokens"], list)  # arrays kept on 0.6


def test_chat_shapes_by_version(servers: dict[str, httpx.Client]) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    body = {"model": "tiny-tools", "messages": CHAT, "tools": tools, "stream": False}
    old = servers["0.9.0"].post("/api/chat", json=body)
    call = old.json()["message"]["tool_calls"][0]
    assert "id" not in call and "index" not in call["function"]
    assert old.text.index('"done_reason"') < old.text.index('"done"')  # 0.6/0.9 order (§8.2)
    new_call = servers["0.32.15"].post("/api/chat", json=body).json()["message"]["tool_calls"][0]
    assert new_call["id"].startswith("call_") and len(new_call["id"]) == 13
    assert new_call["function"]["index"] == 0


def test_stream_false_progress_on_0_6(servers: dict[str, httpx.Client]) -> None:
    response = servers["0.6.0"].post("/api/pull", json={"model": "tiny-embed", "stream": False})
    assert (response.status_code, response.json()) == (200, {"status": "success"})
    assert response.headers["content-type"] == "application/json"


def test_think_field_ignored_on_0_6(servers: dict[str, httpx.Client]) -> None:
    body = {"model": "tiny-completion", "prompt": "x", "think": "anything", "stream": False}
    assert _post(servers["0.6.0"], "/api/generate", body)[0] == 200
