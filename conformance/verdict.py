"""Verdicts, and the check helpers every conformance test uses to reach one.

A conformance run must say *why* a server fails, in words a server author can act on, so a test
never uses a bare ``assert``: it calls :func:`check` (or one of the ``expect_*`` shorthands), which
raises a :class:`RequirementFailure` that carries the requirement id and statement, what was
expected, what the server actually did, and a ``curl`` line that repeats the request.

Two outcomes are not failures of a check but facts about the server, and get their own verdicts:

* :class:`NotImplementedOutcome`: the endpoint does not exist (404 with a non-JSON body, or 501).
* :class:`TimeoutOutcome`: the server did not answer in time or the connection broke, so nothing
  about the behaviour can be judged.

Both are pytest skips underneath, so they never look like a crash of the test; the plugin turns
them into NOT IMPLEMENTED / TIMEOUT and decides, from the requirement's level, whether the run
fails. Helpers use ``__tracebackhide__`` so pytest points at the test line, not at this module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

if TYPE_CHECKING:
    from conformance.exchange import Exchange

__all__ = [
    "GradedOutcome",
    "NotImplementedOutcome",
    "RequirementFailure",
    "RequirementRef",
    "TimeoutOutcome",
    "Verdict",
    "assume",
    "assume_json_object",
    "assume_status",
    "check",
    "current_requirement",
    "expect_content_type",
    "expect_json_object",
    "expect_status",
    "expect_valid",
    "grade",
    "not_implemented_if_missing",
    "requirement_context",
]


class Verdict(StrEnum):
    """The graded outcome of one test (one requirement judged on one target).

    ``ERROR`` is not a verdict on the server: the test itself broke (an unknown requirement id, a
    bug in the test). It is kept apart so nobody blames a server for the suite's mistakes.
    """

    PASS = "PASS"
    FAIL = "FAIL"
    WARN = "WARN"
    NOT_IMPLEMENTED = "NOT_IMPLEMENTED"
    SKIP = "SKIP"
    TIMEOUT = "TIMEOUT"
    ERROR = "ERROR"

    @property
    def label(self) -> str:
        """How the verdict is shown to people (``NOT IMPLEMENTED`` with a space)."""
        return self.value.replace("_", " ")

    @property
    def severity(self) -> int:
        """Ordering for "the worst of several results" (one requirement, several tests)."""
        return _SEVERITY[self]

    @classmethod
    def parse(cls, text: str) -> Verdict:
        """Accept ``FAIL``, ``fail``, ``NOT IMPLEMENTED``, ``not-implemented``; else ValueError."""
        key = text.strip().upper().replace("-", "_").replace(" ", "_")
        try:
            return cls[key]
        except KeyError:
            known = ", ".join(v.value for v in cls)
            raise ValueError(f"unknown verdict {text!r} (known: {known})") from None


_SEVERITY: dict[Verdict, int] = {
    Verdict.SKIP: 0,
    Verdict.PASS: 1,
    Verdict.WARN: 2,
    Verdict.NOT_IMPLEMENTED: 3,
    Verdict.TIMEOUT: 4,
    Verdict.ERROR: 5,
    Verdict.FAIL: 6,
}


# --------------------------------------------------------------------------------------------
# Which requirement is being checked


@dataclass(frozen=True)
class RequirementRef:
    """Just enough of a catalogue entry to word a failure."""

    id: str
    level: str = ""
    statement: str = ""


_CURRENT: ContextVar[RequirementRef | None] = ContextVar("conformance_requirement", default=None)


def current_requirement() -> RequirementRef | None:
    """The requirement of the test that is running (set by the plugin), or None."""
    return _CURRENT.get()


@contextlib.contextmanager
def requirement_context(ref: RequirementRef | None) -> Iterator[None]:
    """Make ``ref`` the default requirement of :func:`check` inside the block."""
    token = _CURRENT.set(ref)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def _resolve(requirement: str | None) -> RequirementRef | None:
    """The requirement a check is about: the explicit id (looked up) or the running test's."""
    current = _CURRENT.get()
    if requirement is None or (current is not None and current.id == requirement):
        return current
    try:
        from conformance.requirements import load_catalogue

        entry = load_catalogue().get(requirement)
    except Exception:  # the message must still be produced without a readable catalogue
        entry = None
    if entry is None:
        return RequirementRef(requirement)
    return RequirementRef(requirement, str(entry.level), str(entry.statement))


# --------------------------------------------------------------------------------------------
# Failures and graded outcomes


