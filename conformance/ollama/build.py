"""Build a real Ollama release from the Go module proxy into a per-version cache.

Why ``go install module@version`` and not a checkout: the Go module proxy is the one source of
Ollama's code that the project's machines (and CI) can reach. Two things make the plain command
insufficient, and this module handles both:

* ``version.Version`` is only set by the release build scripts; a plain build reports ``0.0.0`` from
  ``/api/version``, and the suite judges a server by the version it reports. We pass
  ``-ldflags "-X github.com/ollama/ollama/version.Version=<version>"``.
* Go module zips leave out every ``vendor/`` folder, and llama.cpp keeps single-header libraries
  there (nlohmann/json, stb_image, miniaudio) that its C++ sources include. We put them on the
  include path through ``CGO_CPPFLAGS``: nlohmann and stb come from the system (Debian packages
  ``nlohmann-json3-dev`` and ``libstb-dev``), miniaudio is taken from the ``miniaudio`` sdist on
  PyPI, and ``$OLLAMA_CONFORMANCE_CGO_INCLUDE`` can name folders that already hold them.

Binaries live at ``<cache>/<tag>/ollama`` with ``<cache>`` = ``$OLLAMA_CONFORMANCE_CACHE`` or
``~/.cache/ollama-conformance/ollama``: outside the repository, shared by every checkout, reused
when present. A lock file per version makes a second build of the same version wait for the first
and then reuse its result.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = [
    "MODULE",
    "BuildError",
    "binary_path",
    "build_ollama",
    "cache_root",
    "cached_binary",
    "ensure_vendor_headers",
    "log_tail",
    "normalize_version",
]

MODULE = "github.com/ollama/ollama"
CACHE_ENV = "OLLAMA_CONFORMANCE_CACHE"
INCLUDE_ENV = "OLLAMA_CONFORMANCE_CGO_INCLUDE"
#: How many lines of the build log a failure carries: enough for the compiler's first error.
TAIL_LINES = 40
#: The sdist of these Python bindings ships miniaudio's single header; pinned so builds repeat.
MINIAUDIO_SDIST = "miniaudio==1.71"

#: Headers llama.cpp includes from its own ``vendor/`` folder (absent from module zips), with
#: where to get each one.
VENDOR_HEADERS: dict[str, str] = {
    "nlohmann/json.hpp": "the Debian package nlohmann-json3-dev",
    "nlohmann/json_fwd.hpp": "the Debian package nlohmann-json3-dev",
    "stb/stb_image.h": "the Debian package libstb-dev",
    "miniaudio/miniaudio.h": f"the PyPI sdist {MINIAUDIO_SDIST} (fetched automatically)",
}
SYSTEM_INCLUDE_DIRS = (Path("/usr/include"), Path("/usr/local/include"))

_VERSION = re.compile(r"^v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)$")
_STAMP = "build-info.json"


class BuildError(RuntimeError):
    """A build that could not run or failed; ``tail`` holds the end of the build log, if any."""

    def __init__(self, message: str, *, log_path: Path | None = None, tail: str = "") -> None:
        full = message if not tail else f"{message}\n--- last lines of {log_path} ---\n{tail}"
        super().__init__(full)
        self.summary = message
        self.log_path = log_path
        self.tail = tail


def normalize_version(version: str) -> str:
    """The release tag for a version: ``0.24.0`` and ``v0.24.0`` both give ``v0.24.0``."""
    match = _VERSION.match(version.strip())
    if match is None:
        raise ValueError(f"not an Ollama release version: {version!r} (expected e.g. v0.24.0)")
    return "v" + match.group(1)


def cache_root() -> Path:
    """The folder holding one sub-folder per built version."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "ollama-conformance" / "ollama"


def binary_path(version: str, cache_dir: Path | None = None) -> Path:
    """Where the binary of a version lives (whether or not it is built)."""
    root = cache_dir if cache_dir is not None else cache_root()
    return root / normalize_version(version) / "ollama"


