"""``POST /api/create`` (reference facts §11): from an existing model or from uploaded GGUF blobs.

Checks that Ollama makes before it starts streaming give real 400s (file paths, empty digests,
the target name, ``info`` types). Everything after that runs like Ollama's create goroutine and
goes through the stream rules of §18.3: ``parsing GGUF`` is sent before the GGUF is examined, so
``supplied file was not in GGUF format`` arrives mid-stream, while a missing ``from``/``files``
(``neither 'from' or 'files' was specified``) fails before any output.

Layers are reported the way Ollama does once they are all built: ``using existing layer`` for
blobs that already exist (the uploaded model file, unchanged inherited layers), ``creating new
layer`` for new template/system/params/messages/license blobs, then ``writing manifest`` and
``success``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from . import catalogue
from .bodies import json_kind
from .common import bind_request, parsed, state_of
from .config import ReferenceConfig
from .ggufinfo import (
    GGUFFacts,
    NotGGUF,
    file_type_name,
    human_number,
    read_facts,
    starts_with_magic,
)
from .handlers_transfer import pull_events
from .model import Model
from .names import ModelName
from .responses import Event, StreamError, error_response, ndjson_stream, wait_for_stream
from .state import ReferenceState
from .store import (
    MEDIA_ADAPTER,
    MEDIA_LICENSE,
    MEDIA_MESSAGES,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_PROJECTOR,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
    Layer,
    Manifest,
    valid_digest,
)
from .templates import TemplateError, check_template

_QUANT_TYPES = {"F32": 0, "F16": 1, "Q4_K_S": 14, "Q4_K_M": 15, "Q8_0": 7, "BF16": 32}
_INFO_STRINGS = ("model_family", "base_name", "quantization_level", "parameter_size")
_INFO_COUNTS = ("context_length", "embedding_length")


def valid_relative_path(path: str) -> bool:
    """Go's ``fs.ValidPath``: no empty, ``.`` or ``..`` elements, no leading or trailing slash."""
    if path == ".":
        return True
    return all(part not in ("", ".", "..") for part in path.split("/"))


def _info_error(info: dict[str, Any] | None) -> str | None:
    """0.32 validates ``info`` up front (§11.1)."""
    if not isinstance(info, dict):
        return None
    for key in _INFO_STRINGS:
        if key in info and info[key] is not None and not isinstance(info[key], str):
            return f'info field "{key}" must be a string'
    for key in _INFO_COUNTS:
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f'info field "{key}" must be a number'
        if value < 0 or value != int(value):
            return f'info field "{key}" must be a non-negative integer'
    return None


async def create(request: Request) -> Response:
    state = state_of(request)
    config = state.config
    req = await bind_request(request, "create")
    if isinstance(req, Response):
        return req
    for field_name in ("files", "adapters"):
        mapping = req[field_name] or {}
        if any(not valid_relative_path(path) for path in mapping):
            return error_response("file path must be relative", 400)
        if config.at_least("0.17.6") and any(digest == "" for digest in mapping.values()):
            return error_response("invalid digest format", 400)
    target = parsed(req["model"] or req["name"], config)
    if not target.valid:
        return error_response("invalid model name", 400)
    if config.at_least("0.32.0"):
        problem = _info_error(req.get("info"))
        if problem:
            return error_response(problem, 400)
    events = _create(state, req, target)
    if req["stream"] is False:
        return await wait_for_stream(events, config)
    return await ndjson_stream(events, config)


class _Draft:
    """The manifest being assembled, with its status lines."""

    def __init__(self) -> None:
        self.layers: list[Layer] = []
        self.statuses: list[dict[str, Any]] = []
        self.config_extra: dict[str, Any] = {}
        self.facts: GGUFFacts | None = None
        self.base: Model | None = None


async def _create(
    state: ReferenceState, req: dict[str, Any], target: ModelName
) -> AsyncGenerator[Event, None]:
    config = state.config
    draft = _Draft()
    if req["from"]:
        async for event in _from_model(state, req, draft):
            yield event
            if isinstance(event, StreamError):
                return
    elif req["files"] is not None:
        async for event in _from_files(state, req, draft):
            yield event
            if isinstance(event, StreamError):
                return
    else:
        yield StreamError("neither 'from' or 'files' was specified", 400)
        return
    adapters = req["adapters"] or {}
    if len(adapters) > 1:
        yield StreamError("only one adapter is currently supported", 400)
        return
    for digest in adapters.values():
        if not valid_digest(digest) or not state.store.has_blob(digest):
            yield StreamError(
                "invalid digest format"
                if not valid_digest(digest)
                else f"open {state.store.blob_path(digest)}: no such file or directory"
            )
            return
        draft.layers.append(
            Layer(MEDIA_ADAPTER, digest, state.store.blob_path(digest).stat().st_size)
        )
        draft.statuses.append({"status": f"using existing layer {digest}"})
    error = _text_layers(state, req, draft)
    if error is not None:
        yield error
        return
    for status in draft.statuses:
        yield status
    yield {"status": "writing manifest"}
    async with state.store_lock:
        manifest = _manifest(state, req, draft, config)
        existing = state.store.resolve(target)
        state.store.put(existing or target, manifest)
        state.scheduler.forget(target.key)
    yield {"status": "success"}


