"""``create_app(config)``: the reference server as one Starlette (ASGI) application.

Layers, outermost first, mirror Ollama's gin chain (§1.1): CORS and Host checks, then (strict
mode only) contract validation of the request, then gin-style routing with its 301/307/404/405
answers, then the handlers. The app owns a :class:`~.state.ReferenceState`; its lifespan removes
the temporary model directory on shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from .config import ReferenceConfig
from .guard import GuardMiddleware
from .routing import Dispatcher
from .state import ReferenceState
from .strict import StrictMiddleware


def create_app(config: ReferenceConfig | None = None) -> Starlette:
    """A ready-to-serve reference server; ``app.state.reference`` is its shared state."""
    config = config or ReferenceConfig()
    state = ReferenceState(config)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Warm up what the first streamed response would otherwise import mid-stream (anyio's
        # task groups), so the first request's chunks are paced like every other's.
        import anyio

        async with anyio.create_task_group():
            pass
        try:
            yield
        finally:
            state.close()

    inner = Dispatcher(config)
    app_chain = StrictMiddleware(inner, state) if config.strict else inner
    app = Starlette(
        routes=[Mount("", app=app_chain)],
        middleware=[Middleware(GuardMiddleware, config=config)],
        lifespan=lifespan,
    )
    app.state.reference = state
    return app
