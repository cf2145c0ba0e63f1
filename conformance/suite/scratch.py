"""Scratch models for the suite, and the audit that proves the suite left everything else alone.

Tests of creating, copying and deleting models need models they may destroy. They make them here,
always under the run's prefix (``conformance-<run id>-N``, from the plugin), from the project's tiny
GGUF (:mod:`conformance.models.tiny_gguf`), so the same tests work on the reference server and on a
real Ollama: the GGUF is uploaded once with ``POST /api/blobs/:digest`` and named in ``files`` of
``POST /api/create`` (or, for servers before 0.5.5, in the ``modelfile`` form they understood).

:class:`ScratchModels` remembers every name it handed out and deletes them when the test (or module)
that owns it ends, pass or fail, so a failing test never leaves models behind until the end-of-run
clean-up.

The :class:`Audit` is the suite's own safety record. The first module of this group to run takes a
snapshot of ``/api/tags`` (names and digests) and of ``/api/show`` for the models the run uses, and
from then on notes every create, copy, delete, pull and push the session client sends. The safety
tests compare the snapshot with the server afterwards and check the notes against the rules (only
scratch names are created or deleted, ``from`` names only local models, no registry traffic without
``--allow-network``).

It also holds the few helpers the model-management modules share: normalising names the way Ollama
compares them, reading ``/api/tags`` by name, and :func:`expect_error` for ``{"error": ...}``
answers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from conformance.client import Client
from conformance.exchange import Exchange
from conformance.models.tiny_gguf import CHAT_TEMPLATE, model_bytes
from conformance.plugin import run_state
from conformance.target import Target, is_cloud_model
from conformance.versions import in_range

__all__ = [
    "ABSENT_MODEL",
    "INVALID_NAME",
    "PULL_MODEL_ENV",
    "SHOW_FIELDS",
    "Audit",
    "ScratchModels",
    "Sent",
    "allowed_pull_model",
    "audit",
    "blob_digest",
    "create_problem",
    "create_succeeded",
    "ensure_blob",
    "expect_error",
    "files_body",
    "from_body",
    "is_deliberately_unusable",
    "is_manifest_digest",
    "names_in",
    "new_name",
    "normalize_name",
    "random_blob",
    "run_prefix",
    "show_snapshot",
    "tags_by_name",
    "uses_new_create_form",
]

#: A well-formed name that no server has installed (the catalogue's "conformance-absent-model").
ABSENT_MODEL = "conformance-absent-model"
#: Not a valid model name (it contains a space): the catalogue's "bad name".
INVALID_NAME = "bad name"
#: The tiny GGUF variant scratch models are made of: every answer ends by itself ("a" -> "bcde").
SCRATCH_VARIANT = "stop"
#: The first Ollama version with the ``from``/``files`` create form (older ones read a Modelfile).
NEW_CREATE_FORM = "0.5.5"

#: Environment variable naming a small registry model the user allows the network checks to pull.
PULL_MODEL_ENV = "OLLAMA_CONFORMANCE_PULL_MODEL"

_STASH = pytest.StashKey["Audit"]()
_AUDITED_PATHS = ("/api/create", "/api/copy", "/api/delete", "/api/pull", "/api/push")


# --------------------------------------------------------------------------------------------
# Names


def normalize_name(name: str) -> str:
    """How Ollama compares names: case-insensitive, tag ``latest`` by default, no default host or
    ``library/`` namespace (``Llama3`` == ``registry.ollama.ai/library/llama3:latest``)."""
    text = name.strip().lower()
    for prefix in ("registry.ollama.ai/", "library/"):
        text = text.removeprefix(prefix)
    last = text.rsplit("/", 1)[-1]
    return text if ":" in last else text + ":latest"


def new_name(config: pytest.Config) -> str:
    """A fresh scratch name under the run prefix, tracked by the plugin's end-of-run clean-up."""
    state = run_state(config)
    if state is None:  # pragma: no cover - the suite's conftest always activates the plugin
        raise RuntimeError("the ollama-conformance plugin is not active")
    return str(state.new_scratch_name())


def run_prefix(config: pytest.Config) -> str:
    """``conformance-<run id>``: every model the run creates is named under it."""
    state = run_state(config)
    if state is None:  # pragma: no cover
        raise RuntimeError("the ollama-conformance plugin is not active")
    return state.run_prefix


def allowed_pull_model() -> str | None:
    """The registry model the user named in ``$OLLAMA_CONFORMANCE_PULL_MODEL``, if any."""
    name = os.environ.get(PULL_MODEL_ENV, "").strip()
    return name or None


