"""Uploaded models run as their weights dictate; prompts are rendered through Go templates.

The test writes its own "successor" GGUF with ``gguf.GGUFWriter``: byte-level vocabulary, one-hot
embeddings, a zero transformer block and an output head that scores the next letter, so the
greedy answer to any text is the alphabet after its last letter. That makes template rendering
(§22.2), raw mode, system overrides, stop/length, context, embeddings and the repeat guard (§18.5)
observable exactly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from conformance.reference import ReferenceConfig, RunningServer, start_background

N_EMBD = 32
EOS = 256


def _byte_tokens() -> list[str]:
    keep = {*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)}
    tokens, shifted = [], 0
    for byte in range(256):
        if byte in keep:
            tokens.append(chr(byte))
        else:
            tokens.append(chr(256 + shifted))
            shifted += 1
    return tokens


def _direction(token: int) -> int:
    return token - ord("a") if ord("a") <= token <= ord("z") else 26


def write_successor(path: Path, *, stop_after: str | None = None, loop_on: str | None = None,
                    pooling: bool = False) -> bytes:  # fmt: skip
    """A tiny llama whose greedy continuation of any text is the next letters of the alphabet."""
    import gguf

    vocab = 257
    embd = np.zeros((vocab, N_EMBD), dtype=np.float32)
    for token in range(vocab):
        embd[token, _direction(token)] = 1.0
    output = np.zeros((vocab, N_EMBD), dtype=np.float32)
    for direction in range(27):
        if direction == 26:
            nxt = ord("a")
        else:
            letter = chr(ord("a") + direction)
            nxt = ord("a") + (direction + 1) % 26
            if letter == stop_after:
                nxt = EOS
            if letter == loop_on:
                nxt = ord(letter)
        output[nxt, direction] = 5.0
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_context_length(512)
    writer.add_embedding_length(N_EMBD)
    writer.add_feed_forward_length(16)
    writer.add_head_count(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    if pooling:
        writer.add_pooling_type(gguf.PoolingType.LAST)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([*_byte_tokens(), "<|endoftext|>"])
    writer.add_token_types([1] * 256 + [3])
    writer.add_eos_token_id(EOS)
    zeros = np.zeros((N_EMBD, N_EMBD), dtype=np.float32)
    tensors: list[tuple[str, Any]] = [
        ("token_embd.weight", embd),
        ("output_norm.weight", np.ones(N_EMBD, dtype=np.float32)),
        ("output.weight", output),
        ("blk.0.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32)),
        ("blk.0.attn_q.weight", zeros),
        ("blk.0.attn_k.weight", zeros),
        ("blk.0.attn_v.weight", zeros),
        ("blk.0.attn_output.weight", zeros),
        ("blk.0.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32)),
        ("blk.0.ffn_gate.weight", np.zeros((16, N_EMBD), dtype=np.float32)),
        ("blk.0.ffn_up.weight", np.zeros((16, N_EMBD), dtype=np.float32)),
        ("blk.0.ffn_down.weight", np.zeros((N_EMBD, 16), dtype=np.float32)),
    ]
    for name, tensor in tensors:
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with start_background(ReferenceConfig(token_rate=0, load_time=0)) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=20) as client:
        yield client


@pytest.fixture(scope="module")
def blobs(http: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("gguf")
    variants = {
        "cycle": {},
        "stop": {"stop_after": "e"},
        "loop": {"loop_on": "c"},
        "embed": {"pooling": True},
    }
    digests = {}
    for name, kwargs in variants.items():
        data = write_successor(directory / f"{name}.gguf", **kwargs)  # type: ignore[arg-type]
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert http.post(f"/api/blobs/{digest}", content=data).status_code == 201
        digests[name] = digest
    return digests


def _create(http: httpx.Client, name: str, digest: str, **fields: Any) -> None:
    body = {"model": name, "files": {"m.gguf": digest}, "stream": False, **fields}
    response = http.post("/api/create", json=body)
    assert response.json() == {"status": "success"}, response.text


def _generate(http: httpx.Client, model: str, prompt: str, **fields: Any) -> dict[str, Any]:
    body = {"model": model, "prompt": prompt, "stream": False, "options": {"temperature": 0}}
    body.update(fields)
    response = http.post("/api/generate", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_raw_continuation_and_limits(http: httpx.Client, blobs: dict[str, str]) -> None:
    _create(http, "cycle", blobs["cycle"], template="{{ .Prompt }}q")
    raw = _generate(http, "cycle", "abc", raw=True, options={"temperature": 0, "num_predict": 3})
    assert (raw["response"], raw["done_reason"], raw["eval_count"]) == ("def", "length", 3)
    assert "context" not in raw
    templated = _generate(http, "cycle", "abc", options={"temperature": 0, "num_predict": 3})
    assert templated["response"] == "rst"  # "{{ .Prompt }}q" rendered "abcq"
    assert templated["context"] == [97, 98, 99, 113, 114, 115, 116]
    stopped = _generate(http, "cycle", "x", raw=True, options={"temperature": 0, "stop": ["c"]})
    assert (stopped["response"], stopped["done_reason"]) == ("yzab", "stop")
    chunks = [
        json.loads(line)
        for line in http.post("/api/generate", json={
            "model": "cycle", "prompt": "abc", "raw": True,
            "options": {"temperature": 0.7, "seed": 1, "num_predict": 5},
        }).text.splitlines()
    ]  # fmt: skip
    assert [c["response"] for c in chunks[:-1]] == ["d", "e", "f", "g", "h"]


def test_end_of_sequence_is_a_natural_stop(http: httpx.Client, blobs: dict[str, str]) -> None:
    _create(http, "stopper", blobs["stop"])  # no template: {{ .Prompt }}
    result = _generate(http, "stopper", "Hello a")
    assert (result["response"], result["done_reason"]) == ("bcde", "stop")
    assert result["eval_count"] == 5  # the end-of-sequence token is counted


def test_templates_system_and_overrides(http: httpx.Client, blobs: dict[str, str]) -> None:
    _create(http, "sys", blobs["cycle"], template="{{ .Prompt }}{{ .System }}", system="a")
    opts = {"temperature": 0, "num_predict": 2}
    assert _generate(http, "sys", "abc", options=opts)["response"] == "bc"
    assert _generate(http, "sys", "abc", system="m", options=opts)["response"] == "no"
    override = _generate(http, "sys", "abc", template="{{ .Prompt }}x", options=opts)
    assert override["response"] == "yz"
    legacy = "{{ if .System }}{{ .System }}{{ end }}{{ .Prompt }}{{ .Response }}!"
    _create(http, "legacy", blobs["cycle"], template=legacy)
    chat = http.post("/api/chat", json={
        "model": "legacy", "stream": False, "options": opts,
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"},
                     {"role": "assistant", "content": "ok"}, {"role": "user", "content": "ab"}],
    }).json()  # fmt: skip
    assert chat["message"]["content"] == "cd"  # last turn cut at .Response: "...ab"


def test_chat_with_a_messages_template(http: httpx.Client, blobs: dict[str, str]) -> None:
    _create(http, "chatty", blobs["cycle"], template="{{ range .Messages }}{{ .Content }}{{ end }}")
    body = {
        "model": "chatty",
        "stream": False,
        "options": {"temperature": 0, "num_predict": 4},
        "messages": [{"role": "user", "content": "say k"}],
    }
    assert http.post("/api/chat", json=body).json()["message"]["content"] == "lmno"


def test_embeddings_from_weights(http: httpx.Client, blobs: dict[str, str]) -> None:
    _create(http, "vectors", blobs["embed"])
    embedded = http.post("/api/embed", json={"model": "vectors", "input": ["abc", "?"]}).json()
    first, second = embedded["embeddings"]
    assert first[2] == 1 and sum(abs(x) for x in first) == 1
    assert second[26] == 1
    assert embedded["prompt_eval_count"] == 4


def test_repeat_guard_ends_without_a_final_object(
    http: httpx.Client, blobs: dict[str, str]
) -> None:
    _create(http, "looper", blobs["loop"])
    body = {"model": "looper", "prompt": "ab", "options": {"temperature": 0, "num_predict": 80}}
    lines = [json.loads(line) for line in http.post("/api/generate", json=body).text.splitlines()]
    assert len(lines) == 31 and not any(line["done"] for line in lines)
    single = http.post("/api/generate", json={**body, "stream": False}).json()
    assert single["done"] is False and single["response"] == "c" * 31


def test_catalogue_models_are_not_run_as_weights(server: RunningServer) -> None:
    import asyncio

    from conformance.reference.names import parse_name

    model = server.state.find(parse_name("tiny-completion"))
    assert model is not None
    assert asyncio.run(server.state.runtime(model)) is None
