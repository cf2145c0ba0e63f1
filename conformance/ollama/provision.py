"""Load the tiny test models into a running server through its public HTTP API.

The same two calls a client would make: ``POST /api/blobs/<digest>`` with the GGUF bytes (after a
``HEAD`` that skips the upload when the blob is already there), then ``POST /api/create`` with
``files`` naming the blob and a Go ``template`` that renders only the message contents, so chat
answers are as predictable as raw generate answers. httpx is used directly (not the suite's client)
because provisioning is setup, not something under test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from conformance.models.tiny_gguf import (
    CHAT_TEMPLATE,
    DEFAULT_CONTEXT_LENGTH,
    VARIANTS,
    model_bytes,
    model_digest,
)

__all__ = ["DEFAULT_MODELS", "ProvisionError", "ProvisionedModel", "provision", "upload_blob"]

#: Model name -> variant, the names the suite looks for by default.
DEFAULT_MODELS: dict[str, str] = {
    "conformance-tiny-stop": "stop",
    "conformance-tiny-cycle": "cycle",
    "conformance-tiny-embed": "embed",
}
#: Creating a 300 KB model takes well under a second, but older servers hash and copy on create.
CREATE_TIMEOUT = 120.0


class ProvisionError(RuntimeError):
    """The server refused an upload or a create; the message carries its status and body."""


@dataclass(frozen=True)
class ProvisionedModel:
    """One model now registered on the server."""

    name: str
    variant: str
    #: ``sha256:<hex>`` of the uploaded GGUF (servers from v0.30 store a re-written copy).
    digest: str
    size: int
    #: Whether the blob had to be uploaded (False: the server already had it).
    uploaded: bool
    #: The last status object of ``/api/create`` (``{"status":"success"}``).
    create_response: dict[str, Any]


def upload_blob(client: httpx.Client, data: bytes, digest: str) -> bool:
    """Make sure the server has the blob; return True if it had to be uploaded.

    HEAD answers 200 when present and 404 when absent; POST answers 201 when it stored the bytes.
    """
    head = client.head(f"/api/blobs/{digest}")
    if head.status_code == 200:
        return False
    if head.status_code != 404:
        raise ProvisionError(f"HEAD /api/blobs/{digest} answered {head.status_code}")
    posted = client.post(
        f"/api/blobs/{digest}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    if posted.status_code not in (200, 201):
        raise ProvisionError(
            f"POST /api/blobs/{digest} answered {posted.status_code}: {posted.text[:300]}"
        )
    return True


def provision(
    base_url: str,
    models: Mapping[str, str] | None = None,
    *,
    template: str | None = CHAT_TEMPLATE,
    context_length: int = DEFAULT_CONTEXT_LENGTH,
    timeout: float = CREATE_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
) -> list[ProvisionedModel]:
    """Upload and register tiny models on the server at ``base_url``.

    ``models`` maps each model name to a variant of ``VARIANTS`` (default ``DEFAULT_MODELS``).
    ``template`` is sent with every non-embedding model (None: send none, so the server falls back
    to its default handling). ``transport`` is for tests (an ``httpx.MockTransport``).
    Raises ProvisionError on any refusal.
    """
    wanted = dict(DEFAULT_MODELS if models is None else models)
    unknown = sorted(set(wanted.values()) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown tiny model variant(s): {', '.join(unknown)}")
    created: list[ProvisionedModel] = []
    client = httpx.Client(base_url=base_url, timeout=timeout, trust_env=False, transport=transport)
    with client:
        for name, variant in wanted.items():
            data = model_bytes(variant, context_length=context_length)
            digest = model_digest(variant, context_length=context_length)
            uploaded = upload_blob(client, data, digest)
            body: dict[str, Any] = {
                "model": name,
                "files": {"model.gguf": digest},
                "stream": False,
            }
            if template is not None and not VARIANTS[variant].embedding:
                body["template"] = template
            response = client.post("/api/create", json=body)
            try:
                answer = response.json()
            except ValueError:
                answer = {"raw": response.text[:300]}
            if response.status_code != 200 or not isinstance(answer, dict) or "error" in answer:
                raise ProvisionError(
                    f"POST /api/create {name!r} answered {response.status_code}: {answer}"
                )
            created.append(
                ProvisionedModel(
                    name=name,
                    variant=variant,
                    digest=digest,
                    size=len(data),
                    uploaded=uploaded,
                    create_response=answer,
                )
            )
    return created
