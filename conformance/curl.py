"""Render a recorded request as a ``curl`` command line.

Every failure in a report carries a command that reproduces the request, so a server author can
replay it without the suite. The command must send the same bytes the suite sent: the body is taken
verbatim (never re-serialised), and headers curl would add on its own are left out so they are not
sent twice.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Iterable, Mapping

__all__ = ["IMPLIED_HEADERS", "MAX_INLINE_BODY", "curl_command"]

#: Headers curl computes or sends by itself; repeating them would be noise or, for
#: ``Content-Length``, wrong once the user edits the body. (``Accept: */*`` is dropped too: it
#: is curl's own default.)
IMPLIED_HEADERS: frozenset[str] = frozenset(
    {"host", "content-length", "connection", "accept-encoding", "transfer-encoding"}
)

#: Bodies larger than this are not put on the command line (shells and terminals choke on them);
#: the command reads the body from stdin instead and says so.
MAX_INLINE_BODY = 1024 * 1024


def _header_items(
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


def _inline_text(body: bytes, max_inline: int) -> str | None:
    """The body as text when it can be passed as one argv word, else None.

    NUL cannot be part of an argument, and non-UTF-8 bytes would be re-encoded by the shell's
    locale, so both force the stdin form.
    """
    if len(body) > max_inline or b"\x00" in body:
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def curl_command(
    method: str,
    url: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    body: bytes | None = None,
    *,
    max_inline: int = MAX_INLINE_BODY,
) -> str:
    """Return a shell-quoted ``curl`` command that sends this request.

    * ``HEAD`` becomes ``-I`` (``-X HEAD`` would make curl wait for a body that never comes).
    * Other methods get ``-X`` unless curl would pick the method itself (GET without a body,
      POST with one).
    * The body is sent with ``-d`` (``--data-raw`` when it starts with ``@``, which ``-d`` would
      take as a file name). A binary or very large body becomes ``--data-binary @-`` followed by a
      shell comment giving its size and SHA-256: the command then reads the body from stdin.
    * ``-d`` makes curl add ``Content-Type: application/x-www-form-urlencoded``; when the
      original request had no content type the command removes it with ``-H 'Content-Type:'``.
    * URLs with ``[]{}`` get ``-g`` so curl does not expand them as globs.

    The result round-trips through :func:`shlex.split` (use ``comments=True`` when the stdin
    note is present).
    """
    method = method.upper()
    items = [
        (k, v)
        for k, v in _header_items(headers)
        if k.lower() not in IMPLIED_HEADERS and not (k.lower() == "accept" and v == "*/*")
    ]
    has_body = bool(body)
    words: list[str] = ["curl"]
    if method == "HEAD":
        words.append("-I")
    elif not ((method == "GET" and not has_body) or (method == "POST" and has_body)):
        words += ["-X", method]
    if any(c in url for c in "[]{}"):
        words.append("-g")
    words.append(url)
    for name, value in items:
        words += ["-H", f"{name}: {value}"]
    note = ""
    if has_body and method != "HEAD":
        assert body is not None
        if not any(k.lower() == "content-type" for k, _ in items):
            words += ["-H", "Content-Type:"]
        text = _inline_text(body, max_inline)
        if text is None:
            digest = hashlib.sha256(body).hexdigest()
            words += ["--data-binary", "@-"]
            note = f" # body on stdin: {len(body)} bytes, sha256:{digest}"
        elif text.startswith("@"):
            words += ["--data-raw", text]
        else:
            words += ["-d", text]
    return " ".join(shlex.quote(w) for w in words) + note