def format_failure(
    ref: RequirementRef | None,
    *,
    expected: str,
    actual: str,
    curl: str | None,
    title: str | None = None,
) -> str:
    """The text every failure shows: requirement, expected, actual, and how to reproduce it."""
    if ref is None:
        head = "(no requirement)"
    else:
        level = f" {ref.level}" if ref.level else ""
        head = f"[{ref.id}]{level}" + (f": {ref.statement}" if ref.statement else "")
    lines = [head]
    if title:
        lines.append(f"  problem: {title}")
    lines.append(f"  expected: {_indent(expected)}")
    lines.append(f"  actual: {_indent(actual)}")
    lines.append(f"  reproduce: {curl or 'n/a (no HTTP request involved)'}")
    return "\n".join(lines)


def _indent(text: str) -> str:
    return text.replace("\n", "\n    ")


class RequirementFailure(AssertionError):
    """A requirement does not hold: the server answered, and the answer is wrong.

    It is an AssertionError so that pytest and any other runner report it as a test failure.
    """

    def __init__(
        self,
        *,
        expected: str,
        actual: str,
        curl: str | None = None,
        requirement: RequirementRef | None = None,
        title: str | None = None,
    ) -> None:
        self.requirement = requirement
        self.expected = expected
        self.actual = actual
        self.curl = curl
        self.title = title
        super().__init__(
            format_failure(requirement, expected=expected, actual=actual, curl=curl, title=title)
        )

    @property
    def requirement_id(self) -> str | None:
        """The id of the requirement that failed."""
        return self.requirement.id if self.requirement else None

    @property
    def statement(self) -> str | None:
        """The one-line statement of the requirement that failed."""
        return self.requirement.statement if self.requirement else None


class GradedOutcome(pytest.skip.Exception):  # type: ignore[name-defined]
    """A test stopped because of a fact that has its own verdict (not PASS, not FAIL).

    A pytest skip underneath, so without the plugin it still reads as "could not judge" rather
    than a crash; the plugin regrades it from :attr:`verdict` and the requirement's level.
    """

    verdict: ClassVar[Verdict]

    def __init__(
        self,
        *,
        expected: str,
        actual: str,
        curl: str | None = None,
        requirement: RequirementRef | None = None,
        title: str | None = None,
    ) -> None:
        self.requirement = requirement
        self.expected = expected
        self.actual = actual
        self.curl = curl
        self.title = title
        text = format_failure(requirement, expected=expected, actual=actual, curl=curl, title=title)
        super().__init__(msg=f"{self.verdict.label}: {text}", pytrace=False)


class NotImplementedOutcome(GradedOutcome):
    """The endpoint does not exist on the target (404 with a non-JSON body, or 501)."""

    verdict = Verdict.NOT_IMPLEMENTED


class TimeoutOutcome(GradedOutcome):
    """No complete answer: a timeout, a stalled stream, or a broken connection."""

    verdict = Verdict.TIMEOUT


def grade(
    exc: BaseException | None, *, outcome: str, when: str, level: str | None
) -> tuple[Verdict, bool]:
    """The verdict of one test phase, and whether it makes the run fail.

    ``outcome`` and ``when`` are pytest's (``passed``/``failed``/``skipped``, ``setup``/``call``);
    ``exc`` is what the phase raised. The rules:

    * our graded outcomes keep their verdict; any other skip is SKIP;
    * a failed check (or a plain ``assert`` in the test body) is FAIL for a MUST and WARN for a
      SHOULD or MAY; anything else that breaks is ERROR, the suite's own fault, and fails the run;
    * NOT IMPLEMENTED and TIMEOUT fail the run for a MUST only: a MUST that cannot be shown to
      hold does not hold, while a SHOULD that cannot be judged is just reported.

    A test without a level (no requirement) is held to MUST.
    """
    strict = level in (None, "", "MUST")
    if outcome == "passed":
        return Verdict.PASS, False
    if isinstance(exc, GradedOutcome):
        return exc.verdict, strict
    if outcome == "skipped":
        return Verdict.SKIP, False
    if isinstance(exc, RequirementFailure) or (isinstance(exc, AssertionError) and when == "call"):
        return (Verdict.FAIL, True) if strict else (Verdict.WARN, False)
    return Verdict.ERROR, True


# --------------------------------------------------------------------------------------------
# Helpers for tests

#: Bounds that stop the read because of time; the size bounds are the server's fault (FAIL).
_TIME_BOUNDS = frozenset({"first_line_timeout", "max_gap", "total_timeout"})


