"""The contract: every message kind's JSON Schema, loaded once, validated as of an Ollama version.

Schemas live in ``schemas/`` (shipped in the wheel as ``conformance/_schemas``). One schema per kind
covers every API generation; ``schemas/generations.toml`` records what changed between generations
with the version range it applies to, and ``validate(kind, obj, version=...)`` adds those
constraints, so one server is judged by the API of the version it claims.
"""

from __future__ import annotations

import copy
import json
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from conformance.versions import Version, in_range

#: Base URI of every schema's ``$id``; ``.invalid`` is reserved, so it can never resolve to a host.
SCHEMA_BASE = "https://ollama-conformance.invalid/schemas/"

#: How long an offending value may be when quoted in an issue message.
_MAX_MESSAGE = 300


class ContractError(LookupError):
    """A kind or generation that the contract does not define."""


def schemas_dir() -> Path:
    """Where the schema files are: inside an installed wheel, or the checkout's ``schemas/``."""
    packaged = Path(__file__).parent / "_schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "schemas"


@dataclass(frozen=True)
class ValidationIssue:
    """One way an instance breaks the contract, addressed by a JSON path into the instance."""

    kind: str
    path: str
    message: str
    rule: str | None = None
    schema_path: str = ""

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Difference:
    """A change between API generations, in force for Ollama versions ``since <= v < until``."""

    id: str
    summary: str
    kinds: tuple[str, ...]
    since: str | None = None
    until: str | None = None
    source: str = ""
    seeds: tuple[str, ...] = ()
    endpoint_exists: bool = False
    within: dict[str, Any] | None = None
    outside: dict[str, Any] | None = None

    def applies_to(self, version: str | Version) -> bool:
        """Whether ``version`` lies inside this difference's range."""
        return in_range(version, self.since, self.until)

    def constraint_for(self, version: str | Version) -> dict[str, Any] | None:
        """The extra schema that holds at ``version``, if any."""
        return self.within if self.applies_to(version) else self.outside


@dataclass(frozen=True)
class Generation:
    """One seed document's API generation and the Ollama version its examples are judged as."""

    name: str
    seed: str
    version: str
    note: str = ""


@dataclass
class _Contract:
    schemas: dict[str, dict[str, Any]]
    registry: Registry[Any]
    differences: list[Difference] = field(default_factory=list)
    generations: dict[str, Generation] = field(default_factory=dict)


def _kind_of(path: Path) -> str:
    return path.name.removesuffix(".schema.json")


@cache
def _contract() -> _Contract:
    directory = schemas_dir()
    schemas: dict[str, dict[str, Any]] = {}
    resources: list[tuple[str, Resource[Any]]] = []
    for path in sorted(directory.glob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        uri = contents.get("$id") or SCHEMA_BASE + path.name
        resources.append((uri, DRAFT202012.create_resource(contents)))
        kind = _kind_of(path)
        if kind != "common":
            schemas[kind] = contents
    differences, generations = _load_generations(directory / "generations.toml")
    for diff in differences:
        for side, constraint in (("within", diff.within), ("outside", diff.outside)):
            if constraint is not None:
                uri = _constraint_uri(diff.id, side)
                resources.append((uri, DRAFT202012.create_resource({"$id": uri, **constraint})))
    registry: Registry[Any] = Registry().with_resources(resources).crawl()
    return _Contract(schemas, registry, differences, generations)


def _constraint_uri(diff_id: str, side: str) -> str:
    # Same directory as the schema files, so a relative $ref reaches common.schema.json.
    return f"{SCHEMA_BASE}generation.{diff_id}.{side}.schema.json"


def _load_generations(path: Path) -> tuple[list[Difference], dict[str, Generation]]:
    if not path.is_file():
        return [], {}
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    generations = {
        name: Generation(name, str(g["seed"]), str(g["version"]), str(g.get("note", "")))
        for name, g in data.get("generations", {}).items()
    }
    differences = [
        Difference(
            id=str(d["id"]),
            summary=str(d.get("summary", "")),
            kinds=tuple(d.get("kinds", ())),
            since=d.get("since"),
            until=d.get("until"),
            source=str(d.get("source", "")),
            seeds=tuple(d.get("seeds", ())),
            endpoint_exists=bool(d.get("endpoint_exists", False)),
            within=d.get("within"),
            outside=d.get("outside"),
        )
        for d in data.get("difference", [])
    ]
    return differences, generations


def __getattr__(name: str) -> Any:
    # KINDS is computed from the schema files on first use, not at import time.
    if name == "KINDS":
        return kinds()
    raise AttributeError(name)


def kinds() -> tuple[str, ...]:
    """Every message kind the contract defines, e.g. ``generate.final``."""
    return tuple(sorted(_contract().schemas))


def schema(kind: str) -> dict[str, Any]:
    """The schema of ``kind`` as written (with its ``$ref``s)."""
    try:
        return _contract().schemas[kind]
    except KeyError:
        raise ContractError(f"unknown message kind {kind!r}; known: {', '.join(kinds())}") from None


def differences(kind: str | None = None) -> list[Difference]:
    """The recorded generation differences, all or those touching ``kind``."""
    diffs = _contract().differences
    return [d for d in diffs if kind is None or kind in d.kinds]


def generations() -> dict[str, Generation]:
    """The seed generations by name (``2023-08`` ...), each with the version it is judged as."""
    return dict(_contract().generations)


def endpoint_exists(kind: str, version: str | Version | None) -> bool:
    """Whether the endpoint carrying ``kind`` exists in Ollama ``version`` (None: the newest)."""
    if version is None:
        return True
    return all(d.applies_to(version) for d in differences(kind) if d.endpoint_exists)


def kinds_for(version: str | Version | None) -> tuple[str, ...]:
    """The kinds whose endpoints exist in ``version``."""
    return tuple(k for k in kinds() if endpoint_exists(k, version))


@cache
def _validator(uri: str) -> Draft202012Validator:
    contract = _contract()
    resolved = contract.registry.resolver().lookup(uri)
    return Draft202012Validator(resolved.contents, registry=contract.registry)


def _schema_uri(kind: str) -> str:
    return str(schema(kind).get("$id") or f"{SCHEMA_BASE}{kind}.schema.json")


def validate(
    kind: str, instance: Any, version: str | Version | None = None
) -> list[ValidationIssue]:
    """Check ``instance`` against ``kind`` as of Ollama ``version`` (None: any generation).

    Returns the issues, sorted by path; an empty list means the instance holds to the contract.
    """
    issues = list(_issues(kind, _validator(_schema_uri(kind)), instance, rule=None))
    if version is not None:
        parsed = Version.parse(version)
        for diff in differences(kind):
            if diff.endpoint_exists and not diff.applies_to(parsed):
                issues.append(
                    ValidationIssue(
                        kind,
                        "$",
                        f"$: {kind} does not exist in Ollama {parsed} ({_range_text(diff)})",
                        rule=diff.id,
                    )
                )
                continue
            side = "within" if diff.applies_to(parsed) else "outside"
            if diff.constraint_for(parsed) is not None:
                checker = _validator(_constraint_uri(diff.id, side))
                for issue in _issues(kind, checker, instance, rule=diff.id):
                    issues.append(_with_rule_note(issue, diff, parsed))
    return sorted(issues, key=lambda i: (i.path, i.message))


def is_valid(kind: str, instance: Any, version: str | Version | None = None) -> bool:
    """Shorthand for ``not validate(...)``."""
    return not validate(kind, instance, version)


def _range_text(diff: Difference) -> str:
    since = diff.since or "0.0.0"
    return f"since {since}" + (f", until {diff.until}" if diff.until else "")


def _with_rule_note(issue: ValidationIssue, diff: Difference, version: Version) -> ValidationIssue:
    note = f" [as of Ollama {version}: {diff.summary or diff.id}]"
    return ValidationIssue(issue.kind, issue.path, issue.message + note, diff.id, issue.schema_path)


def _issues(
    kind: str, checker: Draft202012Validator, instance: Any, rule: str | None
) -> Iterator[ValidationIssue]:
    for error in checker.iter_errors(instance):
        precise = _most_precise(error)
        path = _issue_path(precise)
        message = precise.message
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 3] + "..."
        schema_path = "/".join(str(p) for p in precise.absolute_schema_path)
        yield ValidationIssue(kind, path, f"{path}: {message}", rule, schema_path)


