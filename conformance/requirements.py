"""The requirement catalogue: every behaviour the suite checks, loaded from ``requirements.toml``.

Suite tests name the requirement they check, e.g.
``@pytest.mark.requirement("errors.chat.model-missing")``, and reports are grouped and graded by
it. So the catalogue is validated strictly when it is loaded: a typo in an id, a level or a version
bound would otherwise surface as a silently skipped or wrongly graded check, far from its cause.

Each requirement holds for a range of Ollama versions (``since`` inclusive, ``until`` exclusive),
so a server is judged by the API of the version it claims rather than by the newest documentation.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from conformance.versions import NEWEST_KNOWN, Version, VersionError, in_range

#: The suite modules, one per area; a requirement's area names the module that checks it.
AREAS: tuple[str, ...] = (
    "http",
    "root",
    "version",
    "models",
    "streaming",
    "generate",
    "chat",
    "done_reason",
    "durations",
    "timestamps",
    "blobs",
    "lifecycle",
    "embed",
    "embeddings",
    "errors",
    "pull",
    "push",
    "properties",
    "safety",
)

#: Environment variable naming another catalogue file, read by :func:`load_catalogue` when it is
#: given no path (tests and forks use it to judge against their own requirements).
CATALOGUE_ENV = "OLLAMA_CONFORMANCE_CATALOGUE"

#: Verdict strength: a broken MUST fails, a broken SHOULD warns, a missing MAY is only reported.
LEVELS: tuple[str, ...] = ("MUST", "SHOULD", "MAY")

#: What a check may need from the target: model capabilities, registry access, or scratch models.
NEEDS: frozenset[str] = frozenset(
    {"completion", "tools", "thinking", "vision", "embedding", "network", "create"}
)

#: The seventeen routes of the Ollama API the suite covers.
API_ENDPOINTS: tuple[str, ...] = (
    "GET /",
    "HEAD /",
    "GET /api/version",
    "GET /api/tags",
    "GET /api/ps",
    "POST /api/show",
    "POST /api/generate",
    "POST /api/chat",
    "POST /api/embed",
    "POST /api/embeddings",
    "POST /api/create",
    "POST /api/copy",
    "DELETE /api/delete",
    "POST /api/pull",
    "POST /api/push",
    "HEAD /api/blobs/:digest",
    "POST /api/blobs/:digest",
)

#: Every value ``endpoint`` may take: the API routes, the HEAD twins of two GET routes, and ``*``
#: for behaviour that spans endpoints (routing, CORS, the error shape).
ENDPOINTS: tuple[str, ...] = (*API_ENDPOINTS, "HEAD /api/version", "HEAD /api/tags", "*")

# <area>.<topic>.<detail>[...]: the area may hold an underscore (done_reason); the other segments
# are lower-case words joined by single dashes, so ids read the same in reports, URLs and files.
_ID = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z0-9]+(?:-[a-z0-9]+)*){2,5}$")

_REQUIRED_KEYS = ("id", "area", "endpoint", "level", "statement", "source")
_OPTIONAL_KEYS = ("since", "until", "needs")


class CatalogueError(ValueError):
    """The catalogue file is unreadable or one of its requirements is malformed.

    ``requirement_id`` names the offending requirement (or ``entry N`` when it has no usable id), so
    the message points straight at the table to fix.
    """

    def __init__(self, path: Path, requirement_id: str | None, problem: str) -> None:
        self.path = path
        self.requirement_id = requirement_id
        self.problem = problem
        where = f"requirement {requirement_id!r}: " if requirement_id else ""
        super().__init__(f"{path}: {where}{problem}")


@dataclass(frozen=True)
class Requirement:
    """One checked behaviour of an Ollama-compatible server, and the versions it holds for."""

    id: str
    area: str
    endpoint: str
    level: str
    statement: str
    source: str
    since: str | None = None
    until: str | None = None
    needs: tuple[str, ...] = ()

    def applies_to(self, version: str | Version) -> bool:
        """Whether the server version ``version`` is inside ``since <= version < until``.

        A development build (``0.0.0``) says nothing about its API, so it is judged as the newest
        version the reference facts describe.
        """
        return in_range(_effective(version), self.since, self.until)

    def reason_not_applicable(self, version: str | Version) -> str | None:
        """Why the requirement does not apply to ``version`` (a SKIP reason); None if it does."""
        if self.applies_to(version):
            return None
        target = Version.parse(version)
        shown = str(target)
        if target.is_development_build:
            shown += f" (a development build, judged as {NEWEST_KNOWN})"
        if self.since and self.until:
            return f"applies to Ollama >= {self.since} and < {self.until}; target is {shown}"
        if self.since:
            return f"requires Ollama >= {self.since}; target is {shown}"
        return f"applies to Ollama < {self.until} only; target is {shown}"

    @property
    def is_cross_cutting(self) -> bool:
        """Whether the requirement spans endpoints rather than belonging to one route."""
        return self.endpoint == "*"


def _effective(version: str | Version) -> Version:
    parsed = Version.parse(version)
    return Version.parse(NEWEST_KNOWN) if parsed.is_development_build else parsed


class Catalogue:
    """The loaded requirements, in file order, looked up by id, area or endpoint."""

    def __init__(self, requirements: tuple[Requirement, ...], path: Path | None = None) -> None:
        self.path = path
        self._requirements = requirements
        self._by_id: dict[str, Requirement] = {r.id: r for r in requirements}

    def __iter__(self) -> Iterator[Requirement]:
        return iter(self._requirements)

    def __len__(self) -> int:
        return len(self._requirements)

    def __contains__(self, requirement_id: object) -> bool:
        return requirement_id in self._by_id

    def __repr__(self) -> str:
        return f"<Catalogue of {len(self)} requirements from {self.path}>"

    def get(self, requirement_id: str) -> Requirement:
        """The requirement with this id; a KeyError suggests the closest ids for a typo."""
        try:
            return self._by_id[requirement_id]
        except KeyError:
            close = difflib.get_close_matches(requirement_id, self._by_id, n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise KeyError(f"unknown requirement {requirement_id!r}{hint}") from None

    def ids(self) -> tuple[str, ...]:
        """Every id, in file order."""
        return tuple(self._by_id)

    def by_area(self, area: str) -> tuple[Requirement, ...]:
        """The requirements one suite module checks; an unknown area is a KeyError, not ``()``."""
        if area not in AREAS:
            raise KeyError(f"unknown area {area!r}; known: {', '.join(AREAS)}")
        return tuple(r for r in self._requirements if r.area == area)

    def by_endpoint(self, endpoint: str) -> tuple[Requirement, ...]:
        """The requirements about one route (``"POST /api/chat"``) or spanning routes (``*``)."""
        if endpoint not in ENDPOINTS:
            raise KeyError(f"unknown endpoint {endpoint!r}; known: {', '.join(ENDPOINTS)}")
        return tuple(r for r in self._requirements if r.endpoint == endpoint)

    def applicable(self, version: str | Version) -> tuple[Requirement, ...]:
        """The requirements that hold for a server claiming ``version``."""
        return tuple(r for r in self._requirements if r.applies_to(version))


def default_path() -> Path:
    """Where the shipped catalogue is: beside the schema files, in a checkout or in the wheel."""
    # Imported here so that loading a catalogue from an explicit path does not need the contract's
    # schema libraries.
    from conformance.contract import schemas_dir

    return schemas_dir() / "requirements.toml"


def catalogue_path() -> Path:
    """The file :func:`load_catalogue` reads when given no path.

    ``$OLLAMA_CONFORMANCE_CATALOGUE`` when it is set and not empty, else the shipped catalogue.
    """
    override = os.environ.get(CATALOGUE_ENV)
    return Path(override) if override else default_path()


def load_catalogue(path: str | os.PathLike[str] | None = None) -> Catalogue:
    """Load and validate a catalogue; raise CatalogueError if it is unreadable or malformed.

    Without ``path`` it loads :func:`catalogue_path`: ``$OLLAMA_CONFORMANCE_CATALOGUE`` if set,
    else the shipped catalogue. The result is cached per file and content version, so every test
    module can call this freely while an edited file is still picked up.
    """
    resolved = Path(path) if path is not None else catalogue_path()
    try:
        stat = resolved.stat()
    except OSError as exc:
        raise CatalogueError(resolved, None, f"cannot read the catalogue: {exc}") from exc
    return _load_cached(resolved.resolve(), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _load_cached(path: Path, _mtime_ns: int, _size: int) -> Catalogue:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogueError(path, None, f"cannot read the catalogue: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(path, None, f"not valid TOML: {exc}") from exc
    return Catalogue(_parse(path, data), path)


def _parse(path: Path, data: Mapping[str, Any]) -> tuple[Requirement, ...]:
    unknown = set(data) - {"requirement"}
    if unknown:
        raise CatalogueError(path, None, f"unknown top-level keys {sorted(unknown)}")
    entries = data.get("requirement")
    if not isinstance(entries, list) or not entries:
        raise CatalogueError(path, None, "expected one or more [[requirement]] tables")
    requirements: list[Requirement] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries, start=1):
        requirement = _parse_entry(path, index, entry)
        if requirement.id in seen:
            raise CatalogueError(path, requirement.id, "duplicate id")
        seen.add(requirement.id)
        requirements.append(requirement)
    return tuple(requirements)


def _parse_entry(path: Path, index: int, entry: Any) -> Requirement:
    if not isinstance(entry, dict):
        raise CatalogueError(path, f"entry {index}", "a requirement must be a table")
    raw_id = entry.get("id")
    rid = raw_id if isinstance(raw_id, str) and raw_id else f"entry {index}"

    def fail(problem: str) -> CatalogueError:
        return CatalogueError(path, rid, problem)

    unknown = set(entry) - set(_REQUIRED_KEYS) - set(_OPTIONAL_KEYS)
    if unknown:
        allowed = ", ".join(_REQUIRED_KEYS + _OPTIONAL_KEYS)
        raise fail(f"unknown keys {sorted(unknown)} (allowed: {allowed})")
    for key in _REQUIRED_KEYS:
        if key not in entry:
            raise fail(f"missing {key!r}")
        if not isinstance(entry[key], str):
            raise fail(f"{key!r} must be a string, not {type(entry[key]).__name__}")

    if not _ID.match(rid):
        raise fail(
            "id must be <area>.<topic>.<detail> (up to six segments) in lower case, segments "
            "joined by dots and words by single dashes"
        )
    area = entry["area"]
    if area not in AREAS:
        raise fail(f"unknown area {area!r}; known: {', '.join(AREAS)}")
    if rid.split(".", 1)[0] != area:
        raise fail(f"id must start with its area {area!r}")
    if entry["level"] not in LEVELS:
        raise fail(f"level must be one of {', '.join(LEVELS)}, not {entry['level']!r}")
    if entry["endpoint"] not in ENDPOINTS:
        raise fail(f"unknown endpoint {entry['endpoint']!r}; known: {', '.join(ENDPOINTS)}")
    for key in ("statement", "source"):
        if not entry[key].strip():
            raise fail(f"{key!r} must not be empty")
    if "\n" in entry["statement"].strip():
        raise fail("statement must be a single line")

    since = _version_field(entry, "since", fail)
    until = _version_field(entry, "until", fail)
    if since and until and not Version.parse(since) < Version.parse(until):
        raise fail(f"since {since} must be older than until {until}")

    needs = entry.get("needs", [])
    if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
        raise fail("'needs' must be a list of strings")
    strange = [n for n in needs if n not in NEEDS]
    if strange:
        raise fail(f"unknown needs {strange}; known: {', '.join(sorted(NEEDS))}")
    if len(set(needs)) != len(needs):
        raise fail("'needs' lists a value twice")

    return Requirement(
        id=rid,
        area=area,
        endpoint=entry["endpoint"],
        level=entry["level"],
        statement=entry["statement"].strip(),
        source=entry["source"].strip(),
        since=since,
        until=until,
        needs=tuple(needs),
    )


def _version_field(
    entry: Mapping[str, Any], key: str, fail: Callable[[str], CatalogueError]
) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise fail(f'{key!r} must be a version string such as "0.12.6", not {value!r}')
    try:
        parsed = Version.parse(value)
    except VersionError as exc:
        raise fail(f"{key!r}: {exc}") from None
    if value.startswith("v") or str(parsed) != value:
        # One spelling per version keeps the catalogue greppable and the SKIP reasons tidy.
        raise fail(f"{key!r} must be written as {str(parsed)!r}, not {value!r}")
    return value
