"""What the server under test is: its claimed API version and which of its models can do what.

The suite judges a server by the Ollama version it claims, and many tests need a model with a
given capability (chat needs ``completion``, ``/api/embed`` needs ``embedding`` ...). Discovery asks
the server once per run (``/api/version``, ``/api/tags``, ``/api/show`` per model) within a time
budget, so a slow or broken server cannot stall the run before a single test starts.

Rules worth knowing:

* A development build reports ``0.0.0``, which says nothing about its API; that, a missing or a
  garbled answer makes the suite judge the server as ``--api-version`` or, failing that, as the
  newest version it knows, and say so in a note.
* Servers before 0.9 have no ``capabilities`` in ``/api/show``: a model is taken to complete text,
  unless its family is BERT-like, in which case it embeds.
* The suite never *picks* its own scratch models (``conformance-...``, perhaps left by a crashed
  run) or a cloud model (``:cloud`` or ``-cloud`` tags are proxied to ollama.com, which would
  test someone else's server and cost money); an explicit ``--model`` is honoured.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.client import Client
from conformance.versions import NEWEST_KNOWN, Version, VersionError

__all__ = [
    "CAPABILITY_OPTIONS",
    "ModelInfo",
    "Overrides",
    "Target",
    "discover",
    "is_cloud_model",
]

#: The command-line option that names the model for a capability.
CAPABILITY_OPTIONS: dict[str, str] = {
    "completion": "--model",
    "embedding": "--embed-model",
    "tools": "--tools-model",
    "thinking": "--thinking-model",
    "vision": "--vision-model",
}

#: Model families whose models only embed (servers without ``capabilities`` tell us no more).
_EMBEDDING_FAMILIES = frozenset(
    {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert", "jina-bert-v2", "xlm-roberta", "roberta"}
)

#: Every model a run creates is named ``conformance-<run id>-N``.
SCRATCH_PREFIX = "conformance-"

#: Default time budget of the whole discovery, in seconds.
DISCOVERY_BUDGET = 30.0
#: At most this many models are asked about with /api/show; the rest are inferred.
MAX_SHOWN_MODELS = 64


def is_cloud_model(name: str) -> bool:
    """Whether Ollama would proxy ``name`` to ollama.com (``x:cloud``, ``x:20b-cloud``)."""
    lowered = name.strip().lower()
    return lowered.endswith(":cloud") or lowered.endswith("-cloud")


def is_scratch_model(name: str) -> bool:
    """Whether ``name`` was made by a conformance run (possibly a crashed one): never picked."""
    return name.strip().lower().startswith(SCRATCH_PREFIX)


@dataclass(frozen=True)
class Overrides:
    """What the user said on the command line; always wins over discovery."""

    model: str | None = None
    embed_model: str | None = None
    tools_model: str | None = None
    thinking_model: str | None = None
    vision_model: str | None = None
    api_version: str | None = None

    def for_capability(self, capability: str) -> str | None:
        """The model explicitly named for ``capability``, if any."""
        return {
            "completion": self.model,
            "embedding": self.embed_model,
            "tools": self.tools_model,
            "thinking": self.thinking_model,
            "vision": self.vision_model,
        }.get(capability)


@dataclass(frozen=True)
class ModelInfo:
    """One model of the target, as discovery saw it.

    ``capabilities_from`` says how the capabilities were learnt: ``tags`` / ``show`` (the server
    said so) or ``inferred`` (an older server, or discovery ran out of time).
    """

    name: str
    size: int | None = None
    family: str | None = None
    capabilities: frozenset[str] = frozenset()
    capabilities_from: str = "inferred"

    @property
    def is_cloud(self) -> bool:
        """Whether the model is proxied to ollama.com; never picked automatically."""
        return is_cloud_model(self.name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form for report.json."""
        return {
            "name": self.name,
            "size": self.size,
            "family": self.family,
            "capabilities": sorted(self.capabilities),
            "capabilities_from": self.capabilities_from,
        }


