"""Which models are "loaded", for how long, and what loading costs (``/api/ps``, ``load_duration``).

A model that is not loaded (or is loaded with another context size) pays its configured load time;
concurrent requests for the same model share one load. After a request the model stays loaded for
its ``keep_alive`` (default 5m, §19.2): 0 unloads it at once, a negative value keeps it forever
(``expires_at`` about 292 years ahead, §5). Expiry is checked lazily whenever the table is read.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from .config import ReferenceConfig
from .gotime import MAX_DURATION_NS
from .model import Model


@dataclass
class Loaded:
    """One model resident in (pretend) memory."""

    model: Model
    num_ctx: int
    expires_ns: int  # wall-clock nanoseconds
    active: int = 0
    #: The context size asked for (or defaulted), before the clamp to the model's trained length.
    #: ``/api/ps`` reported this one until v0.15.5-rc0 (real 0.12.11: 4096 for a model trained
    #: on 2048 tokens), the size the runner really uses from then on (real 0.24.0: 2048).
    configured_ctx: int = 0

    @property
    def reported_ctx(self) -> int:
        return self.configured_ctx or self.num_ctx


def default_num_ctx(config: ReferenceConfig) -> int:
    """``OLLAMA_CONTEXT_LENGTH`` by release (§19.1); 0.20+ picks 4096 for small VRAM."""
    return 4096 if config.at_least("0.9.0") else 2048


class Scheduler:
    """The loaded-model table."""

    def __init__(self, config: ReferenceConfig) -> None:
        self.config = config
        self._loaded: dict[str, Loaded] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def effective_num_ctx(self, model: Model, requested: int) -> int:
        """Requested (or default) context size, clamped to the model's trained length (§19.1)."""
        num_ctx = requested if requested > 0 else default_num_ctx(self.config)
        num_ctx = min(num_ctx, model.context_length)
        return max(num_ctx, 4) if self.config.at_least("0.20.0") else max(num_ctx, 1)

    def _expire(self) -> None:
        now = time.time_ns()
        for key, entry in list(self._loaded.items()):
            if entry.active == 0 and entry.expires_ns <= now:
                del self._loaded[key]

    async def acquire(self, model: Model, requested_ctx: int, load_time: float) -> Loaded:
        """Make ``model`` resident (sleeping ``load_time`` if it was not) and mark it in use."""
        key = model.name.key
        lock = self._locks.setdefault(key, asyncio.Lock())
        num_ctx = self.effective_num_ctx(model, requested_ctx)
        configured = requested_ctx if requested_ctx > 0 else default_num_ctx(self.config)
        async with lock:
            self._expire()
            entry = self._loaded.get(key)
            stale = entry is not None and (
                entry.num_ctx != num_ctx
                or entry.configured_ctx != configured
                or entry.model.digest_hex != model.digest_hex
            )
            if entry is None or stale:
                if load_time > 0:
                    await asyncio.sleep(load_time)
                expires = time.time_ns() + self.config.keep_alive_ns
                entry = Loaded(model, num_ctx, expires, configured_ctx=configured)
                self._loaded[key] = entry
            entry.active += 1
            return entry

    def release(self, entry: Loaded, keep_alive_ns: int | None) -> None:
        """End one use; the model then lives for ``keep_alive_ns`` (None: the default)."""
        entry.active = max(entry.active - 1, 0)
        duration = self.config.keep_alive_ns if keep_alive_ns is None else keep_alive_ns
        if duration == 0 and entry.active == 0:
            self.unload(entry.model)
            return
        entry.expires_ns = _expiry(duration)

    def unload(self, model: Model) -> None:
        self._loaded.pop(model.name.key, None)

    def forget(self, key: str) -> None:
        """Drop a model that was deleted or replaced."""
        self._loaded.pop(key, None)

    def running(self) -> list[Loaded]:
        """Loaded models, longest remaining time first (§5)."""
        self._expire()
        return sorted(self._loaded.values(), key=lambda e: e.expires_ns, reverse=True)


def _expiry(duration_ns: int) -> int:
    if duration_ns >= MAX_DURATION_NS:
        return time.time_ns() + MAX_DURATION_NS
    return time.time_ns() + duration_ns
