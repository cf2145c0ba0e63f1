"""Known deviations a CI run accepts: ``--expect FILE``.

A server that deliberately differs from Ollama (a proxy that buffers streams, a server without
``/api/push``) would fail the suite forever and hide new regressions. An expectations file names
each accepted deviation, its outcome and why::

    # expectations.yaml
    generate.stream.content-type:
      outcome: FAIL
      reason: our proxy answers application/json; tracked in #123
    test_version.py::test_version_is_semver:
      outcome: WARN
      reason: we report a git describe string

or the same in TOML (``["generate.stream.content-type"]`` tables). Keys are requirement ids or test
ids (a full pytest node id, or any tail of one after a ``/`` or ``::``). When the outcome matches,
the result is an *expected deviation* and does not fail the run; when the test now passes the
entry is *stale* and reported, so the file shrinks as the server improves.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from conformance.verdict import Verdict

__all__ = ["ALLOWED_OUTCOMES", "Expectation", "ExpectationError", "Expectations", "load"]

#: Outcomes an entry may expect; PASS is what happens without an entry, ERROR is the suite's bug.
ALLOWED_OUTCOMES = (
    Verdict.FAIL,
    Verdict.WARN,
    Verdict.SKIP,
    Verdict.NOT_IMPLEMENTED,
    Verdict.TIMEOUT,
)


class ExpectationError(ValueError):
    """The expectations file cannot be used; the message is one line naming file and entry."""


@dataclass(frozen=True)
class Expectation:
    """One accepted deviation."""

    key: str
    outcome: Verdict
    reason: str

    def accepts(self, verdict: Verdict) -> bool:
        """Whether ``verdict`` is the deviation this entry expects.

        An entry written as FAIL also covers the WARN that a failed SHOULD or MAY becomes, so a
        file does not have to know each requirement's level.
        """
        return verdict is self.outcome or (self.outcome is Verdict.FAIL and verdict is Verdict.WARN)

    def matches(self, nodeid: str, requirement: str | None) -> bool:
        """Whether this entry is about the test ``nodeid`` or its ``requirement``."""
        if requirement is not None and self.key == requirement:
            return True
        return nodeid == self.key or nodeid.endswith(("/" + self.key, "::" + self.key))


class Expectations:
    """All entries of one file, looked up per test result."""

    def __init__(self, entries: Mapping[str, Expectation], source: str = "") -> None:
        self.entries = dict(entries)
        self.source = source

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Expectation]:
        return iter(self.entries.values())

    def find(self, nodeid: str, requirement: str | None) -> Expectation | None:
        """The entry for this test: one naming the test wins over one naming its requirement."""
        by_test = [
            e for e in self.entries.values() if e.key != requirement and e.matches(nodeid, None)
        ]
        if by_test:
            return max(by_test, key=lambda e: len(e.key))  # the most specific
        if requirement is not None:
            return self.entries.get(requirement)
        return None


def load(path: str | Path) -> Expectations:
    """Read and validate an expectations file (YAML, or TOML by its ``.toml`` suffix)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExpectationError(f"cannot read expectations file {file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ExpectationError(f"expectations file {file} is not UTF-8 text") from None
    data = _parse(file, text)
    if data is None:
        return Expectations({}, str(file))
    if not isinstance(data, dict):
        raise ExpectationError(
            f"{file}: expected a mapping of requirement or test id to "
            f"{{outcome, reason}}, got a {type(data).__name__}"
        )
    if set(data) == {"expectations"} and isinstance(data["expectations"], dict):
        data = data["expectations"]  # an optional wrapper table, handy in TOML
    entries = {str(key): _entry(file, str(key), value) for key, value in data.items()}
    return Expectations(entries, str(file))


def _parse(file: Path, text: str) -> Any:
    if file.suffix.lower() == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ExpectationError(f"{file}: not valid TOML: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ExpectationError(f"{file}: not valid YAML{where}: {problem}") from None


def _entry(file: Path, key: str, value: Any) -> Expectation:
    allowed = ", ".join(o.value for o in ALLOWED_OUTCOMES)
    if not key.strip():
        raise ExpectationError(f"{file}: an entry has an empty key")
    if not isinstance(value, dict):
        raise ExpectationError(
            f"{file}: entry {key!r} must be a mapping with 'outcome' and 'reason', got {value!r}"
        )
    unknown = set(value) - {"outcome", "reason"}
    if unknown:
        raise ExpectationError(
            f"{file}: entry {key!r} has unknown field(s) {', '.join(sorted(unknown))}; "
            "only 'outcome' and 'reason' are allowed"
        )
    raw_outcome = value.get("outcome")
    if not isinstance(raw_outcome, str):
        raise ExpectationError(f"{file}: entry {key!r} needs an outcome, one of {allowed}")
    try:
        outcome = Verdict.parse(raw_outcome)
    except ValueError:
        outcome = None
    if outcome not in ALLOWED_OUTCOMES:
        raise ExpectationError(
            f"{file}: entry {key!r} has outcome {raw_outcome!r}; use one of {allowed}"
        )
    reason = value.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ExpectationError(
            f"{file}: entry {key!r} needs a non-empty 'reason' (say why the deviation is accepted)"
        )
    return Expectation(key.strip(), outcome, reason.strip())
