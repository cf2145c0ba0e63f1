"""The whole suite against real Ollama releases: no FAIL that is not explained.

For each release (v0.24.0 and v0.12.11 by default, ``$OLLAMA_CONFORMANCE_VERSIONS`` to change)
this starts the cached build on a fresh model store, provisions the tiny GGUF models, and

* runs ``ollama-conformance run`` once with the model that stops by itself
  (``conformance-tiny-stop``) and once with the one that only stops at a bound
  (``conformance-tiny-cycle``), with ``--expect fixtures/expectations/ollama-<version>.toml``: any
  result that fails the run is a suite bug until shown to be Ollama's deviation and recorded
  there, so the test fails with the list;
* runs the differential corpus against it and against the reference server emulating the same
  release: every difference must be explained (``differential-<version>.toml``) or a known open
  reference-server bug;
* compares it with its recorded transcripts, which must still be what it answers (otherwise they
  are stale: re-record them).

It takes about a minute per release and model, so it runs only when selected: ``pytest -m ollama
tests/test_real_ollama.py`` (``tox -e ollama`` builds the binaries first). A release that is not
built in the cache is skipped with the command that builds it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.differential import compare_runs, live_side, load_known
from conformance.ollama.build import cache_root, cached_binary, normalize_version
from conformance.ollama.process import OllamaProcess, start_ollama
from conformance.ollama.provision import provision
from conformance.reference.config import ReferenceConfig
from conformance.reference.server import start_background
from conformance.transcripts import side_from_transcripts

pytestmark = pytest.mark.ollama

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = [
    v.strip()
    for v in os.environ.get("OLLAMA_CONFORMANCE_VERSIONS", "v0.24.0,v0.12.11").split(",")
    if v.strip()
]
COMPLETION_MODELS = ("conformance-tiny-stop", "conformance-tiny-cycle")
EMBED_MODEL = "conformance-tiny-embed"
#: One suite run on a tiny model takes well under two minutes; a hung server must not hang CI.
RUN_TIMEOUT = 900


def expectations_file(version: str) -> Path:
    return ROOT / "fixtures" / "expectations" / f"ollama-{version}.toml"


@pytest.fixture(scope="module", params=VERSIONS)
def real(request: pytest.FixtureRequest) -> Iterator[tuple[str, OllamaProcess]]:
    """A fresh, provisioned server of one release (the version without its ``v``)."""
    if "ollama" not in (request.config.getoption("markexpr") or ""):
        pytest.skip(
            "runs the whole suite against real Ollama (2-3 minutes); select it with "
            "`pytest -m ollama tests/test_real_ollama.py` or `tox -e ollama`"
        )
    tag = normalize_version(request.param)
    binary = cached_binary(tag)
    if binary is None:
        pytest.skip(
            f"Ollama {tag} is not built in {cache_root()}; build it with "
            f"`ollama-conformance ollama build --version {tag}`"
        )
    with start_ollama(binary) as server:
        provision(server.url)
        yield tag[1:], server


@pytest.mark.timeout(RUN_TIMEOUT)
@pytest.mark.parametrize("model", COMPLETION_MODELS)
def test_suite_has_no_unexplained_fail(
    real: tuple[str, OllamaProcess], model: str, tmp_path: Path
) -> None:
    version, server = real
    expect = expectations_file(version)
    assert expect.is_file(), f"{expect} is missing: every release needs its expectations file"
    command = [
        sys.executable, "-m", "conformance", "run",
        "--target", server.url,
        "--model", model,
        "--embed-model", EMBED_MODEL,
        "--expect", str(expect),
        "--report-dir", str(tmp_path),
        "--run-id", f"real-{version.replace('.', '-')}-{model.rsplit('-', 1)[-1]}",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=tmp_path, check=False
    )
    report_file = tmp_path / "report.json"
    assert report_file.is_file(), f"no report (exit {done.returncode}):\n{done.stderr[-3000:]}"
    report = json.loads(report_file.read_text(encoding="utf-8"))
    failing = [
        f"{r['verdict']} {r['nodeid']} [{r['requirement']}]\n    {r['message'][:800]}"
        for r in report["results"]
        if r["fails_run"]
    ]
    assert failing == [], (
        f"{len(failing)} unexplained result(s) on real Ollama {version} with {model}: each is a "
        f"suite bug, or a real deviation to record in {expect.name}:\n" + "\n".join(failing)
    )
    stale = report.get("stale_expectations") or []
    assert stale == [], f"entries of {expect.name} that now pass (remove them): {stale}"
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_reference_server_agrees_with_real_ollama(real: tuple[str, OllamaProcess]) -> None:
    from test_transcripts import OPEN_REFERENCE_BUGS

    version, server = real
    ours = live_side("a", server.url, model="conformance-tiny-cycle", embed_model=EMBED_MODEL)
    config = ReferenceConfig(version=version, token_rate=0.0, load_time=0.0)
    with start_background(config) as reference_server:
        reference = live_side(
            "b", reference_server.url, model="tiny-completion", embed_model="tiny-embed"
        )
    known_file = ROOT / "fixtures" / "expectations" / f"differential-{version}.toml"
    assert known_file.is_file(), f"{known_file} is missing"
    result = compare_runs(ours, reference, load_known(known_file))
    open_bugs = OPEN_REFERENCE_BUGS.get(version, {})
    new = [d.line() for d in result.unexplained if (d.probe, d.aspect) not in open_bugs]
    assert new == [], "the reference server differs from real Ollama: fix it or explain it"
    assert result.stale == [], f"stale entries in {known_file}"


def test_recorded_transcripts_are_current(real: tuple[str, OllamaProcess]) -> None:
    version, server = real
    recorded = ROOT / "fixtures" / "transcripts" / version
    assert recorded.is_dir(), (
        f"no transcripts for {version}: ollama-conformance transcripts record "
        f"--version v{version} --out {recorded}"
    )
    now = live_side("b", server.url, model="conformance-tiny-cycle", embed_model=EMBED_MODEL)
    result = compare_runs(side_from_transcripts("a", recorded), now)
    assert [d.line() for d in result.differences] == [], (
        f"real Ollama {version} no longer answers as recorded; re-record: ollama-conformance "
        f"transcripts record --version v{version} --out {recorded}"
    )