async def _from_model(
    state: ReferenceState, req: dict[str, Any], draft: _Draft
) -> AsyncGenerator[Event, None]:
    source = parsed(req["from"], state.config)
    if not source.valid:
        yield StreamError("invalid model name", 400)
        return
    base = state.find(source)
    if base is None:
        # A missing base is pulled from the registry first (§11.1).
        async for event in pull_events(state, source):
            yield event
            if isinstance(event, StreamError):
                return
        base = state.find(source)
        if base is None:
            yield StreamError("pull model manifest: file does not exist")
            return
    draft.base = base
    draft.facts = base.facts
    inherited = (MEDIA_MODEL, MEDIA_PROJECTOR, MEDIA_ADAPTER)
    for layer in base.stored.manifest.layers:
        if layer.media_type in inherited:
            # Ollama re-creates each inherited layer with the base's display name as its origin,
            # which /api/show then reports as parent_model (real: "conformance-tiny-stop:latest").
            draft.layers.append(Layer(layer.media_type, layer.digest, layer.size, source.shortest))
            draft.statuses.append({"status": f"using existing layer {layer.digest}"})
    recorded = base.config.get("capabilities")
    if isinstance(recorded, list):
        draft.config_extra["capabilities"] = recorded


async def _from_files(
    state: ReferenceState, req: dict[str, Any], draft: _Draft
) -> AsyncGenerator[Event, None]:
    config = state.config
    files: dict[str, str] = req["files"]
    kind = _detect_type(state, files)
    if kind != "gguf":
        yield StreamError("unknown type", 400)
        return
    yield {"status": "parsing GGUF"}
    for file_name, digest in files.items():
        if not valid_digest(digest):
            yield StreamError("invalid digest format")
            return
        path = state.store.blob_path(digest)
        if not path.is_file():
            yield StreamError(f"open {path}: no such file or directory")
            return
        try:
            facts = await asyncio.to_thread(read_facts, path)
        except NotGGUF:
            yield StreamError("supplied file was not in GGUF format", 400)
            return
        except Exception as exc:  # a damaged GGUF must fail the create, never the server
            yield StreamError(str(exc) or type(exc).__name__)
            return
        state.store.remember_facts(digest, facts)
        size = path.stat().st_size
        # Up to 0.30 the layer keeps the uploaded blob and names the file it was read from (the
        # blob's path under the model store); from 0.30 llama-quantize writes a new layer that
        # names no origin.
        origin = "" if config.at_least("0.30.0") else str(path)
        if facts.architecture == "clip" or str(facts.kv.get("general.type", "")) == "projector":
            draft.layers.append(Layer(MEDIA_PROJECTOR, digest, size, origin))
            draft.statuses.append({"status": f"using existing layer {digest}"})
            continue
        if config.at_least("0.30.0"):
            # v0.30+ re-validates every GGUF through llama-quantize's COPY step (§11.2 step 2).
            yield {
                "status": "validating GGUF model",
                "digest": "0000000000000000000",
                "total": size,
                "completed": size,
            }
            yield {"status": "verifying conversion"}
        layer = Layer(MEDIA_MODEL, digest, size, origin)
        if req["quantize"] or req["quantization"]:
            result = await _quantize(state, req, facts, path)
            if isinstance(result, StreamError):
                yield result
                return
            layer, facts, events = result
            for event in events:
                yield event
            draft.statuses.append({"status": f"creating new layer {layer.digest}"})
        else:
            draft.statuses.append({"status": f"using existing layer {digest}"})
        draft.layers.append(layer)
        draft.facts = facts
        del file_name


def _detect_type(state: ReferenceState, files: dict[str, str]) -> str:
    """Ollama's model type detection: by file extension, else by the blob's first bytes."""
    for file_name, digest in files.items():
        if file_name.endswith(".safetensors"):
            return "safetensors"
        if file_name.endswith(".gguf"):
            return "gguf"
        if valid_digest(digest):
            path = state.store.blob_path(digest)
            try:
                if path.is_file() and starts_with_magic(path):
                    return "gguf"
            except OSError:
                return ""
    return ""


