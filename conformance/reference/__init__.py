"""The reference server: a faithful, deterministic implementation of the Ollama HTTP API.

It is the default target of ``ollama-conformance run`` and can be served alone
(``ollama-conformance serve``). Its behaviour follows the reference facts read from Ollama's
source (``shared/reference/ollama-behaviour.md``), for the release named in
:class:`ReferenceConfig.version`.

Import cost matters (the CLI must start fast), so the public names are loaded on first use::

    from conformance.reference import ReferenceConfig, start_background

    with start_background(ReferenceConfig(token_rate=100)) as server:
        ...  # talk to server.url
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .config import ReferenceConfig
    from .server import RunningServer, serve, start_background

__all__ = ["ReferenceConfig", "RunningServer", "create_app", "serve", "start_background"]

_WHERE = {
    "ReferenceConfig": "config",
    "create_app": "app",
    "RunningServer": "server",
    "serve": "server",
    "start_background": "server",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(name)
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
