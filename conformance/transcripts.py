"""Transcripts: real Ollama's answers, recorded once and kept as files, and replayed.

The suite's idea of Ollama must be checked against the real thing, but building Ollama takes Go,
a C++ toolchain and minutes. Two kinds of recordings keep what one real release answered:

* the differential corpus (:data:`conformance.differential.CORPUS`), one file per request in
  ``fixtures/transcripts/<version>/<probe id>.json``, made by ``ollama-conformance transcripts
  record``: any machine can validate real answers against the contract of their version, compare
  a server with them (``ollama-conformance differential --a fixtures/transcripts/0.24.0 --b URL``)
  or serve them from a fake server (:class:`ReplayServer`);
* a whole run of the suite, through a recording proxy (:class:`RecordingProxy`), in
  ``fixtures/transcripts/<version>/suite/``, made by ``transcripts record-suite``: replaying it to
  the current suite (this module is also a pytest plugin: ``-p conformance.transcripts
  --replay-suite DIR``) shows whether any check would fail real Ollama, without Ollama.

Each exchange holds the request, the status, the headers that matter, the body or the NDJSON lines
with their arrival times relative to the request, and every file says which version answered and
when. Paths of the recording machine (the server's ``OLLAMA_MODELS``, which Ollama puts into error
strings and ``/api/show``) are replaced by ``<OLLAMA_MODELS>`` before anything is written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

from conformance.client import Bounds, Client, check_reachable
from conformance.differential import (
    CORPUS,
    PROBES,
    Observation,
    Params,
    Side,
    request_record,
    run_corpus,
    scrub_text,
    scrub_value,
)
from conformance.exchange import parse_json

__all__ = [
    "FORMAT",
    "RecordingProxy",
    "ReplayServer",
    "Transcript",
    "load_suite_recording",
    "load_transcripts",
    "record_corpus",
    "record_release",
    "register",
    "side_from_transcripts",
    "suite_pytest_args",
    "transcripts_root",
]

#: Version of the file layout; bump it when a field changes meaning.
FORMAT = 1
#: The run id of recorded suite runs, so scratch model names are ``conformance-transcripts-<n>``.
SUITE_RUN_ID = "transcripts"


def transcripts_root() -> Path:
    """``fixtures/transcripts`` of this checkout."""
    return Path(__file__).resolve().parent.parent / "fixtures" / "transcripts"


@dataclass
class Transcript:
    """One recorded exchange of one Ollama version."""

    version: str
    recorded_at: str
    params: Params
    observation: Observation
    path: Path | None = None

    @property
    def probe(self) -> str:
        return self.observation.probe

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": self.version,
            "recorded_at": self.recorded_at,
            "probe": self.probe,
            "params": self.params.to_dict(),
            "exchange": self.observation.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: Path | None = None) -> Transcript:
        if data.get("format") != FORMAT:
            raise ValueError(f"{path}: transcript format {data.get('format')!r}, want {FORMAT}")
        return cls(
            version=str(data["version"]),
            recorded_at=str(data["recorded_at"]),
            params=Params.from_dict(data["params"]),
            observation=Observation.from_dict(data["exchange"]),
            path=path,
        )


def load_transcripts(folder: Path) -> list[Transcript]:
    """Every transcript in ``folder``, in corpus order (unknown probes last, by name)."""
    found = [
        Transcript.from_dict(json.loads(p.read_text(encoding="utf-8")), p)
        for p in sorted(folder.glob("*.json"))
    ]
    for t in found:
        probe = PROBES.get(t.probe)
        if probe is not None:  # judge by the corpus as it is now, not as it was when recorded
            t.observation.endpoint = probe.endpoint
    order = {p.id: i for i, p in enumerate(CORPUS)}
    return sorted(found, key=lambda t: (order.get(t.probe, len(order)), t.probe))


def side_from_transcripts(label: str, folder: Path) -> Side:
    """A differential side that replays a transcripts folder instead of asking a server."""
    transcripts = load_transcripts(folder)
    if not transcripts:
        raise ValueError(f"no transcripts in {folder}")
    first = transcripts[0]
    return Side(
        label=label,
        where=str(folder),
        version=first.version,
        params=first.params,
        observations=[t.observation for t in transcripts],
    )


def _write_json(path: Path, data: Any) -> None:
    """Pretty but compact enough: one line per stream line and per small list."""
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def record_corpus(
    url: str,
    out: Path,
    *,
    model: str,
    embed_model: str,
    scrub: Sequence[str] = (),
    bounds: Bounds | None = None,
) -> list[Path]:
    """Run the corpus against ``url`` and write one transcript per probe into ``out``.

    Transcripts of probes the corpus no longer has are removed, so a folder always mirrors the
    current corpus. Returns the written paths.
    """
    out.mkdir(parents=True, exist_ok=True)
    params = Params(model=model, embed_model=embed_model, nonce=secrets.token_hex(8))
    with Client(url, bounds=bounds or Bounds(total_timeout=120.0)) as client:
        value, _ = client.get("/api/version").json()
        version = value.get("version") if isinstance(value, dict) else None
        if not isinstance(version, str):
            raise ValueError(f"{url} did not report its version")
        recorded_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        observations = run_corpus(client, params, scrub=scrub)
    written: list[Path] = []
    for obs in observations:
        path = out / f"{obs.probe}.json"
        _write_json(path, Transcript(version, recorded_at, params, obs).to_dict())
        written.append(path)
    keep = {p.name for p in written}
    for stale in out.glob("*.json"):
        if stale.name not in keep:
            stale.unlink()
    return written


def record_release(version: str, out: Path, *, cache_dir: Path | None = None) -> list[Path]:
    """Start a cached build of ``version`` on a fresh model store, provision, record, stop.

    A fresh server makes the recording repeatable: nothing loaded, no models but the tiny ones.
    """
    from conformance.ollama.build import cache_root, cached_binary, normalize_version
    from conformance.ollama.process import start_ollama
    from conformance.ollama.provision import provision

    tag = normalize_version(version)
    binary = cached_binary(tag, cache_dir)
    if binary is None:
        raise FileNotFoundError(
            f"Ollama {tag} is not built in {cache_dir or cache_root()}; run: "
            f"ollama-conformance ollama build --version {tag}"
        )
    with start_ollama(binary) as server:
        provision(server.url)
        scrub = [str(server.models_dir), str(server.models_dir.resolve()), str(server.home_dir)]
        return record_corpus(
            server.url,
            out,
            model="conformance-tiny-cycle",
            embed_model="conformance-tiny-embed",
            scrub=scrub,
        )


# --------------------------------------------------------------------------------------------
# Replay


def request_key(record: Mapping[str, Any]) -> str:
    """What identifies a stored request for replay: method, path and body.

    JSON is canonicalised (key order does not matter), so a replayed client may serialise
    differently; a summarised body is matched by its sha256.
    """
    method, path = str(record.get("method", "GET")).upper(), str(record.get("path", "/"))
    origin = (record.get("headers") or {}).get("origin")
    if origin:  # the same GET /api/version is a different request from a foreign origin
        path = f"{path} origin={origin}"
    if "json" in record:
        body = json.dumps(record["json"], sort_keys=True, separators=(",", ":"))
    elif "body_summary" in record:
        body = "sha256:" + str(record["body_summary"].get("sha256", ""))
    else:
        body = str(record.get("body", ""))
    return f"{method} {path} {body}"


def live_request_key(
    method: str, path: str, body: bytes | None, headers: Mapping[str, str] | None = None
) -> str:
    """The key of an incoming request, computed the way :func:`request_record` stores it."""
    return request_key(request_record(method, path, headers or {}, body if body else None))


@dataclass
class Recorded:
    """One stored answer, and the test that asked for it (for recordings of the suite)."""

    observation: Observation
    test: str = ""


class ReplayServer:
    """A loopback HTTP server that answers each recorded request with its recorded answer.

    A request is matched on method, path and body (see :func:`request_key`); identical requests
    are answered in recorded order and the last answer repeats (a second ``POST`` of a blob gives
    200 where the first gave 201). Anything else gets status 599 and an ``{"error": ...}`` saying
    it was not recorded, and is listed in :attr:`unmatched` under the test that sent it, so a run
    against the replay can tell "the suite disagrees with Ollama" from "never recorded".

    Answers are paced as recorded: headers after ``headers_after`` seconds, each NDJSON line at
    its ``at`` (times ``speed``), because the suite judges time to first token and gaps.
    """

    def __init__(self, recorded: Iterable[Recorded], *, port: int = 0, speed: float = 1.0) -> None:
        self.answers: dict[str, list[tuple[Observation, list[str]]]] = {}
        for entry in recorded:
            key = request_key(entry.observation.request)
            numbers = _SCRATCH.findall(key)
            self.answers.setdefault(_SCRATCH.sub(_SCRATCH_ANY, key), []).append(
                (entry.observation, numbers)
            )
        self.speed = speed
        #: The test whose requests are arriving now (set by the pytest plugin below).
        self.current_test = "<session>"
        self.unmatched: dict[str, list[str]] = {}
        self.matched: dict[str, int] = {}
        self._used: dict[int, set[int]] = {}
        #: Recorded scratch number -> the number the replayed run uses for the same model.
        self._renumber: dict[str, str] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @classmethod
    def from_transcripts(cls, transcripts: Iterable[Transcript], **kwargs: Any) -> ReplayServer:
        return cls((Recorded(t.observation) for t in transcripts), **kwargs)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def answer_for(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str] | None = None,
    ) -> Observation | None:
        """The recorded answer for this request (the next one, for repeated requests).

        Scratch model names (``conformance-transcripts-<n>``) are matched whatever their number,
        and the answer is rewritten to the replayed run's numbers: a test that skips before
        asking for a name would otherwise shift every later name and nothing after it would
        match.
        """
        key = live_request_key(method, path, body, headers)
        general = _SCRATCH.sub(_SCRATCH_ANY, key)
        live = _SCRATCH.findall(key)
        with self._lock:
            test = self.current_test
            entry = self._pick(self.answers.get(general, []), live)
            if entry is None:
                self.unmatched.setdefault(test, []).append(key[:300])
                return None
            self.matched[test] = self.matched.get(test, 0) + 1
            obs, numbers = entry
            for old, new in zip(numbers, live, strict=False):
                self._renumber[old] = new
            if not self._renumber:
                return obs
            return _renumbered(obs, dict(self._renumber))

    def _pick(
        self, entries: list[tuple[Observation, list[str]]], live: list[str]
    ) -> tuple[Observation, list[str]] | None:
        """The first unused recorded answer whose scratch names fit the mapping so far.

        A recorded name already mapped must map to the live name at the same place, and a live
        name already taken must come from the same recorded one; when every fitting answer was
        used, the last one repeats (state that no longer changes).
        """
        taken = {new: old for old, new in self._renumber.items()}

        def fits(numbers: list[str]) -> bool:
            return len(numbers) == len(live) and all(
                self._renumber.get(old, new) == new and taken.get(new, old) == old
                for old, new in zip(numbers, live, strict=True)
            )

        fitting = [i for i, (_obs, numbers) in enumerate(entries) if fits(numbers)]
        if not fitting:
            return None
        fresh = [i for i in fitting if i not in self._used.get(id(entries), set())]
        index = fresh[0] if fresh else fitting[-1]
        self._used.setdefault(id(entries), set()).add(index)
        return entries[index]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        replay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: whoever runs the replay reports what matters

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                obs = replay.answer_for(self.command, self.path, body, dict(self.headers.items()))
                if obs is None:
                    data = b'{"error":"ollama-conformance replay: this request was not recorded"}'
                    self.send_response_only(599)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                    return
                write_observation(self, obs, replay.speed)

            do_GET = do_POST = do_DELETE = do_HEAD = do_PUT = do_OPTIONS = do_PATCH = _serve

        return Handler

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ReplayServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


#: Scratch model names of a recorded suite run (``--run-id transcripts``), number captured.
_SCRATCH = re.compile(rf"(?<=conformance-{SUITE_RUN_ID}-)(\d+)(?!\d)", re.IGNORECASE)
_SCRATCH_ANY = "#"


def _renumbered(obs: Observation, renumber: Mapping[str, str]) -> Observation:
    """A copy of ``obs`` whose scratch names carry the replayed run's numbers."""

    def fix(value: Any) -> Any:
        if isinstance(value, str):
            return _SCRATCH.sub(lambda m: renumber.get(m.group(1), m.group(1)), value)
        if isinstance(value, list):
            return [fix(v) for v in value]
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        return value

    return Observation(
        probe=obs.probe,
        endpoint=obs.endpoint,
        request=obs.request,
        status=obs.status,
        headers=obs.headers,
        body_kind=obs.body_kind,
        body=fix(obs.body),
        lines=fix(obs.lines),
        error=obs.error,
        headers_after=obs.headers_after,
        finished_after=obs.finished_after,
    )


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def write_observation(handler: BaseHTTPRequestHandler, obs: Observation, speed: float) -> None:
    """Write a recorded answer: status, kept headers, then the body or the paced NDJSON lines."""
    started = time.monotonic()

    def wait_until(at: float | None) -> None:
        if at is not None and speed > 0:
            delay = started + at * speed - time.monotonic()
            if delay > 0:
                time.sleep(min(delay, 30.0))

    wait_until(obs.headers_after)
    # Like Go's net/http: a Date header and no Server header.
    handler.send_response_only(obs.status if obs.status is not None else 502)
    handler.send_header("Date", handler.date_time_string())
    for name, value in obs.headers.items():
        if name != "content-length":
            handler.send_header(name, value)
    if obs.lines is not None:
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for line in obs.lines:
            wait_until(float(line.get("at") or 0.0))
            data = _encode(line["value"]) if "value" in line else str(line.get("raw", "")).encode()
            chunk = data + b"\n"
            handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            handler.wfile.flush()
        handler.wfile.write(b"0\r\n\r\n")
        return
    if obs.body_kind == "json":
        data = _encode(obs.body)
    elif obs.body_kind == "text":
        data = str(obs.body).encode()
    else:
        data = b""
    head = handler.command == "HEAD"
    recorded_length = obs.headers.get("content-length")
    length = recorded_length if head and recorded_length is not None else str(len(data))
    if not (obs.status is not None and (obs.status < 200 or obs.status in (204, 304))):
        handler.send_header("Content-Length", length)
    handler.end_headers()
    if not head:
        handler.wfile.write(data)