def is_deliberately_unusable(name: object) -> bool:
    """Names the error checks send on purpose: empty, invalid (with a space), or absent ones.

    Such a name can neither create nor delete anything on a conforming server, so sending it to
    create, copy or delete is safe.
    """
    if not isinstance(name, str):
        return True
    text = name.strip()
    return (
        not text or any(c.isspace() for c in text) or text.lower().startswith("conformance-absent")
    )


# --------------------------------------------------------------------------------------------
# Blobs


def blob_digest(data: bytes) -> str:
    """``sha256:<lower-case hex>``: the digest a blob of ``data`` is stored under."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def random_blob(label: str = "blob") -> bytes:
    """A few bytes no server holds yet (not GGUF); unused blobs are pruned when Ollama restarts."""
    return f"ollama-conformance {label} {secrets.token_hex(16)}\n".encode()


def ensure_blob(client: Client, data: bytes) -> tuple[str, Exchange]:
    """Make sure the server holds ``data``; return its digest and the last exchange.

    A HEAD that answers 200 saves the upload (the tiny GGUF is shared by every scratch model).
    """
    digest = blob_digest(data)
    head = client.head(f"/api/blobs/{digest}")
    if head.status == 200:
        return digest, head
    return digest, client.post(
        f"/api/blobs/{digest}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )


# --------------------------------------------------------------------------------------------
# Create requests


def uses_new_create_form(api_version: str) -> bool:
    """Whether the server takes ``from``/``files`` (0.5.5+) rather than a ``modelfile``."""
    return in_range(api_version, NEW_CREATE_FORM)


def _quote(value: str) -> str:
    return '"""' + value + '"""'


def _modelfile(source: str, fields: Mapping[str, Any]) -> str:
    """The Modelfile that says what ``fields`` of the new create form say (servers < 0.5.5)."""
    lines = [f"FROM {source}"]
    if "template" in fields:
        lines.append(f"TEMPLATE {_quote(str(fields['template']))}")
    if "system" in fields:
        lines.append(f"SYSTEM {_quote(str(fields['system']))}")
    if "license" in fields:
        lines.append(f"LICENSE {_quote(str(fields['license']))}")
    for key, value in (fields.get("parameters") or {}).items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"PARAMETER {key} {json.dumps(item) if isinstance(item, str) else item}")
    for message in fields.get("messages") or []:
        lines.append(f"MESSAGE {message['role']} {_quote(str(message['content']))}")
    return "\n".join(lines) + "\n"


def files_body(
    name: str, digest: str, api_version: str, *, stream: bool = False, **fields: Any
) -> dict[str, Any]:
    """A create request that makes ``name`` from the uploaded GGUF ``digest``."""
    fields.setdefault("template", CHAT_TEMPLATE)
    if uses_new_create_form(api_version):
        return {"model": name, "files": {"model.gguf": digest}, **fields, "stream": stream}
    return {"name": name, "modelfile": _modelfile(f"@{digest}", fields), "stream": stream}


def from_body(
    name: str, source: str, api_version: str, *, stream: bool = False, **fields: Any
) -> dict[str, Any]:
    """A create request that makes ``name`` from the installed model ``source``."""
    if uses_new_create_form(api_version):
        return {"model": name, "from": source, **fields, "stream": stream}
    return {"name": name, "modelfile": _modelfile(source, fields), "stream": stream}


def create_succeeded(exchange: Exchange) -> bool:
    """Whether a create (streamed or not) ended with ``{"status": "success"}`` and no error."""
    if exchange.status != 200 or not exchange.complete:
        return False
    if exchange.read_as_lines:
        values = exchange.values
        return bool(values) and not exchange.error_lines and _is_success(values[-1])
    value, _ = exchange.json()
    return _is_success(value)


def _is_success(value: object) -> bool:
    return isinstance(value, dict) and value.get("status") == "success" and "error" not in value


def create_problem(exchange: Exchange) -> str:
    """What went wrong with a create, in one line, for skip reasons and failures."""
    if not exchange.complete:
        return exchange.problem or "no answer"
    if exchange.read_as_lines:
        errors = exchange.error_lines
        last = exchange.values[-1] if exchange.values else None
        detail = errors[0] if errors else last
        return f"status {exchange.status}, stream ending {json.dumps(detail)[:200]}"
    return f"status {exchange.status}, body {exchange.text_preview(200)!r}"


# --------------------------------------------------------------------------------------------
# Scratch models


class ScratchModels:
    """Hands out scratch names, creates models under them, and deletes them all on :meth:`close`.

    Creating goes through the same public API a client uses; a server that cannot create makes
    :meth:`require` skip the test (the create requirements judge that server, not this test).
    """

    def __init__(self, client: Client, config: pytest.Config, api_version: str) -> None:
        self.client = client
        self.config = config
        self.api_version = api_version
        self.names: list[str] = []
        self._blob: str | None = None

    # -- names and blobs -----------------------------------------------------------------

    def name(self) -> str:
        """A new scratch name (not created yet), deleted on :meth:`close` if it ever is."""
        name = new_name(self.config)
        self.names.append(name)
        return name

    def gguf_digest(self) -> str:
        """The digest of the tiny GGUF, uploaded if the server lacks it; skips if it cannot."""
        if self._blob is None:
            digest, exchange = ensure_blob(self.client, model_bytes(SCRATCH_VARIANT))
            if exchange.status not in (200, 201):
                pytest.skip(
                    "cannot judge: uploading the tiny GGUF failed "
                    f"(status {exchange.status}; {exchange.problem or exchange.text_preview(120)})"
                )
            self._blob = digest
        return self._blob

    # -- create ----------------------------------------------------------------------------

    def create_files(
        self, name: str | None = None, *, stream: bool = False, **fields: Any
    ) -> tuple[str, Exchange]:
        """Create a model from the tiny GGUF; return its name and the create exchange."""
        name = name or self.name()
        body = files_body(name, self.gguf_digest(), self.api_version, stream=stream, **fields)
        return name, self.client.post("/api/create", json=body)

    def create_from(
        self, source: str, name: str | None = None, *, stream: bool = False, **fields: Any
    ) -> tuple[str, Exchange]:
        """Create a model from the installed model ``source``; return its name and the exchange."""
        name = name or self.name()
        body = from_body(name, source, self.api_version, stream=stream, **fields)
        return name, self.client.post("/api/create", json=body)

    def require(self, created: tuple[str, Exchange]) -> str:
        """The created model's name, or skip when the create did not succeed."""
        name, exchange = created
        if not create_succeeded(exchange):
            pytest.skip(
                f"cannot judge: creating the scratch model {name} failed "
                f"({create_problem(exchange)}); the lifecycle.create requirements judge that"
            )
        return name

    def model(self, **fields: Any) -> str:
        """A new scratch model made from the tiny GGUF (skips when the server cannot create)."""
        return self.require(self.create_files(**fields))

    def derived(self, source: str, **fields: Any) -> str:
        """A new scratch model made ``from`` another one (skips when that fails)."""
        return self.require(self.create_from(source, **fields))

    # -- clean-up --------------------------------------------------------------------------

    def close(self) -> None:
        """Delete every name handed out (absent ones answer 404, which is fine)."""
        for name in reversed(self.names):
            self.client.delete("/api/delete", json={"model": name})
        record = self.config.stash.get(_STASH, None)
        if record is not None:
            record.released.update(self.names)
        self.names.clear()


