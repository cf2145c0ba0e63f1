"""``ollama-conformance ollama build|start|stop``: real Ollama as a target, from the command line.

Typical use::

    ollama-conformance ollama build --version v0.24.0
    ollama-conformance ollama start --version v0.24.0 --provision   # foreground; Ctrl-C stops
    ollama-conformance ollama start --version v0.24.0 --provision --detach --pid-file o.pid
    ollama-conformance ollama stop --pid-file o.pid

A detached server's pid file is JSON (pid, url, log, and the temporary folders to remove), so
``stop`` can clean up what ``start`` created and can refuse a pid that is no longer our server.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from conformance.cli import EXIT_FAILED, EXIT_OK, UsageError
from conformance.ollama.build import (
    BuildError,
    build_ollama,
    cache_root,
    cached_binary,
    normalize_version,
)
from conformance.ollama.process import (
    STARTUP_TIMEOUT,
    STOP_TIMEOUT,
    OllamaProcess,
    StartError,
    pid_alive,
    start_ollama,
    stop_pid,
)
from conformance.ollama.provision import ProvisionError, provision

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``ollama`` command and its ``build``, ``start`` and ``stop`` sub-commands."""
    parser = subparsers.add_parser(
        "ollama",
        help="build, start and stop a real Ollama server to test against",
        description="Real Ollama as a test target: build a release into a cache, run it "
        "isolated on a loopback port, load the tiny test models.",
    )
    commands = parser.add_subparsers(dest="ollama_command", metavar="ACTION")
    parser.set_defaults(handler=lambda _args: _usage(parser))

    build = commands.add_parser("build", help="build a release into the cache (reused if there)")
    _add_version(build, required=True)
    build.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="cache folder (default: $OLLAMA_CONFORMANCE_CACHE or "
        "~/.cache/ollama-conformance/ollama)",
    )
    build.add_argument("--force", action="store_true", help="rebuild even if a build is cached")
    build.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="give up on the build after this long (default: %(default)s)",
    )
    build.set_defaults(handler=_build)

    start = commands.add_parser("start", help="start a built release on a free loopback port")
    _add_version(start, required=False)
    start.add_argument(
        "--binary",
        type=Path,
        metavar="PATH",
        help="run this ollama binary instead of a cached build",
    )
    start.add_argument("--cache-dir", type=Path, metavar="DIR", help="cache folder, as for build")
    start.add_argument("--port", type=int, metavar="P", help="port on 127.0.0.1 (default: free)")
    start.add_argument(
        "--models-dir",
        type=Path,
        metavar="DIR",
        help="OLLAMA_MODELS (default: a temporary folder removed on stop)",
    )
    start.add_argument(
        "--log-file",
        type=Path,
        metavar="FILE",
        help="server log (default: in the temporary folder)",
    )
    start.add_argument(
        "--provision",
        action="store_true",
        help="upload and create the tiny test models once it is up",
    )
    start.add_argument(
        "--noprune", action="store_true", help="set OLLAMA_NOPRUNE=1 (keep unreferenced blobs)"
    )
    start.add_argument(
        "--detach",
        action="store_true",
        help="return once it is up and leave it running; see --pid-file",
    )
    start.add_argument(
        "--pid-file",
        type=Path,
        metavar="FILE",
        help="with --detach: where to write the pid file (default: ./ollama-<version>.pid)",
    )
    start.add_argument(
        "--startup-timeout",
        type=float,
        default=STARTUP_TIMEOUT,
        metavar="SECONDS",
        help="wait this long for /api/version (default: %(default)s)",
    )
    start.set_defaults(handler=_start)

    stop = commands.add_parser("stop", help="stop a server started with --detach")
    stop.add_argument("--pid-file", type=Path, required=True, metavar="FILE")
    stop.add_argument(
        "--timeout",
        type=float,
        default=STOP_TIMEOUT,
        metavar="SECONDS",
        help="SIGKILL after this long (default: %(default)s)",
    )
    stop.set_defaults(handler=_stop)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _add_version(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--version",
        dest="ollama_version",
        required=required,
        metavar="VERSION",
        help="Ollama release tag, e.g. v0.24.0",
    )


def _tag(raw: str) -> str:
    try:
        return normalize_version(raw)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _fail(summary: str, detail: str = "") -> int:
    """One error line (and, separately, the log lines that explain it)."""
    print(f"ollama-conformance: error: {summary}", file=sys.stderr)
    if detail:
        print(detail, file=sys.stderr)
    return EXIT_FAILED