# --------------------------------------------------------------------------------------------
# Recording a suite run through a proxy

#: Hop-by-hop headers a proxy must not forward (RFC 9110 §7.6.1), plus the lengths it recomputes.
_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
)


class RecordingProxy:
    """A loopback proxy in front of a real server that records every exchange it relays.

    Lines of an NDJSON answer are passed on as they arrive (the suite judges streaming) and stamped
    with their arrival time relative to the forwarded request, the same clock a transcript uses.
    """

    def __init__(self, target: str, *, scrub: Sequence[str] = (), timeout: float = 300.0) -> None:
        self.target = target.rstrip("/")
        self.scrub = list(scrub)
        self.current_test = "<session>"
        self.recorded: list[Recorded] = []
        self._lock = threading.Lock()
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=10.0), trust_env=False, follow_redirects=False
        )
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                proxy.relay(self)

            do_GET = do_POST = do_DELETE = do_HEAD = do_PUT = do_OPTIONS = do_PATCH = _serve

        return Handler

    def relay(self, handler: BaseHTTPRequestHandler) -> None:
        """Forward one request, stream the answer back, record both."""
        test = self.current_test
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        # Host goes through unchanged: Ollama judges it (the DNS-rebinding guard).
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_HEADERS}
        request = self._http.build_request(
            handler.command, self.target + handler.path, headers=headers, content=body
        )
        started = time.monotonic()
        try:
            response = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            handler.send_error(502, f"upstream: {type(exc).__name__}")
            self._keep(test, handler, body, None, error=f"{type(exc).__name__}: {exc}")
            return
        headers_after = time.monotonic() - started
        try:
            # send_response_only: no Server/Date of our own, the upstream's are passed on.
            handler.send_response_only(response.status_code)
            for name, value in response.headers.multi_items():
                if name.lower() not in _HOP_HEADERS:
                    handler.send_header(name, value)
            media = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if media == "application/x-ndjson":
                lines = self._relay_lines(handler, response, started)
                self._keep(test, handler, body, response, lines=lines, times=(headers_after,))
                return
            data = response.read()
            if handler.command == "HEAD":
                if "content-length" in response.headers:
                    handler.send_header("Content-Length", response.headers["content-length"])
            elif not (response.status_code < 200 or response.status_code in (204, 304)):
                handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(data)
            finished = time.monotonic() - started
            self._keep(test, handler, body, response, data=data, times=(headers_after, finished))
        finally:
            response.close()

    def _relay_lines(
        self, handler: BaseHTTPRequestHandler, response: httpx.Response, started: float
    ) -> list[tuple[float, bytes]]:
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        lines: list[tuple[float, bytes]] = []
        pending = b""
        for chunk in response.iter_raw():
            handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            handler.wfile.flush()
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                lines.append((time.monotonic() - started, line))
        if pending:
            lines.append((time.monotonic() - started, pending))
        handler.wfile.write(b"0\r\n\r\n")
        return lines

    def _keep(
        self,
        test: str,
        handler: BaseHTTPRequestHandler,
        body: bytes | None,
        response: httpx.Response | None,
        *,
        data: bytes = b"",
        lines: list[tuple[float, bytes]] | None = None,
        times: tuple[float, ...] = (),
        error: str | None = None,
    ) -> None:
        sent = dict(handler.headers.items())
        obs = Observation(
            probe="suite",
            endpoint=None,
            request=request_record(handler.command, handler.path, sent, body, self.scrub),
            status=response.status_code if response is not None else None,
            headers=(
                {
                    k: response.headers[k]
                    for k in response.headers
                    if (k not in _HOP_HEADERS and k != "date") or k == "content-length"
                }
                if response is not None
                else {}
            ),
            body_kind="empty",
            body=None,
            error=error,
            headers_after=round(times[0], 6) if times else None,
            finished_after=round(times[-1], 6) if len(times) > 1 else None,
        )
        if lines is not None:
            obs.body_kind = "ndjson"
            obs.lines = [_line_entry(at, raw, self.scrub) for at, raw in lines]
            obs.finished_after = round(lines[-1][0], 6) if lines else obs.headers_after
        elif data:
            obs.body_kind, obs.body = _body_entry(data, self.scrub)
        with self._lock:
            self.recorded.append(Recorded(obs, test))

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._http.close()


