"""The reference server against what real Ollama 0.24.0 and 0.12.11 answered.

Each test pins one behaviour of the recorded transcripts (``fixtures/transcripts/<version>/``) or
of ``notes/real-ollama.md`` that the reference server used to get wrong, plus the release
boundaries found for it in Ollama's git history (tags named in the tests). The models are the
tiny GGUFs real Ollama was recorded with (``conformance.models.tiny_gguf``), uploaded and created
the same way, so the numbers (sizes, parameter counts) can be compared with the recordings.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conformance.models.tiny_gguf import CHAT_TEMPLATE, model_bytes, model_digest
from conformance.reference import ReferenceConfig, RunningServer, start_background
from conformance.reference.ggufinfo import file_type_name, human_number

REPO = Path(__file__).resolve().parent.parent
TRANSCRIPTS = REPO / "fixtures" / "transcripts"
NO_INPUT = "Failed to create new sequence: no input provided"

#: Every release a test below asks for, one server each (they start in well under a second).
VERSIONS = (
    "0.6.0",
    "0.6.1",
    "0.11.4",
    "0.11.5-rc3",
    "0.11.11",
    "0.12.0-rc0",
    "0.12.0-rc1",
    "0.12.11",
    "0.13.2",
    "0.13.3-rc0",
    "0.15.4",
    "0.15.5",
    "0.24.0",
    "0.32.15",
)


def _provision(client: httpx.Client) -> None:
    """Upload the tiny GGUFs and create the models the real recordings used."""
    for variant, template in (("stop", CHAT_TEMPLATE), ("embed", None)):
        digest = model_digest(variant)
        uploaded = client.post(f"/api/blobs/{digest}", content=model_bytes(variant))
        assert uploaded.status_code in (200, 201), uploaded.text
        body: dict[str, Any] = {
            "model": f"conformance-tiny-{variant}",
            "files": {"model.gguf": digest},
            "stream": False,
        }
        if template:
            body["template"] = template
        created = client.post("/api/create", json=body)
        assert created.status_code == 200, created.text
    derived = {"model": "derived", "from": "conformance-tiny-stop", "system": "x", "stream": False}
    assert client.post("/api/create", json=derived).status_code == 200


class Server:
    """A running reference server of one release, with the tiny models created."""

    def __init__(self, version: str) -> None:
        config = ReferenceConfig(version=version, token_rate=0, load_time=0)
        self.running: RunningServer = start_background(config)
        self.client = httpx.Client(base_url=self.running.url, timeout=30)
        _provision(self.client)

    def post(self, path: str, body: Any) -> httpx.Response:
        return self.client.post(path, json=body)

    def close(self) -> None:
        self.client.close()
        self.running.stop()


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Server]]:
    started: dict[str, Server] = {}
    try:
        for version in VERSIONS:
            started[version] = Server(version)
        yield started
    finally:
        for server in started.values():
            server.close()


def _recorded(version: str, probe: str) -> dict[str, Any]:
    exchange: dict[str, Any] = json.loads(
        (TRANSCRIPTS / version / f"{probe}.json").read_text(encoding="utf-8")
    )["exchange"]
    return exchange


def _tags_entry(server: Server, name: str) -> dict[str, Any]:
    models = server.client.get("/api/tags").json()["models"]
    entry: dict[str, Any] = next(m for m in models if m["name"] == name)
    return entry


# -- 1. /api/embed with an empty string -------------------------------------------------------


@pytest.mark.parametrize("version", ["0.12.11", "0.24.0"])
@pytest.mark.parametrize("model", ["conformance-tiny-embed", "tiny-embed"])
def test_embed_empty_string_is_the_runners_500(
    servers: dict[str, Server], version: str, model: str
) -> None:
    """Real 0.12.11 and 0.24.0: ``input: [""]`` cannot start a runner sequence (no BOS)."""
    recorded = _recorded(version, "embed.empty-string")
    assert (recorded["status"], recorded["body"]) == (500, {"error": NO_INPUT})
    server = servers[version]
    for value in ([""], ["abc", ""]):
        answer = server.post("/api/embed", {"model": model, "input": value})
        assert (answer.status_code, answer.json()) == (500, {"error": NO_INPUT})
        assert answer.headers["content-type"] == "application/json; charset=utf-8"
    # "" alone is no input at all (200, no embeddings), and real text still embeds.
    assert server.post("/api/embed", {"model": model, "input": ""}).json()["embeddings"] == []
    assert server.post("/api/embed", {"model": model, "input": ["abc"]}).status_code == 200


def test_embed_empty_string_across_releases(servers: dict[str, Server]) -> None:
    body = {"model": "conformance-tiny-embed", "input": [""]}
    # Up to v0.6.0 the handler marshalled the Go error value itself: an empty object.
    old = servers["0.6.0"].post("/api/embed", body)
    assert (old.status_code, old.json()) == (500, {"error": {}})
    assert servers["0.6.1"].post("/api/embed", body).json() == {"error": NO_INPUT}
    # From 0.30 llama-server embeds; unobserved, so the reference keeps answering 200 there.
    assert servers["0.32.15"].post("/api/embed", body).status_code == 200


# -- 2. _debug_render_only ----------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.12.11", "0.24.0"])
def test_generate_debug_render_only_answers_the_rendered_prompt(
    servers: dict[str, Server], version: str
) -> None:
    recorded = _recorded(version, "generate.debug-render")
    body = {"model": "conformance-tiny-stop", "prompt": "a", "system": "s", "stream": False}
    answer = servers[version].post("/api/generate", {**body, "_debug_render_only": True})
    assert answer.status_code == recorded["status"] == 200
    value = answer.json()
    assert (
        list(value)
        == list(recorded["body"])
        == [
            "model",
            "created_at",
            "response",
            "done",
            "_debug_info",
        ]
    )
    expected = {k: v for k, v in recorded["body"].items() if k != "created_at"}
    expected["model"] = "conformance-tiny-stop"  # the recording used the cycle model
    assert {k: v for k, v in value.items() if k != "created_at"} == expected
    assert value["_debug_info"] == {"rendered_template": "sa"}


def test_debug_render_only_details(servers: dict[str, Server]) -> None:
    server = servers["0.24.0"]
    base = {"model": "conformance-tiny-stop", "_debug_render_only": True}
    # One JSON object even when streaming was asked for, and format is never looked at.
    streamed = server.post("/api/generate", {**base, "prompt": "a", "format": "xml"})
    assert streamed.headers["content-type"] == "application/json; charset=utf-8"
    assert streamed.json()["_debug_info"] == {"rendered_template": "a"}
    # Images are counted (image_count is omitempty).
    imaged = server.post("/api/generate", {**base, "prompt": "a", "images": ["aGVsbG8="]})
    assert imaged.json()["_debug_info"] == {"rendered_template": "[img-0]a", "image_count": 1}
    # An empty prompt is still a load: the render step is never reached.
    assert server.post("/api/generate", base).json()["done_reason"] == "load"
    # Chat answers the zero message (role and content are not omitempty).
    messages = [{"role": "system", "content": "x"}, {"role": "user", "content": "a"}]
    chat = server.post("/api/chat", {**base, "messages": messages}).json()
    assert list(chat) == ["model", "created_at", "message", "done", "_debug_info"]
    assert chat["message"] == {"role": "", "content": ""} and chat["done"] is False
    assert chat["_debug_info"] == {"rendered_template": "xa"}


def test_debug_render_only_arrived_in_0_11_5_rc3(servers: dict[str, Server]) -> None:
    body = {"model": "conformance-tiny-stop", "prompt": "a", "stream": False}
    body["_debug_render_only"] = True
    assert "_debug_info" in servers["0.11.5-rc3"].post("/api/generate", body).json()
    older = servers["0.11.4"].post("/api/generate", body).json()  # an unknown field: ignored
    assert older["done"] is True and older["response"] == "bcde"


# -- 3. /api/show model_info arrays -----------------------------------------------------------


def test_show_keeps_empty_arrays_without_verbose(servers: dict[str, Server]) -> None:
    recorded = _recorded("0.24.0", "show.scratch")["body"]["model_info"]
    for version in ("0.12.11", "0.24.0"):
        info = servers[version].post("/api/show", {"model": "conformance-tiny-stop"}).json()
        info = info["model_info"]
        assert info["tokenizer.ggml.merges"] == [] == recorded["tokenizer.ggml.merges"]
        assert info["tokenizer.ggml.tokens"] is None and info["tokenizer.ggml.token_type"] is None
        assert info == recorded
    # verbose keeps every array whole.
    full = servers["0.24.0"].post("/api/show", {"model": "conformance-tiny-stop", "verbose": True})
    assert len(full.json()["model_info"]["tokenizer.ggml.tokens"]) == 258


# -- 4. details of a model created from files ---------------------------------------------------


@pytest.mark.parametrize("version", ["0.12.11", "0.24.0"])
def test_details_of_a_files_created_model(servers: dict[str, Server], version: str) -> None:
    server = servers[version]
    recorded = _recorded(version, "show.scratch")["body"]["details"]
    shown = server.post("/api/show", {"model": "conformance-tiny-stop"}).json()["details"]
    blob = server.running.data_dir / "blobs" / ("sha256-" + model_digest("stop")[7:])
    assert shown["parent_model"] == str(blob)  # the uploaded file, under the model store
    assert recorded["parent_model"] == "<OLLAMA_MODELS>/blobs/" + blob.name
    assert {k: v for k, v in shown.items() if k != "parent_model"} == {
        k: v for k, v in recorded.items() if k != "parent_model"
    }
    assert shown["parameter_size"] == "74K" and shown["quantization_level"] == "unknown"
    # The lists leave parent_model empty; a model made `from` another names it.
    assert _tags_entry(server, "conformance-tiny-stop:latest")["details"]["parent_model"] == ""
    derived = server.post("/api/show", {"model": "derived"}).json()["details"]
    assert derived["parent_model"] == "conformance-tiny-stop:latest"


def test_human_numbers_follow_ollama() -> None:
    cases = {
        74176: "74K",
        999: "999",
        1000: "1K",
        1500: "2K",
        2500: "2K",  # %.0f rounds a tie to even, in Go as in Python
        1_000_000: "1M",
        1_240_000: "1.24M",
        8_000_000_000: "8B",
        8_030_261_248: "8.0B",
        7_241_732_096: "7.2B",
    }
    assert {n: human_number(n) for n in cases} == cases
    # Before v0.1.35: whole units, rounded half away from zero, only above the unit.
    assert [human_number(n, legacy=True) for n in (1000, 2500, 74176)] == ["1000", "3K", "74K"]


def test_file_type_names_follow_ollama() -> None:
    assert file_type_name(0) == file_type_name(None) == "unknown"  # F32 counts as unknown
    assert [file_type_name(t) for t in (1, 2, 7, 15, 32)] == [
        "F16",
        "Q4_0",
        "Q8_0",
        "Q4_K_M",
        "BF16",
    ]

    def at(version: str) -> Any:
        return ReferenceConfig(version=version).at_least

    assert file_type_name(19, at("0.6.0")) == "IQ2_XXS"
    assert file_type_name(19, at("0.24.0")) == "unknown"
    assert file_type_name(4, at("0.24.0")) == "MXFP4"
    assert file_type_name(4, at("0.6.0")) == "Q4_1_F16"


# -- 5. /api/tags size ------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.12.11", "0.24.0"])
def test_tags_size_counts_every_layer_and_the_config(
    servers: dict[str, Server], version: str
) -> None:
    recorded = _recorded(version, "tags.get")["body"]["models"]
    real = {m["name"]: m["size"] for m in recorded}
    server = servers[version]
    stop = _tags_entry(server, "conformance-tiny-stop:latest")
    embed = _tags_entry(server, "conformance-tiny-embed:latest")
    # GGUF + template layer (44 bytes) + config (339); the embed model has no template layer.
    assert stop["size"] == real["conformance-tiny-stop:latest"] == 302_016 + 44 + 339
    assert embed["size"] == real["conformance-tiny-embed:latest"] == 302_048 + 265


def test_the_show_modelfile_quotes_like_ollama(servers: dict[str, Server]) -> None:
    recorded = _recorded("0.24.0", "show.scratch")["body"]["modelfile"]
    server = servers["0.24.0"]
    shown = server.post("/api/show", {"model": "conformance-tiny-stop"}).json()["modelfile"]
    store = str(server.running.data_dir)
    assert shown.replace(store, "<OLLAMA_MODELS>") == recorded.replace(
        "conformance-differential-scratch", "conformance-tiny-stop"
    )
    # A model without a template shows the default one Ollama runs it with.
    embed = server.post("/api/show", {"model": "conformance-tiny-embed"}).json()
    assert (
        embed["template"] == "{{ .Prompt }}" and "\nTEMPLATE {{ .Prompt }}\n" in embed["modelfile"]
    )
    # Text with a newline (or an outer space) is quoted, with triple quotes if it holds a quote.
    body = {"model": "quoted", "from": "conformance-tiny-stop", "stream": False}
    body["system"] = 'say "hi"\nnow'
    assert server.post("/api/create", body).status_code == 200
    quoted = server.post("/api/show", {"model": "quoted"}).json()["modelfile"]
    assert '\nSYSTEM """say "hi"\nnow"""\n' in quoted


# -- 6. differently-cased model names ---------------------------------------------------------


def test_chat_with_a_differently_cased_name(servers: dict[str, Server]) -> None:
    """Real 0.12.11 chat: 404 for an upper-cased name generate accepts; 0.24.0 accepts it."""
    upper = "CONFORMANCE-TINY-STOP"
    chat = {"model": upper, "messages": [{"role": "user", "content": "a"}], "stream": False}
    generate = {"model": upper, "prompt": "a", "raw": True, "stream": False}
    for version, status in (
        ("0.11.11", 200),  # scheduled by the resolved name, no lookup of its own yet
        ("0.12.0-rc0", 404),  # the early lookup reads the manifest by the name as sent
        ("0.12.11", 404),
        ("0.15.4", 404),
        ("0.15.5", 200),  # v0.15.5-rc5 looks up the resolved name
        ("0.24.0", 200),
    ):
        answer = servers[version].post("/api/chat", chat)
        assert answer.status_code == status, version
        if status == 404:
            assert answer.json() == {"error": f"model '{upper}' not found"}
        else:
            assert answer.json()["model"] == upper and answer.json()["message"]["content"]
        assert servers[version].post("/api/generate", generate).json()["response"] == "bcde"


def test_legacy_embeddings_never_match_case_insensitively(servers: dict[str, Server]) -> None:
    for version in ("0.12.11", "0.24.0"):
        server = servers[version]
        body = {"model": "CONFORMANCE-TINY-EMBED", "prompt": "abc"}
        answer = server.post("/api/embeddings", body)
        expected = 'model "CONFORMANCE-TINY-EMBED" not found, try pulling it first'
        assert (answer.status_code, answer.json()) == (404, {"error": expected})
        # /api/embed resolves the name first.
        assert server.post("/api/embed", {**body, "input": "abc"}).status_code == 200


def test_chat_missing_model_wording_changed_in_0_12_0_rc0(servers: dict[str, Server]) -> None:
    body = {"model": "nope", "messages": [{"role": "user", "content": "a"}]}
    old = servers["0.11.11"].post("/api/chat", body).json()  # the scheduler's wording
    assert old == {"error": 'model "nope" not found, try pulling it first'}
    assert servers["0.12.0-rc0"].post("/api/chat", body).json() == {
        "error": "model 'nope' not found"
    }


def test_chat_refuses_a_think_level_after_rendering(servers: dict[str, Server]) -> None:
    """0.12.x chat checks ``think`` strings late: a non-thinking model refuses ``think`` first."""
    server = servers["0.12.11"]
    base = {"messages": [{"role": "user", "content": "a"}], "think": "high", "stream": False}
    stop = server.post("/api/chat", {**base, "model": "conformance-tiny-stop"}).json()
    assert stop == {"error": '"conformance-tiny-stop" does not support thinking'}
    thinking = server.post("/api/chat", {**base, "model": "tiny-thinking"}).json()
    assert thinking == {"error": 'think value "high" is not supported for this model'}
    # generate still refuses the level before anything else.
    generate = server.post(
        "/api/generate", {"model": "conformance-tiny-stop", "prompt": "a"} | base
    )
    assert generate.json() == {"error": 'think value "high" is not supported for this model'}


def test_a_prompt_without_tokens_is_the_runners_500(servers: dict[str, Server]) -> None:
    """The tiny GGUF adds no BOS, so a history that renders to "" cannot run (before 0.30)."""
    body = {"model": "conformance-tiny-stop", "messages": [{"role": "user", "content": ""}]}
    for stream in (False, True):
        answer = servers["0.24.0"].post("/api/chat", {**body, "stream": stream})
        assert (answer.status_code, answer.json()) == (500, {"error": NO_INPUT})


# -- 7. /api/embed truncate=false wording -----------------------------------------------------


def test_embed_overflow_wording_by_release(servers: dict[str, Server]) -> None:
    body = {"model": "conformance-tiny-embed", "input": "ab" * 1500, "truncate": False}
    expected = {
        "0.12.0-rc0": "input length exceeds maximum context length",
        "0.12.0-rc1": "input exceeds maximum context length",
        "0.13.2": "input exceeds maximum context length",
        "0.13.3-rc0": "the input length exceeds the context length",
    }
    for version, message in expected.items():
        answer = servers[version].post("/api/embed", body)
        assert (answer.status_code, answer.json()) == (400, {"error": message}), version
    for version in ("0.12.11", "0.24.0"):
        recorded = _recorded(version, "embed.overflow-no-truncate")
        answer = servers[version].post("/api/embed", body)
        assert (answer.status_code, answer.json()) == (recorded["status"], recorded["body"])


# -- 8. HEAD of a blob that is not there --------------------------------------------------------


def _raw_head(server: Server, path: str) -> bytes:
    """The exact bytes a HEAD request gets back (the connection is closed after it)."""
    host, port = server.running.host, server.running.port
    with socket.create_connection((host, port), timeout=10) as sock:
        request = f"HEAD {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_head_of_an_absent_blob_keeps_the_dropped_bodys_length(
    servers: dict[str, Server],
) -> None:
    server = servers["0.24.0"]
    recorded = _recorded("0.24.0", "blobs.head-absent")
    absent = recorded["request"]["path"]
    for path, status, length in ((absent, 404, 102), ("/api/blobs/nope", 400, 33)):
        answer = server.client.head(path)
        assert answer.status_code == status and answer.headers["content-length"] == str(length)
        raw = _raw_head(server, path)
        head, _, body = raw.partition(b"\r\n\r\n")
        assert body == b"" and f"content-length: {length}".encode() in head.lower()
    assert recorded["headers"]["content-length"] == "102"


# -- 9. TCP_NODELAY -----------------------------------------------------------------------------


def test_connections_have_nagle_turned_off(servers: dict[str, Server]) -> None:
    """Go's net package sets TCP_NODELAY on every connection; the reference must too.

    Checked on the server's side of a live connection: uvicorn keeps its protocol objects, whose
    transport holds the accepted socket.
    """
    server = servers["0.24.0"]
    with httpx.Client(base_url=server.running.url) as client:
        assert client.get("/api/version").status_code == 200
        connections = list(server.running._server.server_state.connections)
        assert connections
        for protocol in connections:
            sock = protocol.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


# -- further release boundaries, from Ollama's git trees (the requirements catalogue) -----------


@pytest.fixture(scope="module")
def bare() -> Iterator[dict[str, httpx.Client]]:
    """Catalogue-only servers for releases around boundaries no recording covers."""
    versions = ["0.6.0", "0.6.1-rc0", "0.6.4-rc0", "0.9.6", "0.9.7-rc0", "0.10.1", "0.11.0-rc0"]
    versions += ["0.11.10", "0.11.11-rc0", "0.12.4", "0.12.4-rc6", "0.12.4-rc7", "0.12.5-rc0"]
    versions += ["0.17.7", "0.17.8-rc0"]
    running = [
        start_background(ReferenceConfig(version=v, token_rate=0, load_time=0)) for v in versions
    ]
    clients = {
        v: httpx.Client(base_url=r.url, timeout=30) for v, r in zip(versions, running, strict=True)
    }
    try:
        yield clients
    finally:
        for client in clients.values():
            client.close()
        for server in running:
            server.stop()


def test_think_levels_arrived_in_0_11_0_rc0(bare: dict[str, httpx.Client]) -> None:
    body = {"model": "tiny-completion", "prompt": "a", "think": "high", "stream": False}
    old = bare["0.10.1"].post("/api/generate", json=body).json()  # think was a *bool
    assert old["error"].startswith("json: cannot unmarshal string into Go struct field")
    refused = bare["0.11.0-rc0"].post("/api/generate", json=body).json()
    assert refused == {"error": 'think value "high" is not supported for this model'}


def test_think_type_error_names_true_and_false_from_0_12_4_rc7(
    bare: dict[str, httpx.Client],
) -> None:
    body = {"model": "tiny-completion", "prompt": "a", "think": 1}
    levels = '"high", "medium", "low"'
    old = bare["0.12.4-rc6"].post("/api/generate", json=body).json()
    assert old == {"error": f"think must be a boolean or string ({levels})"}
    new = bare["0.12.4-rc7"].post("/api/generate", json=body).json()
    assert new == {"error": f"think must be a boolean or string ({levels}, true, or false)"}


def test_ps_context_length_from_0_9_7_rc0(bare: dict[str, httpx.Client]) -> None:
    for version, present in (("0.9.6", False), ("0.9.7-rc0", True)):
        client = bare[version]
        assert client.post("/api/generate", json={"model": "tiny-completion"}).status_code == 200
        entry = client.get("/api/ps").json()["models"][0]
        assert ("context_length" in entry) is present, version


def test_model_name_parsing_changed_in_0_17_8_rc0(bare: dict[str, httpx.Client]) -> None:
    """The modelref checks (invalid model name, trimming) are not in the v0.17.7 tree yet."""
    generate = {"model": "bad name", "prompt": "a", "stream": False}
    old, new = bare["0.17.7"], bare["0.17.8-rc0"]
    assert old.post("/api/generate", json=generate).json() == {
        "error": "model 'bad name' not found"
    }
    assert new.post("/api/generate", json=generate).json() == {"error": "invalid model name"}
    assert old.request("DELETE", "/api/delete", json={"model": ""}).json() == {
        "error": 'name "" is invalid'
    }
    assert new.request("DELETE", "/api/delete", json={"model": ""}).json() == {
        "error": "model is required"
    }
    assert old.post("/api/show", json={"model": "bad name"}).status_code == 500
    assert new.post("/api/show", json={"model": "bad name"}).json() == {
        "error": "invalid model name"
    }


def test_show_fields_by_first_tag(bare: dict[str, httpx.Client]) -> None:
    """tensors from v0.6.1-rc0, capabilities from v0.6.4-rc0 (the facts sheet says 0.9)."""
    shown = {v: bare[v].post("/api/show", json={"model": "tiny-completion"}).json() for v in bare}
    assert "tensors" not in shown["0.6.0"] and "tensors" in shown["0.6.1-rc0"]
    assert "capabilities" not in shown["0.6.1-rc0"]
    assert shown["0.6.4-rc0"]["capabilities"] == ["completion"]


def test_quoted_thinking_refusal_from_0_12_5_rc0(bare: dict[str, httpx.Client]) -> None:
    body = {"model": "tiny-completion", "prompt": "a", "think": True, "stream": False}
    old = bare["0.12.4"].post("/api/generate", json=body).json()
    assert old == {
        "error": "registry.ollama.ai/library/tiny-completion:latest does not support thinking"
    }
    new = bare["0.12.5-rc0"].post("/api/generate", json=body).json()
    assert new == {"error": '"tiny-completion" does not support thinking'}


def test_embed_dimensions_from_0_11_11_rc0(bare: dict[str, httpx.Client]) -> None:
    body = {"model": "tiny-embed", "input": "abc", "dimensions": 2}
    assert len(bare["0.11.10"].post("/api/embed", json=body).json()["embeddings"][0]) == 384
    assert len(bare["0.11.11-rc0"].post("/api/embed", json=body).json()["embeddings"][0]) == 2


# -- values the recorded suite run showed (fixtures/transcripts/<version>/suite) ---------------


def test_context_is_the_prompt_and_the_text_without_eos(servers: dict[str, Server]) -> None:
    """Ollama re-tokenizes prompt + answer for ``context``: the EOS that ended it is not there."""
    server = servers["0.24.0"]
    body = {"model": "conformance-tiny-stop", "prompt": "a", "system": "x", "stream": False}
    answer = server.post("/api/generate", body).json()
    assert answer["response"] == "bcde" and answer["eval_count"] == 5  # the EOS is counted...
    assert answer["context"] == [120, 97, 98, 99, 100, 101]  # ...but not kept (real 0.24.0)
    again = server.post("/api/generate", {**body, "context": [97]}).json()
    assert again["context"][:3] == [97, 120, 97] and again["context"][-1] == 101


def test_underscores_are_tokens(servers: dict[str, Server]) -> None:
    """Real 0.24.0 counted 95 prompt tokens for this 95-byte chat (byte tokens, no merges)."""
    messages = [
        {
            "role": "user",
            "content": "What is the weather in Paris right now? Use the get_weather tool.",
        },
        {"role": "tool", "content": "18 degrees Celsius, light rain"},
    ]
    body = {"model": "conformance-tiny-stop", "messages": messages, "stream": False}
    answer = servers["0.24.0"].post("/api/chat", body).json()
    assert answer["prompt_eval_count"] == 95 and answer["message"]["content"] == "opqrstuvwxyzabcde"


@pytest.mark.parametrize("version", ["0.12.11", "0.24.0"])
def test_ps_context_length_as_each_release_reports_it(
    servers: dict[str, Server], version: str
) -> None:
    """0.12.11 reports the configured 4096, 0.24.0 the 2048 the model is trained for."""
    recorded = _recorded(version, "ps.loaded")["body"]["models"]
    expected = {m["context_length"] for m in recorded}
    server = servers[version]
    loaded = server.post("/api/embed", {"model": "conformance-tiny-embed", "input": "abc"})
    assert loaded.status_code == 200
    models = server.client.get("/api/ps").json()["models"]
    entry = next(m for m in models if m["name"] == "conformance-tiny-embed:latest")
    assert {entry["context_length"]} == expected == {4096 if version == "0.12.11" else 2048}


# -- prompt rendering (checked against the real 0.24.0 and 0.12.11 binaries with debug rendering) --


def _rendered(server: Server, path: str, body: dict[str, Any]) -> str:
    answer = server.post(path, {**body, "_debug_render_only": True}).json()
    text: str = answer["_debug_info"]["rendered_template"]
    return text


@pytest.mark.parametrize("version", ["0.12.11", "0.24.0"])
def test_runs_of_one_role_are_collated(servers: dict[str, Server], version: str) -> None:
    server = servers[version]

    def chat(*messages: tuple[str, str]) -> str:
        listed = [{"role": r, "content": c} for r, c in messages]
        return _rendered(
            server, "/api/chat", {"model": "conformance-tiny-stop", "messages": listed}
        )

    assert chat(("user", "a"), ("user", "b")) == "a\n\nb"
    assert chat(("system", "s1"), ("system", "s2"), ("user", "a")) == "s1\n\ns2a"
    assert chat(("user", "a"), ("tool", "t1"), ("tool", "t2")) == "at1t2"  # tools stay apart


def test_tool_results_were_collated_before_0_9_6_rc0() -> None:
    from conformance.reference.render import collate

    tools = [{"role": "tool", "content": "t1"}, {"role": "tool", "content": "t2"}]
    assert [m["content"] for m in collate(tools, merge_tools=True)] == ["t1\n\nt2"]
    assert [m["content"] for m in collate(tools, merge_tools=False)] == ["t1", "t2"]


@pytest.mark.parametrize("version", ["0.12.11", "0.24.0"])
def test_images_become_markers(servers: dict[str, Server], version: str) -> None:
    server = servers[version]
    image = "aGVsbG8="
    messages = [
        {"role": "user", "content": "a", "images": [image]},
        {"role": "user", "content": "x [img] y", "images": [image, image]},
    ]
    chat = _rendered(server, "/api/chat", {"model": "conformance-tiny-stop", "messages": messages})
    assert chat == "[img-0]a\n\n[img-2]x [img-1] y"
    body = {"model": "conformance-tiny-stop", "prompt": "a", "system": "q", "images": [image] * 2}
    assert _rendered(server, "/api/generate", body) == "q[img-0][img-1]a"


def test_generate_images_were_messages_before_0_12_6_rc0() -> None:
    from conformance.reference.render import generate_prompt

    common: dict[str, Any] = {
        "template_text": "{{ range .Messages }}{{ .Content }}{{ end }}",
        "prompt": "a",
        "system": "",
        "suffix": "",
        "model_messages": [],
        "has_context": False,
        "raw": False,
        "think": None,
        "images": 2,
    }
    assert generate_prompt(**common, image_style="messages") == "[img-0]\n\n[img-1]\n\na"
    assert generate_prompt(**common, image_style="tags") == "[img-0][img-1]a"
    assert generate_prompt(**common, image_style="none") == "a"