def _build(args: argparse.Namespace) -> int:
    tag = _tag(args.ollama_version)
    started = time.monotonic()
    try:
        binary = build_ollama(tag, cache_dir=args.cache_dir, force=args.force, timeout=args.timeout)
    except BuildError as exc:
        return _fail(exc.summary, exc.tail)
    print(f"{binary}  ({time.monotonic() - started:.0f} s)")
    return EXIT_OK


def _resolve_binary(args: argparse.Namespace) -> tuple[Path, str]:
    if args.binary is not None:
        if not args.binary.is_file():
            raise UsageError(f"--binary {args.binary} does not exist")
        return args.binary, args.ollama_version or "unknown"
    if not args.ollama_version:
        raise UsageError("give --version (a cached build) or --binary")
    tag = _tag(args.ollama_version)
    binary = cached_binary(tag, args.cache_dir)
    if binary is None:
        root = args.cache_dir or cache_root()
        raise UsageError(
            f"Ollama {tag} is not built in {root}; run: ollama-conformance ollama build "
            f"--version {tag}"
        )
    return binary, tag


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _start(args: argparse.Namespace) -> int:
    binary, label = _resolve_binary(args)
    if args.pid_file is not None and not args.detach:
        raise UsageError("--pid-file only makes sense with --detach")
    try:
        server = start_ollama(
            binary,
            port=args.port,
            models_dir=args.models_dir,
            log_path=args.log_file,
            noprune=args.noprune,
            startup_timeout=args.startup_timeout,
        )
    except StartError as exc:
        first, _, rest = str(exc).partition("\n")
        return _fail(first, rest)
    try:
        print(f"url {server.url}")
        print(f"pid {server.pid}")
        print(f"version {server.version()}")
        print(f"log {server.log_path}")
        if args.provision:
            for model in provision(server.url):
                print(f"model {model.name} ({model.variant}, {model.digest})")
        sys.stdout.flush()
    except (ProvisionError, OSError) as exc:
        server.stop()
        return _fail(f"provisioning failed: {exc}")
    if args.detach:
        pid_file = args.pid_file or Path(f"ollama-{label}.pid")
        _write_pid_file(pid_file, server, label)
        print(f"pid-file {pid_file}")
        return EXIT_OK
    return _run_foreground(server)


def _run_foreground(server: OllamaProcess) -> int:
    """Wait until Ctrl-C (or SIGTERM) or until the server exits by itself; then clean up."""
    assert server.process is not None
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = server.process.wait()
        server.stop()
        return _fail(f"ollama exited by itself with code {code}", server.log_tail())
    except KeyboardInterrupt:
        server.stop()
        print("stopped", file=sys.stderr)
        return EXIT_OK
    finally:
        signal.signal(signal.SIGTERM, previous)


def _write_pid_file(path: Path, server: OllamaProcess, label: str) -> None:
    record = {
        "pid": server.pid,
        "url": server.url,
        "version": label,
        "binary": str(server.binary),
        "log": str(server.log_path),
        "models_dir": str(server.models_dir),
        "home_dir": str(server.home_dir),
        "owned_dirs": [str(d) for d in server.owned_dirs],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")


def _is_our_server(pid: int, binary: str) -> bool:
    """Guard against pid reuse: the process must still be ``<binary> serve``."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return pid_alive(pid)  # no /proc (not Linux): trust the pid file
    # A script binary (tests) runs as "<interpreter> <script> serve"; a real one as "<bin> serve".
    words = [a.decode(errors="replace") for a in argv]
    return "serve" in words and binary in words[:2]


def _stop(args: argparse.Namespace) -> int:
    try:
        record = json.loads(args.pid_file.read_text())
        pid = int(record["pid"])
    except FileNotFoundError:
        raise UsageError(f"no pid file at {args.pid_file}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{args.pid_file} is not a pid file written by start: {exc}") from None
    if pid_alive(pid) and not _is_our_server(pid, str(record.get("binary", ""))):
        return _fail(f"pid {pid} is no longer the Ollama server of {args.pid_file}; not stopping")
    killed = stop_pid(pid, timeout=args.timeout)
    for folder in record.get("owned_dirs", []):
        shutil.rmtree(folder, ignore_errors=True)
    args.pid_file.unlink(missing_ok=True)
    print(f"stopped {pid}" + (" (killed)" if killed else ""))
    return EXIT_OK