def _line_entry(at: float, raw: bytes, scrub: Sequence[str]) -> dict[str, Any]:
    value, problem = parse_json(raw.rstrip(b"\r"))
    if problem is None:
        return {"at": round(at, 6), "value": scrub_value(value, scrub)}
    text = scrub_text(raw.decode("utf-8", "replace"), scrub)
    return {"at": round(at, 6), "raw": text, "parse_error": problem}


def _body_entry(data: bytes, scrub: Sequence[str]) -> tuple[str, Any]:
    value, problem = parse_json(data)
    if problem is None:
        return "json", scrub_value(value, scrub)
    try:
        return "text", scrub_text(data.decode("utf-8"), scrub)
    except UnicodeDecodeError:
        return "binary", {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


# --------------------------------------------------------------------------------------------
# Suite recordings: files, and the pytest plugin that makes and replays them

SUITE_DIR = "suite"
SUITE_FILE = "exchanges.ndjson.gz"
SUITE_RUN = "run.json"
_RECORDER = pytest.StashKey[RecordingProxy]()
#: The recorder or replayer of this process, told which test is running.
_ACTIVE: list[RecordingProxy | ReplayServer] = []
_REPLAYER = pytest.StashKey[ReplayServer]()


def save_suite_recording(folder: Path, proxy: RecordingProxy, run: Mapping[str, Any]) -> Path:
    """Write a proxy's exchanges as ``exchanges.ndjson`` (one per line) and ``run.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    # gzip: a suite run is ~500 KB of JSON (mostly repeated /api/tags and /api/show answers);
    # compressed it is a tenth of that, and nobody reviews a recording line by line.
    with gzip.open(folder / SUITE_FILE, "wt", encoding="utf-8") as out:
        for entry in proxy.recorded:
            line = {"test": entry.test, "exchange": entry.observation.to_dict()}
            out.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
    _write_json(folder / SUITE_RUN, dict(run))
    return folder / SUITE_FILE


def load_suite_recording(folder: Path) -> tuple[list[Recorded], dict[str, Any]]:
    """The exchanges and the run description of a recorded suite run."""
    recorded = []
    with gzip.open(folder / SUITE_FILE, "rt", encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                data = json.loads(line)
                recorded.append(Recorded(Observation.from_dict(data["exchange"]), data["test"]))
    return recorded, json.loads((folder / SUITE_RUN).read_text(encoding="utf-8"))


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options of the recording plugin (active only with ``-p conformance.transcripts``)."""
    group = parser.getgroup("ollama-conformance transcripts")
    group.addoption(
        "--record-suite",
        metavar="DIR",
        default=None,
        help="relay the suite's requests to --target through a recording proxy and save "
        f"the exchanges in DIR/{SUITE_FILE}",
    )
    group.addoption(
        "--replay-suite",
        metavar="DIR",
        default=None,
        help=f"answer the suite from a recording (DIR/{SUITE_FILE}) instead of a server",
    )
    group.addoption(
        "--replay-report",
        metavar="FILE",
        default=None,
        help="with --replay-suite: write per-test matched/unmatched request counts as JSON",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Put the proxy or the replay server in place of ``--target`` before the suite reads it."""
    record = config.getoption("--record-suite", None)
    replay = config.getoption("--replay-suite", None)
    if record and replay:
        raise pytest.UsageError("--record-suite and --replay-suite exclude each other")
    if record:
        target = config.getoption("--target", None)
        if not target:
            raise pytest.UsageError("--record-suite needs --target (the real server)")
        scrub = [p for p in os.environ.get(SCRUB_ENV, "").split(os.pathsep) if p]
        proxy = RecordingProxy(target, scrub=scrub)
        config.stash[_RECORDER] = proxy
        _ACTIVE.append(proxy)
        config.option.target = proxy.url
    elif replay:
        recorded, _run = load_suite_recording(Path(replay))
        server = ReplayServer(recorded)
        config.stash[_REPLAYER] = server
        _ACTIVE.append(server)
        config.option.target = server.url


def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    """Attribute the requests that follow to this test."""
    _set_current(nodeid)


def pytest_runtest_logfinish(nodeid: str, location: Any) -> None:
    _set_current("<between tests>")


def _set_current(test: str) -> None:
    for server in _ACTIVE:
        server.current_test = test


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Save the recording or the replay report, then stop the helper server."""
    proxy = config.stash.get(_RECORDER, None)
    if proxy is not None:
        proxy.close()
        run = {
            "format": FORMAT,
            "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "target_version": _version_of(proxy),
            "run_id": config.getoption("--run-id", None),
            "models": {
                name: config.getoption(name, None)
                for name in ("model", "embed_model", "tools_model", "thinking_model")
                if config.getoption(name, None)
            },
        }
        save_suite_recording(Path(config.getoption("--record-suite")), proxy, run)
    server = config.stash.get(_REPLAYER, None)
    if server is not None:
        server.close()
        report = config.getoption("--replay-report", None)
        if report:
            data = {"matched": server.matched, "unmatched": server.unmatched}
            Path(report).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    _ACTIVE.clear()


def _version_of(proxy: RecordingProxy) -> str | None:
    for entry in proxy.recorded:
        obs = entry.observation
        if obs.request.get("path") == "/api/version" and isinstance(obs.body, dict):
            version = obs.body.get("version")
            if isinstance(version, str):
                return version
    return None


#: Extra paths to scrub while recording a suite run (the proxy runs inside pytest).
SCRUB_ENV = "OLLAMA_CONFORMANCE_SCRUB"


def suite_pytest_args(
    *,
    record: Path | None = None,
    replay: Path | None = None,
    target: str | None = None,
    models: Mapping[str, str] | None = None,
    report_dir: Path | None = None,
    replay_report: Path | None = None,
    ini: Path,
    extra: Sequence[str] = (),
) -> list[str]:
    """The pytest command line that records (or replays) a run of the suite.

    ``test_properties`` is left out: schemathesis and hypothesis draw fresh random requests on
    every run, which can never be replayed, and would make the recording large.
    """
    from conformance.runner import plugin_args

    root = Path(__file__).resolve().parent.parent
    argv = [
        *plugin_args(),
        "-p",
        "conformance.transcripts",
        "--pyargs",
        "conformance.suite",
        "-c",
        str(ini),
        "--rootdir",
        str(root),
        "-p",
        "no:cacheprovider",
        "--ignore-glob=*test_properties.py",
        "-q",
        "--no-header",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        "--run-id",
        SUITE_RUN_ID,
    ]
    if record is not None:
        argv += ["--record-suite", str(record)]
    if replay is not None:
        argv += ["--replay-suite", str(replay)]
    if replay_report is not None:
        argv += ["--replay-report", str(replay_report)]
    if target is not None:
        argv += ["--target", target]
    for option, name in (models or {}).items():
        argv += [f"--{option.replace('_', '-')}", name]
    if report_dir is not None:
        argv += ["--report-dir", str(report_dir)]
    return [*argv, *extra]


def run_suite_pytest(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> int:
    """Run pytest in a child process (a second pytest session must not share our plugins)."""
    child_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pytest", *argv],
        env=child_env,
        check=False,
        timeout=1800,
    ).returncode


#: Models the suite is recorded with: the stop model keeps every answer within 6 tokens.
SUITE_MODELS = {"model": "conformance-tiny-stop", "embed_model": "conformance-tiny-embed"}


def record_suite_release(version: str, out: Path, *, cache_dir: Path | None = None) -> int:
    """Start a cached build of ``version``, provision, record a suite run into ``out``, stop."""
    from conformance.ollama.build import cache_root, cached_binary, normalize_version
    from conformance.ollama.process import start_ollama
    from conformance.ollama.provision import provision

    tag = normalize_version(version)
    binary = cached_binary(tag, cache_dir)
    if binary is None:
        raise FileNotFoundError(
            f"Ollama {tag} is not built in {cache_dir or cache_root()}; run: "
            f"ollama-conformance ollama build --version {tag}"
        )
    with start_ollama(binary) as server, tempfile.TemporaryDirectory() as tmp:
        provision(server.url)
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n", encoding="utf-8")
        argv = suite_pytest_args(
            record=out,
            target=server.url,
            models=SUITE_MODELS,
            report_dir=out,
            ini=ini,
        )
        scrub = os.pathsep.join([str(server.models_dir), str(server.home_dir)])
        code = run_suite_pytest(argv, env={SCRUB_ENV: scrub})
    for name in ("junit.xml", "report.md"):
        (out / name).unlink(missing_ok=True)
    report = out / "report.json"
    if report.is_file():  # keep only what the replay needs: each test's verdict on the real run
        data = json.loads(report.read_text(encoding="utf-8"))
        verdicts = {r["nodeid"]: r["verdict"] for r in data.get("results", [])}
        _write_json(out / "verdicts.json", verdicts)
        report.unlink()
    return code


# --------------------------------------------------------------------------------------------
# Command line


def register(subparsers: Any) -> None:
    """Add the ``transcripts`` command: ``record``, ``record-suite`` and ``replay``."""
    parser = subparsers.add_parser(
        "transcripts",
        help="record real Ollama's answers (differential corpus, suite run), or replay them",
        description="Transcripts: what a real Ollama release answered, kept in "
        "fixtures/transcripts/<version>/ so machines without Go can check the suite and the "
        "reference server against real answers.",
    )
    actions = parser.add_subparsers(dest="transcripts_command", metavar="ACTION")
    parser.set_defaults(handler=lambda _args: _usage(parser))

    record = actions.add_parser(
        "record", help="run the differential corpus against a server and save each exchange"
    )
    source = record.add_mutually_exclusive_group(required=True)
    source.add_argument("--target", metavar="URL", help="the server to record")
    source.add_argument(
        "--version",
        dest="ollama_version",
        metavar="VERSION",
        help="start this cached Ollama build on a fresh model store, provision the tiny "
        "models, record, stop (e.g. v0.24.0)",
    )
    record.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="folder to write, e.g. fixtures/transcripts/0.24.0",
    )
    record.add_argument(
        "--model",
        default="conformance-tiny-cycle",
        metavar="NAME",
        help="with --target: completion model (default: %(default)s)",
    )
    record.add_argument(
        "--embed-model",
        default="conformance-tiny-embed",
        metavar="NAME",
        help="with --target: embedding model (default: %(default)s)",
    )
    record.add_argument(
        "--scrub",
        action="append",
        default=[],
        metavar="PATH",
        help="with --target: a path to replace by <OLLAMA_MODELS> (repeatable; paths into a "
        "model store are always replaced)",
    )
    record.set_defaults(handler=_record)

    suite = actions.add_parser(
        "record-suite",
        help="run the suite against a cached Ollama build through a recording proxy",
    )
    suite.add_argument(
        "--version", dest="ollama_version", required=True, metavar="VERSION", help="e.g. v0.24.0"
    )
    suite.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="folder to write, e.g. fixtures/transcripts/0.24.0/suite",
    )
    suite.set_defaults(handler=_record_suite)

    replay = actions.add_parser("replay", help="serve recorded corpus answers on a loopback port")
    replay.add_argument("folder", type=Path, metavar="DIR", help="a transcripts folder")
    replay.add_argument("--port", type=int, default=0, metavar="P", help="(default: free)")
    replay.set_defaults(handler=_replay)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _record(args: argparse.Namespace) -> int:
    from conformance.cli import EXIT_OK, UsageError

    if args.ollama_version:
        try:
            written = record_release(args.ollama_version, args.out)
        except (FileNotFoundError, ValueError) as exc:
            raise UsageError(str(exc)) from None
    else:
        reason = check_reachable(args.target)
        if reason is not None:
            raise UsageError(f"target {args.target} is unreachable: {reason}")
        written = record_corpus(
            args.target,
            args.out,
            model=args.model,
            embed_model=args.embed_model,
            scrub=args.scrub,
        )
    print(f"{len(written)} transcripts written to {args.out}")
    return EXIT_OK


def _record_suite(args: argparse.Namespace) -> int:
    from conformance.cli import EXIT_OK, UsageError

    try:
        code = record_suite_release(args.ollama_version, args.out)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    recorded, _run = load_suite_recording(args.out)
    print(f"{len(recorded)} exchanges of the suite run written to {args.out} (pytest exit {code})")
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    from conformance.cli import EXIT_OK, UsageError

    transcripts = load_transcripts(args.folder)
    if not transcripts:
        raise UsageError(f"no transcripts in {args.folder}")
    with ReplayServer.from_transcripts(transcripts, port=args.port) as server:
        print(f"replaying {len(transcripts)} exchanges of Ollama {transcripts[0].version}")
        print(f"url {server.url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
    return EXIT_OK
