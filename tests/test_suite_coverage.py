"""Every catalogue requirement has a suite test, and every suite marker names a requirement.

The catalogue (``schemas/requirements.toml``) is the list of behaviours the project promises to
judge; a requirement without a test is a promise nobody checks, and a marker with a mistyped id
grades a test against nothing. Both are found here by reading the suite's source with ``ast``,
without running it, so the check is fast and needs no server.

The scanner (:func:`suite_markers`) is also what ``tests/test_self_test.py`` uses to run only the
tests that judge a given requirement.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import conformance.suite
from conformance.requirements import load_catalogue

SUITE_DIR = Path(conformance.suite.__file__).resolve().parent


@dataclass(frozen=True)
class Marker:
    """One ``pytest.mark.requirement(...)`` found in the suite's source.

    ``requirement`` is None when the id is not a string literal (it cannot be checked without
    running the code). ``test`` is the test function the marker applies to, or None when the
    marker sits somewhere the scanner cannot tie to one test (e.g. a module-level list of
    ``pytest.param(..., marks=...)``); ``on_test`` says whether that function is collected as a
    test at all.
    """

    requirement: str | None
    path: Path
    line: int
    test: str | None
    on_test: bool
    source: str

    def where(self) -> str:
        return f"{self.path.name}:{self.line}" + (f" ({self.test})" if self.test else "")


def _is_mark_attribute(node: ast.expr) -> bool:
    """``pytest.mark`` or a bare ``mark`` (``from pytest import mark``)."""
    if isinstance(node, ast.Attribute):
        return node.attr == "mark"
    return isinstance(node, ast.Name) and node.id == "mark"


def _aliases(tree: ast.Module) -> set[str]:
    """Module-level names bound to the marker itself: ``requirement = pytest.mark.requirement``."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and _is_requirement_callee(node.value, set()):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _is_requirement_callee(node: ast.expr, aliases: set[str]) -> bool:
    if isinstance(node, ast.Attribute) and node.attr == "requirement":
        return _is_mark_attribute(node.value)
    return isinstance(node, ast.Name) and node.id in aliases


def _marker_id(call: ast.Call) -> str | None:
    args = list(call.args) + [k.value for k in call.keywords if k.arg == "id"]
    if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
        return args[0].value
    return None


def _calls(node: ast.AST, aliases: set[str]) -> Iterator[ast.Call]:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and _is_requirement_callee(sub.func, aliases):
            yield sub


def _is_test_name(name: str) -> bool:
    return name.startswith("test")


def scan_source(text: str, path: Path) -> list[Marker]:
    """Every requirement marker in one module's source, tied to its test where possible."""
    tree = ast.parse(text, filename=str(path))
    aliases = _aliases(tree)
    markers: list[Marker] = []
    claimed: set[int] = set()

    def add(call: ast.Call, test: str | None, on_test: bool) -> None:
        claimed.add(id(call))
        markers.append(
            Marker(_marker_id(call), path, call.lineno, test, on_test, ast.unparse(call))
        )

    def visit_function(
        node: ast.FunctionDef | ast.AsyncFunctionDef, inherited: list[ast.Call], in_test_class: bool
    ) -> None:
        on_test = _is_test_name(node.name)
        for call in inherited:
            markers.append(
                Marker(_marker_id(call), path, call.lineno, node.name, on_test, ast.unparse(call))
            )
        for call in _calls(node, aliases):  # decorators, parametrize marks, body
            if id(call) not in claimed:
                add(call, node.name, on_test)

    module_level: list[ast.Call] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            module_level += list(_calls(node.value, aliases))
            claimed |= {id(c) for c in _calls(node.value, aliases)}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _is_test_name(node.name):
            visit_function(node, module_level, False)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            inherited = list(module_level)
            for deco in node.decorator_list:
                inherited += list(_calls(deco, aliases))
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "pytestmark" for t in stmt.targets
                ):
                    inherited += list(_calls(stmt.value, aliases))
            claimed |= {id(c) for c in inherited}
            for stmt in node.body:
                if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                    visit_function(stmt, inherited if _is_test_name(stmt.name) else [], True)
    for node in tree.body:  # helpers, constants: markers the scanner cannot tie to one test
        for call in _calls(node, aliases):
            if id(call) not in claimed:
                name = node.name if isinstance(node, ast.FunctionDef | ast.ClassDef) else None
                add(call, name, not name)
    return markers


