"""Run a real Ollama server isolated from the user's own installation, and stop it reliably.

Isolation matters because Ollama writes state outside its model store: it creates an identity key
pair under ``$HOME/.ollama`` on first start, and it reads ``OLLAMA_*`` settings from the
environment. A test run must neither touch the user's ``~/.ollama`` nor inherit their settings, so
the server gets its own ``HOME``, its own ``OLLAMA_MODELS`` and an environment stripped of every
inherited ``OLLAMA_*`` variable. It listens only on a loopback port.

``OLLAMA_NOPRUNE`` is *not* set by default: the target should behave like a stock server (which
prunes unreferenced blobs at start and when a model is replaced); pass ``noprune=True`` to keep
uploaded-but-unregistered blobs in a reused model store.

The server starts runner subprocesses of its own, so it is started in a new session and stopped by
process group: SIGTERM first, SIGKILL after a bound.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from conformance.ollama.build import log_tail

__all__ = [
    "OllamaProcess",
    "StartError",
    "free_port",
    "isolated_env",
    "pid_alive",
    "start_ollama",
    "stop_pid",
]

#: How long a server may take to answer ``/api/version`` after exec (it loads no model at start).
STARTUP_TIMEOUT = 60.0
#: How long SIGTERM gets before SIGKILL; Ollama waits for runners to exit on SIGTERM.
STOP_TIMEOUT = 10.0


class StartError(RuntimeError):
    """The server exited or did not answer in time; the message ends with its log's tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def isolated_env(
    *,
    port: int,
    models_dir: Path,
    home_dir: Path,
    noprune: bool = False,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for an isolated server: ours, minus inherited ``OLLAMA_*`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
    env.update(
        OLLAMA_HOST=f"127.0.0.1:{port}",
        OLLAMA_MODELS=str(models_dir),
        HOME=str(home_dir),
        # Loopback only: make sure a proxy setting can never route a local call elsewhere.
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    if noprune:
        env["OLLAMA_NOPRUNE"] = "1"
    if extra:
        env.update(extra)
    return env


def _is_zombie(pid: int) -> bool:
    """True if the process has exited but nobody reaped it yet (Linux ``/proc`` state Z)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[-1].split()
    return bool(fields) and fields[0] in ("Z", "X")


def pid_alive(pid: int) -> bool:
    """True while a process with this id runs (an exited, unreaped one does not count).

    Our own child is checked with ``WNOWAIT`` so its exit status stays for ``Popen.wait``.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        exited = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # not our child (e.g. a detached server): ask /proc
        return not _is_zombie(pid)
    return exited is None


def _signal_group(pid: int, sig: int) -> None:
    """Send ``sig`` to the process group led by ``pid`` (or the process alone if it has none)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def stop_pid(pid: int, *, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop a server started by us: SIGTERM to its group, SIGKILL after ``timeout`` seconds.

    Returns True if it had to be killed. Only ever call this with a pid this tool started (it was
    made a group leader by ``start_new_session``), never with a name or a guess.
    """
    if not pid_alive(pid):
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            # The leader is gone; runners it started may linger a moment in the same group.
            _signal_group(pid, signal.SIGKILL)
            return False
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)
    end = time.monotonic() + 5.0
    while pid_alive(pid) and time.monotonic() < end:
        time.sleep(0.05)
    return True


@dataclass
class OllamaProcess:
    """A running server: where it listens, where it keeps its state, and how to stop it."""

    binary: Path
    port: int
    models_dir: Path
    home_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    #: Folders we created and remove again on stop (never a folder the caller passed in).
    owned_dirs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Base URL of the HTTP API, e.g. ``http://127.0.0.1:40123``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """Process id of the server (its process group id, too)."""
        if self.process is None:
            raise RuntimeError("server not started")
        return self.process.pid

    def version(self, timeout: float = 5.0) -> str:
        """What ``/api/version`` reports."""
        response = httpx.get(f"{self.url}/api/version", timeout=timeout)
        response.raise_for_status()
        return str(response.json()["version"])

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server log, for error messages."""
        return log_tail(self.log_path, lines)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the server and its runners; remove the temporary folders we created."""
        if self.process is not None and self.process.poll() is None:
            stop_pid(self.process.pid, timeout=timeout)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=1)
        for folder in self.owned_dirs:
            shutil.rmtree(folder, ignore_errors=True)
        self.owned_dirs = []

    def __enter__(self) -> OllamaProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _wait_ready(server: OllamaProcess, timeout: float) -> None:
    """Poll ``/api/version`` until it answers 200, the process dies, or ``timeout`` passes."""
    assert server.process is not None
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            code = server.process.poll()
            if code is not None:
                raise StartError(
                    f"ollama exited with code {code} before answering; log {server.log_path}:\n"
                    f"{server.log_tail()}"
                )
            try:
                if client.get(f"{server.url}/api/version").status_code == 200:
                    return
                last_error = "non-200 answer"
            except httpx.HTTPError as exc:
                last_error = type(exc).__name__
            time.sleep(0.1)
    raise StartError(
        f"ollama did not answer GET /api/version within {timeout:.0f} s ({last_error}); "
        f"log {server.log_path}:\n{server.log_tail()}"
    )


def start_ollama(
    binary: Path,
    *,
    port: int | None = None,
    models_dir: Path | None = None,
    home_dir: Path | None = None,
    log_path: Path | None = None,
    noprune: bool = False,
    env: Mapping[str, str] | None = None,
    startup_timeout: float = STARTUP_TIMEOUT,
) -> OllamaProcess:
    """Start ``<binary> serve`` isolated on a loopback port and wait until it answers.

    Folders not given are created in a fresh temporary folder that ``stop()`` removes again.
    ``env`` adds or overrides variables (e.g. ``OLLAMA_KEEP_ALIVE``). Use as a context manager.
    """
    binary = Path(binary)
    if not binary.is_file():
        raise StartError(f"no Ollama binary at {binary}")
    owned: list[Path] = []
    if models_dir is None or home_dir is None or log_path is None:
        scratch = Path(tempfile.mkdtemp(prefix="ollama-conformance-"))
        owned.append(scratch)
        models_dir = models_dir or scratch / "models"
        home_dir = home_dir or scratch / "home"
        log_path = log_path or scratch / "server.log"
    for folder in (models_dir, home_dir, log_path.parent):
        folder.mkdir(parents=True, exist_ok=True)
    server = OllamaProcess(
        binary=binary,
        port=port or free_port(),
        models_dir=models_dir,
        home_dir=home_dir,
        log_path=log_path,
        owned_dirs=owned,
    )
    child_env = isolated_env(
        port=server.port, models_dir=models_dir, home_dir=home_dir, noprune=noprune, extra=env
    )
    with open(log_path, "ab") as log:
        server.process = subprocess.Popen(
            [str(binary), "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env,
            cwd=str(home_dir),
            start_new_session=True,  # own process group: stop() reaches the runners too
        )
    try:
        _wait_ready(server, startup_timeout)
    except BaseException:
        server.stop()
        raise
    return server
