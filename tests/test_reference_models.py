"""Blobs, create, show, copy, delete, tags, pull and push on the on-disk store (§4-6, §11-16)."""

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


def write_gguf(
    path: Path,
    *,
    arch: str = "llama",
    template: str | None = None,
    pooling: bool = False,
    file_type: int = 1,
) -> bytes:
    """A minimal valid GGUF written with ``gguf.GGUFWriter``; returns its bytes."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_context_length(128)
    writer.add_embedding_length(8)
    writer.add_feed_forward_length(16)
    writer.add_head_count(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(file_type)
    if pooling:
        writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["<s>", "</s>", "a", "b", "c"])
    writer.add_bos_token_id(0)
    if template is not None:
        writer.add_chat_template(template)
    writer.add_tensor("token_embd.weight", np.zeros((5, 8), dtype=np.float16))
    writer.add_tensor("output_norm.weight", np.ones((8,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with start_background(ReferenceConfig(token_rate=0, load_time=0)) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=20) as client:
        yield client


def _progress(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line]


def test_blob_upload_statuses(server: RunningServer, http: httpx.Client) -> None:
    data = b"some blob bytes"
    digest = digest_of(data)
    assert http.head(f"/api/blobs/{digest}").status_code == 404
    created = http.post(f"/api/blobs/{digest}", content=data)
    assert (created.status_code, created.content) == (201, b"")
    assert http.head(f"/api/blobs/{digest}").status_code == 200
    assert http.head(f"/api/blobs/{digest.replace(':', '-')}").status_code == 200  # both spellings
    assert http.head(f"/api/blobs/{digest.upper().replace('SHA256', 'sha256')}").status_code == 404
    # Existing blob: 200 without looking at the body (even a wrong one).
    assert http.post(f"/api/blobs/{digest}", content=b"different").status_code == 200
    assert (server.data_dir / "blobs" / digest.replace(":", "-")).read_bytes() == data
    assert http.head("/api/blobs/sha256:abc").status_code == 400
    assert http.head("/api/blobs/md5:" + "0" * 64).status_code == 400


def test_mismatched_upload_is_kept_under_its_real_digest(
    server: RunningServer, http: httpx.Client
) -> None:
    data = b"the real content"
    claimed = "sha256:" + "1" * 64
    response = http.post(f"/api/blobs/{claimed}", content=data)
    assert response.status_code == 400
    assert (
        response.json()["error"]
        == f'digest mismatch, expected "{claimed}", got "{digest_of(data)}"'
    )
    assert http.head(f"/api/blobs/{claimed}").status_code == 404
    assert http.head(f"/api/blobs/{digest_of(data)}").status_code == 200
    # A dash-spelled digest never matches for a new blob (string comparison, §16).
    other = b"dash spelled"
    dashed = digest_of(other).replace(":", "-")
    assert http.post(f"/api/blobs/{dashed}", content=other).status_code == 400


def test_large_blob_is_streamed(http: httpx.Client) -> None:
    data = np.random.default_rng(1).bytes(3 * 1024 * 1024)
    response = http.post(
        f"/api/blobs/{digest_of(data)}",
        content=iter([data[i : i + 65536] for i in range(0, len(data), 65536)]),
    )
    assert response.status_code == 201


def test_create_from_gguf_file(tmp_path: Path, http: httpx.Client) -> None:
    template = "{{ if .Tools }}{{ .Tools }}{{ end }}{{ .Prompt }}{{ .Suffix }}"
    data = write_gguf(tmp_path / "m.gguf", template=None)
    digest = digest_of(data)
    assert http.post(f"/api/blobs/{digest}", content=data).status_code == 201
    response = http.post("/api/create", json={
        "model": "Upload/Custom:v1", "files": {"m.gguf": digest}, "template": template,
        "system": "sys", "parameters": {"stop": ["x", "y"], "seed": 42, "top_p": 0.9},
        "license": ["L1", "L2"], "messages": [{"role": "user", "content": "hello"}],
    })  # fmt: skip
    statuses = [line["status"] for line in _progress(response)]
    assert statuses[0] == "parsing GGUF"
    assert f"using existing layer {digest}" in statuses
    assert any(s.startswith("creating new layer sha256:") for s in statuses)
    assert statuses[-2:] == ["writing manifest", "success"]
    show = http.post("/api/show", json={"model": "upload/custom:V1"}).json()
    assert show["details"]["family"] == "llama"
    assert show["details"]["quantization_level"] == "F16"
    assert show["capabilities"] == ["completion", "tools", "insert"]
    assert show["model_info"]["general.architecture"] == "llama"
    assert show["model_info"]["tokenizer.ggml.tokens"] is None
    assert show["model_info"]["general.parameter_count"] == 48
    assert {t["name"] for t in show["tensors"]} == {"token_embd.weight", "output_norm.weight"}
    assert show["license"] == "L1\nL2" and show["system"] == "sys"
    assert show["messages"] == [{"role": "user", "content": "hello"}]
    lines = [" ".join(line.split()) for line in show["parameters"].splitlines()]
    assert lines == ["seed 42", 'stop "x"', 'stop "y"', "top_p 0.9"]
    assert show["modelfile"].startswith('# Modelfile generated by "ollama show"')
    tags = {m["name"]: m for m in http.get("/api/tags").json()["models"]}
    assert "upload/custom:v1" in {n.lower() for n in tags}
    assert http.post("/api/chat", json={
        "model": "Upload/Custom:v1", "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
    }).status_code == 200  # fmt: skip


def test_create_embedding_model_from_gguf(tmp_path: Path, http: httpx.Client) -> None:
    data = write_gguf(tmp_path / "e.gguf", pooling=True)
    digest = digest_of(data)
    http.post(f"/api/blobs/{digest}", content=data)
    response = http.post(
        "/api/create", json={"model": "my-embed", "files": {"e.bin": digest}, "stream": False}
    )
    assert response.json() == {"status": "success"}
    assert http.post("/api/show", json={"model": "my-embed"}).json()["capabilities"] == [
        "embedding"
    ]
    embedded = http.post("/api/embed", json={"model": "my-embed", "input": "abc"}).json()
    assert len(embedded["embeddings"][0]) == 8
    assert http.post("/api/generate", json={"model": "my-embed", "prompt": "x"}).json() == {
        "error": '"my-embed" does not support generate'
    }


def test_create_native_template_capabilities(tmp_path: Path, http: httpx.Client) -> None:
    # 0.32 native mode: no Go template, capabilities from tokenizer.chat_template (§20).
    data = write_gguf(tmp_path / "n.gguf", template="{% if tools %}{% endif %}<think></think>")
    digest = digest_of(data)
    http.post(f"/api/blobs/{digest}", content=data)
    http.post("/api/create", json={"model": "native", "files": {"n.gguf": digest}, "stream": False})
    caps = http.post("/api/show", json={"model": "native"}).json()["capabilities"]
    assert caps == ["completion", "tools", "thinking"]


def test_create_quantize(tmp_path: Path, http: httpx.Client) -> None:
    data = write_gguf(tmp_path / "q.gguf", file_type=1)
    digest = digest_of(data)
    http.post(f"/api/blobs/{digest}", content=data)
    body = {"model": "quant", "files": {"q.gguf": digest}, "quantize": "q4_K_M"}
    statuses = [line.get("status") for line in _progress(http.post("/api/create", json=body))]
    assert "quantizing F16 model to Q4_K_M" in statuses and statuses[-1] == "success"
    details = http.post("/api/show", json={"model": "quant"}).json()["details"]
    assert details["quantization_level"] == "Q4_K_M"
    bad = http.post("/api/create", json={**body, "quantize": "q3", "stream": False})
    assert bad.status_code == 500
    assert bad.json()["error"].startswith("unsupported quantization type Q3 - supported types are")


def test_create_from_existing_model(http: httpx.Client) -> None:
    body = {
        "model": "mario",
        "from": "tiny-tools",
        "system": "You are Mario.",
        "parameters": {"seed": 1},
    }
    statuses = [line["status"] for line in _progress(http.post("/api/create", json=body))]
    assert statuses[-2:] == ["writing manifest", "success"]
    assert any(s.startswith("using existing layer") for s in statuses)
    show = http.post("/api/show", json={"model": "mario"}).json()
    assert show["system"] == "You are Mario." and show["capabilities"] == ["completion", "tools"]
    assert "seed" in show["parameters"] and "stop" in show["parameters"]  # parameters merge
    base = http.post("/api/show", json={"model": "tiny-tools"}).json()
    assert show["template"] == base["template"]


def test_create_from_a_catalogue_name_pulls_it_first(http: httpx.Client) -> None:
    assert http.request("DELETE", "/api/delete", json={"model": "tiny-vision"}).status_code == 200
    statuses = [line["status"] for line in _progress(
        http.post("/api/create", json={"model": "seen", "from": "tiny-vision"})
    )]  # fmt: skip
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert http.post("/api/show", json={"model": "seen"}).json()["capabilities"] == [
        "completion",
        "vision",
    ]


def test_copy_and_delete_keep_shared_blobs(server: RunningServer, http: httpx.Client) -> None:
    assert (
        http.post(
            "/api/copy", json={"source": "tiny-insert", "destination": "ins-copy"}
        ).status_code
        == 200
    )
    tags = {m["name"]: m for m in http.get("/api/tags").json()["models"]}
    assert tags["ins-copy:latest"]["digest"] == tags["tiny-insert:latest"]["digest"]
    manifest = server.data_dir / "manifests/registry.ollama.ai/library/ins-copy/latest"
    assert hashlib.sha256(manifest.read_bytes()).hexdigest() == tags["ins-copy:latest"]["digest"]
    layers = [layer["digest"] for layer in json.loads(manifest.read_bytes())["layers"]]
    assert http.request("DELETE", "/api/delete", json={"name": "ins-copy"}).status_code == 200
    assert all((server.data_dir / "blobs" / d.replace(":", "-")).exists() for d in layers)
    assert http.request("DELETE", "/api/delete", json={"model": "tiny-insert"}).status_code == 200
    exists = [(server.data_dir / "blobs" / d.replace(":", "-")).exists() for d in layers]
    assert exists[0] is False  # its own GGUF layer is gone ...
    assert exists[-1] is True  # ... the license layer, shared with other models, is kept
    pulled = _progress(http.post("/api/pull", json={"model": "tiny-insert"}))
    assert pulled[0]["status"] == "pulling manifest"
    pulling = [
        p
        for p in pulled
        if p["status"].startswith("pulling ") and p["status"] != "pulling manifest"
    ]
    assert pulling and all(p["digest"].startswith("sha256:") and p["total"] > 0 for p in pulling)
    assert [p["status"] for p in pulled][-3:] == [
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    assert http.post("/api/show", json={"model": "tiny-insert"}).status_code == 200


def test_push_progress(http: httpx.Client) -> None:
    lines = _progress(http.post("/api/push", json={"model": "tiny-completion"}))
    statuses = [line["status"] for line in lines]
    assert statuses[0] == "retrieving manifest"
    assert statuses[-2:] == ["pushing manifest", "success"]
    assert any(
        s.startswith("pushing ") and "digest" in line
        for s, line in zip(statuses, lines, strict=True)
    )


def test_tags_are_never_null_and_newest_first(tmp_path: Path) -> None:
    with start_background(ReferenceConfig(data_dir=tmp_path / "store", token_rate=0)) as running:
        http = httpx.Client(base_url=running.url)
        for model in [m["name"] for m in http.get("/api/tags").json()["models"]]:
            http.request("DELETE", "/api/delete", json={"model": model})
        assert http.get("/api/tags").content == b'{"models":[]}'
        assert http.get("/api/ps").content == b'{"models":[]}'
        http.post("/api/pull", json={"model": "tiny-embed"})
        http.post("/api/copy", json={"source": "tiny-embed", "destination": "later"})
        assert [m["name"] for m in http.get("/api/tags").json()["models"]] == [
            "later:latest",
            "tiny-embed:latest",
        ]
        http.close()
    assert (tmp_path / "store" / "blobs").is_dir()  # a given data dir is kept


def test_temporary_store_is_removed() -> None:
    running = start_background(ReferenceConfig(token_rate=0))
    root = running.data_dir
    assert (root / "manifests").is_dir()
    running.stop()
    assert not root.exists()


def test_embeddings_shapes_and_normalisation(http: httpx.Client) -> None:
    embedded = http.post(
        "/api/embed", json={"model": "tiny-embed", "input": ["sky is blue", ""]}
    ).json()
    first, empty = embedded["embeddings"]
    assert abs(sum(x * x for x in first) - 1) < 1e-5 and any(empty)
    assert embedded["prompt_eval_count"] > 0 and embedded["total_duration"] > 0
    again = http.post("/api/embed", json={"model": "tiny-embed", "input": "sky is blue"}).json()
    assert again["embeddings"][0] == first
    short = http.post(
        "/api/embed", json={"model": "tiny-embed", "input": "sky", "dimensions": 16}
    ).json()
    vector = short["embeddings"][0]
    assert len(vector) == 16 and abs(sum(x * x for x in vector) - 1) < 1e-5
    assert http.post("/api/embed", json={"model": "TINY-EMBED", "input": ""}).json() == {
        "model": "TINY-EMBED",
        "embeddings": [],
    }
    truncated = http.post("/api/embed", json={"model": "tiny-embed", "input": "word " * 600}).json()
    assert truncated["prompt_eval_count"] == 512
    legacy = http.post("/api/embeddings", json={"model": "tiny-embed", "prompt": "sky"}).json()
    assert list(legacy) == ["embedding"] and len(legacy["embedding"]) == 384
    assert http.post("/api/embeddings", json={"model": "tiny-embed", "prompt": ""}).json() == {
        "embedding": []
    }
