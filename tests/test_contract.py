"""The contract API: issues name the offending field; versions add their constraints."""

from __future__ import annotations

import json

import pytest

from conformance import contract


def _final(**extra: object) -> dict[str, object]:
    base: dict[str, object] = {
        "model": "m",
        "created_at": "2025-10-26T17:15:24.097767Z",
        "response": "",
        "done": True,
    }
    base.update(extra)
    return base


def test_a_valid_message_has_no_issues() -> None:
    assert contract.validate("generate.final", _final(done_reason="stop", eval_count=3)) == []
    assert contract.is_valid("version.response", {"version": "0.12.11"})


def test_issue_names_path_and_field() -> None:
    issues = contract.validate("generate.final", _final(done_reason="finished"))
    assert [i.path for i in issues] == ["$.done_reason"]
    assert issues[0].message.startswith("$.done_reason: ")
    assert "finished" in issues[0].message


def test_a_missing_required_field_is_addressed_by_its_own_path() -> None:
    chunk = {"model": "m", "created_at": "2025-10-26T17:15:24Z", "done": False}
    issues = contract.validate("chat.chunk", chunk)
    assert any(i.path == "$.message" for i in issues), issues


def test_nested_alternatives_report_the_precise_sub_error() -> None:
    call = {"function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    message = {"role": "assistant", "content": "", "tool_calls": [call]}
    final = {
        "model": "m",
        "created_at": "2025-10-26T17:15:24Z",
        "message": message,
        "done": True,
    }
    issues = contract.validate("chat.final", final)
    assert any("arguments" in i.path for i in issues), issues


def test_version_constraints_apply_only_inside_their_range() -> None:
    request = {"model": "m", "messages": [], "think": "max"}
    assert contract.validate("chat.request", request) == []
    assert contract.validate("chat.request", request, version="0.24.0") == []
    issues = contract.validate("chat.request", request, version="0.12.0")
    assert issues, "think 'max' must be rejected as of 0.12.0"
    assert all(i.rule for i in issues)
    assert "as of Ollama 0.12.0" in issues[0].message


def test_an_endpoint_that_did_not_exist_yet_is_reported() -> None:
    assert not contract.endpoint_exists("chat.request", "0.1.0")
    assert contract.endpoint_exists("chat.request", "0.12.11")
    issues = contract.validate("chat.request", {"model": "m", "messages": []}, version="0.1.0")
    assert any("does not exist in Ollama 0.1.0" in i.message for i in issues)
    assert "chat.request" not in contract.kinds_for("0.1.0")
    assert "generate.request" in contract.kinds_for("0.1.0")


def test_unknown_kind_says_which_kinds_exist() -> None:
    with pytest.raises(contract.ContractError, match=r"known: blobs\.digest"):
        contract.validate("generate.reply", {})


@pytest.mark.parametrize("kind", contract.kinds())
def test_bundled_schemas_are_self_contained(kind: str) -> None:
    text = json.dumps(contract.bundled(kind))
    assert '"$ref"' not in text
    assert '"$id"' not in text


def test_bundled_schema_validates_like_the_original() -> None:
    from jsonschema import Draft202012Validator

    checker = Draft202012Validator(contract.bundled("generate.final"))
    assert checker.is_valid(_final(done_reason="stop"))
    assert not checker.is_valid(_final(done_reason="finished"))


def test_generations_name_a_version_each() -> None:
    generations = contract.generations()
    assert set(generations) == {"2023-08", "2023-09", "2024-01", "2025"}
    for generation in generations.values():
        assert generation.seed.endswith(".md")
        contract.Version.parse(generation.version)


def test_stream_issues_pick_chunk_or_final_by_done() -> None:
    lines = [
        {"model": "m", "created_at": "2025-10-26T17:15:24Z", "response": "a", "done": False},
        _final(done_reason="finished"),
    ]
    found = list(contract.iter_stream_issues("generate", lines))
    assert [(index, issue.kind) for index, issue in found] == [(1, "generate.final")]
