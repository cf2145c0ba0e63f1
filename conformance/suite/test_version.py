"""``GET /api/version``: what clients use to decide which API features they may rely on."""

from __future__ import annotations

import pytest

from conformance.client import Client
from conformance.verdict import (
    assume,
    assume_json_object,
    assume_status,
    check,
    expect_content_type,
    expect_json_object,
    expect_status,
    expect_valid,
)
from conformance.versions import Version, VersionError


@pytest.mark.requirement("version.get.status")
def test_version_answers_200_with_object(client: Client) -> None:
    exchange = client.get("/api/version")
    expect_status(exchange, 200)
    expect_json_object(exchange)


@pytest.mark.requirement("version.get.shape")
def test_version_field_is_a_string(client: Client) -> None:
    exchange = client.get("/api/version")
    assume_status(exchange, 200)
    body = assume_json_object(exchange)
    check(
        isinstance(body.get("version"), str),
        expected='a field "version" with a string value',
        actual=f"version {body['version']!r}" if "version" in body else f"fields {sorted(body)}",
        exchange=exchange,
    )


@pytest.mark.requirement("version.get.format")
def test_version_is_a_release_string(client: Client, api_version: str) -> None:
    exchange = client.get("/api/version")
    assume_status(exchange, 200)
    body = assume_json_object(exchange)
    version = body.get("version")
    assume(isinstance(version, str), "no string version field (judged by version.get.shape)")
    try:
        Version.parse(str(version))
        parsed = not str(version).startswith("v")
    except VersionError:
        parsed = False
    check(
        parsed,
        expected="a release string such as 0.12.11 or 0.12.6-rc0 (no leading 'v')",
        actual=f"version {version!r}",
        exchange=exchange,
    )
    expect_valid("version.response", body, api_version, exchange)


@pytest.mark.requirement("version.get.content-type")
def test_version_is_json(client: Client) -> None:
    exchange = client.get("/api/version")
    assume_status(exchange, 200)
    expect_content_type(exchange, "application/json")


@pytest.mark.requirement("version.get.stable")
def test_version_is_stable_within_a_run(client: Client, target: object) -> None:
    first = client.get("/api/version")
    second = client.get("/api/version")
    assume_status(first, 200)
    assume_status(second, 200)
    a, _ = first.json()
    b, _ = second.json()
    versions = [v.get("version") if isinstance(v, dict) else None for v in (a, b)]
    claimed = getattr(target, "claimed_version", None)
    check(
        versions[0] == versions[1] and (claimed is None or versions[0] == claimed),
        expected=f"the same version every time (discovery saw {claimed!r})",
        actual=f"versions {versions[0]!r} then {versions[1]!r}",
        exchange=second,
    )


@pytest.mark.requirement("version.head.status")
def test_head_version_answers_200_without_body(client: Client) -> None:
    exchange = client.head("/api/version")
    expect_status(exchange, 200)
    check(
        exchange.body == b"",
        expected="status 200 and no body bytes",
        actual=f"{len(exchange.body)} body bytes: {exchange.text_preview(60)!r}",
        exchange=exchange,
    )
