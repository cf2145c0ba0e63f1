"""schemas/openapi.yaml is generated, current, and loads in schemathesis with every operation."""

from __future__ import annotations

import schemathesis

from conformance import openapi
from conformance.cli import main

EXPECTED_OPERATIONS = {
    "GET /",
    "HEAD /",
    "GET /api/version",
    "HEAD /api/version",
    "GET /api/tags",
    "HEAD /api/tags",
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
    "HEAD /api/blobs/{digest}",
    "POST /api/blobs/{digest}",
}


def test_committed_file_is_current() -> None:
    path = openapi.default_path()
    assert path.is_file(), "run `ollama-conformance openapi --write`"
    assert path.read_text(encoding="utf-8") == openapi.render(), (
        "schemas/openapi.yaml is stale: run `ollama-conformance openapi --write`"
    )


def test_check_command_reports_staleness(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "openapi.yaml"
    target.write_text("stale\n", encoding="utf-8")
    assert main(["openapi", "--check", "--output", str(target)]) == 1
    assert "is stale" in capsys.readouterr().err
    assert main(["openapi", "--write", "--output", str(target)]) == 0
    assert main(["openapi", "--check", "--output", str(target)]) == 0


def test_schemathesis_loads_every_operation() -> None:
    schema = schemathesis.openapi.from_path(str(openapi.default_path()))
    found = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        found.add(f"{operation.method.upper()} {operation.path}")
    assert found == EXPECTED_OPERATIONS


def test_streaming_operations_are_marked() -> None:
    document = openapi.build_document()
    streaming = {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method, op in item.items()
        if op.get("x-streaming")
    }
    assert streaming == {
        "POST /api/generate",
        "POST /api/chat",
        "POST /api/create",
        "POST /api/pull",
        "POST /api/push",
    }