def _most_precise(error: ValidationError) -> ValidationError:
    """For anyOf/oneOf failures, the sub-error that best explains what is wrong."""
    while error.context:
        candidate = best_match(error.context)
        if candidate is None:
            break
        error = candidate
    return error


def _issue_path(error: ValidationError) -> str:
    path = error.json_path
    if error.validator == "required" and isinstance(error.instance, dict):
        # Point at the missing field itself, so a report names it.
        missing = [p for p in error.validator_value if p not in error.instance]
        if len(missing) == 1:
            return f"{path}.{missing[0]}"
    return path


def bundled(kind: str) -> dict[str, Any]:
    """A self-contained copy of ``kind``'s schema with every ``$ref`` inlined.

    hypothesis-jsonschema and OpenAPI tools cannot follow references across files; request schemas
    are kept free of recursive references so that inlining always ends.
    """
    resolver = _contract().registry.resolver(base_uri=_schema_uri(kind))
    inlined = _inline(schema(kind), resolver, ())
    inlined.pop("$defs", None)
    inlined.pop("$id", None)
    inlined["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return inlined


def _inline(node: Any, resolver: Any, seen: tuple[int, ...]) -> Any:
    if isinstance(node, list):
        return [_inline(item, resolver, seen) for item in node]
    if not isinstance(node, dict):
        return node
    if "$id" in node and seen:
        resolver = resolver.in_subresource(DRAFT202012.create_resource(node))
    result: dict[str, Any] = {}
    target: Any = None
    for key, value in node.items():
        if key == "$ref":
            resolved = resolver.lookup(value)
            # The registry hands out the same object for one target, so identity detects a cycle.
            marker = id(resolved.contents)
            if marker in seen:
                raise ContractError(f"recursive $ref {value!r} cannot be inlined")
            target = _inline(copy.deepcopy(resolved.contents), resolved.resolver, (*seen, marker))
        elif key in ("$defs", "$id", "$schema"):
            continue
        else:
            result[key] = _inline(value, resolver, seen)
    if target is None:
        return result
    if not result:
        return target
    result.setdefault("allOf", []).append(target)
    return result


def iter_stream_issues(
    endpoint: str, values: Iterable[Any], version: str | Version | None = None
) -> Iterator[tuple[int, ValidationIssue]]:
    """Validate each generate/chat stream line as a chunk or, when ``done``, the final object."""
    for index, value in enumerate(values):
        done = isinstance(value, dict) and value.get("done") is True
        kind = f"{endpoint}.final" if done else f"{endpoint}.chunk"
        for issue in validate(kind, value, version):
            yield index, issue
