"""``HEAD`` and ``POST /api/blobs/:digest`` (reference facts §16).

HEAD: 200 if present, 404 if not, 400 for a malformed digest (no bodies). POST: an existing blob
answers 200 without looking at the body (it is drained, so the client can finish sending);
otherwise the body is streamed to disk while hashed and kept under its *actual* digest; if that
is not string-equal to the path parameter the answer is ``400 digest mismatch, expected "<param>",
got "sha256:<actual>"`` (so ``sha256-`` or upper-case parameters always mismatch for new blobs),
else ``201 Created`` with an empty body.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .common import state_of
from .gojson import go_quote
from .responses import empty_response, error_response
from .store import valid_digest


async def head_blob(request: Request) -> Response:
    state = state_of(request)
    digest = request.path_params["digest"]
    if not valid_digest(digest):
        return _headless(error_response("invalid digest format", 400))
    if not state.store.has_blob(digest):
        return _headless(error_response(f"blob {go_quote(digest)} not found", 404))
    return empty_response(200)


def _headless(response: Response) -> Response:
    """The error answer without its body, the way Go's net/http answers a HEAD request.

    The handler still writes its JSON; net/http discards the bytes but has already counted them,
    so ``Content-Length`` is the length of the dropped body (real: 102 for an absent blob, 33 for
    a malformed digest) and no byte follows the headers.
    """
    length = len(response.body)
    response.body = b""
    response.headers["content-length"] = str(length)
    return response


async def post_blob(request: Request) -> Response:
    state = state_of(request)
    digest = request.path_params["digest"]
    if not valid_digest(digest):
        return error_response("invalid digest format", 400)
    if state.store.has_blob(digest):
        async for _ in request.stream():
            pass  # drained, never stored or verified (§16 step 3)
        return empty_response(200)
    actual, _size = await state.store.receive_blob(request.stream())
    if actual != digest:
        return error_response(
            f"digest mismatch, expected {go_quote(digest)}, got {go_quote(actual)}", 400
        )
    return empty_response(201)
