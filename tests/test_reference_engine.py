"""The deterministic engine seen through the API: reproducibility, limits, stops, metrics, pacing.

§19.5 (done_reason), §19.6 (durations are honest integer nanoseconds, total ≥ the parts), §18.5
(metrics only on the final chunk) and the engine's own promises: greedy text repeats, the stream
concatenates to the ``stream: false`` answer, and the configured token rate is what
``eval_count / eval_duration`` reports.
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from conformance.reference import ReferenceConfig, RunningServer, start_background

GREEDY = {"temperature": 0}


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with start_background(ReferenceConfig(token_rate=0, load_time=0)) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=20) as client:
        yield client


def _lines(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line]


def _generate(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"model": "tiny-completion", "prompt": "Why is the sky blue?", "stream": False, **fields}
    response = http.post("/api/generate", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_greedy_text_repeats_and_ignores_the_seed(http: httpx.Client) -> None:
    first = _generate(http, options={"temperature": 0, "seed": 1})["response"]
    assert first == _generate(http, options={"temperature": 0, "seed": 1})["response"]
    assert first == _generate(http, options={"temperature": 0, "seed": 2})["response"]
    assert first != _generate(http, prompt="Something else entirely", options=GREEDY)["response"]


def test_seeded_sampling_repeats_unseeded_varies(http: httpx.Client) -> None:
    seeded = {"temperature": 0.9, "seed": 42}
    assert (
        _generate(http, options=seeded)["response"] == _generate(http, options=seeded)["response"]
    )
    texts = {_generate(http, options={"temperature": 0.9})["response"] for _ in range(4)}
    assert len(texts) > 1


@pytest.mark.parametrize("endpoint", ["generate", "chat"])
def test_stream_concatenates_to_the_single_answer(http: httpx.Client, endpoint: str) -> None:
    if endpoint == "generate":
        body: dict[str, Any] = {"model": "tiny-thinking", "prompt": "Tell me about rivers"}
    else:
        body = {"model": "tiny-thinking", "messages": [{"role": "user", "content": "Rivers?"}]}
    body["options"] = GREEDY
    single = http.post(f"/api/{endpoint}", json={**body, "stream": False}).json()
    chunks = _lines(http.post(f"/api/{endpoint}", json=body))
    final = chunks[-1]
    assert final["done"] is True and all(c["done"] is False for c in chunks[:-1])
    if endpoint == "generate":
        text = "".join(c["response"] for c in chunks)
        thinking = "".join(c.get("thinking", "") for c in chunks)
        assert (text, thinking) == (single["response"], single["thinking"])
        assert final["context"] == single["context"]
    else:
        text = "".join(c["message"]["content"] for c in chunks)
        thinking = "".join(c["message"].get("thinking", "") for c in chunks)
        assert (text, thinking) == (single["message"]["content"], single["message"]["thinking"])
    assert text and thinking
    assert final["eval_count"] == single["eval_count"] == len(chunks) - 1
    for chunk in chunks[:-1]:
        assert not set(chunk) & {"total_duration", "eval_count", "done_reason", "context"}


def test_num_predict_gives_length(http: httpx.Client) -> None:
    result = _generate(http, options={"temperature": 0, "num_predict": 3})
    assert result["done_reason"] == "length" and result["eval_count"] == 3
    full = _generate(http, options=GREEDY)
    assert full["done_reason"] == "stop" and full["eval_count"] > 3
    assert full["response"].startswith(result["response"])


def test_stop_sequence_cuts_before_it(http: httpx.Client) -> None:
    full = _generate(http, options=GREEDY)["response"]
    words = full.split()
    stop = " " + words[3]
    stopped = _generate(http, options={"temperature": 0, "stop": [stop]})
    assert stopped["done_reason"] == "stop"
    assert stopped["response"] == full[: full.index(stop)]
    chunks = _lines(http.post("/api/generate", json={
        "model": "tiny-completion", "prompt": "Why is the sky blue?",
        "options": {"temperature": 0, "stop": [stop]},
    }))  # fmt: skip
    assert "".join(c["response"] for c in chunks) == stopped["response"]


def test_no_token_repeats_back_to_back(http: httpx.Client) -> None:
    for prompt in ("a", "b", "hello world", "x" * 50):
        chunks = _lines(
            http.post("/api/generate", json={"model": "tiny-completion", "prompt": prompt})
        )
        pieces = [c["response"].strip() for c in chunks[:-1]]
        assert all(a != b for a, b in itertools.pairwise(pieces))


def test_context_only_without_raw(http: httpx.Client) -> None:
    assert _generate(http, options=GREEDY)["context"]
    assert "context" not in _generate(http, raw=True, options=GREEDY)
    continued = _generate(http, context=[1, 2, 3], options=GREEDY)
    assert continued["response"] != _generate(http, options=GREEDY)["response"]


def test_metrics_are_integer_nanoseconds_and_add_up(http: httpx.Client) -> None:
    for endpoint, body in [
        ("generate", {"model": "tiny-completion", "prompt": "hi"}),
        ("chat", {"model": "tiny-completion", "messages": [{"role": "user", "content": "hi"}]}),
    ]:
        final = _lines(http.post(f"/api/{endpoint}", json=body))[-1]
        keys = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
                "eval_count", "eval_duration")  # fmt: skip
        assert all(isinstance(final[k], int) and final[k] > 0 for k in keys), final
        parts = final["load_duration"] + final["prompt_eval_duration"] + final["eval_duration"]
        assert final["total_duration"] >= parts


@pytest.mark.parametrize("fmt", ["json", "schema"])
def test_structured_outputs_validate(http: httpx.Client, fmt: str) -> None:
    schema = {
        "type": "object",
        "properties": {
            "age": {"type": "integer", "minimum": 0},
            "available": {"type": "boolean"},
            "name": {"type": "string", "minLength": 2},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 2},
            "where": {"$ref": "#/$defs/place"},
        },
        "required": ["age", "available", "name"],
        "$defs": {"place": {"type": "object", "properties": {"city": {"type": "string"}}}},
    }
    format_value: Any = "json" if fmt == "json" else schema
    prompt = "Ollama is 22 years old and busy saving the world."
    text = _generate(http, prompt=prompt, format=format_value, options=GREEDY)["response"]
    value = json.loads(text)
    assert isinstance(value, dict)
    if fmt == "schema":
        jsonschema.validate(value, schema)
        assert value["age"] == 22
    chat = http.post("/api/chat", json={
        "model": "tiny-completion", "messages": [{"role": "user", "content": prompt}],
        "format": format_value, "stream": False,
    }).json()  # fmt: skip
    parsed = json.loads(chat["message"]["content"])
    if fmt == "schema":
        jsonschema.validate(parsed, schema)


def test_token_rate_is_recovered_within_one_percent() -> None:
    config = ReferenceConfig(token_rate=100, load_time=0.05, model_load_times={"tiny-tools": 0.2})
    with start_background(config) as server, httpx.Client(base_url=server.url, timeout=20) as http:
        body = {
            "model": "tiny-completion",
            "prompt": "tell a long story",
            "options": {"num_predict": 40},
        }
        started = time.perf_counter()
        arrivals = []
        with http.stream("POST", "/api/generate", json=body) as response:
            for line in response.iter_lines():
                arrivals.append(time.perf_counter() - started)
                final = json.loads(line)
        assert final["eval_count"] == 40 and final["done_reason"] == "length"
        rate = final["eval_count"] / final["eval_duration"] * 1e9
        assert abs(rate - 100) / 100 < 0.01, rate
        assert final["load_duration"] >= 50_000_000  # first use pays the load time
        gaps = [b - a for a, b in itertools.pairwise(arrivals[5:-1])]
        assert statistics.median(gaps) > 0.007  # chunks really are paced, not sent in one burst
        again = json.loads(http.post("/api/generate", json={**body, "stream": False}).text)
        assert again["load_duration"] < 50_000_000  # still loaded: no second load
        before = time.perf_counter()
        tools = http.post(
            "/api/generate", json={"model": "tiny-tools", "prompt": "", "stream": False}
        )
        assert tools.status_code == 200
        assert time.perf_counter() - before >= 0.2  # the per-model load time was paid
        ps = {m["name"]: m for m in http.get("/api/ps").json()["models"]}
        assert {"tiny-completion:latest", "tiny-tools:latest"} <= set(ps)
        assert ps["tiny-completion:latest"]["context_length"] == 2048
        assert ps["tiny-completion:latest"]["size_vram"] == ps["tiny-completion:latest"]["size"]


def test_keep_alive_controls_residency(http: httpx.Client) -> None:
    http.post(
        "/api/generate",
        json={"model": "tiny-insert", "prompt": "x", "keep_alive": 0, "stream": False},
    )
    assert "tiny-insert:latest" not in {m["name"] for m in http.get("/api/ps").json()["models"]}
    http.post(
        "/api/generate",
        json={"model": "tiny-insert", "prompt": "x", "keep_alive": -1, "stream": False},
    )
    forever = next(
        m for m in http.get("/api/ps").json()["models"] if m["name"] == "tiny-insert:latest"
    )
    assert int(forever["expires_at"][:4]) > 2200  # ~292 years ahead (§5)


def test_concurrent_requests_are_served(http: httpx.Client, server: RunningServer) -> None:
    import concurrent.futures

    def one(i: int) -> int:
        body = {"model": "tiny-completion", "prompt": f"q{i}", "stream": False}
        return httpx.post(server.url + "/api/generate", json=body, timeout=20).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert set(pool.map(one, range(16))) == {200}
