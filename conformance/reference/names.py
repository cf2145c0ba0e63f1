"""Model names the way Ollama parses, validates, matches and displays them (reference facts §21).

A name is ``[host/][namespace/]model[:tag]`` with defaults ``registry.ollama.ai``, ``library`` and
``latest``. A part that is present but empty (``a:``, ``/x``) makes the name invalid rather than
defaulted. Existing models are matched case-insensitively, part by part; responses echo the name
as the client sent it, except where Ollama prints the shortest display form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_MISSING = "\x00missing"  # an explicitly empty part: never valid

_PART_RULES = {
    # kind: (pattern, max length)
    "host": (re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*"), 350),
    "namespace": (re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*"), 80),
    "model": (re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*"), 80),
    "tag": (re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*"), 80),
}


@dataclass(frozen=True)
class ModelName:
    """A parsed, default-filled model name; ``valid`` says whether Ollama would accept it."""

    host: str
    namespace: str
    model: str
    tag: str

    @property
    def valid(self) -> bool:
        for kind, part in (
            ("host", self.host),
            ("namespace", self.namespace),
            ("model", self.model),
            ("tag", self.tag),
        ):
            pattern, limit = _PART_RULES[kind]
            if part == _MISSING or not (1 <= len(part) <= limit) or not pattern.fullmatch(part):
                return False
        return True

    @property
    def full(self) -> str:
        """``registry.ollama.ai/library/m:latest``: the form in capability errors (§20)."""
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def shortest(self) -> str:
        """Ollama's ``DisplayShortest``: host and namespace only where they are not defaults."""
        if self.host.lower() != DEFAULT_HOST:
            return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"
        if self.namespace.lower() != DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"

    @property
    def key(self) -> str:
        """Case-insensitive identity used to match existing models."""
        return self.full.lower()

    @property
    def parts(self) -> tuple[str, str, str, str]:
        return (self.host, self.namespace, self.model, self.tag)


def _cut_last(text: str, sep: str) -> tuple[str, str, bool]:
    index = text.rfind(sep)
    if index < 0:
        return text, "", False
    before, after = text[:index], text[index + 1 :]
    return (before or _MISSING), (after or _MISSING), True


def parse_name(text: str) -> ModelName:
    """Parse and fill defaults; check :attr:`ModelName.valid` before using it."""
    host = namespace = tag = ""
    rest = text
    if rest.rfind(":") > rest.rfind("/"):
        rest, tag, _ = _cut_last(rest, ":")
    rest, model, found = _cut_last(rest, "/")
    if not found:
        model = rest
    else:
        rest, namespace, found = _cut_last(rest, "/")
        if not found:
            namespace = rest
        else:
            host = rest.split("://", 1)[1] if "://" in rest else rest
    return ModelName(
        host=host or DEFAULT_HOST,
        namespace=namespace or DEFAULT_NAMESPACE,
        model=model or _MISSING,
        tag=tag or DEFAULT_TAG,
    )


def strip_source_suffix(text: str) -> str:
    """v0.17.8-rc0+ trims whitespace and honours a ``:local`` suffix (force the local copy, §21).

    Cloud suffixes would be proxied to ollama.com; the reference server never uses the network,
    so they are left in place and simply resolve like any other (absent) name.
    """
    text = text.strip()
    if text.endswith(":local"):
        text = text[: -len(":local")]
    return text