# --------------------------------------------------------------------------------------------
# Tags


def tags_by_name(exchange: Exchange) -> dict[str, dict[str, Any]] | None:
    """``/api/tags`` entries keyed by normalised name, or None for an unusable answer."""
    if exchange.status != 200:
        return None
    value, _ = exchange.json()
    models = value.get("models") if isinstance(value, dict) else None
    if models is None and isinstance(value, dict) and "models" in value:
        models = []  # some early versions sent null for "no models"
    if not isinstance(models, list):
        return None
    entries: dict[str, dict[str, Any]] = {}
    for entry in models:
        if isinstance(entry, dict):
            name = entry.get("name") or entry.get("model")
            if isinstance(name, str):
                entries[normalize_name(name)] = entry
    return entries


# --------------------------------------------------------------------------------------------
# The audit


@dataclass(frozen=True)
class Sent:
    """One model-changing or registry request the session client sent."""

    method: str
    path: str
    body: object
    status: int | None

    def field(self, *names: str) -> object:
        """The first of ``names`` present in a JSON object body (``model`` before ``name``)."""
        if isinstance(self.body, dict):
            for name in names:
                value = self.body.get(name)
                if value not in (None, ""):
                    return value
            for name in names:
                if name in self.body:
                    return self.body[name]
        return None

    def describe(self) -> str:
        """``POST /api/create {...}`` for a failure message."""
        return f"{self.method} {self.path} {json.dumps(self.body)[:200]} -> {self.status}"


#: The parts of an /api/show answer that describe the model itself (not when it was looked at).
SHOW_FIELDS = ("details", "modelfile", "template", "parameters", "system", "license")


@dataclass
class Audit:
    """What the server held when this group of modules started, and what the suite sent since."""

    prefix: str
    tags_ok: bool
    #: normalised name -> manifest digest, for every model outside the scratch prefix
    tags: dict[str, str | None]
    #: name -> the SHOW_FIELDS of its /api/show answer, for the models the run uses
    shows: dict[str, dict[str, Any]]
    sent: list[Sent] = field(default_factory=list)
    #: scratch names whose owner (a ScratchModels) has been closed: they must be gone
    released: set[str] = field(default_factory=set)

    def is_scratch(self, name: object) -> bool:
        """Whether ``name`` lies under this run's scratch prefix."""
        return isinstance(name, str) and normalize_name(name).startswith(self.prefix.lower() + "-")

    def created_names(self) -> set[str]:
        """Normalised names this session successfully created or copied to so far."""
        names: set[str] = set()
        for sent in self.sent:
            if sent.status != 200:
                continue
            target = None
            if sent.path == "/api/create":
                target = sent.field("model", "name")
            elif sent.path == "/api/copy":
                target = sent.field("destination")
            if isinstance(target, str) and target.strip():
                names.add(normalize_name(target))
        return names