async def _quantize(
    state: ReferenceState, req: dict[str, Any], facts: GGUFFacts, path: Path
) -> tuple[Layer, GGUFFacts, list[Event]] | StreamError:
    config = state.config
    wanted = str(req["quantize"] or req["quantization"]).upper()
    # The Go quantizer (v0.6.9-rc0+) also takes "Q4_K" for Q4_K_M; its error lists the types.
    go_backend = config.at_least("0.6.9-rc0")
    target = "Q4_K_M" if wanted == "Q4_K" and go_backend else wanted
    if target not in _QUANT_TYPES:
        if go_backend:
            return StreamError(
                f"unsupported quantization type {wanted} - supported types are "
                "F32, F16, Q4_K_S, Q4_K_M, Q8_0"
            )
        return StreamError(f"unknown fileType: {wanted}")
    # The source is judged by the name Ollama gives its file type, so an F32 GGUF whose
    # general.file_type is 0 counts as "unknown" and is refused, as in Ollama.
    source = file_type_name(facts.file_type, config.at_least)
    bf16 = config.at_least("0.22.1-rc0")  # BF16 sources accepted from v0.22.1 (git tag scan)
    allowed = {"F16", "F32", "BF16"} if bf16 else {"F16", "F32"}
    if source not in allowed:
        which = "F16, BF16 and F32" if bf16 else "F16 and F32"
        return StreamError(f"quantization is only supported for {which} models")
    data = await asyncio.to_thread(_with_file_type, path, _QUANT_TYPES[target])
    layer = state.store.write_blob(data)
    new_facts = GGUFFacts(
        dict(facts.kv, **{"general.file_type": _QUANT_TYPES[target]}),
        set(facts.arrays),
        list(facts.tensors),
        facts.parameter_count,
    )
    state.store.remember_facts(layer.digest, new_facts)
    status = f"quantizing {source} model to {wanted}"
    events: list[Event] = [
        {"status": status, "digest": "0", "total": len(data), "completed": len(data)},
        {"status": "verifying conversion"},
    ]
    return Layer(MEDIA_MODEL, layer.digest, layer.size), new_facts, events


def _with_file_type(path: Path, file_type: int) -> bytes:
    """The GGUF bytes with ``general.file_type`` rewritten in place (same 4-byte width)."""
    from gguf import GGUFReader

    data = bytearray(path.read_bytes())
    reader = GGUFReader(path)
    field = reader.fields.get("general.file_type")
    if field is not None:
        key_length = len(b"general.file_type")
        offset = field.offset + 8 + key_length + 4
        data[offset : offset + 4] = int(file_type).to_bytes(4, "little")
    del reader
    return bytes(data)


def _license_texts(value: Any) -> list[str] | StreamError:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return StreamError(f"json: cannot unmarshal {json_kind(value)} into Go value of type []string")


def _text_layers(state: ReferenceState, req: dict[str, Any], draft: _Draft) -> StreamError | None:
    """Template, system, parameters, messages and license: inherited unless overridden."""
    base = draft.base
    template = req["template"] or (base.template if base else "")
    if req["template"]:
        try:
            check_template(req["template"])
        except TemplateError as exc:
            return StreamError(f"template error: {exc}", 400)
    system = req["system"] or (base.system if base else "")
    params = dict(base.parameters) if base else {}
    params.update({k: v for k, v in (req["parameters"] or {}).items()})
    messages = req["messages"] or (base.messages if base else [])
    licenses = _license_texts(req["license"])
    if isinstance(licenses, StreamError):
        return licenses
    if not licenses and base is not None:
        licenses = list(base.license)
    pieces: list[tuple[str, bytes]] = []
    if template:
        pieces.append((MEDIA_TEMPLATE, template.encode()))
    if system:
        pieces.append((MEDIA_SYSTEM, system.encode()))
    if params:
        pieces.append((MEDIA_PARAMS, catalogue.params_blob(params)))
    if messages:
        pieces.append((MEDIA_MESSAGES, catalogue.messages_blob(messages)))
    for text in licenses:
        pieces.append((MEDIA_LICENSE, text.encode()))
    for media_type, data in pieces:
        existed = state.store.has_blob(_digest(data))
        layer = state.store.write_blob(data)
        draft.layers.append(Layer(media_type, layer.digest, layer.size))
        verb = "using existing layer" if existed else "creating new layer"
        draft.statuses.append({"status": f"{verb} {layer.digest}"})
    return None


def _digest(data: bytes) -> str:
    from .store import sha256_digest

    return sha256_digest(data)


def _manifest(
    state: ReferenceState, req: dict[str, Any], draft: _Draft, config: ReferenceConfig
) -> Manifest:
    facts = draft.facts
    family = facts.architecture if facts else ""
    extra = dict(draft.config_extra)
    info = req.get("info")
    if isinstance(info, dict) and isinstance(info.get("capabilities"), list):
        extra["capabilities"] = [c for c in info["capabilities"] if isinstance(c, str)]
    for key in ("renderer", "parser", "requires", "remote_host"):
        if req.get(key):
            extra[key] = req[key]
    blob = catalogue.config_blob(
        family=family,
        parameter_size=human_number(facts.parameter_count, legacy=not config.at_least("0.1.35-rc1"))
        if facts
        else "",
        file_type=file_type_name(facts.file_type, config.at_least) if facts else "",
        diff_ids=[layer.digest for layer in draft.layers],
        extra=extra,
    )
    state.store.write_blob(blob.data)
    return Manifest(blob.layer, list(draft.layers))
