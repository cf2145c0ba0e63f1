"""Arbitrary bodies never crash the reference server or earn a 5xx Ollama would not send.

Hypothesis throws random JSON (right field names, wrong everything else) and random bytes at every
endpoint. A 500 is only acceptable with an error text the reference facts give a 500 for
(option types §19.1, format §19.3, create / pull / push failures §11.3, §14, §15).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.reference import ReferenceConfig, RunningServer, start_background

FIELDS = {
    "generate": ["model", "prompt", "suffix", "system", "template", "context", "stream", "raw",
                 "format", "keep_alive", "images", "options", "think", "logprobs", "top_logprobs"],
    "chat": ["model", "messages", "stream", "format", "keep_alive", "tools", "options", "think"],
    "embed": ["model", "input", "truncate", "dimensions", "keep_alive", "options"],
    "embeddings": ["model", "prompt", "keep_alive", "options"],
    "show": ["model", "name", "verbose", "system", "options"],
    "create": ["model", "from", "files", "template", "system", "parameters", "license", "messages",
               "quantize", "stream"],
    "copy": ["source", "destination"],
    "pull": ["model", "stream"],
    "push": ["model", "stream"],
}  # fmt: skip
MODELS = ["tiny-completion", "tiny-tools", "tiny-thinking", "tiny-embed", "tiny-vision", "nope", ""]
ALLOWED_500 = (
    "option ",
    "invalid format:",
    "pull model manifest",
    "open ",
    "invalid digest format",
    "unsupported quantization type",
    "quantization is only supported",
    "json: cannot unmarshal",
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 10**6)
    | st.floats(-1e3, 1e3)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "assistant", "tool", "SYSTEM", "x"]),
            "content": st.text(max_size=20),
        },
        optional={"images": json_values, "tool_calls": json_values},
    ),
    max_size=3,
)


def _field_value(field: str) -> st.SearchStrategy[Any]:
    special: dict[str, st.SearchStrategy[Any]] = {
        "model": st.sampled_from(MODELS) | st.text(max_size=10),
        "from": st.sampled_from(MODELS),
        "messages": messages | json_values,
        "options": st.dictionaries(
            st.sampled_from(
                ["temperature", "seed", "num_predict", "stop", "num_ctx", "top_k", "x"]
            ),
            json_values,
            max_size=3,
        )
        | json_values,
        "stream": st.booleans() | json_values,
    }
    return special.get(field, json_values)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    endpoint = draw(st.sampled_from(sorted(FIELDS)))
    if draw(st.integers(0, 9)) == 0:
        return endpoint, draw(st.binary(max_size=40))
    keys = draw(st.lists(st.sampled_from(FIELDS[endpoint]), unique=True, max_size=5))
    body = {key: draw(_field_value(key)) for key in keys}
    return endpoint, json.dumps(body).encode()


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with start_background(ReferenceConfig(token_rate=0, load_time=0, prompt_rate=0)) as running:
        yield running


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=bodies())
def test_no_unexpected_5xx(server: RunningServer, case: tuple[str, bytes]) -> None:
    endpoint, body = case
    method = "DELETE" if endpoint == "delete" else "POST"
    response = httpx.request(method, f"{server.url}/api/{endpoint}", content=body, timeout=20)
    if response.status_code >= 500:
        error = response.json().get("error", "") if response.content else ""
        assert error.startswith(ALLOWED_500), (response.status_code, error, body)
    if response.headers.get("content-type") == "application/x-ndjson":
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert lines, "a stream must carry at least one line"


def test_huge_and_deep_bodies(server: RunningServer) -> None:
    prompt = "word " * 400_000  # ~2 MB prompt
    response = httpx.post(
        f"{server.url}/api/generate",
        json={
            "model": "tiny-completion",
            "prompt": prompt,
            "stream": False,
            "options": {"num_predict": 2},
        },
        timeout=30,
    )
    assert response.status_code == 200
    deep = (
        b'{"model":"tiny-completion","prompt":"x","stream":false,"format":'
        + b"[" * 5000
        + b"]" * 5000
        + b"}"
    )
    assert httpx.post(f"{server.url}/api/generate", content=deep, timeout=30).status_code == 500
    nested = b'{"allOf":[' * 3000 + b"{}" + b"]}" * 3000
    body = b'{"model":"tiny-completion","prompt":"x","stream":false,"format":' + nested + b"}"
    assert httpx.post(f"{server.url}/api/generate", content=body, timeout=30).status_code == 200
    tools = {"model": "tiny-tools", "messages": [{"role": "user", "content": "x"}], "stream": False}
    deep_tool = (
        b'[{"type":"function","function":{"name":"f","parameters":'
        + b"[" * 3000
        + b"]" * 3000
        + b"}}]"
    )
    body = json.dumps(tools).encode()[:-1] + b',"tools":' + deep_tool + b"}"
    assert httpx.post(f"{server.url}/api/chat", content=body, timeout=30).status_code == 200