def _is_current(binary: Path, tag: str) -> bool:
    """True if ``binary`` was built by us for ``tag`` (so it reports the right version).

    A binary without our stamp may come from a plain ``go install`` that reports 0.0.0, so it
    does not count.
    """
    stamp = binary.parent / _STAMP
    if not (binary.is_file() and os.access(binary, os.X_OK) and stamp.is_file()):
        return False
    try:
        info = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return bool(info.get("tag") == tag and info.get("version") == tag[1:])


def cached_binary(version: str, cache_dir: Path | None = None) -> Path | None:
    """The built binary of a version, or None if it has not been built (with our stamp)."""
    tag = normalize_version(version)
    path = binary_path(tag, cache_dir)
    return path if _is_current(path, tag) else None


def log_tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a text file ("" if it cannot be read)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def _exclusive_lock(lock_path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path``; wait at most ``timeout`` seconds for it.

    flock locks die with their process, so a crashed build never leaves a stale lock behind.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise BuildError(
                        f"another build holds {lock_path} for more than {timeout:.0f} s"
                    ) from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _include_env_dirs() -> list[Path]:
    raw = os.environ.get(INCLUDE_ENV, "")
    return [Path(part).expanduser() for part in raw.split(os.pathsep) if part]


def _fetch_miniaudio(dest: Path) -> None:
    """Extract ``miniaudio/miniaudio.h`` from the PyPI sdist into ``dest`` (pip, no install)."""
    with tempfile.TemporaryDirectory(prefix="miniaudio-sdist-") as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--no-binary", ":all:", "--dest", tmp, MINIAUDIO_SDIST,
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        archives = sorted(Path(tmp).glob("*.tar.gz"))
        if result.returncode != 0 or not archives:
            raise BuildError(
                f"could not download {MINIAUDIO_SDIST} to get miniaudio.h "
                f"(pip exit {result.returncode}): {result.stderr.strip()[-300:]}"
            )
        with tarfile.open(archives[0]) as tar:
            member = next(
                (m for m in tar.getmembers() if m.name.endswith("/miniaudio/miniaudio.h")), None
            )
            source = tar.extractfile(member) if member is not None else None
            if source is None:
                raise BuildError(f"{archives[0].name} holds no miniaudio/miniaudio.h")
            target = dest / "miniaudio" / "miniaudio.h"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read())


def ensure_vendor_headers(
    root: Path, *, search: Sequence[Path] | None = None, fetch: bool = True
) -> list[Path]:
    """Make sure every header of ``VENDOR_HEADERS`` is reachable; return include dirs to add.

    ``search`` defaults to ``$OLLAMA_CONFORMANCE_CGO_INCLUDE`` + ``<root>/vendor-include`` + the
    system include dirs. A missing miniaudio header is fetched into ``<root>/vendor-include``; any
    other missing header is an error that names the package to install.
    """
    own = root / "vendor-include"
    dirs = list(search) if search is not None else [*_include_env_dirs(), own]
    candidates = [*dirs, *SYSTEM_INCLUDE_DIRS]

    def missing() -> list[str]:
        return [h for h in VENDOR_HEADERS if not any((d / h).is_file() for d in candidates)]

    absent = missing()
    if fetch and "miniaudio/miniaudio.h" in absent:
        _fetch_miniaudio(own)
        if own not in candidates:
            dirs.append(own)
            candidates.insert(0, own)
        absent = missing()
    if absent:
        wanted = sorted({VENDOR_HEADERS[h] for h in absent})
        raise BuildError(
            f"headers that llama.cpp vendors are missing: {', '.join(absent)}; install "
            f"{' and '.join(wanted)}, or point ${INCLUDE_ENV} at a folder that has them"
        )
    return [d for d in dirs if d.is_dir()]


