"""Blobs and manifests on disk, laid out like Ollama's ``OLLAMA_MODELS`` directory.

``blobs/sha256-<hex>`` holds content-addressed files; ``manifests/<host>/<namespace>/<model>/<tag>``
holds one Docker-v2-style manifest per model. Model names match case-insensitively (§21); the
``/api/tags`` digest is the sha256 of the manifest file's bytes (§4). Blob uploads are streamed to
a temporary file while hashed and only ever renamed to their *actual* digest (§16), so a
mismatched upload can never appear under the digest the client claimed.

The store is synchronous and small-file oriented; handlers serialise mutations with one lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ggufinfo import GGUFFacts, read_facts
from .names import ModelName

DIGEST_RE = re.compile(r"^sha256[:-][0-9a-fA-F]{64}$")

MEDIA_MODEL = "application/vnd.ollama.image.model"
MEDIA_TEMPLATE = "application/vnd.ollama.image.template"
MEDIA_SYSTEM = "application/vnd.ollama.image.system"
MEDIA_PARAMS = "application/vnd.ollama.image.params"
MEDIA_MESSAGES = "application/vnd.ollama.image.messages"
MEDIA_LICENSE = "application/vnd.ollama.image.license"
MEDIA_ADAPTER = "application/vnd.ollama.image.adapter"
MEDIA_PROJECTOR = "application/vnd.ollama.image.projector"
MEDIA_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def valid_digest(digest: str) -> bool:
    """``^sha256[:-][0-9a-fA-F]{64}$``: both separators and upper-case hex pass (§16)."""
    return bool(DIGEST_RE.match(digest))


def blob_file_name(digest: str) -> str:
    """The file name of a digest: ``:`` becomes ``-``; case is kept (so upper-case hex misses)."""
    return digest.replace(":", "-")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str
    size: int
    #: Where the layer came from (the manifest's ``from``): the uploaded file for a GGUF given in
    #: ``files``, the base model for one inherited through ``from``. ``/api/show`` reports the model
    #: layer's origin as ``details.parent_model``.
    origin: str = ""

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest}
        doc["size"] = self.size
        if self.origin:
            doc["from"] = self.origin
        return doc


@dataclass
class Manifest:
    config: Layer
    layers: list[Layer] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        doc = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }
        return json.dumps(doc, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        doc = json.loads(data)

        def layer(d: dict[str, Any]) -> Layer:
            origin = str(d.get("from", ""))
            return Layer(str(d["mediaType"]), str(d["digest"]), int(d["size"]), origin)

        return cls(layer(doc["config"]), [layer(d) for d in doc.get("layers", [])])

    @property
    def size(self) -> int:
        """What ``/api/tags`` reports as ``size``: the layers *and* the config blob.

        Ollama's ``Manifest.Size`` adds the config in; real 0.24.0 reports 302,399 bytes for a
        302,016-byte GGUF with a 44-byte template layer and its 339-byte config.
        """
        return self.config.size + sum(layer.size for layer in self.layers)

    def digests(self) -> set[str]:
        return {self.config.digest, *(layer.digest for layer in self.layers)}

    def layer(self, media_type: str) -> Layer | None:
        for item in self.layers:
            if item.media_type == media_type:
                return item
        return None


@dataclass(frozen=True)
class StoredModel:
    """One manifest on disk."""

    name: ModelName
    manifest: Manifest
    path: Path
    modified_ns: int
    digest_hex: str


class Store:
    """The model directory: blobs, manifests and a case-insensitive name index."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.manifests = root / "manifests"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.manifests.mkdir(parents=True, exist_ok=True)
        self._facts: dict[str, GGUFFacts] = {}
        #: Model blobs the synthetic engine serves (the catalogue's all-zero weights).
        self.synthetic: set[str] = set()
        self._index: dict[str, ModelName] = {}
        for name in self._scan():
            self._index[name.key] = name

    # --- blobs -------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.blobs / blob_file_name(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def read_blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def write_blob(self, data: bytes) -> Layer:
        """Store ``data`` under its own digest (idempotent); return a layer without media type."""
        digest = sha256_digest(data)
        path = self.blob_path(digest)
        if not path.is_file():
            self._atomic_write(path, data)
        return Layer("", digest, len(data))

    async def receive_blob(self, chunks: AsyncIterator[bytes]) -> tuple[str, int]:
        """Stream an upload to disk while hashing; returns ``(actual digest, size)``.

        The file is renamed to its real digest only when complete, so readers never see a partial
        blob and a mismatched upload is kept under its true name (§16 step 5).
        """
        hasher = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(prefix=".upload-", dir=self.blobs)
        try:
            with os.fdopen(fd, "wb") as handle:
                async for chunk in chunks:
                    if chunk:
                        hasher.update(chunk)
                        handle.write(chunk)
                        size += len(chunk)
            digest = "sha256:" + hasher.hexdigest()
            os.replace(tmp_name, self.blob_path(digest))
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return digest, size

    def _atomic_write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".write-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    # --- GGUF facts --------------------------------------------------------------------------

    def remember_facts(self, digest: str, facts: GGUFFacts) -> None:
        self._facts[digest] = facts

    def facts(self, digest: str) -> GGUFFacts | None:
        """GGUF facts of a model blob, read once and cached; ``None`` if unreadable."""
        cached = self._facts.get(digest)
        if cached is None:
            try:
                cached = read_facts(self.blob_path(digest))
            except (OSError, ValueError):
                return None
            self._facts[digest] = cached
        return cached

    # --- manifests ---------------------------------------------------------------------------

    def manifest_path(self, name: ModelName) -> Path:
        return self.manifests.joinpath(*name.parts)

    def _scan(self) -> Iterator[ModelName]:
        for path in self.manifests.glob("*/*/*/*"):
            if path.is_file() and not path.name.startswith("."):
                rel = path.relative_to(self.manifests).parts
                yield ModelName(*rel)

    def resolve(self, name: ModelName) -> ModelName | None:
        """The stored spelling of ``name`` (case-insensitive match), if such a model exists."""
        stored = self._index.get(name.key)
        if stored is not None and self.manifest_path(stored).is_file():
            return stored
        return None

    def get(self, name: ModelName) -> StoredModel | None:
        stored = self.resolve(name)
        if stored is None:
            return None
        path = self.manifest_path(stored)
        try:
            data = path.read_bytes()
            stat = path.stat()
        except OSError:
            return None
        digest = hashlib.sha256(data).hexdigest()
        return StoredModel(stored, Manifest.from_bytes(data), path, stat.st_mtime_ns, digest)

    def put(self, name: ModelName, manifest: Manifest) -> StoredModel:
        """Write (or replace, matching case-insensitively) the manifest of ``name``."""
        previous = self.get(name)
        if previous is not None and previous.path != self.manifest_path(name):
            previous.path.unlink(missing_ok=True)
        self._atomic_write(self.manifest_path(name), manifest.to_bytes())
        self._index[name.key] = name
        if previous is not None:
            self._prune(previous.manifest.digests() - manifest.digests())
        stored = self.get(name)
        assert stored is not None
        return stored

    def delete(self, name: ModelName) -> bool:
        """Remove a manifest and the blobs no other manifest uses (§13); False if absent."""
        stored = self.get(name)
        if stored is None:
            return False
        stored.path.unlink(missing_ok=True)
        self._index.pop(name.key, None)
        for parent in stored.path.parents:
            if parent == self.manifests:
                break
            try:
                parent.rmdir()
            except OSError:
                break
        self._prune(stored.manifest.digests())
        return True

    def _prune(self, digests: set[str]) -> None:
        in_use: set[str] = set()
        for other in self.all():
            in_use |= other.manifest.digests()
        for digest in digests - in_use:
            self.blob_path(digest).unlink(missing_ok=True)
            self._facts.pop(digest, None)

    def all(self) -> list[StoredModel]:
        models = []
        for stored_name in list(self._index.values()):
            stored = self.get(stored_name)
            if stored is not None:
                models.append(stored)
        return models

    def touch(self, name: ModelName, mtime_ns: int) -> None:
        """Set a manifest's modification time (the catalogue orders its models this way)."""
        path = self.manifest_path(name)
        os.utime(path, ns=(mtime_ns, mtime_ns))
