"""Strict client mode: request bodies are judged against the contract, and still served."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conformance.reference import ReferenceConfig, RunningServer, start_background

HEADER = "x-conformance-violations"


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[tuple[RunningServer, Path]]:
    log = tmp_path / "violations.jsonl"
    config = ReferenceConfig(strict=True, strict_log=log, token_rate=0, load_time=0)
    with start_background(config) as running:
        yield running, log


def test_valid_requests_have_no_header(strict: tuple[RunningServer, Path]) -> None:
    server, log = strict
    response = httpx.post(
        server.url + "/api/generate",
        json={"model": "tiny-completion", "prompt": "hi", "stream": False},
    )
    assert response.status_code == 200 and HEADER not in response.headers
    assert server.violations == 0 and not log.exists()


def test_violations_are_counted_logged_and_served_as_ollama_would(
    strict: tuple[RunningServer, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    server, log = strict
    bad_option = {"model": "tiny-completion", "prompt": "hi", "options": {"stop": "x"}}
    response = httpx.post(server.url + "/api/generate", json=bad_option)
    assert response.status_code == 500  # still Ollama's answer (§19.1)
    assert response.json() == {"error": 'option "stop" must be of type array'}
    assert response.headers[HEADER] == "1"

    missing_model = httpx.post(server.url + "/api/generate", json={"prompt": "x"})
    assert missing_model.status_code == 404 and missing_model.headers[HEADER] == "1"

    not_json = httpx.post(server.url + "/api/chat", content=b"{nope")
    assert not_json.status_code == 400 and not_json.headers[HEADER] == "1"

    blob = httpx.head(server.url + "/api/blobs/sha256:abc")
    assert blob.status_code == 400 and blob.headers[HEADER] == "1"

    assert server.violations == 4
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["kind"] for r in records] == [
        "generate.request",
        "generate.request",
        "chat.request",
        "blobs.digest",
    ]
    assert records[0]["issues"][0]["path"] == "$.options.stop"
    assert [r["path"] for r in server.violation_records] == [
        "/api/generate",
        "/api/generate",
        "/api/chat",
        "/api/blobs/sha256:abc",
    ]
    assert "strict: POST /api/generate" in capsys.readouterr().err


def test_streaming_and_uploads_pass_through(strict: tuple[RunningServer, Path]) -> None:
    server, _ = strict
    with httpx.stream(
        "POST",
        server.url + "/api/generate",
        json={"model": "tiny-completion", "prompt": "a", "options": {"stop": "x"}},
    ) as r:
        assert r.headers[HEADER] == "1"
    lines = httpx.post(server.url + "/api/chat", json={
        "model": "tiny-completion", "messages": [{"role": "user", "content": "hi"}],
    }).text.splitlines()  # fmt: skip
    assert json.loads(lines[-1])["done"] is True
    data = b"blob"
    import hashlib

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert httpx.post(f"{server.url}/api/blobs/{digest}", content=data).status_code == 201
    assert server.violations == 1
