"""``POST /api/pull`` and ``POST /api/push`` without a network (reference facts §14, §15).

Pull knows exactly the built-in catalogue: it "downloads" a catalogue model's layers with the
usual progress (``pulling manifest``, ``pulling <digest prefix>`` with ``total``/``completed``,
``verifying sha256 digest``, ``writing manifest``, ``success``) and writes them; any other name
fails after ``pulling manifest`` with ``pull model manifest: file does not exist``, as a registry
that lacks the model does. Push of a local model reports the upload progress and succeeds; push
of a missing model fails like Ollama's (``retrieving manifest``, ``couldn't retrieve manifest``,
then the ``open .../manifests/...: no such file or directory`` error).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.requests import Request
from starlette.responses import Response

from . import catalogue
from .common import bind_request, parsed, state_of
from .names import ModelName
from .responses import Event, StreamError, error_response, ndjson_stream, wait_for_stream
from .state import ReferenceState
from .store import Layer, Manifest

_PROGRESS_STEPS = 3


def _short(digest: str) -> str:
    """Ollama labels layer progress with the first 12 hex digits of the digest."""
    return digest.split(":", 1)[-1][:12]


def _layer_progress(verb: str, layer: Layer) -> list[dict[str, object]]:
    status = f"{verb} {_short(layer.digest)}"
    lines: list[dict[str, object]] = [
        {"status": status, "digest": layer.digest, "total": layer.size}
    ]
    for step in range(1, _PROGRESS_STEPS + 1):
        completed = layer.size * step // _PROGRESS_STEPS
        if completed:
            lines.append(
                {
                    "status": status,
                    "digest": layer.digest,
                    "total": layer.size,
                    "completed": completed,
                }
            )
    return lines


async def pull_events(state: ReferenceState, name: ModelName) -> AsyncGenerator[Event, None]:
    """The progress of pulling ``name`` (shared with ``/api/create`` ``from`` a missing model)."""
    yield {"status": "pulling manifest"}
    entry = catalogue.lookup(name)
    if entry is None:
        yield StreamError("pull model manifest: file does not exist")
        return
    blobs, config, facts = catalogue.build(entry)
    for blob in blobs:
        for line in _layer_progress("pulling", blob.layer):
            yield line
    yield {"status": "verifying sha256 digest"}
    yield {"status": "writing manifest"}
    async with state.store_lock:
        for blob in [*blobs, config]:
            if not state.store.has_blob(blob.layer.digest):
                state.store.write_blob(blob.data)
        state.store.remember_facts(blobs[0].layer.digest, facts)
        state.store.synthetic.add(blobs[0].layer.digest)
        target = state.store.resolve(name) or name
        state.store.put(target, Manifest(config.layer, [b.layer for b in blobs]))
        state.scheduler.forget(name.key)
    yield {"status": "success"}


async def push_events(state: ReferenceState, name: ModelName) -> AsyncGenerator[Event, None]:
    yield {"status": "retrieving manifest"}
    stored = state.store.get(name)
    if stored is None:
        yield {"status": "couldn't retrieve manifest"}
        path = state.store.manifest_path(name)
        yield StreamError(f"open {path}: no such file or directory")
        return
    for layer in [*stored.manifest.layers, stored.manifest.config]:
        for line in _layer_progress("pushing", layer):
            yield line
    yield {"status": "pushing manifest"}
    yield {"status": "success"}


async def pull(request: Request) -> Response:
    state = state_of(request)
    req = await bind_request(request, "pull")
    if isinstance(req, Response):
        return req
    name = parsed(req["model"] or req["name"], state.config)
    if not name.valid:
        return error_response("invalid model name", 400)
    events = pull_events(state, name)
    if req["stream"] is False:
        return await wait_for_stream(events, state.config)
    return await ndjson_stream(events, state.config)


async def push(request: Request) -> Response:
    state = state_of(request)
    req = await bind_request(request, "push")
    if isinstance(req, Response):
        return req
    raw = req["model"] or req["name"]
    if not raw:
        return error_response("model is required", 400)
    name = parsed(raw, state.config)
    if not name.valid:
        return error_response("invalid model name", 400)
    events = push_events(state, name)
    if req["stream"] is False:
        return await wait_for_stream(events, state.config)
    return await ndjson_stream(events, state.config)
