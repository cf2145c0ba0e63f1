"""The built-in tiny models: present at start, and what ``/api/pull`` can fetch without a network.

Each entry is a real (if useless) GGUF file plus the usual Ollama layers, so every endpoint sees
the same structures as with real models: ``/api/show`` reads details, ``model_info`` and tensors
from the GGUF, capabilities come from the metadata and template exactly as for uploaded models.

| name | capabilities | why it exists |
| --- | --- | --- |
| tiny-completion | completion | plain generate/chat |
| tiny-tools | completion, tools | tool calling |
| tiny-insert | completion, insert | ``suffix`` (fill in the middle) |
| tiny-thinking | completion, thinking | ``think`` |
| tiny-vision | completion, vision | ``images`` |
| tiny-embed | embedding | ``/api/embed``, ``/api/embeddings`` |
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .ggufinfo import GGUFFacts, facts_from_parts
from .ggufwrite import U32, F32Value, Tensor, gguf_bytes
from .gojson import GoMap, dumps
from .names import ModelName, parse_name
from .store import (
    MEDIA_CONFIG,
    MEDIA_LICENSE,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
    Layer,
    Manifest,
    Store,
)

_CHAT_TEMPLATE = (
    "{{- if .System }}<|system|>{{ .System }}<|end|>{{ end }}"
    "{{- range .Messages }}<|{{ .Role }}|>{{ .Content }}<|end|>{{ end }}<|assistant|>"
)
_TOOLS_TEMPLATE = (
    "{{- if .System }}<|system|>{{ .System }}<|end|>{{ end }}"
    "{{- if .Tools }}<|tools|>{{ range .Tools }}{{ json . }}{{ end }}<|end|>{{ end }}"
    "{{- range .Messages }}<|{{ .Role }}|>{{ .Content }}"
    "{{- range .ToolCalls }}<|call|>{{ json .Function }}{{ end }}<|end|>{{ end }}<|assistant|>"
)
_INSERT_TEMPLATE = (
    "{{- if .Suffix }}<|prefix|>{{ .Prompt }}<|suffix|>{{ .Suffix }}<|middle|>"
    "{{- else }}{{ .Prompt }}{{ end }}"
)
_THINKING_TEMPLATE = (
    "{{- if .System }}<|system|>{{ .System }}<|end|>{{ end }}"
    "{{- range .Messages }}<|{{ .Role }}|>"
    "{{- if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}<|end|>{{ end }}"
    "<|assistant|>{{ if .IsThinkSet }}{{ if .Think }}<think>{{ end }}{{ end }}"
)
_EMBED_TEMPLATE = "{{ .Prompt }}"

_LICENSE = (
    "Tiny reference model of ollama-conformance. Its weights are zeros and its output comes "
    "from a deterministic engine; use it freely for testing."
)

_VOCAB = 64


@dataclass(frozen=True)
class CatalogueModel:
    """One built-in model."""

    name: str
    architecture: str
    template: str
    system: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    embedding_length: int = 16
    context_length: int = 2048
    pooling: bool = False
    vision: bool = False

    @property
    def model_name(self) -> ModelName:
        return parse_name(self.name)


CATALOGUE: tuple[CatalogueModel, ...] = (
    CatalogueModel("tiny-completion", "llama", _CHAT_TEMPLATE, parameters={"stop": ["<|end|>"]}),
    CatalogueModel(
        "tiny-tools",
        "llama",
        _TOOLS_TEMPLATE,
        system="You are a helpful assistant that can call tools.",
        parameters={"stop": ["<|end|>"]},
    ),
    CatalogueModel("tiny-insert", "llama", _INSERT_TEMPLATE),
    CatalogueModel("tiny-thinking", "llama", _THINKING_TEMPLATE, parameters={"stop": ["<|end|>"]}),
    CatalogueModel("tiny-vision", "llama", _CHAT_TEMPLATE, vision=True),
    CatalogueModel(
        "tiny-embed",
        "bert",
        _EMBED_TEMPLATE,
        embedding_length=384,
        context_length=512,
        pooling=True,
    ),
)


def lookup(name: ModelName) -> CatalogueModel | None:
    """The catalogue entry a (valid) name refers to, matched case-insensitively."""
    for entry in CATALOGUE:
        if entry.model_name.key == name.key:
            return entry
    return None


def _gguf_parts(entry: CatalogueModel) -> tuple[dict[str, Any], list[Tensor]]:
    arch, embd, ff = entry.architecture, entry.embedding_length, entry.embedding_length * 2
    tokens = [
        "<|bos|>",
        "<|end|>",
        *[chr(ord("a") + i % 26) * (1 + i // 26) for i in range(_VOCAB - 2)],
    ]
    meta: dict[str, Any] = {
        "general.architecture": arch,
        "general.name": entry.name,
        "general.file_type": U32(0),
        f"{arch}.block_count": U32(1),
        f"{arch}.context_length": U32(entry.context_length),
        f"{arch}.embedding_length": U32(embd),
        f"{arch}.feed_forward_length": U32(ff),
        f"{arch}.attention.head_count": U32(4),
        f"{arch}.attention.head_count_kv": U32(4),
        f"{arch}.attention.layer_norm_rms_epsilon": F32Value(1e-5),
        f"{arch}.rope.freq_base": F32Value(10000.0),
    }
    if entry.pooling:
        meta[f"{arch}.pooling_type"] = U32(1)
    if entry.vision:
        meta[f"{arch}.vision.block_count"] = U32(1)
    meta |= {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "default",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [3, 3, *([1] * (_VOCAB - 2))],
        "tokenizer.ggml.merges": [],
        "tokenizer.ggml.bos_token_id": U32(0),
        "tokenizer.ggml.eos_token_id": U32(1),
    }
    tensors = [
        Tensor("token_embd.weight", (embd, _VOCAB)),
        Tensor("blk.0.attn_norm.weight", (embd,)),
        Tensor("blk.0.attn_q.weight", (embd, embd)),
        Tensor("blk.0.attn_k.weight", (embd, embd)),
        Tensor("blk.0.attn_v.weight", (embd, embd)),
        Tensor("blk.0.attn_output.weight", (embd, embd)),
        Tensor("blk.0.ffn_norm.weight", (embd,)),
        Tensor("blk.0.ffn_up.weight", (embd, ff)),
        Tensor("blk.0.ffn_down.weight", (ff, embd)),
        Tensor("output_norm.weight", (embd,)),
    ]
    if not entry.pooling:
        tensors.insert(8, Tensor("blk.0.ffn_gate.weight", (embd, ff)))
        tensors.append(Tensor("output.weight", (embd, _VOCAB)))
    return meta, tensors


@dataclass(frozen=True)
class Blob:
    """A layer and its bytes, ready to be written (or "downloaded" by ``/api/pull``)."""

    layer: Layer
    data: bytes


def build(entry: CatalogueModel) -> tuple[list[Blob], Blob, GGUFFacts]:
    """The layers (model first), the config blob and the GGUF facts of a catalogue model."""
    meta, tensors = _gguf_parts(entry)
    model_bytes = gguf_bytes(meta, tensors)
    facts = facts_from_parts(meta, tensors)
    blobs = [_blob(MEDIA_MODEL, model_bytes), _blob(MEDIA_TEMPLATE, entry.template.encode())]
    if entry.system:
        blobs.append(_blob(MEDIA_SYSTEM, entry.system.encode()))
    if entry.parameters:
        blobs.append(_blob(MEDIA_PARAMS, params_blob(entry.parameters)))
    blobs.append(_blob(MEDIA_LICENSE, _LICENSE.encode()))
    config = config_blob(
        family=entry.architecture,
        parameter_size=facts.parameter_size,
        file_type=facts.quantization_level,
        diff_ids=[b.layer.digest for b in blobs],
    )
    return blobs, config, facts


#: ``ConfigV2``'s optional fields, in struct order: they sit between ``file_type`` and the fields
#: the image spec requires, and Go leaves them out when empty.
_CONFIG_OPTIONAL = (
    "renderer",
    "parser",
    "requires",
    "remote_host",
    "remote_model",
    "capabilities",
    "context_length",
    "embedding_length",
    "base_name",
    "draft",
)


def config_blob(
    *,
    family: str,
    parameter_size: str,
    file_type: str,
    diff_ids: list[str],
    extra: dict[str, Any] | None = None,
) -> Blob:
    """The image config layer Ollama keeps next to the layers (model format, family, ...).

    Written byte for byte like Ollama's ``json.Encoder`` writes its ``ConfigV2``: struct field
    order, empty optional fields left out, one trailing newline. The config's size counts in
    ``/api/tags`` ``size``, so this is what makes that number equal real Ollama's.
    """
    extra = dict(extra or {})
    doc: dict[str, Any] = {
        "model_format": "gguf",
        "model_family": family,
        "model_families": [family] if family else None,
        "model_type": parameter_size,
        "file_type": file_type,
    }
    for key in _CONFIG_OPTIONAL:
        value = extra.pop(key, None)
        if value not in (None, "", [], {}, 0):
            doc[key] = value
    doc |= {"architecture": "amd64", "os": "linux"}
    doc |= extra  # anything else a caller records (none today) stays readable
    doc["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    return _blob(MEDIA_CONFIG, dumps(doc) + b"\n")


def params_blob(params: dict[str, Any]) -> bytes:
    """The params layer as Ollama's ``json.Encoder`` writes the map: sorted keys, a newline."""
    return dumps(GoMap(params)) + b"\n"


