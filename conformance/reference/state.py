"""The state one reference server instance shares between requests.

Holds the configuration, the model store (created in a fresh temporary directory unless a
``data_dir`` was given, and then removed by :meth:`ReferenceState.close`), the loaded-model
table, the lock that serialises store mutations, and the strict-mode violation log.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from . import catalogue, weights
from .config import ReferenceConfig
from .model import Model, load_model
from .names import ModelName
from .scheduler import Scheduler
from .store import Store
from .weights import TinyModel


class ReferenceState:
    """Everything the handlers of one app instance share."""

    def __init__(self, config: ReferenceConfig) -> None:
        self.config = config
        self._temporary: Path | None = None
        if config.data_dir is None:
            self._temporary = Path(tempfile.mkdtemp(prefix="ollama-reference-"))
            root = self._temporary
        else:
            root = Path(config.data_dir)
            root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.store = Store(root)
        catalogue.install_all(self.store)
        self.scheduler = Scheduler(config)
        self.store_lock = asyncio.Lock()
        self._models: dict[tuple[str, str], Model] = {}
        self._runtimes: dict[str, TinyModel | None] = {}
        #: Strict-mode records (dicts, one per violating request) and their running total.
        self.violations: list[dict[str, Any]] = []
        self.violation_count = 0
        self._violations_lock = threading.Lock()

    def find(self, name: ModelName) -> Model | None:
        """The local model ``name`` refers to (case-insensitive), or ``None``."""
        stored = self.store.get(name)
        if stored is None:
            return None
        cache_key = (stored.name.key, stored.digest_hex)
        model = self._models.get(cache_key)
        if model is None or model.stored.modified_ns != stored.modified_ns:
            model = load_model(self.store, stored, self.config)
            self._models[cache_key] = model
        return model

    async def runtime(self, model: Model) -> TinyModel | None:
        """The runnable network of ``model`` when the reference computes it for real, else None.

        Loaded once per model blob (in a worker thread: it reads the tensors with numpy).
        """
        digest = model.model_digest
        if digest in self.store.synthetic or model.facts is None:
            return None
        if digest not in self._runtimes:
            kv = model.facts.kv
            small = model.facts.parameter_count <= weights.MAX_PARAMETERS
            runnable = kv.get("general.architecture") == "llama" and small
            path = self.store.blob_path(digest)
            loaded = await asyncio.to_thread(weights.load, path, kv) if runnable else None
            self._runtimes[digest] = loaded
        return self._runtimes[digest]

    def record_violation(self, record: dict[str, Any], issues: int) -> None:
        with self._violations_lock:
            self.violations.append(record)
            self.violation_count += issues

    def close(self) -> None:
        """Remove the temporary data directory, if this instance created one."""
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None