@dataclass
class Target:
    """The server under test, as discovered at the start of a run."""

    base_url: str
    claimed_version: str | None
    effective_version: str
    models: tuple[ModelInfo, ...] = ()
    overrides: Overrides = field(default_factory=Overrides)
    notes: list[str] = field(default_factory=list)

    def model_for(self, capability: str) -> str | None:
        """The model to use for ``capability``, or None when the target has none.

        An explicit option wins. Otherwise the ``--model`` model if it has the capability, else
        the smallest local model that has it (small models answer fastest).
        """
        explicit = self.overrides.for_capability(capability)
        if explicit:
            return explicit
        candidates = [
            m
            for m in self.models
            if capability in m.capabilities and not m.is_cloud and not is_scratch_model(m.name)
        ]
        if not candidates:
            return None
        preferred = self.overrides.model
        for model in candidates:
            if preferred and _same_model(model.name, preferred):
                return model.name
        candidates.sort(key=lambda m: (m.size is None, m.size or 0, m.name))
        return candidates[0].name

    def has_model(self, name: str) -> bool:
        """Whether ``name`` is among the target's models (``x`` and ``x:latest`` are the same)."""
        return any(_same_model(m.name, name) for m in self.models)

    def chosen_models(self) -> dict[str, str | None]:
        """The model picked per capability, for the report header."""
        return {cap: self.model_for(cap) for cap in CAPABILITY_OPTIONS}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form for report.json."""
        return {
            "url": self.base_url,
            "claimed_version": self.claimed_version,
            "effective_version": self.effective_version,
            "models": [m.to_dict() for m in self.models],
            "chosen_models": self.chosen_models(),
            "notes": list(self.notes),
        }


def _same_model(a: str, b: str) -> bool:
    """Ollama matches names case-insensitively and treats a missing tag as ``latest``."""

    def norm(name: str) -> str:
        name = name.strip().lower()
        last = name.rsplit("/", 1)[-1]
        return name if ":" in last else name + ":latest"

    return norm(a) == norm(b)


# --------------------------------------------------------------------------------------------
# Discovery


def judge_version(claimed: object, override: str | None) -> tuple[str, str | None]:
    """The version to judge the target as, and a note when it is not simply what it claims.

    ``override`` must already be a valid version (the option is validated at start-up).
    """
    parsed: Version | None = None
    problem: str | None = None
    if not isinstance(claimed, str):
        problem = "no version" if claimed is None else f"a non-string version {claimed!r}"
    else:
        try:
            parsed = Version.parse(claimed)
        except VersionError:
            problem = f"an unparsable version {claimed!r}"
        else:
            if parsed.is_development_build:
                problem = f"the development-build version {claimed!r}"
    if override:
        chosen = str(Version.parse(override))
        if parsed is not None and problem is None and parsed != Version.parse(chosen):
            return chosen, f"judging as Ollama {chosen} (--api-version); target claims {claimed}"
        return chosen, None if problem is None else f"target reports {problem}; judging as {chosen}"
    if parsed is not None and problem is None:
        return str(parsed), None
    return NEWEST_KNOWN, (
        f"target reports {problem}; judging it as Ollama {NEWEST_KNOWN}, the newest known "
        "(pass --api-version to choose)"
    )


def infer_capabilities(
    family: str | None, families: Iterable[str] = (), reported: Iterable[str] | None = None
) -> frozenset[str]:
    """Capabilities of a model on a server that did not list them.

    ``reported`` wins when the server gave any; else BERT-like families embed and everything
    else completes text (the only two kinds that existed before capabilities were reported).
    """
    if reported:
        return frozenset(str(c) for c in reported)
    names = {f.lower() for f in (family, *families) if isinstance(f, str) and f}
    if names & _EMBEDDING_FAMILIES or any("bert" in n for n in names):
        return frozenset({"embedding"})
    return frozenset({"completion"})


def _details(entry: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    details = entry.get("details")
    if not isinstance(details, dict):
        return None, []
    family = details.get("family")
    families = details.get("families")
    return (
        family if isinstance(family, str) and family else None,
        [f for f in families if isinstance(f, str)] if isinstance(families, list) else [],
    )


def _string_list(value: object) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def discover(
    base_url: str,
    client: Client,
    overrides: Overrides | None = None,
    *,
    budget: float = DISCOVERY_BUDGET,
) -> Target:
    """Ask the target what it is; never raises for anything the server does.

    Every request is bounded by what is left of ``budget``; when it runs out, the remaining
    models' capabilities are inferred and a note says so.
    """
    overrides = overrides or Overrides()
    deadline = time.monotonic() + budget
    notes: list[str] = []

    def bounded() -> Any:
        remaining = max(0.05, deadline - time.monotonic())
        b = client.bounds
        return b.with_overrides(
            total_timeout=min(b.total_timeout, remaining),
            first_line_timeout=min(b.first_line_timeout, remaining),
        )

    version_ex = client.get("/api/version", bounds=bounded())
    claimed: object = None
    if version_ex.status == 200:
        value, error = version_ex.json()
        if isinstance(value, dict):
            claimed = value.get("version")
        else:
            notes.append(f"/api/version answered {error or 'a JSON ' + type(value).__name__}")
    elif version_ex.problem:
        notes.append(f"/api/version: {version_ex.problem}")
    else:
        notes.append(f"/api/version answered status {version_ex.status}")
    effective, note = judge_version(claimed, overrides.api_version)
    if note:
        notes.append(note)

    tags_ex = client.get("/api/tags", bounds=bounded())
    entries: list[dict[str, Any]] = []
    value, _ = tags_ex.json()
    if tags_ex.status == 200 and isinstance(value, dict) and isinstance(value.get("models"), list):
        entries = [e for e in value["models"] if isinstance(e, dict)]
    else:
        notes.append(
            f"/api/tags gave no model list ({tags_ex.problem or f'status {tags_ex.status}'});"
            " tests that need a model are skipped unless --model options name them"
        )

    models: list[ModelInfo] = []
    shown = 0
    out_of_time = 0
    for entry in entries:
        name = entry.get("name") or entry.get("model")
        if not isinstance(name, str) or not name:
            continue
        family, families = _details(entry)
        size = entry.get("size") if isinstance(entry.get("size"), int) else None
        listed = _string_list(entry.get("capabilities"))
        if listed:
            models.append(ModelInfo(name, size, family, frozenset(listed), "tags"))
            continue
        if is_cloud_model(name):  # never used automatically, so not worth a request
            models.append(ModelInfo(name, size, family, infer_capabilities(family, families)))
            continue
        if time.monotonic() >= deadline or shown >= MAX_SHOWN_MODELS:
            out_of_time += 1
            models.append(ModelInfo(name, size, family, infer_capabilities(family, families)))
            continue
        shown += 1
        show_ex = client.post("/api/show", json={"model": name}, bounds=bounded())
        show, _ = show_ex.json()
        reported: list[str] | None = None
        if show_ex.status == 200 and isinstance(show, dict):
            reported = _string_list(show.get("capabilities"))
            show_family, show_families = _details(show)
            family = show_family or family
            families = show_families or families
        capabilities = infer_capabilities(family, families, reported)
        source = "show" if reported else "inferred"
        models.append(ModelInfo(name, size, family, capabilities, source))
    if out_of_time:
        notes.append(
            f"discovery budget ({budget:g} s) spent: capabilities of {out_of_time} model(s) "
            "inferred from their family"
        )
    return Target(
        base_url=base_url.rstrip("/"),
        claimed_version=claimed if isinstance(claimed, str) else None,
        effective_version=effective,
        models=tuple(models),
        overrides=overrides,
        notes=notes,
    )