def messages_blob(messages: list[dict[str, Any]]) -> bytes:
    """The messages layer: ``api.Message`` values (role and content always, the rest if set)."""
    out = []
    for message in messages:
        item: dict[str, Any] = {
            "role": message.get("role") or "",
            "content": message.get("content") or "",
        }
        for key in ("thinking", "images", "tool_calls", "tool_name", "tool_call_id"):
            if message.get(key) not in (None, "", []):
                item[key] = message[key]
        out.append(item)
    return dumps(out) + b"\n"


def _blob(media_type: str, data: bytes) -> Blob:
    from .store import sha256_digest

    return Blob(Layer(media_type, sha256_digest(data), len(data)), data)


def install(store: Store, entry: CatalogueModel) -> None:
    """Write a catalogue model's blobs and manifest into ``store``."""
    blobs, config, facts = build(entry)
    for blob in [*blobs, config]:
        if not store.has_blob(blob.layer.digest):
            store.write_blob(blob.data)
    store.remember_facts(blobs[0].layer.digest, facts)
    store.synthetic.add(blobs[0].layer.digest)
    store.put(entry.model_name, Manifest(config.layer, [b.layer for b in blobs]))


def install_all(store: Store) -> None:
    """Install every catalogue model, the first one newest (``/api/tags`` sorts newest first)."""
    now = time.time_ns()
    for index, entry in enumerate(CATALOGUE):
        install(store, entry)
        store.touch(entry.model_name, now - index * 1_000_000_000)


def prime_facts(store: Store) -> None:
    """Remember catalogue GGUF facts without re-reading files (cheap; no numpy import)."""
    for entry in CATALOGUE:
        blobs, _, facts = build(entry)
        store.remember_facts(blobs[0].layer.digest, facts)
        store.synthetic.add(blobs[0].layer.digest)
