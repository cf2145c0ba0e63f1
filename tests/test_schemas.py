"""The schema files themselves: dialect, identifiers, naming, and the rules request schemas obey.

These checks keep the contract usable by the tools built on it: hypothesis-jsonschema must be able
to generate requests (so request schemas avoid keywords it cannot handle and references that never
end), other files must be able to refer to each other by relative URI, and every kind the README
promises must exist. ``generations.toml`` is checked for the shape the loader expects.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from conformance import contract

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
SEEDS = ROOT.parent / "shared" / "seeds"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
BASE = "https://ollama-conformance.invalid/schemas/"

#: Keywords hypothesis-jsonschema cannot generate from (or that make generation unbounded).
FORBIDDEN_IN_REQUESTS = {
    "unevaluatedProperties",
    "unevaluatedItems",
    "$dynamicRef",
    "$dynamicAnchor",
    "$recursiveRef",
    "$recursiveAnchor",
    "prefixItems",
}
#: Regex constructs that Python's ``re``, ECMA-262 and hypothesis do not all support.
UNPORTABLE_REGEX = re.compile(r"\(\?[=!<]|\(\?P|\\[1-9]|\\[AZz]|\(\?[aiLmsux]")

#: Keywords whose value is a subschema, a list of subschemas, or a map of them.
_ONE = {
    "not",
    "if",
    "then",
    "else",
    "items",
    "contains",
    "additionalProperties",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
}
_LIST = {"allOf", "anyOf", "oneOf", "prefixItems"}
_MAP = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}


def _subschemas(schema: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (sub)schema object with its location; property *names* are never mistaken for
    keywords, so a field called ``format`` is not a ``format`` keyword."""
    if not isinstance(schema, dict):
        return
    yield where, schema
    for key, value in schema.items():
        if key in _ONE:
            yield from _subschemas(value, f"{where}/{key}")
        elif key in _LIST and isinstance(value, list):
            for index, item in enumerate(value):
                yield from _subschemas(item, f"{where}/{key}/{index}")
        elif key in _MAP and isinstance(value, dict):
            for name, item in value.items():
                yield from _subschemas(item, f"{where}/{key}/{name}")