def suite_markers(suite_dir: Path = SUITE_DIR) -> list[Marker]:
    """Every requirement marker in every module of the suite package."""
    markers: list[Marker] = []
    for path in sorted(suite_dir.rglob("*.py")):
        markers += scan_source(path.read_text(encoding="utf-8"), path)
    return markers


def markers_by_requirement(markers: list[Marker]) -> dict[str, list[Marker]]:
    """Requirement id -> the markers (tests) that judge it."""
    found: dict[str, list[Marker]] = defaultdict(list)
    for marker in markers:
        if marker.requirement is not None and marker.on_test:
            found[marker.requirement].append(marker)
    return dict(found)


# --------------------------------------------------------------------------------------------


def test_every_marker_names_a_known_requirement() -> None:
    catalogue = load_catalogue()
    problems = []
    for marker in suite_markers():
        if marker.requirement is None:
            problems.append(f"{marker.where()}: id is not a string literal: {marker.source}")
        elif marker.requirement not in catalogue:
            problems.append(f"{marker.where()}: unknown requirement {marker.requirement!r}")
    assert not problems, "suite markers that name no catalogue requirement:\n" + "\n".join(problems)


def test_markers_sit_on_collected_tests() -> None:
    stray = [m for m in suite_markers() if m.test is not None and not m.on_test]
    assert not stray, (
        "requirement markers on functions pytest does not collect (not named test*):\n"
        + "\n".join(f"{m.where()}: {m.source}" for m in stray)
    )


def test_every_requirement_has_a_test() -> None:
    covered = markers_by_requirement(suite_markers())
    missing: dict[str, list[str]] = defaultdict(list)
    for requirement in load_catalogue():
        if requirement.id not in covered:
            missing[requirement.area].append(requirement.id)
    lines = [f"{area}: {', '.join(sorted(ids))}" for area, ids in sorted(missing.items())]
    count = sum(len(ids) for ids in missing.values())
    assert not missing, f"{count} requirement(s) without a suite test:\n" + "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The scanner itself: it must find every way a marker is written, or coverage is overstated.

SAMPLE = """
import pytest
from pytest import mark

requirement = pytest.mark.requirement
pytestmark = pytest.mark.requirement("module.level")
CASES = [pytest.param(1, marks=pytest.mark.requirement("loose.param"))]


@pytest.mark.requirement("plain.decorator")
def test_plain():
    pass


@pytest.mark.parametrize("x", [pytest.param(1, marks=mark.requirement(id="param.keyword"))])
def test_param(x):
    pass


@requirement("via.alias")
def test_alias():
    pass


@pytest.mark.requirement(SOME_ID)
def test_variable():
    pass


@pytest.mark.requirement("not.a.test")
def helper():
    pass


@pytest.mark.requirement("class.level")
class TestGroup:
    def test_method(self):
        pass
"""


@pytest.fixture(scope="module")
def sample_markers() -> list[Marker]:
    return scan_source(SAMPLE, Path("sample.py"))


@pytest.mark.parametrize(
    ("requirement", "test"),
    [
        ("plain.decorator", "test_plain"),
        ("param.keyword", "test_param"),
        ("via.alias", "test_alias"),
        ("module.level", "test_plain"),
        ("module.level", "test_method"),
        ("class.level", "test_method"),
    ],
)
def test_scanner_ties_markers_to_tests(
    sample_markers: list[Marker], requirement: str, test: str
) -> None:
    found = {(m.requirement, m.test) for m in sample_markers if m.on_test}
    assert (requirement, test) in found, sorted(found, key=str)


def test_scanner_reports_what_it_cannot_tie(sample_markers: list[Marker]) -> None:
    by_id = {m.requirement: m for m in sample_markers}
    assert by_id["loose.param"].test is None and by_id["loose.param"].on_test
    assert by_id["not.a.test"].test == "helper" and not by_id["not.a.test"].on_test
    variable = [m for m in sample_markers if m.requirement is None]
    assert [m.test for m in variable] == ["test_variable"]
    assert "class.level" not in {m.requirement for m in sample_markers if m.test == "test_plain"}
