"""Version ordering: ranges in the catalogue and the contract depend on it being release order."""

from __future__ import annotations

import pytest

from conformance.versions import Version, VersionError, in_range


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("0.12.6-rc0", "0.12.6"),
        ("0.12.6", "0.12.11"),
        ("0.9.0", "0.12.0"),
        ("0.6.9-rc0", "0.7.0"),
        ("0.6.9-rc0", "0.6.9-rc1"),
        ("0.6.9-rc2", "0.6.9-rc10"),
        ("v0.24.0", "0.32.15"),
        ("0.0.0", "0.0.13"),
    ],
)
def test_release_order(lower: str, higher: str) -> None:
    assert Version.parse(lower) < Version.parse(higher)
    assert not Version.parse(higher) < Version.parse(lower)


def test_prefix_and_short_forms_are_equal() -> None:
    assert Version.parse("v0.24.0") == Version.parse("0.24.0") == Version.parse("0.24")
    assert str(Version.parse("v0.12.6-rc0")) == "0.12.6-rc0"


@pytest.mark.parametrize("text", ["", "latest", "1", "0.x.1", "0.1.2.3"])
def test_garbage_is_rejected_with_an_example(text: str) -> None:
    with pytest.raises(VersionError, match=r"expected e\.g\. 0\.12\.11"):
        Version.parse(text)


def test_range_bounds_are_inclusive_then_exclusive() -> None:
    assert in_range("0.12.6", since="0.12.6")
    assert not in_range("0.12.6", until="0.12.6")
    assert in_range("0.12.6-rc0", until="0.12.6")
    assert in_range("5.0.0")
    assert not in_range("0.5.4", since="0.5.5", until="0.9.0")


def test_development_build_is_recognised() -> None:
    assert Version.parse("0.0.0").is_development_build
    assert not Version.parse("0.0.13").is_development_build