def _run_logged(cmd: list[str], env: dict[str, str], log_path: Path, timeout: float) -> int:
    """Run ``cmd`` with output appended to ``log_path``; kill its whole group on timeout."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # so a timeout can end the compilers go started, too
        )
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            log.write(f"\n[ollama-conformance] build killed after {timeout:.0f} s\n".encode())
            return -signal.SIGKILL


def _reported_version(binary: Path) -> str:
    """What ``ollama --version`` says about the client, asked with no server to reach.

    Port 9 (discard) on loopback refuses at once, so the command only prints its own version.
    """
    env = {**os.environ, "OLLAMA_HOST": "127.0.0.1:9"}
    try:
        result = subprocess.run(
            [str(binary), "--version"],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    found = re.search(r"version is (\S+)", result.stdout + result.stderr)
    return found.group(1) if found else ""


def build_ollama(
    version: str,
    *,
    cache_dir: Path | None = None,
    go: str | None = None,
    force: bool = False,
    timeout: float = 3600.0,
    lock_timeout: float = 7200.0,
    include_dirs: Sequence[Path] | None = None,
) -> Path:
    """Build Ollama ``version`` (e.g. ``v0.24.0``) unless cached; return the binary's path.

    ``include_dirs`` replaces the default header search folders of ``ensure_vendor_headers``.
    Raises BuildError when go or a vendored header is missing, or when the build fails (the error
    then carries the last ``TAIL_LINES`` lines of ``<cache>/<tag>/build.log``).
    """
    tag = normalize_version(version)
    root = cache_dir if cache_dir is not None else cache_root()
    target = binary_path(tag, root)
    if not force and _is_current(target, tag):
        return target
    version_dir = target.parent
    with _exclusive_lock(version_dir / ".build.lock", lock_timeout):
        # Whoever held the lock before us may just have built it.
        if not force and _is_current(target, tag):
            return target
        go_exe = go or shutil.which("go")
        if not go_exe:
            raise BuildError("the go toolchain is not on PATH; install Go to build Ollama")
        includes = ensure_vendor_headers(root, search=include_dirs)
        log_path = version_dir / "build.log"
        ldflags = f"-X {MODULE}/version.Version={tag[1:]}"
        cmd = [go_exe, "install", "-ldflags", ldflags, f"{MODULE}@{tag}"]
        gobin = Path(tempfile.mkdtemp(prefix=".gobin-", dir=version_dir))
        env = dict(os.environ)
        env.update(GOBIN=str(gobin), CGO_ENABLED="1")
        flags = " ".join(f"-I{d}" for d in includes)
        env["CGO_CPPFLAGS"] = f"{env.get('CGO_CPPFLAGS', '')} {flags}".strip()
        header = (
            f"[ollama-conformance] {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n"
            f"[ollama-conformance] GOBIN={gobin} CGO_CPPFLAGS={env['CGO_CPPFLAGS']}\n"
            f"[ollama-conformance] {' '.join(cmd)}\n"
        )
        log_path.write_text(header)
        started = time.monotonic()
        try:
            code = _run_logged(cmd, env, log_path, timeout)
            seconds = time.monotonic() - started
            built = gobin / "ollama"
            if code != 0 or not built.is_file():
                raise BuildError(
                    f"building Ollama {tag} failed (go exit {code}); log: {log_path}",
                    log_path=log_path,
                    tail=log_tail(log_path),
                )
            os.replace(built, target)
        finally:
            shutil.rmtree(gobin, ignore_errors=True)
        reported = _reported_version(target)
        if reported and reported != tag[1:]:
            raise BuildError(f"{target} reports version {reported!r}, expected {tag[1:]!r}")
        stamp = {
            "tag": tag,
            "version": tag[1:],
            "command": cmd,
            "cgo_cppflags": env["CGO_CPPFLAGS"],
            "seconds": round(seconds, 1),
            "reported_version": reported,
        }
        (version_dir / _STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
        with open(root / "builds.txt", "a") as summary:
            summary.write(f"{tag} rc=0 seconds={seconds:.0f} ldflags=yes\n")
        return target
