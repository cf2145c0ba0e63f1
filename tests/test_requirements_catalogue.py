"""The requirement catalogue: the shipped file is complete and consistent, and the loader rejects
malformed catalogues loudly, naming the offending requirement.

A bad catalogue would not crash the suite: it would silently skip or misgrade checks. These tests
make such mistakes fail here, next to the file that holds them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pytest

from conformance.requirements import (
    API_ENDPOINTS,
    AREAS,
    Catalogue,
    CatalogueError,
    Requirement,
    load_catalogue,
)
from conformance.versions import Version


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


# -- the shipped catalogue ------------------------------------------------------------------------


def test_catalogue_is_large_enough(catalogue: Catalogue) -> None:
    assert len(catalogue) >= 150


@pytest.mark.parametrize("endpoint", API_ENDPOINTS)
def test_every_endpoint_has_requirements(catalogue: Catalogue, endpoint: str) -> None:
    assert len(catalogue.by_endpoint(endpoint)) >= 3, endpoint


@pytest.mark.parametrize("area", AREAS)
def test_every_area_has_requirements(catalogue: Catalogue, area: str) -> None:
    found = catalogue.by_area(area)
    assert len(found) >= 2, area
    assert all(r.area == area for r in found)


def test_every_level_is_used(catalogue: Catalogue) -> None:
    assert set(Counter(r.level for r in catalogue)) == {"MUST", "SHOULD", "MAY"}


def test_ids_are_unique_and_listed_in_file_order(catalogue: Catalogue) -> None:
    ids = catalogue.ids()
    assert len(ids) == len(set(ids)) == len(catalogue)
    assert ids == tuple(r.id for r in catalogue)


def test_design_example_requirement_is_present(catalogue: Catalogue) -> None:
    # DESIGN.md uses "a single final done:true line" as its example; the area comes first in ids.
    requirement = catalogue.get("streaming.generate.single-final")
    assert requirement.level == "MUST"
    assert requirement.endpoint == "POST /api/generate"


def test_get_suggests_close_ids(catalogue: Catalogue) -> None:
    with pytest.raises(KeyError, match=r"did you mean 'errors\.chat\.model-not-found'"):
        catalogue.get("errors.chat.model-not-fuond")


def test_get_without_close_match_says_unknown(catalogue: Catalogue) -> None:
    with pytest.raises(KeyError, match="unknown requirement") as info:
        catalogue.get("zzz.qqq.xxx")
    assert "did you mean" not in str(info.value)


def test_unknown_area_and_endpoint_are_errors_not_empty(catalogue: Catalogue) -> None:
    with pytest.raises(KeyError, match="unknown area"):
        catalogue.by_area("generation")
    with pytest.raises(KeyError, match="unknown endpoint"):
        catalogue.by_endpoint("POST /api/generation")


def test_catalogue_is_cached(catalogue: Catalogue) -> None:
    assert load_catalogue() is catalogue


def test_every_version_bound_parses(catalogue: Catalogue) -> None:
    for requirement in catalogue:
        for bound in (requirement.since, requirement.until):
            if bound is not None:
                Version.parse(bound)


# Version-split requirements: errors.chat.model-not-found.pre-0-12-0 holds until 0.12.0, and its
# sibling errors.chat.model-not-found takes over from exactly that version, so no version is judged
# by both wordings or by neither.
_PRE = re.compile(r"^(?P<base>.+)\.pre-(?P<version>[0-9a-z-]+)$")


def _pre_split(catalogue: Catalogue) -> list[tuple[Requirement, str, str]]:
    found = []
    for requirement in catalogue:
        match = _PRE.match(requirement.id)
        if match:
            found.append((requirement, match["base"], match["version"]))
    return found


def test_version_split_requirements_exist(catalogue: Catalogue) -> None:
    assert len(_pre_split(catalogue)) >= 10


def test_version_split_suffix_matches_until(catalogue: Catalogue) -> None:
    for requirement, _base, suffix in _pre_split(catalogue):
        assert requirement.until is not None, requirement.id
        # The id names the bound, or its release when the bound is a first pre-release (0.11.0-rc0).
        release = requirement.until.split("-", 1)[0]
        named = {requirement.until.replace(".", "-"), release.replace(".", "-")}
        assert suffix in named, requirement.id


def test_version_split_ranges_meet(catalogue: Catalogue) -> None:
    for requirement, base, _suffix in _pre_split(catalogue):
        newer = [
            r
            for r in catalogue
            if (r.id == base or r.id.startswith(base + ".pre-")) and r.since == requirement.until
        ]
        assert len(newer) == 1, f"{requirement.id}: no requirement of {base} starts at its until"
        assert newer[0].endpoint == requirement.endpoint, requirement.id


def test_version_split_has_a_current_requirement(catalogue: Catalogue) -> None:
    for _requirement, base, _suffix in _pre_split(catalogue):
        assert base in catalogue, f"{base}: the current wording is missing"
        # The current wording starts where an older one ends, so it always has a lower bound.
        assert catalogue.get(base).since is not None, base


# -- applies_to and reason_not_applicable ---------------------------------------------------------


def _requirement(since: str | None = None, until: str | None = None) -> Requirement:
    return Requirement(
        id="errors.example.case",
        area="errors",
        endpoint="POST /api/chat",
        level="MUST",
        statement="An example.",
        source="test",
        since=since,
        until=until,
    )


@pytest.mark.parametrize(
    ("since", "until", "version", "expected"),
    [
        (None, None, "0.1.0", True),
        ("0.12.6", None, "0.12.6", True),  # since is inclusive
        ("0.12.6", None, "0.12.5", False),
        ("0.12.6", None, "0.12.6-rc0", False),  # a pre-release sorts before its release
        ("0.12.6", None, "0.12.11", True),  # numeric, not string, comparison
        (None, "0.12.6", "0.12.6", False),  # until is exclusive
        (None, "0.12.6", "0.12.5", True),
        (None, "0.6.9-rc0", "0.6.8", True),
        (None, "0.6.9-rc0", "0.7.0", False),
        ("0.11.0", "0.21.3-rc0", "0.21.2", True),
        ("0.11.0", "0.21.3-rc0", "0.22.0", False),
        ("0.11.0", "0.21.3-rc0", "v0.12.0", True),  # a leading v is accepted from servers
    ],
)
def test_applies_to_respects_the_range(
    since: str | None, until: str | None, version: str, expected: bool
) -> None:
    requirement = _requirement(since, until)
    assert requirement.applies_to(version) is expected
    assert requirement.applies_to(Version.parse(version)) is expected
    assert (requirement.reason_not_applicable(version) is None) is expected


def test_development_build_is_judged_as_newest() -> None:
    assert _requirement(since="0.12.6").applies_to("0.0.0")
    reason = _requirement(until="0.12.6").reason_not_applicable("0.0.0")
    assert reason is not None and "development build" in reason


@pytest.mark.parametrize(
    ("since", "until", "version", "reason"),
    [
        ("0.12.6", None, "0.9.0", "requires Ollama >= 0.12.6; target is 0.9.0"),
        (None, "0.12.0", "0.20.0", "applies to Ollama < 0.12.0 only; target is 0.20.0"),
        ("0.9.0", "0.11.0", "0.6.0", "applies to Ollama >= 0.9.0 and < 0.11.0; target is 0.6.0"),
    ],
)
def test_reason_not_applicable_is_readable(
    since: str | None, until: str | None, version: str, reason: str
) -> None:
    assert _requirement(since, until).reason_not_applicable(version) == reason


# -- validation on load ---------------------------------------------------------------------------

_GOOD: dict[str, object] = {
    "id": "errors.chat.example",
    "area": "errors",
    "endpoint": "POST /api/chat",
    "level": "MUST",
    "statement": "A chat without model answers 400.",
    "source": "test",
}


def _toml_value(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return str(value).lower() if isinstance(value, bool) else str(value)


def _write(tmp_path: Path, *entries: Mapping[str, object], name: str = "catalogue.toml") -> Path:
    lines = []
    for entry in entries:
        lines.append("[[requirement]]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in entry.items())
        lines.append("")
    path = tmp_path / name
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _with(**changes: object) -> dict[str, object]:
    entry: dict[str, object] = {**_GOOD, **changes}
    return {k: v for k, v in entry.items() if v is not None}


def _without(key: str) -> dict[str, object]:
    return {k: v for k, v in _GOOD.items() if k != key}


def test_a_good_catalogue_loads(tmp_path: Path) -> None:
    path = _write(tmp_path, _with(since="0.9.0", until="0.12.0", needs=["completion"]))
    loaded = load_catalogue(path)
    assert loaded.ids() == ("errors.chat.example",)
    requirement = loaded.get("errors.chat.example")
    assert requirement.needs == ("completion",)
    assert (requirement.since, requirement.until) == ("0.9.0", "0.12.0")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_with(id="Errors.chat.Example"), "id must be"),
        (_with(id="errors.chat"), "id must be"),
        (_with(id="errors.chat.two--dashes"), "id must be"),
        (_with(id="errors.chat.under_score"), "id must be"),
        (_with(id="generate.chat.example"), "must start with its area"),
        (_with(level="MUSTN'T"), "level must be one of"),
        (_with(level="must"), "level must be one of"),
        (_with(area="errorz", id="errorz.chat.example"), "unknown area"),
        (_with(endpoint="POST /api/chatt"), "unknown endpoint"),
        (_with(since="0.12.0", until="0.12.0"), "must be older than"),
        (_with(since="0.12.6", until="0.12.6-rc0"), "must be older than"),
        (_with(since="twelve"), "not an Ollama version"),
        (_with(until="0.12"), "must be written as '0.12.0'"),
        (_with(since="v0.12.0"), "must be written as '0.12.0'"),
        (_with(since=12), "must be a version string"),
        (_with(statement="   "), "'statement' must not be empty"),
        (_with(statement="two\nlines"), "single line"),
        (_with(source=""), "'source' must not be empty"),
        (_with(needs=["gpu"]), "unknown needs"),
        (_with(needs="completion"), "must be a list of strings"),
        (_with(needs=["create", "create"]), "lists a value twice"),
        (_with(sinse="0.9.0"), "unknown keys"),
        (_with(level=1), "'level' must be a string"),
        (_without("source"), "missing 'source'"),
        (_without("endpoint"), "missing 'endpoint'"),
    ],
)
def test_a_malformed_requirement_names_itself(
    tmp_path: Path, entry: dict[str, object], message: str
) -> None:
    path = _write(tmp_path, _with(id="errors.chat.fine"), entry)
    with pytest.raises(CatalogueError, match=re.escape(message)) as info:
        load_catalogue(path)
    assert info.value.requirement_id == entry["id"]
    assert repr(entry["id"]) in str(info.value)
    assert str(path) in str(info.value)


def test_duplicate_ids_are_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, _GOOD, _with(statement="Another statement."))
    with pytest.raises(CatalogueError, match="duplicate id") as info:
        load_catalogue(path)
    assert info.value.requirement_id == _GOOD["id"]


def test_an_entry_without_id_is_named_by_position(tmp_path: Path) -> None:
    path = _write(tmp_path, _GOOD, _without("id"))
    with pytest.raises(CatalogueError, match="missing 'id'") as info:
        load_catalogue(path)
    assert info.value.requirement_id == "entry 2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[requirement]\nid = ", "not valid TOML"),
        ("", "expected one or more [[requirement]] tables"),
        ("requirement = 3\n", "expected one or more [[requirement]] tables"),
        ('title = "x"\n[[requirement]]\nid = "a.b.c"\n', "unknown top-level keys"),
    ],
)
def test_a_malformed_file_is_rejected(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "catalogue.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogueError, match=re.escape(message)) as info:
        load_catalogue(path)
    assert info.value.requirement_id is None


def test_a_missing_file_is_a_catalogue_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "absent.toml")


def test_an_edited_file_is_reloaded(tmp_path: Path) -> None:
    path = _write(tmp_path, _GOOD)
    assert load_catalogue(path).ids() == ("errors.chat.example",)
    _write(tmp_path, _GOOD, _with(id="errors.chat.second", statement="A second statement here."))
    assert load_catalogue(path).ids() == ("errors.chat.example", "errors.chat.second")
