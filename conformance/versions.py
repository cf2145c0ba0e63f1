"""Ollama version strings, ordered the way releases are ordered.

Requirements and schema differences apply to version ranges (`since` inclusive, `until` exclusive),
so the suite must compare versions such as ``0.12.6-rc0`` < ``0.12.6`` < ``0.12.11`` correctly;
plain string comparison gets all three wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")

#: The newest Ollama version whose behaviour the reference facts describe; the default when a target
#: reports no usable version.
NEWEST_KNOWN = "0.32.15"


class VersionError(ValueError):
    """A string that is not an Ollama version."""


@total_ordering
@dataclass(frozen=True)
class Version:
    """A parsed Ollama version; a pre-release sorts before its release."""

    major: int
    minor: int
    patch: int
    pre: str = ""

    @classmethod
    def parse(cls, text: str | Version) -> Version:
        """Parse ``0.12.11``, ``v0.24.0`` or ``0.12.6-rc0``; raise VersionError otherwise."""
        if isinstance(text, Version):
            return text
        match = _VERSION.match(text.strip())
        if not match:
            raise VersionError(f"not an Ollama version: {text!r} (expected e.g. 0.12.11)")
        major, minor, patch, pre = match.groups()
        return cls(int(major), int(minor), int(patch or 0), pre or "")

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        # Natural order inside the pre-release, so rc2 < rc10 as Ollama's tags mean it.
        pre_parts: tuple[tuple[int, int | str], ...] = tuple(
            (0, int(p)) if p.isdigit() else (1, p) for p in re.findall(r"\d+|[A-Za-z]+", self.pre)
        )
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, pre_parts)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __str__(self) -> str:
        base = f"{self.major}.{self.minor}.{self.patch}"
        return f"{base}-{self.pre}" if self.pre else base

    @property
    def is_development_build(self) -> bool:
        """Ollama built without release flags reports 0.0.0, which says nothing about its API."""
        return (self.major, self.minor, self.patch) == (0, 0, 0)


def in_range(version: str | Version, since: str | None = None, until: str | None = None) -> bool:
    """Whether ``since <= version < until``; a missing bound is open."""
    v = Version.parse(version)
    if since and v < Version.parse(since):
        return False
    return not (until and v >= Version.parse(until))
