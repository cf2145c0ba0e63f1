"""``GET /`` and ``HEAD /``: the liveness probe every Ollama client and load balancer uses."""

from __future__ import annotations

import pytest

from conformance.client import Client
from conformance.verdict import assume_status, check, expect_content_type, expect_status

RUNNING = b"Ollama is running"


@pytest.mark.requirement("root.get.status")
def test_get_root_answers_200(client: Client) -> None:
    expect_status(client.get("/"), 200)


@pytest.mark.requirement("root.get.body")
def test_get_root_says_ollama_is_running(client: Client) -> None:
    exchange = client.get("/")
    assume_status(exchange, 200)
    check(
        exchange.body == RUNNING,
        expected=f"body {RUNNING.decode()!r}",
        actual=f"body {exchange.text_preview()!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("root.get.content-type")
def test_get_root_is_plain_text(client: Client) -> None:
    exchange = client.get("/")
    assume_status(exchange, 200)
    expect_content_type(exchange, "text/plain")


@pytest.mark.requirement("root.head.status")
def test_head_root_answers_200(client: Client) -> None:
    expect_status(client.head("/"), 200)


@pytest.mark.requirement("root.head.no-body")
def test_head_root_sends_no_body(client: Client) -> None:
    exchange = client.head("/")
    assume_status(exchange, 200)
    check(
        exchange.body == b"",
        expected="no body bytes",
        actual=f"{len(exchange.body)} body bytes: {exchange.text_preview(60)!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("root.head.content-type")
def test_head_root_has_get_content_type(client: Client) -> None:
    exchange = client.head("/")
    assume_status(exchange, 200)
    expect_content_type(exchange, "text/plain")


@pytest.mark.requirement("root.head.content-length")
def test_head_root_announces_get_length(client: Client) -> None:
    exchange = client.head("/")
    assume_status(exchange, 200)
    length = exchange.headers.get("content-length")
    check(
        length == str(len(RUNNING)),
        expected=f"Content-Length: {len(RUNNING)}",
        actual=f"Content-Length: {length}" if length is not None else "no Content-Length header",
        exchange=exchange,
    )
