"""Which catalogue requirement a test judges, from its ``@pytest.mark.requirement`` marker.

A marker that names no catalogue entry is the suite's bug, not the server's: it is reported on
the test (as an ERROR) instead of crashing the run, and so is an unreadable catalogue.
"""

from __future__ import annotations

import pytest

from conformance.requirements import Catalogue, Requirement, default_path, load_catalogue
from conformance.verdict import RequirementRef

__all__ = ["RequirementError", "RequirementLookup", "area_of", "split_by_area"]


class RequirementError(Exception):
    """A test's ``requirement`` marker is missing its id or names no catalogue entry."""


def area_of(item: pytest.Item) -> str:
    """A test's area when its requirement does not say: ``test_generate.py`` -> ``generate``."""
    return item.path.stem.removeprefix("test_")


class RequirementLookup:
    """Finds each test's catalogue entry; the catalogue is read once, on first use."""

    def __init__(self) -> None:
        self._catalogue: Catalogue | None = None
        self._catalogue_error: str | None = None

    def catalogue(self) -> Catalogue | None:
        """The requirement catalogue (``$OLLAMA_CONFORMANCE_CATALOGUE`` overrides the path)."""
        if self._catalogue is None and self._catalogue_error is None:
            try:
                self._catalogue = load_catalogue()
            except Exception as exc:  # reported on every marked test, not as a crash
                self._catalogue_error = f"{type(exc).__name__}: {exc}"
        return self._catalogue

    def requirement(self, req_id: str) -> Requirement:
        """The catalogue entry; RequirementError when there is none."""
        catalogue = self.catalogue()
        if catalogue is None:
            raise RequirementError(f"requirement catalogue unreadable: {self._catalogue_error}")
        problem = f"unknown requirement {req_id!r}"
        try:
            entry = catalogue.get(req_id)
        except KeyError as exc:  # the catalogue's message suggests close ids for a typo
            entry, problem = None, str(exc.args[0]) if exc.args else problem
        if entry is None:
            raise RequirementError(
                f"{problem} (from @pytest.mark.requirement; add the id to {_where(catalogue)} "
                "or fix the marker)"
            )
        return entry

    def requirement_of(self, item: pytest.Item) -> Requirement | None:
        """The item's catalogue entry, None without a marker; RequirementError if bad."""
        marker = item.get_closest_marker("requirement")
        if marker is None:
            return None
        req_id = marker.args[0] if marker.args else marker.kwargs.get("id")
        if not isinstance(req_id, str) or not req_id:
            raise RequirementError(
                'a requirement marker needs an id: @pytest.mark.requirement("area.behaviour")'
            )
        return self.requirement(req_id)

    def ref_of(self, item: pytest.Item) -> tuple[Requirement | None, RequirementRef | None]:
        """The item's entry and its reference for checks; both None for no or a bad marker."""
        try:
            requirement = self.requirement_of(item)
        except RequirementError:
            return None, None  # reported by the setup hook, on the test itself
        if requirement is None:
            return None, None
        return requirement, RequirementRef(requirement.id, requirement.level, requirement.statement)


def split_by_area(
    items: list[pytest.Item], wanted: set[str], lookup: RequirementLookup
) -> tuple[list[pytest.Item], list[pytest.Item]]:
    """``(keep, dropped)``: the items of the wanted areas, and the rest.

    An item whose marker is bad is kept, so that it runs and reports the bad marker.
    """
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        try:
            requirement = lookup.requirement_of(item)
        except RequirementError:
            keep.append(item)
            continue
        area = requirement.area if requirement is not None else area_of(item)
        (keep if area in wanted else dropped).append(item)
    return keep, dropped


def _where(catalogue: Catalogue) -> str:
    """The catalogue file to name in a message: short for the shipped one."""
    if catalogue.path is None or catalogue.path == default_path().resolve():
        return "schemas/requirements.toml"
    return str(catalogue.path)
