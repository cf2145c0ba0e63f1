"""Running the reference server: blocking (``serve``) or in a background thread (tests, ``run``).

``start_background`` binds the socket itself before starting uvicorn, so the port (including an
ephemeral ``port=0``) is known and connectable as soon as the call returns.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

from .config import ReferenceConfig


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Go's net package turns Nagle's algorithm off on every TCP connection, so Ollama's small
    # stream chunks leave at once. asyncio would do the same for accepted sockets, but only for
    # sockets whose protocol is IPPROTO_TCP: a socket made with protocol 0 (what accepted sockets
    # inherit by default) kept Nagle on. Naming the protocol, and setting the option on the
    # listener (Linux hands it on to accepted connections), gets TCP_NODELAY everywhere.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _uvicorn_server(app: Any) -> Any:
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        server_header=False,  # Ollama (Go net/http) sends no Server header
        date_header=True,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve(config: ReferenceConfig, host: str = "127.0.0.1", port: int = 11434) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM); the temporary data directory is removed."""
    from .app import create_app

    config.listen_host = host
    sock = _bind(host, port)
    app = create_app(config)
    server = _uvicorn_server(app)
    bound_port = sock.getsockname()[1]
    print(
        f"Listening on {_url(host, bound_port)} (reference Ollama {config.version}, "
        f"models in {app.state.reference.root})",
        flush=True,
    )
    try:
        server.run(sockets=[sock])
    finally:
        app.state.reference.close()
        sock.close()


class RunningServer:
    """A reference server running in a daemon thread; stop it with :meth:`stop` or ``with``."""

    def __init__(self, config: ReferenceConfig, host: str, port: int) -> None:
        from .app import create_app

        config.listen_host = host
        self.config = config
        self._sock = _bind(host, port)
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self.url = _url(host, self.port)
        self.app = create_app(config)
        self.state = self.app.state.reference
        self._server = _uvicorn_server(self.app)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            daemon=True,
            name=f"reference-ollama-{self.port}",
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the reference server did not start")
            time.sleep(0.005)

    @property
    def violations(self) -> int:
        """How many contract violations strict mode has seen in client requests so far."""
        return int(self.state.violation_count)

    @property
    def violation_records(self) -> list[dict[str, Any]]:
        """One record per violating request: method, path, kind and the issues."""
        return list(self.state.violations)

    @property
    def data_dir(self) -> Any:
        return self.state.root

    def stop(self) -> None:
        """Shut down (waiting for in-flight requests briefly) and remove temporary data."""
        if self._thread.is_alive():
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._sock.close()
        self.state.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_background(
    config: ReferenceConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningServer:
    """Start a reference server in a background thread and return once it accepts connections."""
    return RunningServer(config or ReferenceConfig(), host, port)
