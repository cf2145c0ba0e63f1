"""The models a run creates: unique names under the run prefix, and deleting them afterwards.

Every model the suite creates is named ``conformance-<run id>-N``, so the end-of-run clean-up can
delete exactly those and nothing that was on the target before the run started.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from conformance.client import Client
from conformance.target import SCRATCH_PREFIX

__all__ = ["ScratchModels", "ScratchName"]

#: The longest one clean-up request may take: a target that stopped answering must not hold the
#: end of the run for minutes.
CLEANUP_TIMEOUT = 15.0


class ScratchName(str):
    """A unique, tracked model name under the run prefix; call it for another one.

    It is a ``str`` so ``json={"model": scratch_name}`` just works, and callable because tests
    that copy or rename need a second name: ``dest = scratch_name()``.
    """

    _factory: Callable[[], ScratchName]

    def __new__(cls, value: str, factory: Callable[[], ScratchName]) -> ScratchName:
        obj = super().__new__(cls, value)
        obj._factory = factory
        return obj

    def __call__(self) -> ScratchName:
        return self._factory()


class ScratchModels:
    """The run's scratch names, and the clean-up that deletes the models created under them."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._names: set[str] = set()
        self._prefix_used = False  # someone asked for the prefix or a name
        self._counter = itertools.count(1)

    @property
    def prefix(self) -> str:
        """Every model this run creates is named under this prefix.

        Whoever asks may create models under it, so asking arms the end-of-run clean-up.
        """
        self._prefix_used = True
        return f"{SCRATCH_PREFIX}{self.run_id}"

    def new_name(self) -> ScratchName:
        """A unique model name under the run prefix, remembered for clean-up."""
        name = f"{self.prefix}-{next(self._counter)}"
        self._names.add(name)
        return ScratchName(name, self.new_name)

    def delete_created(self, client: Client, existing_before: set[str], notes: list[str]) -> None:
        """Delete the models under the run prefix that this run created; nothing else.

        ``existing_before`` holds the lower-cased names the target listed before the run: a model
        under the prefix that was already there is not ours to delete unless we handed out its name.
        What could not be deleted is appended to ``notes`` as it happens, so an error halfway
        keeps what was learnt before it.
        """
        if not self._prefix_used:
            return  # no test asked for a scratch name: nothing of ours to look for
        prefix = f"{SCRATCH_PREFIX}{self.run_id}-".lower()
        bounds = client.bounds.with_overrides(
            total_timeout=min(CLEANUP_TIMEOUT, client.bounds.total_timeout)
        )
        value, _ = client.get("/api/tags", bounds=bounds).json()
        models = value.get("models") if isinstance(value, dict) else None
        if not isinstance(models, list):
            return
        handed_out = {s.lower() for s in self._names}
        for entry in models:
            name = entry.get("name") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not name.lower().startswith(prefix):
                continue
            base = name.lower().split(":", 1)[0]
            if base not in handed_out and name.lower() in existing_before:
                continue  # was there before the run started: not ours to delete
            ex = client.delete("/api/delete", json={"model": name}, bounds=bounds)
            if ex.status != 200:
                notes.append(
                    f"could not delete scratch model {name}: {ex.problem or f'status {ex.status}'}"
                )