def _readme_kinds() -> list[str]:
    """The kinds in the README's table: backticked names in its second column."""
    kinds: list[str] = []
    for line in (SCHEMAS / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 2 and cells[1] != "kinds":
            kinds.extend(re.findall(r"`([a-z]+(?:\.[a-z]+)?)`", cells[1]))
    return kinds


SCHEMA_FILES = sorted(SCHEMAS.glob("*.schema.json"))
KIND_FILES = [p for p in SCHEMA_FILES if p.name != "common.schema.json"]
REQUEST_KINDS = sorted(
    p.name.removesuffix(".schema.json")
    for p in KIND_FILES
    if p.name.endswith(".request.schema.json") or p.name == "blobs.digest.schema.json"
)
RESPONSE_KINDS = sorted(
    p.name.removesuffix(".schema.json")
    for p in KIND_FILES
    if p.name.removesuffix(".schema.json") not in REQUEST_KINDS
)


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_readme_table_is_parsed() -> None:
    """Guard for the next test: if the table format changes, fail here, not silently pass."""
    kinds = _readme_kinds()
    assert len(kinds) >= 25, kinds
    assert "generate.final" in kinds and "error" in kinds and "blobs.digest" in kinds


def test_every_readme_kind_has_a_file() -> None:
    """The README promises these kinds; a missing file would make ``validate`` raise."""
    missing = [k for k in _readme_kinds() if not (SCHEMAS / f"{k}.schema.json").is_file()]
    assert not missing, f"no schema file for {missing}"


def test_no_schema_file_outside_the_readme() -> None:
    """A kind nobody documented is a kind nobody tests."""
    documented = set(_readme_kinds()) | {"common"}
    extra = [p.name for p in SCHEMA_FILES if p.name.removesuffix(".schema.json") not in documented]
    assert not extra, extra


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_file_is_valid_2020_12_with_id_title_description(path: Path) -> None:
    """Dialect, identity and documentation every schema file must have."""
    schema = _load(path)
    Draft202012Validator.check_schema(schema)
    assert schema.get("$schema") == DIALECT
    assert schema.get("$id") == BASE + path.name
    for key in ("title", "description"):
        assert isinstance(schema.get(key), str) and schema[key].strip(), f"{path.name}: no {key}"


def test_common_holds_only_definitions() -> None:
    """common.schema.json is a library: it must not constrain anything at its root."""
    common = _load(SCHEMAS / "common.schema.json")
    assert set(common) <= {"$schema", "$id", "title", "description", "$defs"}
    wanted = {
        "model_name",
        "digest",
        "manifest_digest",
        "duration",
        "timestamp",
        "options",
        "keep_alive",
        "format",
        "think",
        "done_reason",
        "details",
        "model_info",
        "capabilities",
        "message",
        "tool",
        "tool_call",
        "metrics",
        "progress",
    }
    assert wanted <= set(common["$defs"]), wanted - set(common["$defs"])


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_refs_are_relative_and_patterns_portable(path: Path) -> None:
    """Relative ``$ref``s keep the files relocatable; ``pattern`` replaces ``format`` so results do
    not depend on optional format checkers; patterns stay within what every engine supports."""
    for where, sub in _subschemas(_load(path)):
        ref = sub.get("$ref")
        if ref is not None:
            assert not ref.startswith(("http:", "https:")), f"{path.name}{where}: absolute $ref"
            target = ref.split("#", 1)[0]
            assert target in ("", "common.schema.json") or (SCHEMAS / target).is_file(), ref
        assert "format" not in sub, f"{path.name}{where}: use pattern, not format"
        pattern = sub.get("pattern")
        if pattern is not None:
            re.compile(pattern)
            assert pattern.startswith("^") and pattern.endswith("$"), f"{where}: unanchored"
            assert not UNPORTABLE_REGEX.search(pattern), f"{path.name}{where}: {pattern}"


def _ref_graph() -> dict[str, set[str]]:
    """Which schema locations each location refers to, across files (``file#/pointer``)."""
    graph: dict[str, set[str]] = {}
    for path in SCHEMA_FILES:
        for where, sub in _subschemas(_load(path)):
            ref = sub.get("$ref")
            if ref is None:
                continue
            target_file, _, pointer = ref.partition("#")
            target = f"{target_file or path.name}#{pointer}"
            # attribute the edge to the nearest enclosing $defs entry (or the file root)
            match = re.match(r"#/\$defs/[^/]+", where)
            source = f"{path.name}{match.group(0) if match else '#'}"
            graph.setdefault(source, set()).add(target)
    return graph


@pytest.mark.parametrize("kind", REQUEST_KINDS)
def test_request_schema_has_no_forbidden_keyword_or_recursion(kind: str) -> None:
    """hypothesis-jsonschema needs plain keywords and references that end."""
    graph = _ref_graph()
    start = f"{kind}.schema.json#"
    stack: list[tuple[str, tuple[str, ...]]] = [(start, ())]
    reachable: set[str] = set()
    while stack:
        node, trail = stack.pop()
        assert node not in trail, f"recursive $ref: {' -> '.join((*trail, node))}"
        reachable.add(node)
        stack.extend((nxt, (*trail, node)) for nxt in graph.get(node, ()))
    for node in reachable:
        file_name, _, pointer = node.partition("#")
        schema: Any = _load(SCHEMAS / file_name)
        for part in [p for p in pointer.split("/") if p]:
            schema = schema[part]
        for where, sub in _subschemas(schema, node):
            used = FORBIDDEN_IN_REQUESTS & set(sub)
            assert not used, f"{where} uses {used}"
    text = json.dumps(contract.bundled(kind))
    for keyword in FORBIDDEN_IN_REQUESTS:
        assert f'"{keyword}"' not in text, keyword


@pytest.mark.parametrize("kind", [k for k in REQUEST_KINDS if k.endswith(".request")])
def test_request_schema_rejects_unknown_top_level_fields(kind: str) -> None:
    """A typo such as ``stram`` must be caught, so the top level lists every accepted field."""
    schema = contract.schema(kind)
    assert schema.get("additionalProperties") is False
    issues = contract.validate(kind, {"stram": False})
    assert any("stram" in i.message for i in issues), [i.message for i in issues]


@pytest.mark.parametrize("kind", RESPONSE_KINDS)
def test_response_schema_accepts_unknown_fields(kind: str) -> None:
    """Ollama adds response fields over time; an unknown one must never fail a server."""
    for where, sub in _subschemas(contract.bundled(kind)):
        assert sub.get("additionalProperties", True) is not False, f"{kind}{where}"
        assert sub.get("unevaluatedProperties", True) is not False, f"{kind}{where}"


def _hypothesis_jsonschema_works() -> None:
    """Fail with the fix, not a traceback, when hypothesis and hypothesis-jsonschema disagree.

    hypothesis-jsonschema 0.23.1 drives ``hypothesis.internal.conjecture.utils.many`` through its
    ``more()`` method, which hypothesis 6.170.10 removed; every object schema then fails with
    ``'many' object has no attribute 'more'``.
    """
    from hypothesis.internal.conjecture import utils

    if not hasattr(utils.many, "more"):
        pytest.fail(
            "this hypothesis release removed many.more(), which hypothesis-jsonschema uses; "
            "pin hypothesis<6.170.10 until hypothesis-jsonschema catches up"
        )


#: How many distinct requests each request schema must yield.
MIN_EXAMPLES = 20


@pytest.mark.parametrize("kind", REQUEST_KINDS)
def test_hypothesis_generates_valid_requests(kind: str) -> None:
    """Property-based clients build requests from these schemas, so generation must work and
    everything generated must satisfy the contract it came from."""
    _hypothesis_jsonschema_works()
    from hypothesis import HealthCheck, given, settings
    from hypothesis_jsonschema import from_schema

    examples: list[str] = []
    problems: list[str] = []

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(from_schema(contract.bundled(kind)))
    def generate(instance: Any) -> None:
        examples.append(json.dumps(instance, sort_keys=True))
        issues = contract.validate(kind, instance)
        if issues:
            problems.append(f"{instance!r}: {[i.message for i in issues]}")

    generate()
    assert not problems, problems[:3]
    assert len(set(examples)) >= MIN_EXAMPLES, f"only {len(set(examples))} distinct examples"


# ---------------------------------------------------------------- generations.toml


def _generations() -> dict[str, Any]:
    return tomllib.loads((SCHEMAS / "generations.toml").read_text(encoding="utf-8"))


def test_generations_table() -> None:
    """Four seed generations, each judged as a parseable Ollama version, seed files present."""
    data = _generations()
    gens = data["generations"]
    assert set(gens) == {"2023-08", "2023-09", "2024-01", "2025"}
    for name, gen in gens.items():
        contract.Version.parse(gen["version"])
        assert gen["seed"].endswith(".md") and gen.get("note"), name
        if SEEDS.is_dir():
            assert (SEEDS / gen["seed"]).is_file(), gen["seed"]
    versions = [contract.Version.parse(gens[n]["version"]) for n in sorted(gens)]
    assert versions == sorted(versions), "generations must be judged in release order"


def test_differences_are_well_formed() -> None:
    """Ids unique, kinds known, ranges ordered, constraints valid 2020-12 schemas."""
    known = set(contract.kinds())
    allowed = {
        "id",
        "summary",
        "seeds",
        "source",
        "since",
        "until",
        "kinds",
        "endpoint_exists",
        "within",
        "outside",
    }
    ids: set[str] = set()
    diffs = _generations()["difference"]
    for diff in diffs:
        assert set(diff) <= allowed, set(diff) - allowed
        assert re.fullmatch(r"[a-z0-9_.-]+", diff["id"]), diff["id"]
        assert diff["id"] not in ids, f"duplicate id {diff['id']}"
        ids.add(diff["id"])
        assert diff["summary"] and diff["source"] and isinstance(diff["seeds"], list)
        assert diff["kinds"] and set(diff["kinds"]) <= known, diff["kinds"]
        since = contract.Version.parse(diff.get("since", "0.0.0"))
        if "until" in diff:
            assert since < contract.Version.parse(diff["until"]), diff["id"]
        for side in ("within", "outside"):
            if side in diff:
                Draft202012Validator.check_schema(diff[side])
                assert "false" not in json.dumps(diff[side]), (
                    f"{diff['id']}: spell 'must be absent' as not: {{}} so issues keep the path"
                )
        for seed in diff["seeds"]:
            assert re.match(r"^00[0-3] \S", seed), seed
    print(f"{len(diffs)} generation differences")


def test_difference_constraints_resolve() -> None:
    """Every constraint's relative ``$ref`` reaches a definition. The loader resolves lazily, so
    an unresolvable reference would otherwise surface only when an instance first reaches it."""
    registry: Registry[Any] = Registry().with_resources(
        (BASE + p.name, DRAFT202012.create_resource(_load(p))) for p in SCHEMA_FILES
    )
    resolver = registry.resolver(base_uri=BASE + "generations.toml")
    for diff in _generations()["difference"]:
        for side in ("within", "outside"):
            for where, sub in _subschemas(diff.get(side)):
                if "$ref" in sub:
                    resolved = resolver.lookup(sub["$ref"]).contents
                    assert isinstance(resolved, dict), f"{diff['id']} {side}{where}"
