"""``HEAD`` and ``POST /api/blobs/:digest``: how clients upload model files before creating a model.

``ollama create`` uploads every file this way and then names it by digest, so a server that stores a
blob under the wrong name, or answers 201 where 200 is due, breaks model creation for every client.
The checks upload a few random bytes (not a model: the server does not validate blobs) and the
project's tiny GGUF. Ollama has no way to delete a blob; unreferenced blobs are pruned when it
restarts, and the random ones are a few dozen bytes.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from conformance.client import Client
from conformance.exchange import Exchange
from conformance.suite import scratch
from conformance.suite.scratch import ScratchModels, blob_digest, expect_error, random_blob
from conformance.target import Target
from conformance.verdict import assume, assume_status, check, expect_status


@pytest.fixture(autouse=True, scope="module")
def _audited(request: pytest.FixtureRequest, client: Client, target: Target) -> scratch.Audit:
    """Take the safety snapshot before this module can change anything (see scratch.audit)."""
    return scratch.audit(request.config, client, target)


@pytest.fixture
def scratch_models(
    request: pytest.FixtureRequest, client: Client, api_version: str
) -> Iterator[ScratchModels]:
    """Scratch models for one test, deleted when it ends (pass or fail)."""
    models = ScratchModels(client, request.config, api_version)
    yield models
    models.close()


@dataclass(frozen=True)
class Upload:
    """A blob this run uploaded for the first time, and what the server said each time."""

    data: bytes
    digest: str
    first: Exchange
    again: Exchange


@pytest.fixture(scope="module")
def upload(client: Client) -> Upload:
    """Random bytes uploaded twice under their digest: first new, then already held."""
    data = random_blob("blob")
    digest = blob_digest(data)
    first = client.post(f"/api/blobs/{digest}", content=data)
    again = client.post(f"/api/blobs/{digest}", content=data)
    return Upload(data, digest, first, again)


def _no_body(exchange: Exchange) -> None:
    __tracebackhide__ = True
    check(
        exchange.body == b"",
        expected="no body bytes",
        actual=f"{len(exchange.body)} body bytes: {exchange.text_preview(80)!r}",
        exchange=exchange,
    )


def _random_digest() -> str:
    return "sha256:" + secrets.token_hex(32)


# --------------------------------------------------------------------------------------------
# POST


@pytest.mark.requirement("blobs.post.created")
def test_new_blob_answers_201(upload: Upload) -> None:
    expect_status(upload.first, 201)


@pytest.mark.requirement("blobs.post.created-empty-body")
def test_new_blob_answer_has_no_body(upload: Upload) -> None:
    assume_status(upload.first, 201)
    _no_body(upload.first)


@pytest.mark.requirement("blobs.post.existing")
def test_blob_already_held_answers_200(upload: Upload) -> None:
    assume_status(upload.first, 201, 200)
    expect_status(upload.again, 200)


@pytest.mark.requirement("blobs.post.stored-by-digest")
def test_uploaded_blob_is_found_by_its_digest(client: Client, upload: Upload) -> None:
    assume_status(upload.first, 201)
    exchange = client.head(f"/api/blobs/{upload.digest}")
    check(
        exchange.status == 200,
        expected=f"HEAD of the sha256 of the uploaded bytes ({upload.digest}) answers 200",
        actual=f"status {exchange.status}",
        exchange=exchange,
    )


@pytest.mark.requirement("blobs.post.mismatch")
def test_digest_mismatch_answers_400(client: Client) -> None:
    # Neither the path digest nor the real one is held, so the bytes must be hashed and compared.
    exchange = client.post(f"/api/blobs/{_random_digest()}", content=random_blob("mismatch"))
    expect_error(exchange, 400)


@pytest.mark.requirement("blobs.post.mismatch-message")
def test_digest_mismatch_message_names_both_digests(client: Client) -> None:
    claimed = _random_digest()
    data = random_blob("mismatch")
    exchange = client.post(f"/api/blobs/{claimed}", content=data)
    assume_status(exchange, 400)
    expect_error(exchange, 400, f'digest mismatch, expected "{claimed}", got "{blob_digest(data)}"')


@pytest.mark.requirement("blobs.post.invalid-digest")
def test_post_invalid_digest_answers_400(client: Client) -> None:
    exchange = client.post("/api/blobs/sha256:abc", content=b"conformance")
    expect_error(exchange, 400, "invalid digest format")


@pytest.mark.requirement("blobs.post.usable-by-create")
def test_uploaded_gguf_can_be_named_by_create(
    client: Client, scratch_models: ScratchModels
) -> None:
    name, exchange = scratch_models.create_files()
    check(
        scratch.create_succeeded(exchange),
        expected=f"create of {name} from the uploaded GGUF "
        f"({scratch_models.gguf_digest()}) answers 200 {{'status': 'success'}}",
        actual=scratch.create_problem(exchange),
        exchange=exchange,
    )


@pytest.mark.requirement("blobs.post.layer-digest")
def test_create_reports_the_uploaded_layer(client: Client, scratch_models: ScratchModels) -> None:
    _, exchange = scratch_models.create_files(stream=True)
    assume(scratch.create_succeeded(exchange), f"create failed: {scratch.create_problem(exchange)}")
    digest = scratch_models.gguf_digest()
    statuses = [v.get("status") for v in exchange.values if isinstance(v, dict)]
    check(
        f"using existing layer {digest}" in statuses,
        expected=f"a status line 'using existing layer {digest}'",
        actual=f"status lines {statuses}",
        exchange=exchange,
    )


# --------------------------------------------------------------------------------------------
# HEAD


@pytest.mark.requirement("blobs.head.present")
def test_head_held_blob_answers_200_without_body(client: Client, upload: Upload) -> None:
    assume_status(upload.first, 201, 200)
    exchange = client.head(f"/api/blobs/{upload.digest}")
    expect_status(exchange, 200)
    _no_body(exchange)


@pytest.mark.requirement("blobs.head.absent")
def test_head_absent_blob_answers_404_without_body(client: Client) -> None:
    exchange = client.head(f"/api/blobs/{blob_digest(random_blob('absent'))}")
    expect_status(exchange, 404)
    _no_body(exchange)


@pytest.mark.requirement("blobs.head.invalid-digest")
def test_head_invalid_digest_answers_400(client: Client) -> None:
    # A HEAD answer has no body, so a bare 404 cannot tell "no such route" from a wrong status;
    # the route's existence is judged by blobs.head.present, so here a 404 is plainly a FAIL.
    expect_status(client.head("/api/blobs/sha256:xyz"), 400, missing_is_not_implemented=False)


@pytest.mark.requirement("blobs.head.dash-form")
def test_head_accepts_the_file_name_form(client: Client, upload: Upload) -> None:
    assume_status(upload.first, 201, 200)
    dashed = upload.digest.replace("sha256:", "sha256-", 1)
    exchange = client.head(f"/api/blobs/{dashed}")
    expect_status(exchange, 200)
