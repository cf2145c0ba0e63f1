"""A stored model resolved into what the handlers need: template, parameters, facts, capabilities.

A manifest only lists layers; this module reads the small text/JSON layers (template, system,
params, messages, license), the config blob and the GGUF facts of the model layer, and derives
capabilities the way Ollama does (§20): ``embedding`` instead of ``completion`` when the GGUF has
``<arch>.pooling_type``; ``vision`` from vision metadata or a projector; ``tools``/``insert``/
``thinking`` from the template; plus capabilities recorded in the config (``info``/inherited).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .config import ReferenceConfig
from .ggufinfo import GGUFFacts
from .names import ModelName
from .store import (
    MEDIA_ADAPTER,
    MEDIA_LICENSE,
    MEDIA_MESSAGES,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_PROJECTOR,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
    Store,
    StoredModel,
)
from .templates import native_template_capabilities, template_capabilities

CAPABILITY_ORDER = ("completion", "embedding", "tools", "insert", "vision", "thinking")


@dataclass
class Model:
    """Everything about one local model that a request may need."""

    name: ModelName
    stored: StoredModel
    config: dict[str, Any]
    facts: GGUFFacts | None
    model_digest: str
    template: str = ""
    system: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    license: list[str] = field(default_factory=list)
    has_projector: bool = False
    adapters: list[str] = field(default_factory=list)
    capabilities: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.stored.manifest.size

    @property
    def digest_hex(self) -> str:
        return self.stored.digest_hex

    @property
    def family(self) -> str:
        if self.facts is not None and self.facts.architecture:
            return self.facts.architecture
        return str(self.config.get("model_family", ""))

    @property
    def context_length(self) -> int:
        return self.facts.context_length if self.facts is not None else 2048

    @property
    def embedding_length(self) -> int:
        return self.facts.embedding_length if self.facts is not None else 64

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    @property
    def parent_model(self) -> str:
        """The model layer's origin (``from`` in the manifest): what ``/api/show`` reports."""
        layer = self.stored.manifest.layer(MEDIA_MODEL)
        return layer.origin if layer is not None else ""

    def details(self, *, with_lengths: bool = False, parent: bool = True) -> dict[str, Any]:
        """``details`` as in ``/api/tags``, ``/api/show`` and ``/api/ps`` (all fields present, §4).

        Like Ollama, the sizes and levels come from the config written at create time (so they
        keep the emulated release's formatting); the GGUF is only a fallback for a config
        without them. ``parent`` fills ``parent_model`` (``/api/show``); the lists leave it empty.
        """
        family = self.family
        facts = self.facts
        model_type = self.config.get("model_type")
        file_type = self.config.get("file_type")
        if not isinstance(model_type, str):
            model_type = facts.parameter_size if facts else ""
        if not isinstance(file_type, str):
            file_type = facts.quantization_level if facts else ""
        details: dict[str, Any] = {
            "parent_model": self.parent_model if parent else "",
            "format": str(self.config.get("model_format", "gguf")),
            "family": family,
            "families": [family] if family else None,
            "parameter_size": model_type,
            "quantization_level": file_type,
        }
        if with_lengths and facts is not None:
            details["context_length"] = self.context_length
            details["embedding_length"] = self.embedding_length
        return details


def load_model(store: Store, stored: StoredModel, config: ReferenceConfig) -> Model:
    """Read the layers of ``stored`` and derive its capabilities for the emulated version."""
    manifest = stored.manifest

    def text_of(media_type: str) -> str | None:
        layer = manifest.layer(media_type)
        if layer is None:
            return None
        try:
            return store.read_blob(layer.digest).decode("utf-8", errors="replace")
        except OSError:
            return None

    try:
        cfg = json.loads(store.read_blob(manifest.config.digest))
    except (OSError, ValueError):
        cfg = {}
    model_layer = manifest.layer(MEDIA_MODEL)
    model_digest = model_layer.digest if model_layer else manifest.config.digest
    facts = store.facts(model_layer.digest) if model_layer else None
    model = Model(
        name=stored.name,
        stored=stored,
        config=cfg if isinstance(cfg, dict) else {},
        facts=facts,
        model_digest=model_digest,
        template=text_of(MEDIA_TEMPLATE) or "",
        system=text_of(MEDIA_SYSTEM) or "",
        has_projector=manifest.layer(MEDIA_PROJECTOR) is not None,
        adapters=[layer.digest for layer in manifest.layers if layer.media_type == MEDIA_ADAPTER],
    )
    params_text = text_of(MEDIA_PARAMS)
    if params_text:
        try:
            loaded = json.loads(params_text)
            model.parameters = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            model.parameters = {}
    messages_text = text_of(MEDIA_MESSAGES)
    if messages_text:
        try:
            loaded = json.loads(messages_text)
            model.messages = loaded if isinstance(loaded, list) else []
        except ValueError:
            model.messages = []
    model.license = [
        store.read_blob(layer.digest).decode("utf-8", errors="replace")
        for layer in manifest.layers
        if layer.media_type == MEDIA_LICENSE and store.has_blob(layer.digest)
    ]
    model.capabilities = derive_capabilities(model, config)
    return model


def derive_capabilities(model: Model, config: ReferenceConfig) -> list[str]:
    """§20: the capability list in Ollama's order."""
    caps: set[str] = set()
    facts = model.facts
    if facts is not None and facts.has_pooling:
        caps.add("embedding")
    else:
        caps.add("completion")
    # Vision from the GGUF's vision.block_count since v0.6.4-rc0, from a projector layer since
    # v0.6.8-rc0; capabilities recorded in the config count since v0.12.0-rc0 (git tag scan).
    if facts is not None and facts.has_vision and config.at_least("0.6.4-rc0"):
        caps.add("vision")
    if model.has_projector and config.at_least("0.6.8-rc0"):
        caps.add("vision")
    if config.at_least("0.12.0-rc0"):
        recorded = model.config.get("capabilities")
        if isinstance(recorded, list):
            caps |= {c for c in recorded if isinstance(c, str)}
    template_caps = template_capabilities(model.template)
    if not config.at_least("0.9.0-rc0"):
        template_caps.discard("thinking")
    caps |= template_caps
    if config.at_least("0.30.0") and not model.template and facts is not None:
        caps |= native_template_capabilities(facts.chat_template)
    known = [c for c in CAPABILITY_ORDER if c in caps]
    return known + sorted(caps - set(CAPABILITY_ORDER))
