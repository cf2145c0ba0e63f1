"""Differential testing: send one corpus of requests to two servers and compare what came back.

The suite judges a server against documented requirements; the differential judges it against
another server. Pointed at real Ollama and at the reference server emulating the same version, it
finds where the reference server (or the suite's idea of Ollama) has drifted, without anyone having
to write a requirement first. Pointed at two Ollama releases, it shows what an upgrade changed.

What is compared, per request of the corpus (:data:`CORPUS`), is what two correct servers must
agree on whatever their models say:

* ``transport`` -- whether an HTTP answer arrived at all;
* ``status`` and ``content_type`` (the full header, so a missing charset counts), plus ``headers``
  that carry meaning for errors (``Allow`` of a 405, ``Location`` of a redirect);
* ``done_reason`` of the single answer or of the final stream line;
* ``error`` strings, after the parameters (model names, digests) and machine paths are replaced
  by placeholders, so ``model 'conformance-tiny-stop' not found`` and ``model 'tiny-completion'
  not found`` compare equal;
* ``stream`` structure: how many ``done: true`` lines, whether the last line is one, error lines;
* ``contract``: whether each body holds to the contract of its version
  (:func:`conformance.contract.validate`);
* ``shape``: for bodies both servers got right, the set of keys and the JSON type of every value
  (never the values themselves: texts, vectors and durations differ between any two servers).

Model names are parameters (:class:`Params`) so each server answers with its own models. A
difference that is known and explained is listed, with its reason, in a TOML file
(``fixtures/expectations/differential-<version>.toml``); only the others fail the comparison.

Either side may also be a folder of recorded transcripts (:mod:`conformance.transcripts`), so a
machine without Go can compare the reference server against real answers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import secrets
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.client import Bounds, Client, check_reachable
from conformance.contract import validate
from conformance.exchange import Exchange

__all__ = [
    "ASPECTS",
    "CORPUS",
    "Difference",
    "KnownDifferences",
    "Observation",
    "Params",
    "Probe",
    "Shape",
    "compare",
    "compare_runs",
    "contract_kinds",
    "diff_shapes",
    "load_known",
    "normalize_error",
    "register",
    "request_record",
    "run_corpus",
    "scrub_text",
    "scrub_value",
    "shape_of",
]

#: The aspects of an exchange that are compared, in report order.
ASPECTS: tuple[str, ...] = (
    "transport",
    "status",
    "content_type",
    "headers",
    "done_reason",
    "error",
    "stream",
    "contract",
    "shape",
)
#: Response headers kept in observations (and transcripts): those whose value a client acts on.
KEPT_HEADERS: tuple[str, ...] = (
    "content-type",
    "content-length",
    "allow",
    "location",
    "access-control-allow-origin",
    "vary",
)
#: Of those, the ones compared (content-type has its own aspect; lengths depend on the values).
COMPARED_HEADERS: tuple[str, ...] = ("allow", "location", "access-control-allow-origin", "vary")
#: Request headers kept in observations: the ones a probe sets on purpose.
KEPT_REQUEST_HEADERS: tuple[str, ...] = ("content-type", "origin")
#: JSON request bodies longer than this are summarised (size and digest) instead of stored.
MAX_STORED_REQUEST = 4096
#: Paths of objects whose keys depend on the model's architecture, not on the server.
DEFAULT_OPAQUE: frozenset[str] = frozenset({"$.model_info", "$.projector_info"})

# --------------------------------------------------------------------------------------------
# Parameters


@dataclass(frozen=True)
class Params:
    """What differs between the two servers' runs of the corpus: names, and a run nonce.

    ``nonce`` makes the "new blob" probes upload bytes no earlier run uploaded (Ollama cannot
    delete a blob, so a fixed blob would answer 200 instead of 201 the second time).
    """

    model: str
    embed_model: str
    scratch: str = "conformance-differential-scratch"
    copy: str = "conformance-differential-copy"
    nonce: str = field(default_factory=lambda: secrets.token_hex(8))

    @property
    def nonce_blob(self) -> bytes:
        """Bytes that are certainly not a GGUF file and not on the server yet."""
        return f"ollama-conformance differential blob {self.nonce}\n".encode()

    @property
    def nonce_digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.nonce_blob).hexdigest()

    @property
    def gguf_blob(self) -> bytes:
        """The tiny GGUF the scratch model is made of (the ``stop`` variant)."""
        from conformance.models.tiny_gguf import model_bytes

        return model_bytes("stop")

    @property
    def gguf_digest(self) -> str:
        from conformance.models.tiny_gguf import model_digest

        return model_digest("stop")

    def substitutions(self) -> dict[str, str]:
        """Placeholder -> value, for filling the corpus in."""
        return {
            "model": self.model,
            "embed_model": self.embed_model,
            "scratch": self.scratch,
            "copy": self.copy,
            "gguf_digest": self.gguf_digest,
            "nonce_digest": self.nonce_digest,
            "nonce_hex": self.nonce_digest.removeprefix("sha256:"),
        }

    def to_dict(self) -> dict[str, str]:
        """The names used (the nonce too, so a transcript says which blob it uploaded)."""
        return {
            "model": self.model,
            "embed_model": self.embed_model,
            "scratch": self.scratch,
            "copy": self.copy,
            "nonce": self.nonce,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Params:
        return cls(
            model=str(data["model"]),
            embed_model=str(data["embed_model"]),
            scratch=str(data.get("scratch", "conformance-differential-scratch")),
            copy=str(data.get("copy", "conformance-differential-copy")),
            nonce=str(data.get("nonce", "0")),
        )


_PLACEHOLDER = re.compile(r"\$\{([a-z_]+)\}")


def fill(value: Any, subs: Mapping[str, str]) -> Any:
    """``value`` with every ``${name}`` in its strings (keys too) replaced."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: subs[m.group(1)], value)
    if isinstance(value, list):
        return [fill(v, subs) for v in value]
    if isinstance(value, dict):
        return {fill(k, subs): fill(v, subs) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------------
# The corpus

_NO_BODY: Any = object()


@dataclass(frozen=True)
class Probe:
    """One request of the corpus.

    ``body`` is JSON with ``${...}`` placeholders (see :meth:`Params.substitutions`); ``raw``
    sends bytes as they are (malformed bodies); ``upload`` sends a blob (``"gguf"`` or
    ``"nonce"``). ``endpoint`` names the contract kinds of the answer. ``compare=False`` marks a
    setup step whose answer legitimately depends on the server's earlier state.
    """

    id: str
    method: str
    path: str
    endpoint: str | None = None
    body: Any = _NO_BODY
    raw: bytes | None = None
    upload: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    compare: bool = True
    note: str = ""

    def request_body(self, params: Params) -> tuple[Any, bytes | None]:
        """``(json, content)`` to send; json is ``_NO_BODY`` when raw bytes (or none) go."""
        if self.upload == "gguf":
            return _NO_BODY, params.gguf_blob
        if self.upload == "nonce":
            return _NO_BODY, params.nonce_blob
        if self.raw is not None:
            return _NO_BODY, self.raw
        if self.body is _NO_BODY:
            return _NO_BODY, None
        return fill(self.body, params.substitutions()), None


def _gen(model: str = "${model}", **fields: Any) -> dict[str, Any]:
    return {"model": model, **fields}


def _generate(pid: str, model: str = "${model}", **fields: Any) -> Probe:
    return Probe(pid, "POST", "/api/generate", "generate", body=_gen(model, **fields))


def _chat(pid: str, model: str = "${model}", **fields: Any) -> Probe:
    return Probe(pid, "POST", "/api/chat", "chat", body=_gen(model, **fields))


def _embed(pid: str, model: str = "${embed_model}", **fields: Any) -> Probe:
    return Probe(pid, "POST", "/api/embed", "embed", body=_gen(model, **fields))


def _embeddings(pid: str, model: str = "${embed_model}", **fields: Any) -> Probe:
    return Probe(pid, "POST", "/api/embeddings", "embeddings", body=_gen(model, **fields))


def _create(pid: str, **fields: Any) -> Probe:
    return Probe(pid, "POST", "/api/create", "create", body=fields)


def _raw_generate(pid: str, raw: bytes) -> Probe:
    return Probe(pid, "POST", "/api/generate", "generate", raw=raw)


#: Bounded generation: every completion probe sets num_predict <= 10.
_LENGTH = {"num_predict": 5, "temperature": 0, "seed": 42}
#: Stop strings that end any text of either server early: the tiny models' alphabet holds "e",
#: the reference engine's sentences end with ".".
_STOPS = {"num_predict": 10, "temperature": 0, "seed": 42, "stop": ["e", "."]}
_USER_A = [{"role": "user", "content": "a"}]
_TEMPLATE = "{{ range .Messages }}{{ .Content }}{{ end }}"
_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "the weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
_ABSENT = "conformance-absent"
_ABSENT_DIGEST = "sha256:" + hashlib.sha256(b"ollama-conformance: never uploaded").hexdigest()
_ZERO_DIGEST = "sha256:" + "0" * 64
_SCRATCH_FILES = {"model.gguf": "${gguf_digest}"}

#: The requests, in the order they are sent. Later probes rely on earlier ones: the scratch model
#: made by ``create.files`` is shown, copied and finally deleted; ``ps.loaded`` follows the
#: generations that load models, and the unload probes follow it.
CORPUS: tuple[Probe, ...] = (
    # -- root, version, routing -----------------------------------------------------------
    Probe("root.get", "GET", "/", "root"),
    Probe("root.head", "HEAD", "/"),
    Probe("version.get", "GET", "/api/version", "version"),
    Probe("version.head", "HEAD", "/api/version"),
    Probe("route.unknown-get", "GET", "/api/nope"),
    Probe("route.unknown-post", "POST", "/api/nope", body={}),
    Probe("route.trailing-slash", "GET", "/api/tags/"),
    Probe("method.get-generate", "GET", "/api/generate"),
    Probe("method.get-show", "GET", "/api/show"),
    Probe("method.head-ps", "HEAD", "/api/ps"),
    Probe("method.options-tags", "OPTIONS", "/api/tags"),
    Probe("method.post-delete", "POST", "/api/delete", body={"model": "${copy}"}),
    Probe("cors.foreign-origin", "GET", "/api/version", headers={"Origin": "http://evil.example"}),
    Probe(
        "cors.localhost-origin",
        "GET",
        "/api/version",
        "version",
        headers={"Origin": "http://localhost:3000"},
    ),
    # -- blobs ------------------------------------------------------------------------------
    Probe("blobs.head-absent", "HEAD", f"/api/blobs/{_ABSENT_DIGEST}"),
    Probe("blobs.post-new", "POST", "/api/blobs/${nonce_digest}", upload="nonce"),
    Probe("blobs.post-again", "POST", "/api/blobs/${nonce_digest}", upload="nonce"),
    Probe("blobs.head-present", "HEAD", "/api/blobs/${nonce_digest}"),
    Probe("blobs.head-dash-form", "HEAD", "/api/blobs/sha256-${nonce_hex}"),
    Probe("blobs.post-bad-digest", "POST", "/api/blobs/sha256:xyz", raw=b"hello"),
    Probe("blobs.head-bad-digest", "HEAD", "/api/blobs/nope"),
    Probe("blobs.post-mismatch", "POST", f"/api/blobs/{_ZERO_DIGEST}", raw=b"hello"),
    Probe(
        "blobs.post-gguf",
        "POST",
        "/api/blobs/${gguf_digest}",
        upload="gguf",
        compare=False,
        note="setup: 201 or 200 depending on whether the server had the tiny GGUF already",
    ),
    # -- create -----------------------------------------------------------------------------
    _create(
        "create.files", model="${scratch}", files=_SCRATCH_FILES, template=_TEMPLATE, stream=False
    ),
    _create("create.files-streamed", model="${scratch}", files=_SCRATCH_FILES, template=_TEMPLATE),
    _create("create.neither", model="${copy}", stream=False),
    _create("create.files-empty", model="${copy}", files={}, stream=False),
    _create(
        "create.not-gguf", model="${copy}", files={"model.gguf": "${nonce_digest}"}, stream=False
    ),
    _create(
        "create.missing-blob", model="${copy}", files={"model.gguf": _ABSENT_DIGEST}, stream=False
    ),
    _create(
        "create.bad-template",
        model="${copy}",
        files=_SCRATCH_FILES,
        template="{{ .Prompt",
        stream=False,
    ),
    # -- tags, show ---------------------------------------------------------------------------
    Probe("tags.get", "GET", "/api/tags", "tags"),
    Probe("tags.head", "HEAD", "/api/tags"),
    Probe("show.scratch", "POST", "/api/show", "show", body={"model": "${scratch}"}),
    Probe("show.model", "POST", "/api/show", "show", body={"model": "${model}"}),
    Probe("show.name-alias", "POST", "/api/show", "show", body={"name": "${scratch}"}),
    Probe("show.missing", "POST", "/api/show", "show", body={"model": _ABSENT}),
    Probe("show.no-model", "POST", "/api/show", "show", body={}),
    # -- generate ---------------------------------------------------------------------------
    _generate("generate.load"),
    _generate("generate.stream-length", prompt="a", raw=True, options=_LENGTH),
    _generate("generate.single-length", prompt="a", raw=True, stream=False, options=_LENGTH),
    _generate("generate.stream-stop", prompt="a", raw=True, options=_STOPS),
    _generate("generate.single-stop", prompt="a", raw=True, stream=False, options=_STOPS),
    _generate("generate.templated", prompt="a", system="x", stream=False, options=_LENGTH),
    _generate(
        "generate.format-json", prompt="a", raw=True, stream=False, format="json", options=_LENGTH
    ),
    _generate("generate.missing-model", _ABSENT, prompt="a", stream=False),
    _generate("generate.empty-model", "", prompt="a", stream=False),
    _generate("generate.invalid-name", "a b", prompt="a", stream=False),
    _raw_generate("generate.truncated-json", b'{"model":'),
    _raw_generate("generate.not-json", b"hello"),
    _raw_generate("generate.array-body", b"[]"),
    _raw_generate("generate.empty-body", b""),
    _raw_generate("generate.null-body", b"null"),
    _generate("generate.prompt-number", prompt=1, stream=False),
    _generate("generate.raw-with-system", prompt="a", raw=True, system="s", stream=False),
    _generate("generate.format-xml", prompt="a", stream=False, format="xml", options=_LENGTH),
    _generate("generate.format-xml-streamed", prompt="a", format="xml", options=_LENGTH),
    _generate("generate.option-wrong-type", prompt="a", stream=False, options={"num_predict": "5"}),
    _generate(
        "generate.stop-string", prompt="a", stream=False, options={"num_predict": 5, "stop": "x"}
    ),
    _generate(
        "generate.keep-alive-no-unit", prompt="a", stream=False, keep_alive="10", options=_LENGTH
    ),
    _generate(
        "generate.keep-alive-bool", prompt="a", stream=False, keep_alive=True, options=_LENGTH
    ),
    _generate("generate.think-unsupported", prompt="a", stream=False, think=True, options=_LENGTH),
    _generate("generate.think-bogus", prompt="a", stream=False, think="bogus", options=_LENGTH),
    _generate("generate.suffix-unsupported", prompt="a", suffix="z", stream=False, options=_LENGTH),
    _generate(
        "generate.bad-image",
        prompt="a",
        stream=False,
        images=["data:image/png;base64,AAAA"],
        options=_LENGTH,
    ),
    _generate(
        "generate.top-logprobs-range",
        prompt="a",
        stream=False,
        logprobs=True,
        top_logprobs=21,
        options=_LENGTH,
    ),
    _generate(
        "generate.on-embed-model", "${embed_model}", prompt="a", stream=False, options=_LENGTH
    ),
    _generate("generate.think-high", prompt="a", stream=False, think="high", options=_LENGTH),
    _generate("generate.keep-alive-500ms", keep_alive="500ms"),
    _generate(
        "generate.unknown-option",
        prompt="a",
        raw=True,
        stream=False,
        options={**_LENGTH, "bogus_option": 1},
    ),
    _generate(
        "generate.image-ignored",
        prompt="a",
        raw=True,
        stream=False,
        images=["aGVsbG8="],
        options=_LENGTH,
    ),
    _generate(
        "generate.logprobs",
        prompt="a",
        raw=True,
        stream=False,
        logprobs=True,
        top_logprobs=2,
        options=_LENGTH,
    ),
    Probe(
        "generate.debug-render",
        "POST",
        "/api/generate",
        None,
        body=_gen(prompt="a", system="s", stream=False, _debug_render_only=True, options=_LENGTH),
        note="an undocumented debugging switch: its answer has no contract kind",
    ),
    # -- chat -------------------------------------------------------------------------------
    _chat("chat.load", messages=[]),
    _chat("chat.stream-length", messages=_USER_A, options=_LENGTH),
    _chat("chat.single-length", messages=_USER_A, stream=False, options=_LENGTH),
    _chat("chat.stream-stop", messages=_USER_A, options=_STOPS),
    _chat("chat.single-stop", messages=_USER_A, stream=False, options=_STOPS),
    _chat("chat.missing-model", _ABSENT, messages=_USER_A, stream=False),
    _chat("chat.empty-model", "", messages=_USER_A, stream=False),
    _chat("chat.content-number", messages=[{"role": "user", "content": 1}], stream=False),
    _chat("chat.tools-unsupported", messages=_USER_A, stream=False, tools=[_TOOL], options=_LENGTH),
    _chat("chat.think-unsupported", messages=_USER_A, stream=False, think=True, options=_LENGTH),
    _chat("chat.format-xml", messages=_USER_A, stream=False, format="xml", options=_LENGTH),
    _chat("chat.on-embed-model", "${embed_model}", messages=_USER_A, stream=False, options=_LENGTH),
    # -- embed, embeddings ------------------------------------------------------------------
    _embed("embed.single", input="abc"),
    _embed("embed.batch", input=["abc", "xyz"]),
    _embed("embed.dimensions", input="b", dimensions=2),
    _embed("embed.no-input"),
    _embed("embed.input-number", input=1),
    _embed("embed.empty-string", input=[""]),
    _embed("embed.overflow-no-truncate", input="a " * 2000, truncate=False),
    _embed("embed.missing-model", _ABSENT, input="a"),
    _embed("embed.empty-model", "", input="a"),
    _embeddings("embeddings.prompt", prompt="abc"),
    _embeddings("embeddings.empty-prompt", prompt=""),
    _embeddings("embeddings.missing-model", _ABSENT, prompt="a"),
    _embeddings("embeddings.empty-model", "", prompt="a"),
    # -- ps, load and unload ------------------------------------------------------------------
    Probe("ps.loaded", "GET", "/api/ps", "ps"),
    _generate("generate.unload", keep_alive=0),
    _chat("chat.unload", messages=[], keep_alive=0),
    _generate("embed.unload", "${embed_model}", prompt="", keep_alive=0, stream=False),
    _generate("generate.unload-missing", _ABSENT, keep_alive=0),
    # -- copy, delete, push -----------------------------------------------------------------
    Probe(
        "copy.ok",
        "POST",
        "/api/copy",
        "copy",
        body={"source": "${scratch}", "destination": "${copy}"},
    ),
    Probe(
        "copy.missing-source",
        "POST",
        "/api/copy",
        "copy",
        body={"source": _ABSENT, "destination": "${copy}"},
    ),
    Probe("show.copy", "POST", "/api/show", "show", body={"model": "${copy}"}),
    Probe("delete.ok", "DELETE", "/api/delete", "delete", body={"model": "${copy}"}),
    Probe("delete.again", "DELETE", "/api/delete", "delete", body={"model": "${copy}"}),
    Probe("delete.empty-name", "DELETE", "/api/delete", "delete", body={"model": ""}),
    Probe(
        "push.missing",
        "POST",
        "/api/push",
        "push",
        body={"model": "conformance-absent-push", "stream": False},
        note="fails on the local manifest before any network use",
    ),
    Probe("delete.scratch", "DELETE", "/api/delete", "delete", body={"model": "${scratch}"}),
    Probe("tags.after", "GET", "/api/tags", "tags"),
)


PROBES: dict[str, Probe] = {p.id: p for p in CORPUS}


# --------------------------------------------------------------------------------------------
# Observations


def scrub_text(text: str, paths: Iterable[str] = ()) -> str:
    """``text`` with this machine's paths replaced, so recordings and diffs are portable.

    ``paths`` (e.g. the server's ``OLLAMA_MODELS``) are replaced by ``<OLLAMA_MODELS>``; any other
    absolute path into a model store (``.../blobs/...``, ``.../manifests/...``) is cut the same
    way, because Ollama puts them into error strings and into ``/api/show``.
    """
    for path in sorted({p.rstrip("/") for p in paths if p}, key=len, reverse=True):
        text = text.replace(path, "<OLLAMA_MODELS>")
    return _STORE_PATH.sub(r"<OLLAMA_MODELS>/\1/", text)


_STORE_PATH = re.compile(r"(?<![\w<>])/(?:[^\s\"'<>:]+/)*?(?:models/)?(blobs|manifests)/")


def scrub_value(value: Any, paths: Sequence[str] = ()) -> Any:
    """:func:`scrub_text` applied to every string of a JSON value."""
    if isinstance(value, str):
        return scrub_text(value, paths)
    if isinstance(value, list):
        return [scrub_value(v, paths) for v in value]
    if isinstance(value, dict):
        return {k: scrub_value(v, paths) for k, v in value.items()}
    return value


@dataclass
class Observation:
    """What one probe produced on one server, as plain JSON-able data.

    ``body`` is the parsed JSON value (``body_kind == "json"``), the text (``"text"``), a summary
    (``"binary"``) or None (``"empty"``). An NDJSON answer has ``lines`` (each ``{"at": seconds
    since the request, "value": object}`` or ``{"at", "raw", "parse_error"}``) and no body.
    """

    probe: str
    endpoint: str | None
    request: dict[str, Any]
    status: int | None
    headers: dict[str, str]
    body_kind: str
    body: Any
    lines: list[dict[str, Any]] | None = None
    error: str | None = None
    headers_after: float | None = None
    finished_after: float | None = None

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_exchange(
        cls, probe: Probe, exchange: Exchange, scrub: Sequence[str] = ()
    ) -> Observation:
        """Summarise an exchange, keeping what the comparison and the transcripts need."""
        headers = {k: exchange.headers[k] for k in KEPT_HEADERS if k in exchange.headers}
        lines: list[dict[str, Any]] | None = None
        body_kind, body = "empty", None
        if exchange.read_as_lines:
            lines = []
            for line in exchange.lines:
                entry: dict[str, Any] = {"at": round(line.at, 6)}
                if line.parse_error is None:
                    entry["value"] = scrub_value(line.value, scrub)
                else:
                    entry["raw"] = scrub_text(line.raw.decode("utf-8", "replace"), scrub)
                    entry["parse_error"] = line.parse_error
                lines.append(entry)
            body_kind = "ndjson"
        elif exchange.body:
            value, problem = exchange.json()
            if problem is None:
                body_kind, body = "json", scrub_value(value, scrub)
            else:
                try:
                    body_kind, body = "text", scrub_text(exchange.body.decode("utf-8"), scrub)
                except UnicodeDecodeError:
                    body_kind = "binary"
                    body = {"bytes": len(exchange.body)}
        return cls(
            probe=probe.id,
            endpoint=probe.endpoint,
            request=_request_record(exchange, scrub),
            status=exchange.status,
            headers=headers,
            body_kind=body_kind,
            body=body,
            lines=lines,
            error=exchange.problem,
            headers_after=_round(exchange.headers_after),
            finished_after=_round(exchange.finished_after),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "probe": self.probe,
            "endpoint": self.endpoint,
            "request": self.request,
            "status": self.status,
            "headers": self.headers,
            "body_kind": self.body_kind,
            "body": self.body,
        }
        if self.lines is not None:
            data["lines"] = self.lines
        if self.error is not None:
            data["error"] = self.error
        data["headers_after"] = self.headers_after
        data["finished_after"] = self.finished_after
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Observation:
        return cls(
            probe=str(data["probe"]),
            endpoint=data.get("endpoint"),
            request=dict(data.get("request") or {}),
            status=data.get("status"),
            headers={str(k).lower(): str(v) for k, v in (data.get("headers") or {}).items()},
            body_kind=str(data.get("body_kind", "empty")),
            body=data.get("body"),
            lines=data.get("lines"),
            error=data.get("error"),
            headers_after=data.get("headers_after"),
            finished_after=data.get("finished_after"),
        )

    # -- views ------------------------------------------------------------------------------

    @property
    def values(self) -> list[Any]:
        """The parsed NDJSON lines (empty for a single answer)."""
        return [line["value"] for line in self.lines or [] if "value" in line]

    @property
    def objects(self) -> list[Any]:
        """Every JSON value of the answer: the lines of a stream, or the one body."""
        if self.lines is not None:
            return self.values
        return [self.body] if self.body_kind == "json" else []

    @property
    def final(self) -> dict[str, Any] | None:
        """The object that carries ``done: true`` (single answer or last such line)."""
        for value in reversed(self.objects):
            if isinstance(value, dict) and value.get("done") is True:
                return value
        return None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _request_record(exchange: Exchange, scrub: Sequence[str]) -> dict[str, Any]:
    return request_record(
        exchange.method, exchange.path, exchange.request_headers, exchange.request_body, scrub
    )


def request_record(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes | None,
    scrub: Sequence[str] = (),
) -> dict[str, Any]:
    """A request as stored: method, path, the headers a probe sets, and the body.

    A small JSON body is kept as JSON, small text as text; anything else (a GGUF upload) only as
    its size and sha256, which is also what a replay matches on.
    """
    record: dict[str, Any] = {"method": method.upper(), "path": path}
    wanted = {k.lower(): v for k, v in headers.items() if k.lower() in KEPT_REQUEST_HEADERS}
    if wanted:
        record["headers"] = wanted
    if body is None or body == b"":
        if body == b"":
            record["body"] = ""
        return record
    if len(body) <= MAX_STORED_REQUEST:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None:
            try:
                record["json"] = scrub_value(json.loads(text), scrub)
            except ValueError:
                record["body"] = text
            return record
    record["body_summary"] = {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    return record


def run_probe(
    client: Client, probe: Probe, params: Params, scrub: Sequence[str] = ()
) -> Observation:
    """Send one probe and observe the answer."""
    payload, content = probe.request_body(params)
    path = fill(probe.path, params.substitutions())
    headers = dict(probe.headers)
    kwargs: dict[str, Any] = {"headers": headers or None}
    if payload is not _NO_BODY:
        kwargs["json"] = payload
    elif content is not None:
        kwargs["content"] = content
        if probe.upload:
            headers["Content-Type"] = "application/octet-stream"
        elif probe.raw is not None and probe.method != "GET":
            headers["Content-Type"] = "application/json"
    exchange = client.request(probe.method, path, **kwargs)
    return Observation.from_exchange(probe, exchange, scrub)


def run_corpus(
    client: Client,
    params: Params,
    *,
    probes: Sequence[Probe] = CORPUS,
    scrub: Sequence[str] = (),
    on_observation: Callable[[Observation], None] | None = None,
) -> list[Observation]:
    """Send every probe, in order (later probes rely on the scratch model earlier ones made)."""
    observations: list[Observation] = []
    for probe in probes:
        obs = run_probe(client, probe, params, scrub)
        observations.append(obs)
        if on_observation is not None:
            on_observation(obs)
    return observations


# --------------------------------------------------------------------------------------------
# Shapes


@dataclass
class Shape:
    """The JSON types a value (or a set of values) takes, and the shapes of its members.

    ``integer`` and ``number`` are one type here: Go prints a whole float64 as ``0``, so a vector
    of floats may hold what Python parses as ints.
    """

    types: set[str] = field(default_factory=set)
    keys: dict[str, Shape] | None = None
    items: Shape | None = None
    opaque: bool = False

    def merge(self, other: Shape) -> Shape:
        """The shape covering both (used for array elements and stream lines)."""
        merged = Shape(types=self.types | other.types, opaque=self.opaque or other.opaque)
        if self.keys is not None or other.keys is not None:
            keys: dict[str, Shape] = {}
            for source in (self.keys or {}, other.keys or {}):
                for name, sub in source.items():
                    keys[name] = keys[name].merge(sub) if name in keys else sub
            merged.keys = keys
        if self.items is not None and other.items is not None:
            merged.items = self.items.merge(other.items)
        else:
            merged.items = self.items or other.items
        return merged

    def to_json(self) -> Any:
        """A compact rendering for reports: ``"string"``, ``{"k": ...}``, ``["number"]``."""
        parts: list[Any] = []
        for kind in sorted(self.types):
            if kind == "object":
                if self.opaque or self.keys is None:
                    parts.append("object")
                else:
                    parts.append({k: v.to_json() for k, v in sorted(self.keys.items())})
            elif kind == "array":
                parts.append([self.items.to_json()] if self.items is not None else [])
            else:
                parts.append(kind)
        return parts[0] if len(parts) == 1 else parts


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def shape_of(value: Any, *, opaque: Iterable[str] = DEFAULT_OPAQUE, path: str = "$") -> Shape:
    """The shape of one JSON value; objects at ``opaque`` paths keep their type, not their keys."""
    hidden = frozenset(opaque)
    kind = _type_name(value)
    shape = Shape(types={kind})
    if kind == "object":
        if path in hidden:
            shape.opaque = True
            shape.keys = {}
        else:
            shape.keys = {
                k: shape_of(v, opaque=hidden, path=f"{path}.{k}") for k, v in value.items()
            }
    elif kind == "array":
        for item in value:
            sub = shape_of(item, opaque=hidden, path=f"{path}[]")
            shape.items = sub if shape.items is None else shape.items.merge(sub)
    return shape


def shape_of_all(values: Iterable[Any], opaque: Iterable[str] = DEFAULT_OPAQUE) -> Shape | None:
    """The merged shape of several values (None when there are none)."""
    merged: Shape | None = None
    for value in values:
        sub = shape_of(value, opaque=opaque)
        merged = sub if merged is None else merged.merge(sub)
    return merged


def diff_shapes(a: Shape, b: Shape, path: str = "$") -> list[str]:
    """Where two shapes differ, one line per place (``$.x: only in a``, ``$.y: string vs null``).

    An empty array on either side says nothing about its elements, so element shapes are only
    compared when both sides have some.
    """
    out: list[str] = []
    if a.types != b.types:
        out.append(f"{path}: {'|'.join(sorted(a.types))} vs {'|'.join(sorted(b.types))}")
    if a.keys is not None and b.keys is not None and not (a.opaque or b.opaque):
        for name in sorted(set(a.keys) | set(b.keys)):
            sub_path = f"{path}.{name}"
            if name not in b.keys:
                out.append(f"{sub_path}: only in a ({_render(a.keys[name])})")
            elif name not in a.keys:
                out.append(f"{sub_path}: only in b ({_render(b.keys[name])})")
            else:
                out.extend(diff_shapes(a.keys[name], b.keys[name], sub_path))
    if a.items is not None and b.items is not None:
        out.extend(diff_shapes(a.items, b.items, f"{path}[]"))
    return out


def _render(shape: Shape) -> str:
    text = json.dumps(shape.to_json(), separators=(",", ":"))
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------------------------
# Comparison


@dataclass(frozen=True)
class Difference:
    """One aspect of one probe on which the two servers disagree."""

    probe: str
    aspect: str
    a: str
    b: str
    #: Why it is accepted (from the known-differences file), or None when unexplained.
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {"probe": self.probe, "aspect": self.aspect, "a": self.a, "b": self.b}
        if self.reason is not None:
            data["reason"] = self.reason
        return data

    def line(self) -> str:
        return f"{self.probe} [{self.aspect}]: a={self.a} | b={self.b}"


def contract_kinds(obs: Observation) -> list[tuple[str, Any]]:
    """``(kind, value)`` pairs of the answer to validate against the contract.

    Errors (a status of 400 or more with a JSON object) are ``error``; a 200 is validated as the
    probe's endpoint says: stream lines as ``chunk`` / ``final`` (or ``progress`` for create,
    pull and push), a single object as ``response``.
    """
    if obs.status is None or obs.request.get("method") == "HEAD":
        return []
    if obs.status >= 400:
        return [("error", v) for v in obs.objects if isinstance(v, dict)]
    if obs.status != 200 or obs.endpoint is None:
        return []
    ep = obs.endpoint
    if ep == "root":
        return [("root.response", obs.body)] if obs.body_kind == "text" else []
    if ep in ("generate", "chat"):
        if obs.lines is not None:
            return [
                (
                    f"{ep}.final"
                    if isinstance(v, dict) and v.get("done") is True
                    else f"{ep}.chunk",
                    v,
                )
                for v in obs.values
            ]
        return [(f"{ep}.response", obs.body)] if obs.body_kind == "json" else []
    if ep in ("create", "pull", "push"):
        return [(f"{ep}.progress", v) for v in obs.objects]
    if ep in ("embed", "embeddings", "tags", "ps", "show", "version"):
        return [(f"{ep}.response", obs.body)] if obs.body_kind == "json" else []
    return []


def contract_issues(obs: Observation, version: str | None) -> list[str]:
    """Contract violations of the answer, as ``kind: message`` lines."""
    issues: list[str] = []
    for kind, value in contract_kinds(obs):
        issues.extend(f"{kind}: {issue}" for issue in validate(kind, value, version))
    return issues


def normalize_error(text: str, params: Params) -> str:
    """An error string with this side's names and nonce replaced by placeholders.

    Longest values first, so ``conformance-differential-copy`` is not half-replaced by a shorter
    name that prefixes it; case-insensitively, because Ollama lower-cases names in some messages.
    """
    subs = {
        params.nonce_digest.removeprefix("sha256:"): "${nonce_hex}",
        params.gguf_digest.removeprefix("sha256:"): "${gguf_hex}",
        params.scratch: "${scratch}",
        params.copy: "${copy}",
        params.model: "${model}",
        params.embed_model: "${embed_model}",
    }
    for value in sorted(subs, key=len, reverse=True):
        if value:
            placeholder = subs[value].replace("\\", "\\\\")  # a literal replacement
            text = re.sub(re.escape(value), placeholder, text, flags=re.I)
    return scrub_text(text)


def _errors(obs: Observation) -> list[str]:
    return [str(v["error"]) for v in obs.objects if isinstance(v, dict) and "error" in v]


def _stream_structure(obs: Observation) -> str:
    """A one-line summary of a stream's layout: finals, whether the last line is one, errors."""
    if obs.lines is None:
        return "single" if obs.body_kind != "empty" else "empty"
    values = obs.values
    finals = sum(1 for v in values if isinstance(v, dict) and v.get("done") is True)
    bad = len(obs.lines) - len(values)
    last_final = bool(values) and isinstance(values[-1], dict) and values[-1].get("done") is True
    errors = len(_errors(obs))
    return (
        f"ndjson finals={finals} last-is-final={str(last_final).lower()} "
        f"error-lines={errors} unparsable={bad}"
    )


def _shapes(obs: Observation) -> dict[str, Shape | None]:
    """Shapes per part: the single body, or stream lines split into ``line`` and ``final``."""
    if obs.lines is None:
        if obs.body_kind == "json":
            return {"body": shape_of(obs.body)}
        return {"body": Shape(types={obs.body_kind})}
    values = obs.values
    finals = [v for v in values if isinstance(v, dict) and v.get("done") is True]
    others = [v for v in values if not (isinstance(v, dict) and v.get("done") is True)]
    return {"line": shape_of_all(others), "final": shape_of_all(finals)}


def compare(
    a: Observation,
    b: Observation,
    *,
    params_a: Params,
    params_b: Params,
    version_a: str | None = None,
    version_b: str | None = None,
) -> list[Difference]:
    """Every aspect (see :data:`ASPECTS`) on which two servers answered one probe differently."""
    probe = a.probe
    out: list[Difference] = []

    def differ(aspect: str, left: Any, right: Any) -> None:
        if left != right:
            out.append(Difference(probe, aspect, _text(left), _text(right)))

    if (a.status is None) != (b.status is None):
        differ("transport", a.error or "answered", b.error or "answered")
        return out
    differ("status", a.status, b.status)
    differ("content_type", _norm_ct(a.content_type), _norm_ct(b.content_type))
    for name in COMPARED_HEADERS:
        left, right = a.headers.get(name), b.headers.get(name)
        if left != right:
            out.append(Difference(probe, "headers", f"{name}: {left}", f"{name}: {right}"))
    final_a, final_b = a.final, b.final
    differ(
        "done_reason",
        final_a.get("done_reason") if final_a else None,
        final_b.get("done_reason") if final_b else None,
    )
    differ(
        "error",
        [normalize_error(e, params_a) for e in _errors(a)],
        [normalize_error(e, params_b) for e in _errors(b)],
    )
    differ("stream", _stream_structure(a), _stream_structure(b))
    issues_a, issues_b = contract_issues(a, version_a), contract_issues(b, version_b)
    if bool(issues_a) != bool(issues_b):
        out.append(
            Difference(
                probe,
                "contract",
                "; ".join(issues_a[:3]) or "valid",
                "; ".join(issues_b[:3]) or "valid",
            )
        )
    elif not issues_a and a.status == b.status:
        shapes_a, shapes_b = _shapes(a), _shapes(b)
        lines: list[str] = []
        for part in sorted(set(shapes_a) | set(shapes_b)):
            shape_a, shape_b = shapes_a.get(part), shapes_b.get(part)
            if shape_a is None or shape_b is None:
                if (shape_a is None) != (shape_b is None):
                    lines.append(
                        f"{part}: {'absent' if shape_a is None else 'present'} vs "
                        f"{'absent' if shape_b is None else 'present'}"
                    )
                continue
            lines.extend(f"{part}{d[1:]}" for d in diff_shapes(shape_a, shape_b))
        if lines:
            out.append(Difference(probe, "shape", "; ".join(lines), "(a's shape vs b's, per path)"))
    return out


def _norm_ct(value: str) -> str:
    return re.sub(r"\s*;\s*", "; ", value.strip().lower())


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


# --------------------------------------------------------------------------------------------
# Known differences


class KnownDifferencesError(ValueError):
    """The known-differences file cannot be used; the message names the file and the entry."""


@dataclass
class KnownDifferences:
    """Accepted differences: ``(probe, aspect) -> reason``; aspect ``"*"`` covers all of a probe.

    The TOML file has one table per probe, one key per aspect::

        ["embed.no-input"]
        shape = "real Ollama omits the durations when nothing was embedded (ref §9.2)"
    """

    entries: dict[tuple[str, str], str] = field(default_factory=dict)
    source: str = ""

    def reason(self, diff: Difference) -> str | None:
        return self.entries.get((diff.probe, diff.aspect)) or self.entries.get((diff.probe, "*"))

    def explain(self, diffs: Iterable[Difference]) -> list[Difference]:
        """The differences with their reasons filled in where the file has one."""
        out = []
        for d in diffs:
            reason = self.reason(d)
            out.append(Difference(d.probe, d.aspect, d.a, d.b, reason) if reason else d)
        return out

    def stale(self, diffs: Iterable[Difference], probes: Iterable[str]) -> list[tuple[str, str]]:
        """Entries for probes that ran but no longer differ in that aspect."""
        seen = {(d.probe, d.aspect) for d in diffs} | {(d.probe, "*") for d in diffs}
        ran = set(probes)
        return sorted(k for k in self.entries if k[0] in ran and k not in seen)


def load_known(path: str | Path) -> KnownDifferences:
    """Read a known-differences TOML file; every probe id and aspect must exist."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KnownDifferencesError(f"cannot read {file}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise KnownDifferencesError(f"{file}: not valid TOML: {exc}") from None
    entries: dict[tuple[str, str], str] = {}
    for probe, table in data.items():
        if probe not in PROBES:
            raise KnownDifferencesError(f"{file}: unknown probe {probe!r}")
        if not isinstance(table, dict):
            raise KnownDifferencesError(f"{file}: [{probe!r}] must be a table of aspect = reason")
        for aspect, reason in table.items():
            if aspect != "*" and aspect not in ASPECTS:
                raise KnownDifferencesError(
                    f"{file}: [{probe!r}] has unknown aspect {aspect!r}; use one of "
                    f"{', '.join(ASPECTS)} or '*'"
                )
            if not isinstance(reason, str) or not reason.strip():
                raise KnownDifferencesError(f"{file}: [{probe!r}] {aspect} needs a reason")
            entries[(probe, aspect)] = reason.strip()
    return KnownDifferences(entries, str(file))


# --------------------------------------------------------------------------------------------
# Two runs side by side


@dataclass
class Side:
    """One server's run of the corpus (live or replayed from transcripts)."""

    label: str
    where: str
    version: str | None
    params: Params
    observations: list[Observation]

    def by_probe(self) -> dict[str, Observation]:
        return {o.probe: o for o in self.observations}

    def to_dict(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "version": self.version,
            "params": self.params.to_dict(),
            "observations": [o.to_dict() for o in self.observations],
        }


@dataclass
class Comparison:
    """The outcome of a differential run."""

    a: Side
    b: Side
    differences: list[Difference]
    stale: list[tuple[str, str]]
    missing: list[str]

    @property
    def unexplained(self) -> list[Difference]:
        return [d for d in self.differences if d.reason is None]

    @property
    def explained(self) -> list[Difference]:
        return [d for d in self.differences if d.reason is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": 1,
            "compared_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "probes": len(self.a.observations),
            "unexplained": [d.to_dict() for d in self.unexplained],
            "explained": [d.to_dict() for d in self.explained],
            "stale": [{"probe": p, "aspect": a} for p, a in self.stale],
            "missing": self.missing,
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
        }


def compare_runs(a: Side, b: Side, known: KnownDifferences | None = None) -> Comparison:
    """Compare two runs probe by probe (probes marked ``compare=False`` are left out)."""
    left, right = a.by_probe(), b.by_probe()
    diffs: list[Difference] = []
    missing: list[str] = []
    compared: list[str] = []
    for probe in CORPUS:
        if not probe.compare:
            continue
        if probe.id not in left or probe.id not in right:
            if (probe.id in left) != (probe.id in right):
                missing.append(probe.id)
            continue
        compared.append(probe.id)
        diffs.extend(
            compare(
                left[probe.id],
                right[probe.id],
                params_a=a.params,
                params_b=b.params,
                version_a=a.version,
                version_b=b.version,
            )
        )
    known = known or KnownDifferences()
    explained = known.explain(diffs)
    return Comparison(a, b, explained, known.stale(diffs, compared), missing)


def _server_version(client: Client) -> str | None:
    value, _ = client.get("/api/version").json()
    version = value.get("version") if isinstance(value, dict) else None
    return version if isinstance(version, str) else None


def _pick(client: Client, url: str, wanted: str | None, capability: str, fallback: str) -> str:
    """The model to use: as given, else the tiny model if present, else what discovery picks."""
    if wanted:
        return wanted
    from conformance.target import discover

    target = discover(url, client)
    if target.has_model(fallback):
        return fallback
    picked = target.model_for(capability)
    if picked is None:
        raise ValueError(f"{url} has no model with capability {capability!r}; name one")
    return picked


def live_side(
    label: str,
    url: str,
    *,
    model: str | None = None,
    embed_model: str | None = None,
    nonce: str | None = None,
    bounds: Bounds | None = None,
    scrub: Sequence[str] = (),
) -> Side:
    """Run the corpus against a live server."""
    with Client(url, bounds=bounds or Bounds(total_timeout=120.0)) as client:
        params = Params(
            model=_pick(client, url, model, "completion", "conformance-tiny-cycle"),
            embed_model=_pick(client, url, embed_model, "embedding", "conformance-tiny-embed"),
            nonce=nonce or secrets.token_hex(8),
        )
        observations = run_corpus(client, params, scrub=scrub)
        version = _server_version(client)  # after: a replayed server answers in recorded order
    return Side(label, url, version, params, observations)


# --------------------------------------------------------------------------------------------
# Command line


def register(subparsers: Any) -> None:
    """Add the ``differential`` sub-command."""
    parser = subparsers.add_parser(
        "differential",
        help="send one corpus of requests to two servers and compare the answers",
        description="Differential test: run the corpus against server A and server B (each a URL, "
        "or a folder of transcripts recorded by `ollama-conformance transcripts record`) and "
        "compare status codes, content types, done_reason values, error strings and the shapes "
        "of schema-valid bodies. Exit 0 when every difference is explained by --known, 1 "
        "otherwise, 2 on usage errors or an unreachable server.",
    )
    for side in ("a", "b"):
        parser.add_argument(
            f"--{side}",
            required=True,
            metavar="URL|DIR",
            help=f"server {side.upper()}: a base URL, or a transcripts folder",
        )
        parser.add_argument(
            f"--model-{side}",
            metavar="NAME",
            help=f"completion model on {side.upper()} (default: conformance-tiny-cycle if "
            "present, else discovered)",
        )
        parser.add_argument(
            f"--embed-model-{side}",
            metavar="NAME",
            help=f"embedding model on {side.upper()} (default: conformance-tiny-embed if "
            "present, else discovered)",
        )
    parser.add_argument(
        "--known",
        metavar="FILE",
        help="TOML file of explained differences (default: "
        "fixtures/expectations/differential-<version of A>.toml when it exists)",
    )
    parser.add_argument("--out", metavar="FILE", help="write the full comparison as JSON here")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also list the explained differences"
    )
    parser.set_defaults(handler=differential_command)


def default_known_file(version: str | None) -> Path | None:
    """``fixtures/expectations/differential-<version>.toml`` of this checkout, if it exists."""
    if not version:
        return None
    root = Path(__file__).resolve().parent.parent
    path = root / "fixtures" / "expectations" / f"differential-{version.removeprefix('v')}.toml"
    return path if path.is_file() else None


def load_side(label: str, where: str, model: str | None, embed_model: str | None) -> Side:
    """A live run for a URL, a replay for a transcripts folder."""
    from conformance.cli import UsageError

    if Path(where).is_dir():
        from conformance.transcripts import side_from_transcripts

        return side_from_transcripts(label, Path(where))
    from conformance.plugin import validate_url

    try:
        url = validate_url(where, f"--{label}")
    except Exception as exc:
        raise UsageError(str(exc).removeprefix("ollama-conformance: ")) from None
    reason = check_reachable(url)
    if reason is not None:
        raise UsageError(f"server {label.upper()} at {url} is unreachable: {reason}")
    try:
        return live_side(label, url, model=model, embed_model=embed_model)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def differential_command(args: argparse.Namespace) -> int:
    """Run both sides, compare, print the differences; exit 1 if any is unexplained."""
    from conformance.cli import EXIT_FAILED, EXIT_OK, UsageError

    side_a = load_side("a", args.a, args.model_a, args.embed_model_a)
    side_b = load_side("b", args.b, args.model_b, args.embed_model_b)
    known_path = Path(args.known) if args.known else default_known_file(side_a.version)
    known = None
    if known_path is not None:
        try:
            known = load_known(known_path)
        except KnownDifferencesError as exc:
            raise UsageError(str(exc)) from None
    result = compare_runs(side_a, side_b, known)
    print(
        f"A: {side_a.where} (Ollama {side_a.version}, model {side_a.params.model}, "
        f"embed {side_a.params.embed_model})"
    )
    print(
        f"B: {side_b.where} (Ollama {side_b.version}, model {side_b.params.model}, "
        f"embed {side_b.params.embed_model})"
    )
    print(f"known differences: {known_path or '(none)'}")
    for diff in result.unexplained:
        print(f"DIFF      {diff.line()}")
    if args.verbose:
        for diff in result.explained:
            print(f"EXPLAINED {diff.line()}\n          because: {diff.reason}")
    for probe, aspect in result.stale:
        print(f"STALE     {probe} [{aspect}]: explained in {known_path} but no longer differs")
    for probe in result.missing:
        print(f"MISSING   {probe}: observed on one side only")
    compared = sum(1 for p in CORPUS if p.compare)
    print(
        f"{compared} probes compared: {len(result.unexplained)} unexplained, "
        f"{len(result.explained)} explained, {len(result.stale)} stale difference(s)"
    )
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.to_dict(), indent=1, ensure_ascii=False) + "\n")
        print(f"written: {out}")
    sys.stdout.flush()
    return EXIT_FAILED if result.unexplained or result.missing else EXIT_OK
