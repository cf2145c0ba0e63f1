"""The official ``ollama`` Python client against the reference server, every local method.

The client is the most common consumer of the API, so the reference server must satisfy it end to
end; and every byte it received is checked against the contract (raw JSON captured by a
recording transport, not the client's pydantic objects, which would hide extra or missing
fields).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import ollama
import pytest

from conformance import contract
from conformance.reference import ReferenceConfig, RunningServer, start_background

VERSION = "0.32.15"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather for a location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city"},
                "format": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location", "format"],
        },
    },
}


class RecordingTransport(httpx.BaseTransport):
    """Passes requests through and keeps (request, status, content type, raw body) of each."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.exchanges: list[tuple[httpx.Request, int, str, bytes]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        body = response.read()
        response.close()
        content_type = response.headers.get("content-type", "")
        self.exchanges.append((request, response.status_code, content_type, body))
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "transfer-encoding"]
        return httpx.Response(response.status_code, headers=headers, content=body, request=request)

    def close(self) -> None:
        self.inner.close()


def write_gguf(path: Path, *, template: str | None = None, pooling: bool = False) -> Path:
    """A minimal valid GGUF written with the ``gguf`` package (independent of the server)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_context_length(256)
    writer.add_embedding_length(8)
    writer.add_feed_forward_length(16)
    writer.add_head_count(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    if pooling:
        writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["<s>", "</s>", "a", "b"])
    if template is not None:
        writer.add_chat_template(template)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones((8,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with start_background(ReferenceConfig(token_rate=0, load_time=0)) as running:
        yield running


def _kind_for(request: httpx.Request, status: int) -> tuple[str, str] | None:
    """(prefix, how) for validating a recorded response; how is 'ndjson', 'json' or 'none'."""
    path = request.url.path
    endpoint = path.removeprefix("/api/")
    if status >= 400:
        return "error", "json"
    if path.startswith("/api/blobs/") or endpoint in ("copy", "delete"):
        return None
    return {
        "version": ("version.response", "json"),
        "tags": ("tags.response", "json"),
        "ps": ("ps.response", "json"),
        "show": ("show.response", "json"),
        "embed": ("embed.response", "json"),
        "embeddings": ("embeddings.response", "json"),
        "generate": ("generate", "stream"),
        "chat": ("chat", "stream"),
        "create": ("create.progress", "progress"),
        "pull": ("pull.progress", "progress"),
        "push": ("push.progress", "progress"),
    }[endpoint]


def _validate_exchange(request: httpx.Request, status: int, ctype: str, body: bytes) -> list[str]:
    problems: list[str] = []
    path = request.url.path
    endpoint = path.removeprefix("/api/")
    if endpoint.startswith("blobs/"):
        digest = endpoint.removeprefix("blobs/")
        problems += [
            f"request {path}: {i}" for i in contract.validate("blobs.digest", digest, VERSION)
        ]
    elif request.method in ("POST", "DELETE") and request.content:
        for issue in contract.validate(f"{endpoint}.request", json.loads(request.content), VERSION):
            problems.append(f"request {path}: {issue}")
    target = _kind_for(request, status)
    if target is None:
        if body:
            problems.append(f"{path}: expected an empty body, got {body[:80]!r}")
        return problems
    kind, how = target
    if ctype.startswith("application/x-ndjson"):
        values = [json.loads(line) for line in body.splitlines() if line.strip()]
        if how == "stream":
            for _, issue in contract.iter_stream_issues(kind, values, VERSION):
                problems.append(f"{path}: {issue}")
        else:
            for value in values:
                line_kind = "error" if "error" in value else kind
                problems += [f"{path}: {i}" for i in contract.validate(line_kind, value, VERSION)]
        return problems
    value = json.loads(body)
    if how == "stream":
        kind = f"{kind}.response"
    problems += [f"{path}: {i}" for i in contract.validate(kind, value, VERSION)]
    return problems


def test_official_client_drives_every_local_method(server: RunningServer, tmp_path: Path) -> None:
    transport = RecordingTransport()
    client = ollama.Client(host=server.url, transport=transport)

    # generate: streaming and not; the streamed text equals the single answer.
    options = {"temperature": 0, "seed": 7}
    single = client.generate(
        model="tiny-completion", prompt="Why is the sky blue?", options=options
    )
    parts = list(
        client.generate(
            model="tiny-completion", prompt="Why is the sky blue?", options=options, stream=True
        )
    )
    assert single.done and single.done_reason == "stop" and single.response
    assert "".join(p.response for p in parts) == single.response
    assert parts[-1].done and parts[-1].eval_count

    # chat: plain, streaming, with tools, tool answer, thinking.
    messages = [{"role": "user", "content": "What is the weather today in Paris?"}]
    reply = client.chat(model="tiny-completion", messages=messages, options=options)
    assert reply.message.role == "assistant" and reply.message.content
    streamed = list(
        client.chat(model="tiny-completion", messages=messages, options=options, stream=True)
    )
    assert "".join(p.message.content or "" for p in streamed) == reply.message.content
    called = client.chat(model="tiny-tools", messages=messages, tools=[WEATHER_TOOL])
    assert called.message.tool_calls
    call = called.message.tool_calls[0]
    assert call.function.name == "get_current_weather"
    assert call.function.arguments == {"location": "Paris", "format": "celsius"}
    streamed_calls = [
        c
        for p in client.chat(
            model="tiny-tools", messages=messages, tools=[WEATHER_TOOL], stream=True
        )
        for c in (p.message.tool_calls or [])
    ]
    assert [c.function.name for c in streamed_calls] == ["get_current_weather"]
    history = [
        *messages,
        {"role": "assistant", "content": "", "tool_calls": [call.model_dump(exclude_none=True)]},
        {"role": "tool", "content": "22 degrees and sunny", "tool_name": "get_current_weather"},
    ]
    answer = client.chat(model="tiny-tools", messages=history, tools=[WEATHER_TOOL])
    assert "22 degrees" in answer.message.content and not answer.message.tool_calls
    thought = client.chat(model="tiny-thinking", messages=messages, think=True)
    assert thought.message.thinking and thought.message.content

    # embeddings, new and legacy.
    embedded = client.embed(model="tiny-embed", input=["sky", "grass"])
    assert len(embedded.embeddings) == 2 and len(embedded.embeddings[0]) == 384
    legacy = client.embeddings(model="tiny-embed", prompt="sky")
    assert len(legacy.embedding) == 384

    # blobs + create from files, create from a model, show, list, copy, ps, delete.
    gguf_path = write_gguf(tmp_path / "model.gguf", template="{{ .Prompt }}")
    digest = client.create_blob(gguf_path)
    assert digest.startswith("sha256:")
    progress = list(client.create(model="from-file", files={"model.gguf": digest}, stream=True))
    assert [p.status for p in progress][:1] == ["parsing GGUF"] and progress[-1].status == "success"
    done = client.create(
        model="mario",
        from_="tiny-completion",
        system="You are Mario.",
        parameters={"temperature": 0.5},
    )
    assert done.status == "success"
    shown = client.show("mario")
    # ollama show only quotes text with a newline or an outer space.
    assert "\nSYSTEM You are Mario.\n" in (shown.modelfile or "")
    assert shown.capabilities == ["completion"] and "temperature" in (shown.parameters or "")
    assert shown.modelfile and shown.modelfile.startswith('# Modelfile generated by "ollama show"')
    from_file = client.show("from-file")
    assert from_file.details.family == "llama" and from_file.modelinfo is not None
    names = [m.model for m in client.list().models]
    assert {"from-file:latest", "mario:latest", "tiny-completion:latest"} <= set(names)
    assert client.copy("mario", "luigi").status == "success"
    assert any(m.model == "tiny-completion:latest" for m in client.ps().models)
    assert client.delete("luigi").status == "success"
    with pytest.raises(ollama.ResponseError) as missing:
        client.delete("luigi")
    assert missing.value.status_code == 404

    # pull and push (no network: the catalogue is the registry).
    pulled = list(client.pull("tiny-embed", stream=True))
    assert pulled[0].status == "pulling manifest" and pulled[-1].status == "success"
    assert client.pull("tiny-embed").status == "success"
    pushed = list(client.push("mario", stream=True))
    assert pushed[0].status == "retrieving manifest" and pushed[-1].status == "success"
    assert client.push("mario").status == "success"
    assert client.ps().models  # still loaded within keep_alive

    problems: list[str] = []
    for request, status, ctype, body in transport.exchanges:
        problems += _validate_exchange(request, status, ctype, body)
    assert not problems, "\n".join(problems)
    covered = {request.url.path.split("/")[2] for request, *_ in transport.exchanges}
    assert covered == {
        "generate", "chat", "embed", "embeddings", "blobs", "create", "show", "tags", "copy",
        "ps", "delete", "pull", "push",
    }  # fmt: skip
    for request, _status, ctype, body in transport.exchanges:
        if ctype.startswith("application/json"):
            assert not body.endswith(b"\n"), f"{request.url.path}: JSON must not end in a newline"
