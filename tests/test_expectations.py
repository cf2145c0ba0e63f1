"""Expectations files: what they accept, how entries match tests, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.expectations import Expectation, ExpectationError, load
from conformance.verdict import Verdict


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_entries_by_requirement_and_test(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "expect.yaml",
        """
generate.stream.content-type:
  outcome: fail
  reason: proxy rewrites the content type
test_version.py::test_version_is_json:
  outcome: not implemented
  reason: no /api/version
""",
    )
    expectations = load(path)
    assert len(expectations) == 2
    entry = expectations.find(
        "conformance/suite/test_generate.py::test_x", "generate.stream.content-type"
    )
    assert entry == Expectation(
        "generate.stream.content-type", Verdict.FAIL, "proxy rewrites the content type"
    )
    by_test = expectations.find(
        "conformance/suite/test_version.py::test_version_is_json", "version.get.content-type"
    )
    assert by_test is not None and by_test.outcome is Verdict.NOT_IMPLEMENTED
    assert expectations.find("conformance/suite/test_version.py::test_other", "x.y") is None


def test_test_entry_wins_over_requirement_entry(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "expect.yaml",
        """
root.get.body: {outcome: FAIL, reason: broad}
test_root.py::test_get_root_says_ollama_is_running: {outcome: WARN, reason: narrow}
""",
    )
    entry = load(path).find(
        "conformance/suite/test_root.py::test_get_root_says_ollama_is_running", "root.get.body"
    )
    assert entry is not None and entry.reason == "narrow"


def test_suffix_matching_needs_a_separator(tmp_path: Path) -> None:
    path = write(tmp_path, "expect.yaml", "test_x: {outcome: SKIP, reason: r}\n")
    expectations = load(path)
    assert expectations.find("suite/test_a.py::test_x", None) is not None
    assert expectations.find("suite/test_a.py::other_test_x", None) is None


def test_toml_with_optional_wrapper_table(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "expect.toml",
        """
[expectations."root.get.content-type"]
outcome = "WARN"
reason = "we send text/html"
""",
    )
    entry = load(path).find("t.py::test", "root.get.content-type")
    assert entry is not None and entry.outcome is Verdict.WARN


def test_empty_file_is_no_expectations(tmp_path: Path) -> None:
    assert len(load(write(tmp_path, "e.yaml", "# nothing yet\n"))) == 0


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("e.yaml", "a: [unclosed\n", "not valid YAML (line 2)"),
        ("e.toml", "a = \n", "not valid TOML"),
        ("e.yaml", "- a\n- b\n", "expected a mapping of requirement or test id"),
        ("e.yaml", "a: FAIL\n", "entry 'a' must be a mapping with 'outcome' and 'reason'"),
        ("e.yaml", "a: {reason: r}\n", "entry 'a' needs an outcome, one of FAIL, WARN"),
        ("e.yaml", "a: {outcome: PASS, reason: r}\n", "entry 'a' has outcome 'PASS'; use one of"),
        ("e.yaml", "a: {outcome: FAIL}\n", "entry 'a' needs a non-empty 'reason'"),
        ("e.yaml", "a: {outcome: FAIL, reason: r, until: x}\n", "unknown field(s) until"),
    ],
)
def test_malformed_files_give_one_line_errors(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    with pytest.raises(ExpectationError) as info:
        load(write(tmp_path, name, text))
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert name in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ExpectationError, match="cannot read expectations file"):
        load(tmp_path / "absent.yaml")