def check(
    condition: bool,
    *,
    expected: str,
    actual: str,
    exchange: Exchange | None = None,
    requirement: str | None = None,
    title: str | None = None,
) -> None:
    """Fail the requirement unless ``condition`` holds.

    ``expected`` and ``actual`` are short human sentences (``"status 200"``, ``"status 404 with
    body '404 page not found'"``). ``requirement`` defaults to the running test's marker; pass
    another id when one test checks several requirements. When ``exchange`` is given the
    failure carries its curl line, and an exchange that never completed is graded TIMEOUT
    instead (the wrong answer is then a symptom, not the finding).
    """
    __tracebackhide__ = True
    if condition:
        return
    ref = _resolve(requirement)
    if exchange is not None:
        _raise_if_incomplete(exchange, ref)
    raise RequirementFailure(
        expected=expected,
        actual=actual,
        curl=exchange.curl() if exchange is not None else None,
        requirement=ref,
        title=title,
    )


def _raise_if_incomplete(exchange: Exchange, ref: RequirementRef | None) -> None:
    """TIMEOUT for a transport error or a time bound; FAIL for a size bound."""
    __tracebackhide__ = True
    if exchange.error is None and exchange.bound is None and exchange.status is not None:
        return
    what = f"{exchange.method} {exchange.path}"
    if _is_malformed_http(exchange.error):
        # The server did answer, with something that is not valid HTTP: that is wrong, not slow.
        raise RequirementFailure(
            expected=f"a well-formed HTTP response to {what}",
            actual=exchange.error or "",
            curl=exchange.curl(),
            requirement=ref,
            title="malformed HTTP response",
        )
    if exchange.error is None and exchange.bound is not None and exchange.bound not in _TIME_BOUNDS:
        raise RequirementFailure(
            expected=f"a response to {what} within the size bounds",
            actual=exchange.problem or f"{exchange.bound} exceeded",
            curl=exchange.curl(),
            requirement=ref,
            title="response too large",
        )
    raise TimeoutOutcome(
        expected=f"a complete response to {what}",
        actual=exchange.problem or "no response",
        curl=exchange.curl(),
        requirement=ref,
    )


def _is_malformed_http(error: str | None) -> bool:
    """A protocol error other than a dropped connection (which is graded like a timeout)."""
    if error is None or not error.startswith("protocol error"):
        return False
    lowered = error.lower()
    return not any(word in lowered for word in ("closed", "disconnected", "incomplete"))


def _body_preview(exchange: Exchange, n: int = 120) -> str:
    if not exchange.body:
        return "empty body"
    return f"body {exchange.text_preview(n)!r}"


def _looks_missing(exchange: Exchange) -> bool:
    """501, or a 404 that is not a JSON error object (a router's "404 page not found").

    Ollama answers 404 with ``{"error": "model 'x' not found"}`` for missing models; that is an
    implemented endpoint saying no, and must stay a normal answer.
    """
    if exchange.status == 501:
        return True
    if exchange.status != 404:
        return False
    value, error = exchange.json()
    return error is not None or not (isinstance(value, dict) and "error" in value)


def not_implemented_if_missing(exchange: Exchange, *, requirement: str | None = None) -> None:
    """Grade NOT IMPLEMENTED when the endpoint does not exist on the target."""
    __tracebackhide__ = True
    if _looks_missing(exchange):
        raise NotImplementedOutcome(
            expected=f"{exchange.method} {exchange.path} to be implemented",
            actual=f"status {exchange.status}; {_body_preview(exchange)}",
            curl=exchange.curl(),
            requirement=_resolve(requirement),
        )


def expect_status(
    exchange: Exchange,
    *codes: int,
    requirement: str | None = None,
    missing_is_not_implemented: bool = True,
) -> None:
    """Require one of ``codes``.

    No answer is TIMEOUT; an answer that says the endpoint does not exist (see
    :func:`not_implemented_if_missing`) is NOT IMPLEMENTED unless 404/501 is among ``codes`` or
    ``missing_is_not_implemented`` is False.
    """
    __tracebackhide__ = True
    if not codes:
        raise TypeError("expect_status needs at least one status code")
    ref = _resolve(requirement)
    _raise_if_incomplete(exchange, ref)
    if exchange.status in codes:
        return
    if missing_is_not_implemented and not {404, 501} & set(codes):
        not_implemented_if_missing(exchange, requirement=requirement)
    raise RequirementFailure(
        expected="status " + " or ".join(str(c) for c in codes),
        actual=f"status {exchange.status}; {_body_preview(exchange)}",
        curl=exchange.curl(),
        requirement=ref,
    )


