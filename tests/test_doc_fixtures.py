"""The seed documents' own examples, checked against the contract as of their generation's version.

Every JSON request and response example of the four generations of the Ollama API reference is
kept under ``fixtures/docs/<generation>/`` and described in ``fixtures/docs/manifest.toml``.
Checking them does two jobs at once:

* an example the docs got right must hold to the schemas, so a schema that rejects it is too strict
  (or the version rules in ``schemas/generations.toml`` are wrong);
* an example marked ``errata`` is one the docs got wrong against the real server (the reason cites
  ``shared/reference/ollama-behaviour.md``), so a schema that accepts it is too lax.

Each example is judged as the Ollama version its generation stands for, because one schema covers
every generation and only the version decides, for instance, whether ``/api/create`` still takes
``path``.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conformance import contract

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "fixtures" / "docs"
MANIFEST = DOCS / "manifest.toml"
GENERATIONS_TOML = ROOT / "schemas" / "generations.toml"

#: ``NN-<endpoint>-<slug>.<request|response>.<json|ndjson>``; NN runs per generation in doc order.
FILE_NAME = re.compile(
    r"^(?P<nn>\d{2})-(?P<endpoint>[a-z]+)-(?P<slug>[a-z0-9-]+)\."
    r"(?P<role>request|response)\.(?P<ext>json|ndjson)$"
)

#: Stream kinds (one .ndjson file, one object per line) and the endpoint whose kinds each line uses.
STREAM_KINDS = {
    "generate.stream": "generate",
    "chat.stream": "chat",
    "create.stream": "create",
    "pull.stream": "pull",
    "push.stream": "push",
}

#: Endpoints whose stream lines are token chunks ended by a ``"done": true`` final object; the
#: others stream progress objects of a single kind.
TOKEN_STREAMS = frozenset({"generate", "chat"})


@dataclass(frozen=True)
class Example:
    """One ``[[example]]`` of the manifest: a fixture file and where in which seed it came from."""

    file: str
    seed: str
    section: str
    line: int
    generation: str
    kind: str
    repair: str | None = None
    errata: str | None = None
    note: str | None = None  # a remark that is not an error (e.g. a valid but unusual form)

    @property
    def path(self) -> Path:
        return DOCS / self.file

    @property
    def is_stream(self) -> bool:
        return self.kind in STREAM_KINDS


def _load_manifest() -> list[Example]:
    # Loaded at import time because the examples parametrise the tests.
    data = tomllib.loads(MANIFEST.read_text(encoding="utf-8"))
    return [Example(**entry) for entry in data.get("example", [])]


EXAMPLES = _load_manifest()


def _generation_versions() -> dict[str, str | None]:
    """The Ollama version each generation is judged as; None where generations.toml is silent.

    Without a version ``validate`` allows every generation's form, which is weaker but still
    meaningful, so a missing file degrades the check instead of breaking it.
    """
    if not GENERATIONS_TOML.is_file():
        return {}
    data = tomllib.loads(GENERATIONS_TOML.read_text(encoding="utf-8"))
    return {
        name: (str(table["version"]) if "version" in table else None)
        for name, table in data.get("generations", {}).items()
    }


VERSIONS = _generation_versions()


def load_objects(example: Example) -> list[Any]:
    """The JSON values of an example: one for ``.json``, one per line for ``.ndjson``."""
    text = example.path.read_text(encoding="utf-8")
    if example.file.endswith(".ndjson"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return [json.loads(text)]


def line_kind(example: Example, value: Any) -> str:
    """The message kind one value of an example must hold to.

    A token stream line is a chunk, or the final object once it says ``"done": true``; a progress
    stream line (create/pull/push) is always a progress object.
    """
    endpoint = STREAM_KINDS.get(example.kind)
    if endpoint is None:
        return example.kind
    if endpoint in TOKEN_STREAMS:
        done = isinstance(value, dict) and value.get("done") is True
        return f"{endpoint}.final" if done else f"{endpoint}.chunk"
    return f"{endpoint}.progress"


def example_issues(example: Example) -> Iterator[str]:
    """Every contract issue of every value in the example, each naming its line and kind."""
    version = VERSIONS.get(example.generation)
    for index, value in enumerate(load_objects(example)):
        kind = line_kind(example, value)
        for issue in contract.validate(kind, value, version=version):
            where = f"line {index + 1} " if example.is_stream else ""
            yield f"{where}{kind} @ {version}: {issue.message}"


@dataclass
class Tally:
    """What the example tests actually checked, so the summary can prove nothing was skipped."""

    ids: set[str] = field(default_factory=set)
    objects: int = 0
    errata: int = 0


@pytest.fixture(scope="session")
def tally() -> Tally:
    """Shared across the parametrised tests; read by ``test_doc_examples_summary``."""
    return Tally()


def test_manifest_lists_every_fixture_file() -> None:
    """A fixture nobody lists is never checked, and a listed file that is missing checks nothing."""
    listed = [e.file for e in EXAMPLES]
    assert len(listed) == len(set(listed)), "a file is listed twice"
    on_disk = {
        p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*") if p.is_file() and p != MANIFEST
    }
    assert sorted(set(listed) - on_disk) == [], "listed in the manifest but missing"
    assert sorted(on_disk - set(listed)) == [], "present under fixtures/docs but not listed"


def test_manifest_entries_are_consistent() -> None:
    """Names, generations, seeds and numbering must agree, so an example can be traced to its doc.

    NN runs from 01 per generation in document order; a gap or a reordering means an example was
    dropped or a line number is wrong.
    """
    seeds: dict[str, str] = {}
    by_generation: dict[str, list[Example]] = {}
    problems: list[str] = []
    for e in EXAMPLES:
        generation, _, name = e.file.partition("/")
        match = FILE_NAME.match(name)
        if generation != e.generation or not match:
            problems.append(f"{e.file}: path does not match generation/NN-endpoint-slug.role.ext")
            continue
        if seeds.setdefault(e.generation, e.seed) != e.seed:
            problems.append(f"{e.file}: seed {e.seed} differs from {seeds[e.generation]}")
        stream = match["ext"] == "ndjson"
        if stream != e.is_stream:
            problems.append(f"{e.file}: kind {e.kind} does not fit the .{match['ext']} file")
        if not e.kind.startswith(match["endpoint"] + "."):
            problems.append(f"{e.file}: kind {e.kind} is not of endpoint {match['endpoint']}")
        if e.line < 1 or not e.section:
            problems.append(f"{e.file}: needs a line and a section")
        by_generation.setdefault(e.generation, []).append(e)
    for generation, entries in by_generation.items():
        numbers = [int(e.file.rpartition("/")[2][:2]) for e in entries]
        if sorted(numbers) != list(range(1, len(entries) + 1)):
            problems.append(f"{generation}: numbers {numbers} do not run 01..{len(entries):02d}")
        by_number = sorted(entries, key=lambda e: e.file)
        lines = [e.line for e in by_number]
        if lines != sorted(lines):
            problems.append(f"{generation}: numbering is not in document order: {lines}")
    assert problems == []


def test_generation_versions_are_known() -> None:
    """Each generation should be judged as a concrete version, else only the union is checked."""
    missing = sorted({e.generation for e in EXAMPLES} - {g for g, v in VERSIONS.items() if v})
    if missing:
        pytest.skip(f"schemas/generations.toml gives no version for {', '.join(missing)}")


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.file for e in EXAMPLES])
def test_doc_example(example: Example, tally: Tally) -> None:
    """A correct doc example holds to the contract; an erratum must be caught by it."""
    tally.ids.add(example.file)
    tally.objects += len(load_objects(example))
    issues = list(example_issues(example))
    if example.errata:
        tally.errata += 1
        assert issues, (
            f"{example.file} is an erratum ({example.errata}) but the contract accepts it: "
            "the schema is too lax"
        )
    else:
        assert issues == [], (
            f"{example.file} ({example.seed}:{example.line}, {example.section}) is correct per the "
            "docs and the reference, but the contract rejects it"
        )


def test_doc_examples_summary(
    tally: Tally, request: pytest.FixtureRequest, report_count: Callable[[str], None]
) -> None:
    """Prove every manifest example ran through ``test_doc_example`` and say how much was checked.

    Runs last in this module; if only some examples were selected (``-k``), there is nothing to
    prove.
    """
    selected = [
        item
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_doc_example"
    ]
    if len(selected) != len(EXAMPLES) or len(tally.ids) != len(EXAMPLES):
        pytest.skip(f"{len(tally.ids)} of {len(EXAMPLES)} doc examples ran in this session")
    expected_objects = sum(len(load_objects(e)) for e in EXAMPLES)
    expected_errata = sum(1 for e in EXAMPLES if e.errata)
    summary = (
        f"checked {len(tally.ids)} seed examples ({tally.objects} JSON objects), "
        f"{tally.errata} errata"
    )
    report_count(summary)
    assert tally.ids == {e.file for e in EXAMPLES}
    assert (tally.objects, tally.errata) == (expected_objects, expected_errata), summary
