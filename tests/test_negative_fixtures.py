"""Every negative fixture is rejected by the contract, and the rejection names the offending field.

The fixtures in ``fixtures/negative/<kind>.json`` are messages a server or client could plausibly
get wrong (a string where the API wants an array, a digest without its prefix, a field an older
version does not know). A schema change that silently starts accepting one of them weakens the
contract, and an issue that does not say *which* field is wrong is of little use in a report; both
are caught here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conformance import contract

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "negative"

#: The floor the contract promises; more is welcome, fewer means cases were lost.
MIN_CASES = 70
MIN_KINDS = 15

_CASE_KEYS = {"name", "field", "why", "instance"}
_OPTIONAL_KEYS = {"version"}


def _load() -> list[tuple[str, dict[str, Any]]]:
    cases: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(FIXTURES.glob("*.json")):
        kind = path.name.removesuffix(".json")
        for case in json.loads(path.read_text(encoding="utf-8")):
            cases.append((kind, case))
    return cases


CASES = _load()


def _case_id(item: tuple[str, dict[str, Any]]) -> str:
    kind, case = item
    return f"{kind}:{case.get('name', '?')}"


def test_fixture_count(report_count: Callable[[str], None]) -> None:
    """Enough cases over enough kinds that each part of the contract has a negative example."""
    kinds = {kind for kind, _ in CASES}
    report_count(f"{len(CASES)} negative cases across {len(kinds)} kinds, each rejected")
    assert len(CASES) >= MIN_CASES, f"only {len(CASES)} negative cases"
    assert len(kinds) >= MIN_KINDS, f"only {len(kinds)} kinds have negative cases"


def test_fixture_files_name_known_kinds() -> None:
    """A file named after a kind that does not exist would never be checked against anything."""
    known = set(contract.kinds())
    unknown = sorted({kind for kind, _ in CASES} - known)
    assert not unknown, f"fixtures for unknown kinds: {unknown}"


def test_fixture_cases_are_well_formed() -> None:
    """Each case carries the keys the report relies on, and names are unique within a kind."""
    seen: set[tuple[str, str]] = set()
    for kind, case in CASES:
        keys = set(case)
        assert keys >= _CASE_KEYS, f"{kind}: case lacks {_CASE_KEYS - keys}: {case}"
        assert keys <= _CASE_KEYS | _OPTIONAL_KEYS, f"{kind}: unexpected keys {keys - _CASE_KEYS}"
        for key in ("name", "field", "why"):
            assert isinstance(case[key], str) and case[key], f"{kind}: empty {key} in {case}"
        if "version" in case:
            contract.Version.parse(case["version"])
        assert (kind, case["name"]) not in seen, f"{kind}: duplicate case name {case['name']!r}"
        seen.add((kind, case["name"]))


@pytest.mark.parametrize(("kind", "case"), CASES, ids=[_case_id(c) for c in CASES])
def test_negative_case_is_rejected_and_names_the_field(kind: str, case: dict[str, Any]) -> None:
    """The contract rejects the instance, and some issue points at (or mentions) the field."""
    issues = contract.validate(kind, case["instance"], version=case.get("version"))
    assert issues, f"{kind} accepted a negative case: {case['name']} ({case['why']})"
    field = case["field"]
    named = [i for i in issues if field in i.path or field in i.message]
    assert named, f"no issue names {field!r}: {[i.message for i in issues]}"


VERSIONED = [(kind, case) for kind, case in CASES if "version" in case]


@pytest.mark.parametrize(("kind", "case"), VERSIONED, ids=[_case_id(c) for c in VERSIONED])
def test_version_only_rejection_cites_its_rule(kind: str, case: dict[str, Any]) -> None:
    """When only the version makes a case invalid, the issue says which generation rule did it.

    Otherwise a report could not tell a plain schema violation from "your server claims a version
    whose API had no such field".
    """
    if contract.validate(kind, case["instance"]):
        pytest.skip("also invalid without a version; the base schema explains it")
    issues = contract.validate(kind, case["instance"], version=case["version"])
    assert any(i.rule for i in issues), [i.message for i in issues]