def assume(condition: bool, reason: str) -> None:
    """Skip (cannot judge) unless a precondition holds that another requirement is about.

    Example: the body of ``GET /`` cannot be judged when the status is already wrong; that is
    ``root.get.status``'s failure, and failing ``root.get.body`` too would count it twice.
    """
    __tracebackhide__ = True
    if not condition:
        pytest.skip(f"cannot judge: {reason}")


def assume_status(exchange: Exchange, *codes: int) -> None:
    """Like :func:`expect_status` for a precondition: a wrong status is SKIP, not FAIL.

    No answer is still TIMEOUT and a missing endpoint still NOT IMPLEMENTED, because those are
    findings about the server whichever requirement meets them first.
    """
    __tracebackhide__ = True
    _raise_if_incomplete(exchange, _resolve(None))
    if exchange.status in codes:
        return
    if not {404, 501} & set(codes):
        not_implemented_if_missing(exchange)
    wanted = " or ".join(str(c) for c in codes)
    pytest.skip(
        f"cannot judge: {exchange.method} {exchange.path} answered status {exchange.status}, "
        f"not {wanted} (judged by the status requirement)"
    )


def assume_json_object(exchange: Exchange) -> dict[str, Any]:
    """The body as a JSON object, or SKIP: for checks of fields, when the body itself is judged
    by another requirement."""
    __tracebackhide__ = True
    _raise_if_incomplete(exchange, _resolve(None))
    value, error = exchange.json()
    if not isinstance(value, dict):
        what = error or f"a JSON {_json_type(value)}"
        pytest.skip(f"cannot judge: the body of {exchange.method} {exchange.path} is {what}")
    return value


def expect_content_type(
    exchange: Exchange, *media_types: str, requirement: str | None = None
) -> None:
    """Require the ``Content-Type`` media type (parameters such as charset are ignored)."""
    __tracebackhide__ = True
    ref = _resolve(requirement)
    _raise_if_incomplete(exchange, ref)
    wanted = {m.lower() for m in media_types}
    if exchange.content_type in wanted:
        return
    raw = exchange.headers.get("content-type")
    raise RequirementFailure(
        expected="Content-Type " + " or ".join(media_types),
        actual=f"Content-Type {raw!r}" if raw is not None else "no Content-Type header",
        curl=exchange.curl(),
        requirement=ref,
    )


def expect_json_object(exchange: Exchange, *, requirement: str | None = None) -> dict[str, Any]:
    """The body as a JSON object; anything else (garbage, an array, nothing) is a clear FAIL."""
    __tracebackhide__ = True
    ref = _resolve(requirement)
    _raise_if_incomplete(exchange, ref)
    value, error = exchange.json()
    if error is not None:
        raise RequirementFailure(
            expected="a JSON object body",
            actual=f"body is {error}" if error.startswith("not JSON") else error,
            curl=exchange.curl(),
            requirement=ref,
        )
    if not isinstance(value, dict):
        raise RequirementFailure(
            expected="a JSON object body",
            actual=f"a JSON {_json_type(value)}: {_body_preview(exchange)}",
            curl=exchange.curl(),
            requirement=ref,
        )
    return value


def _json_type(value: object) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "boolean"
        case int() | float():
            return "number"
        case str():
            return "string"
        case list():
            return "array"
    return type(value).__name__


#: At most this many schema issues are listed in one failure; the rest are counted.
MAX_LISTED_ISSUES = 10


def expect_valid(
    kind: str,
    value: object,
    version: str | None,
    exchange: Exchange | None = None,
    *,
    requirement: str | None = None,
) -> None:
    """Require ``value`` to hold to the contract's ``kind`` schema as of Ollama ``version``."""
    __tracebackhide__ = True
    from conformance.contract import validate

    issues = validate(kind, value, version)
    if not issues:
        return
    listed: Sequence[Any] = issues[:MAX_LISTED_ISSUES]
    text = "\n".join(f"- {issue.message}" for issue in listed)
    if len(issues) > len(listed):
        text += f"\n- ... and {len(issues) - len(listed)} more"
    noun = "issue" if len(issues) == 1 else "issues"
    raise RequirementFailure(
        expected=f"a valid {kind}" + (f" as of Ollama {version}" if version else ""),
        actual=f"{len(issues)} schema {noun}:\n{text}",
        curl=exchange.curl() if exchange is not None else None,
        requirement=_resolve(requirement),
    )