def show_snapshot(client: Client, name: str) -> dict[str, Any] | None:
    """The model-describing fields of ``/api/show``, or None when it did not answer 200."""
    exchange = client.post("/api/show", json={"model": name})
    value, _ = exchange.json()
    if exchange.status != 200 or not isinstance(value, dict):
        return None
    return {key: value.get(key) for key in SHOW_FIELDS}


def audit(config: pytest.Config, client: Client, target: Target) -> Audit:
    """The session's audit, created (snapshot taken, client watched) on first use."""
    existing = config.stash.get(_STASH, None)
    if existing is not None:
        return existing
    prefix = run_prefix(config)
    tags = tags_by_name(client.get("/api/tags"))
    own = prefix.lower() + "-"
    baseline = {
        name: entry.get("digest") if isinstance(entry.get("digest"), str) else None
        for name, entry in (tags or {}).items()
        if not name.startswith(own)
    }
    used = {m for m in target.chosen_models().values() if m and not is_cloud_model(m)}
    shows = {name: snap for name in sorted(used) if (snap := show_snapshot(client, name))}
    record = Audit(prefix=prefix, tags_ok=tags is not None, tags=baseline, shows=shows)
    _watch(client, record)
    config.stash[_STASH] = record
    return record


def _watch(client: Client, record: Audit) -> None:
    """Note every model-changing or registry request the client sends from now on."""
    if getattr(client, "_conformance_audited", False):
        return
    send: Callable[..., Exchange] = client.request

    @functools.wraps(send)
    def request(method: str, path: str, **kwargs: Any) -> Exchange:
        exchange = send(method, path, **kwargs)
        route = path.split("?", 1)[0].rstrip("/")
        if route in _AUDITED_PATHS:
            body: object = exchange.request_json
            if body is None and exchange.request_body:
                body, _ = _parse(exchange.request_body)
            record.sent.append(Sent(method.upper(), route, body, exchange.status))
        return exchange

    client.request = request  # type: ignore[method-assign]
    client._conformance_audited = True  # type: ignore[attr-defined]


def _parse(raw: bytes) -> tuple[object, str | None]:
    try:
        return json.loads(raw.decode("utf-8")), None
    except (ValueError, UnicodeDecodeError) as exc:
        return None, str(exc)


def names_in(entries: Iterable[str]) -> str:
    """A short, sorted listing for messages."""
    items = sorted(entries)
    shown = ", ".join(items[:10])
    return shown + (f" ... (+{len(items) - 10})" if len(items) > 10 else "") if items else "none"


_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def is_manifest_digest(value: object) -> bool:
    """64 lower-case hex characters, as /api/tags and /api/ps report a model's digest."""
    return isinstance(value, str) and bool(_HEX64.match(value))


# --------------------------------------------------------------------------------------------
# Error answers (shared by the model-management modules)


def expect_error(
    exchange: Exchange,
    status: int,
    message: str | None = None,
    *,
    starts_with: str | None = None,
    requirement: str | None = None,
) -> str:
    """Require ``status`` with an ``{"error": <non-empty string>}`` body (exactly ``message``, or
    starting with ``starts_with``, when given); return the error text."""
    __tracebackhide__ = True
    from conformance.verdict import check, expect_json_object, expect_status

    expect_status(exchange, status, requirement=requirement)
    body = expect_json_object(exchange, requirement=requirement)
    error = body.get("error")
    wanted = (
        f'{{"error": {json.dumps(message)}}}'
        if message is not None
        else f'{{"error": "{starts_with}..."}}'
        if starts_with is not None
        else '{"error": <a non-empty string>}'
    )
    check(
        isinstance(error, str) and bool(error),
        expected=f"status {status} with {wanted}",
        actual=f"body {exchange.text_preview(200)!r}",
        exchange=exchange,
        requirement=requirement,
    )
    error = str(error)
    if message is not None:
        check(
            error == message,
            expected=f"status {status} with {wanted}",
            actual=f"error {error!r}",
            exchange=exchange,
            requirement=requirement,
        )
    if starts_with is not None:
        check(
            error.startswith(starts_with),
            expected=f"status {status} with {wanted}",
            actual=f"error {error!r}",
            exchange=exchange,
            requirement=requirement,
        )
    return error
