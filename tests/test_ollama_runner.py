"""Real Ollama as a target: build cache, isolated process, provisioning.

Most tests need no Go and no Ollama: they drive the pieces with a fake ``go`` on PATH, a fake
``ollama serve`` written in Python, and an ``httpx.MockTransport``. The tests marked ``ollama`` run
the real binary and are skipped, with the reason, when that version has not been built into the
cache (``ollama-conformance ollama build --version v0.24.0``), so the default run stays fast.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from conformance.cli import main as cli_main
from conformance.models.tiny_gguf import (
    expected_completion,
    expected_embedding,
    model_digest,
    render_chat,
)
from conformance.ollama import build as build_mod
from conformance.ollama.build import (
    BuildError,
    binary_path,
    build_ollama,
    cache_root,
    cached_binary,
    ensure_vendor_headers,
    normalize_version,
)
from conformance.ollama.process import StartError, isolated_env, pid_alive, start_ollama, stop_pid
from conformance.ollama.provision import DEFAULT_MODELS, ProvisionError, provision

#: Versions the real-binary tests try; each one is skipped unless built.
REAL_VERSIONS = os.environ.get("OLLAMA_CONFORMANCE_VERSIONS", "v0.24.0,v0.12.11").split(",")


def _executable(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def headers(tmp_path: Path) -> list[Path]:
    """A folder with (empty) stand-ins for every vendored header, so no download happens."""
    folder = tmp_path / "include"
    for name in build_mod.VENDOR_HEADERS:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("/* stand-in */\n")
    return [folder]


@pytest.fixture
def fake_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``go`` on PATH that logs its calls and installs a fake ``ollama`` into $GOBIN."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "go-calls.txt"
    _executable(
        bindir / "go",
        f"""
        #!/bin/sh
        echo "$@" >> {calls}
        echo "CGO_CPPFLAGS=$CGO_CPPFLAGS"
        sleep "${{FAKE_GO_SLEEP:-0}}"
        version=$(echo "$@" | sed -n 's/.*version.Version=\\([^ ]*\\).*/\\1/p')
        printf '#!/bin/sh\\necho "Warning: client version is %s"\\n' "$version" > "$GOBIN/ollama"
        chmod +x "$GOBIN/ollama"
        """,
    )
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return calls


# --- cache paths ----------------------------------------------------------------------------


def test_versions_normalise_to_release_tags() -> None:
    assert normalize_version("0.24.0") == "v0.24.0"
    assert normalize_version(" v0.12.11 ") == "v0.12.11"
    assert normalize_version("v0.12.6-rc0") == "v0.12.6-rc0"
    for bad in ("latest", "0.24", "v1.2.3.4", "main"):
        with pytest.raises(ValueError, match="not an Ollama release version"):
            normalize_version(bad)


def test_cache_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_CONFORMANCE_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "ollama-conformance" / "ollama"
    monkeypatch.setenv("OLLAMA_CONFORMANCE_CACHE", str(tmp_path / "c"))
    assert binary_path("0.24.0") == tmp_path / "c" / "v0.24.0" / "ollama"
    assert binary_path("v0.24.0", tmp_path / "x") == tmp_path / "x" / "v0.24.0" / "ollama"


def test_a_binary_without_our_stamp_is_not_reused(tmp_path: Path) -> None:
    # A plain `go install` (no ldflags) reports 0.0.0; only stamped builds count as cached.
    target = binary_path("v1.2.3", tmp_path)
    target.parent.mkdir(parents=True)
    _executable(target, "#!/bin/sh\n")
    assert cached_binary("v1.2.3", tmp_path) is None


# --- building with a fake go ----------------------------------------------------------------


def test_build_installs_stamps_and_reuses(
    tmp_path: Path, fake_go: Path, headers: list[Path]
) -> None:
    cache = tmp_path / "cache"
    binary = build_ollama("1.2.3", cache_dir=cache, include_dirs=headers)
    assert binary == cache / "v1.2.3" / "ollama"
    assert cached_binary("v1.2.3", cache) == binary
    call = fake_go.read_text().splitlines()
    assert call == [
        "install -ldflags -X github.com/ollama/ollama/version.Version=1.2.3 "
        "github.com/ollama/ollama@v1.2.3"
    ]
    stamp = json.loads((binary.parent / "build-info.json").read_text())
    assert stamp["reported_version"] == "1.2.3"
    log = (binary.parent / "build.log").read_text()
    assert f"CGO_CPPFLAGS=-I{headers[0]}" in log
    assert "v1.2.3 rc=0" in (cache / "builds.txt").read_text()
    # Second call: cached, go is not run again.
    assert build_ollama("v1.2.3", cache_dir=cache, include_dirs=headers) == binary
    assert len(fake_go.read_text().splitlines()) == 1
    assert not list((cache / "v1.2.3").glob(".gobin-*"))


def test_concurrent_builds_of_one_version_run_go_once(
    tmp_path: Path, fake_go: Path, headers: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_GO_SLEEP", "1")
    cache = tmp_path / "cache"
    results: list[Path] = []

    def run() -> None:
        results.append(build_ollama("v1.2.3", cache_dir=cache, include_dirs=headers))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 3 and len(set(results)) == 1
    assert len(fake_go.read_text().splitlines()) == 1


def test_build_failure_carries_the_log_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, headers: list[Path]
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _executable(
        bindir / "go",
        """
        #!/bin/sh
        i=1
        while [ $i -le 100 ]; do echo "compile line $i"; i=$((i+1)); done
        echo "fatal error: nlohmann/json_fwd.hpp: No such file or directory" >&2
        exit 2
        """,
    )
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(BuildError) as caught:
        build_ollama("v1.2.3", cache_dir=tmp_path / "cache", include_dirs=headers)
    error = caught.value
    assert "go exit 2" in error.summary
    lines = error.tail.splitlines()
    assert len(lines) == 40
    assert lines[-1] == "fatal error: nlohmann/json_fwd.hpp: No such file or directory"
    assert lines[0] == "compile line 62"
    assert "compile line 61\n" not in str(error)
    assert cached_binary("v1.2.3", tmp_path / "cache") is None


def test_build_without_go_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no go here
    with pytest.raises(BuildError, match="go toolchain is not on PATH"):
        build_ollama("v1.2.3", cache_dir=tmp_path / "cache")


def test_missing_vendored_headers_name_the_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build_mod, "SYSTEM_INCLUDE_DIRS", ())
    with pytest.raises(BuildError) as caught:
        ensure_vendor_headers(tmp_path, search=[tmp_path / "empty"], fetch=False)
    message = str(caught.value)
    assert "nlohmann-json3-dev" in message and "libstb-dev" in message
    assert "OLLAMA_CONFORMANCE_CGO_INCLUDE" in message


# --- the process ----------------------------------------------------------------------------


def _dummy(tmp_path: Path, body: str) -> subprocess.Popen[bytes]:
    script = tmp_path / "dummy.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.Popen([sys.executable, str(script)], start_new_session=True)


def _gone_or_zombie(pid: int) -> bool:
    """Dead: a reparented zombie waits for an init that may never reap it, so it counts too."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_stop_pid_terminates_a_process_group(tmp_path: Path) -> None:
    proc = _dummy(
        tmp_path,
        f"""
        import pathlib, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        pathlib.Path({str(tmp_path / "child.pid")!r}).write_text(str(child.pid))
        time.sleep(60)
        """,
    )
    deadline = time.monotonic() + 10
    while not (tmp_path / "child.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int((tmp_path / "child.pid").read_text())
    assert stop_pid(proc.pid, timeout=5) is False
    proc.wait(timeout=5)
    assert not pid_alive(proc.pid)
    assert _gone_or_zombie(child)  # the grandchild (think: a runner) went with the group


def test_stop_pid_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    proc = _dummy(
        tmp_path,
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(60)
        """,
    )
    time.sleep(0.3)
    started = time.monotonic()
    assert stop_pid(proc.pid, timeout=0.5) is True
    assert time.monotonic() - started < 5
    assert proc.wait(timeout=5) == -signal.SIGKILL  # pid_alive left the status to Popen
    assert stop_pid(proc.pid) is False  # already gone: nothing to do


FAKE_SERVE = """
    #!{python}
    import json, os, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer

    assert sys.argv[1:] == ["serve"], sys.argv
    with open(os.path.join(os.environ["HOME"], "env.json"), "w") as out:
        json.dump(dict(os.environ), out)
    print("fake ollama starting", flush=True)
    if os.environ.get("FAKE_FAIL"):
        sys.exit(3)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({{"version": "9.9.9"}}).encode()
            self.send_response(200 if self.path == "/api/version" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

    host, port = os.environ["OLLAMA_HOST"].rsplit(":", 1)
    HTTPServer((host, int(port)), Handler).serve_forever()
"""


@pytest.fixture
def fake_ollama(tmp_path: Path) -> Path:
    return _executable(tmp_path / "ollama", FAKE_SERVE.format(python=sys.executable))


def test_start_isolates_waits_and_stops(fake_ollama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_KEEP_ALIVE", "99h")  # a user's setting must not leak in
    with start_ollama(fake_ollama, startup_timeout=20) as server:
        assert server.version() == "9.9.9"
        env = json.loads((server.home_dir / "env.json").read_text())
        assert env["OLLAMA_HOST"] == f"127.0.0.1:{server.port}"
        assert env["OLLAMA_MODELS"] == str(server.models_dir)
        assert env["HOME"] == str(server.home_dir) != os.environ.get("HOME")
        assert "OLLAMA_KEEP_ALIVE" not in env and "OLLAMA_NOPRUNE" not in env
        scratch = server.owned_dirs[0]
        pid = server.pid
    assert not pid_alive(pid)
    assert not scratch.exists()


def test_start_failure_reports_the_log(fake_ollama: Path, tmp_path: Path) -> None:
    with pytest.raises(StartError, match="exited with code 3") as caught:
        start_ollama(fake_ollama, env={"FAKE_FAIL": "1"}, log_path=tmp_path / "logs" / "s.log")
    assert "fake ollama starting" in str(caught.value)


def test_isolated_env_options(tmp_path: Path) -> None:
    env = isolated_env(port=1, models_dir=tmp_path, home_dir=tmp_path, noprune=True)
    assert env["OLLAMA_NOPRUNE"] == "1"


# --- provisioning ---------------------------------------------------------------------------


def test_provision_uploads_missing_blobs_and_creates() -> None:
    seen: list[tuple[str, str, object]] = []
    stored: set[str] = {model_digest("cycle")}  # already on the server: no upload

    def handler(request: httpx.Request) -> httpx.Response:
        body: object = None
        if request.url.path == "/api/create":
            body = json.loads(request.content)
        seen.append((request.method, request.url.path, body))
        if request.url.path.startswith("/api/blobs/"):
            digest = request.url.path.rsplit("/", 1)[1]
            if request.method == "HEAD":
                return httpx.Response(200 if digest in stored else 404)
            stored.add(digest)
            return httpx.Response(201)
        return httpx.Response(200, json={"status": "success"})

    made = provision("http://test", transport=httpx.MockTransport(handler))
    assert [m.name for m in made] == list(DEFAULT_MODELS)
    assert [m.uploaded for m in made] == [True, False, True]
    creates = [body for method, path, body in seen if path == "/api/create"]
    assert creates[0] == {
        "model": "conformance-tiny-stop",
        "files": {"model.gguf": model_digest("stop")},
        "stream": False,
        "template": "{{ range .Messages }}{{ .Content }}{{ end }}",
    }
    assert isinstance(creates[2], dict) and "template" not in creates[2]  # embed: no chat


def test_provision_reports_a_refusal() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(200)
        return httpx.Response(400, json={"error": "supplied file was not in GGUF format"})

    with pytest.raises(ProvisionError, match=r"400.*not in GGUF format"):
        provision("http://test", {"x": "stop"}, transport=httpx.MockTransport(handler))
    with pytest.raises(ValueError, match="unknown tiny model variant"):
        provision("http://test", {"x": "nope"})


# --- command line ---------------------------------------------------------------------------


def test_cli_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_CONFORMANCE_CACHE", str(tmp_path))
    assert cli_main(["ollama", "start", "--version", "v9.9.9"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "not built" in err and "ollama build --version v9.9.9" in err
    assert cli_main(["ollama", "stop", "--pid-file", str(tmp_path / "none.pid")]) == 2
    assert "no pid file" in capsys.readouterr().err
    assert cli_main(["ollama", "build", "--version", "latest"]) == 2


def test_cli_detach_and_stop(
    fake_ollama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pid_file = tmp_path / "o.pid"
    argv = ["ollama", "start", "--binary", str(fake_ollama), "--detach", "--pid-file"]
    assert cli_main([*argv, str(pid_file)]) == 0
    out = capsys.readouterr().out
    assert "url http://127.0.0.1:" in out and "version 9.9.9" in out
    record = json.loads(pid_file.read_text())
    try:
        assert pid_alive(record["pid"])
        assert cli_main(["ollama", "stop", "--pid-file", str(pid_file)]) == 0
        assert not pid_alive(record["pid"])
        assert not pid_file.exists()
        assert not any(Path(d).exists() for d in record["owned_dirs"])
    finally:  # a failed assertion must not leave the detached server behind
        stop_pid(record["pid"], timeout=2)


# --- the real binary ------------------------------------------------------------------------


@pytest.fixture(params=REAL_VERSIONS)
def real_binary(request: pytest.FixtureRequest) -> tuple[str, Path]:
    tag = normalize_version(request.param)
    binary = cached_binary(tag)
    if binary is None:
        pytest.skip(
            f"Ollama {tag} is not built in {cache_root()}; build it with "
            f"`ollama-conformance ollama build --version {tag}`"
        )
    return tag, binary


@pytest.mark.ollama
def test_real_ollama_start_provision_generate(real_binary: tuple[str, Path]) -> None:
    tag, binary = real_binary
    with start_ollama(binary) as server:
        assert server.version() == tag[1:]  # the ldflags took: not 0.0.0
        made = provision(server.url)
        assert {m.name for m in made} == set(DEFAULT_MODELS)
        client = httpx.Client(base_url=server.url, timeout=120)
        tags = client.get("/api/tags").json()
        assert {m["name"] for m in tags["models"]} == {f"{n}:latest" for n in DEFAULT_MODELS}

        def generate(model: str, prompt: str, **options: object) -> tuple[str, str]:
            body = {"model": model, "prompt": prompt, "raw": True, "stream": False}
            answer = client.post("/api/generate", json={**body, "options": options}).json()
            return answer["response"], answer["done_reason"]

        assert generate("conformance-tiny-stop", "a") == expected_completion("stop", "a")
        assert generate("conformance-tiny-cycle", "a", num_predict=5) == ("bcdef", "length")
        assert generate("conformance-tiny-cycle", "a", num_predict=30, stop=["g"]) == (
            expected_completion("cycle", "a", 30, ["g"])
        )
        messages = [{"role": "system", "content": "x"}, {"role": "user", "content": "a"}]
        chat = client.post(
            "/api/chat",
            json={"model": "conformance-tiny-stop", "messages": messages, "stream": False},
        ).json()
        assert chat["message"]["content"] == expected_completion("stop", render_chat(messages))[0]
        embed = client.post(
            "/api/embed", json={"model": "conformance-tiny-embed", "input": ["abc", "Hello!"]}
        ).json()
        assert embed["embeddings"] == [expected_embedding("abc"), expected_embedding("Hello!")]
        # Provisioning again finds the blobs and only re-creates.
        assert not any(m.uploaded for m in provision(server.url))
        client.close()
    assert not pid_alive(server.pid)
