"""Creating, copying and deleting models: ``/api/create``, ``/api/copy``, ``DELETE /api/delete``.

Every model these checks touch is a scratch model of this run (``conformance-<run id>-N``), made
from the project's tiny GGUF, and deleted when the test or module that made it ends. The error
checks name models that cannot exist ("bad name", "conformance-absent-model"), so they can neither
create nor delete anything on a conforming server; where a statement says "creates nothing" or
"deletes nothing", the check looks at ``/api/tags`` to make sure.

The create request changed shape in 0.5.5 (``from``/``files`` replaced a ``modelfile``), and the
wording of several errors moved over the releases; each such behaviour is its own requirement with
a version range, and the plugin runs only the ones that apply to the target.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from conformance.client import Client
from conformance.exchange import Exchange
from conformance.models.tiny_gguf import CHAT_TEMPLATE
from conformance.suite import scratch
from conformance.suite.scratch import (
    ABSENT_MODEL,
    INVALID_NAME,
    ScratchModels,
    expect_error,
    normalize_name,
    random_blob,
)
from conformance.target import Target
from conformance.verdict import (
    assume,
    assume_json_object,
    assume_status,
    check,
    expect_content_type,
    expect_json_object,
    expect_status,
    expect_valid,
)

NEITHER = "neither 'from' or 'files' was specified"
#: Bounded, deterministic generation on the tiny model ("a" -> "bcde", then end of sequence).
SHORT = {"num_predict": 10, "temperature": 0, "seed": 42}


def _object(value: object) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (for reading optional parts)."""
    return value if isinstance(value, dict) else {}


@pytest.fixture(autouse=True, scope="module")
def _audited(request: pytest.FixtureRequest, client: Client, target: Target) -> scratch.Audit:
    """Take the safety snapshot before this module can change anything (see scratch.audit)."""
    return scratch.audit(request.config, client, target)


@pytest.fixture(scope="module")
def module_models(
    request: pytest.FixtureRequest, client: Client, api_version: str
) -> Iterator[ScratchModels]:
    """Scratch models shared by this module's tests, deleted when the module ends."""
    models = ScratchModels(client, request.config, api_version)
    yield models
    models.close()


@pytest.fixture(scope="module")
def base(module_models: ScratchModels) -> str:
    """One scratch model made from the tiny GGUF with the chat template; tests only read it."""
    return module_models.model()


@pytest.fixture
def scratch_models(
    request: pytest.FixtureRequest, client: Client, api_version: str
) -> Iterator[ScratchModels]:
    """Scratch models for one test, deleted when it ends (pass or fail)."""
    models = ScratchModels(client, request.config, api_version)
    yield models
    models.close()


def _tags_answer(client: Client) -> tuple[Exchange, dict[str, dict[str, Any]]]:
    """``/api/tags`` and its entries by normalised name; skip when it gives no list (models.tags
    judges that)."""
    exchange = client.get("/api/tags")
    listed = scratch.tags_by_name(exchange)
    assume(listed is not None, "/api/tags gave no model list (judged by models.tags.status)")
    return exchange, listed or {}


def _tags(client: Client) -> dict[str, dict[str, Any]]:
    """``/api/tags`` by normalised name (see :func:`_tags_answer`)."""
    return _tags_answer(client)[1]


def _show(client: Client, name: str) -> tuple[Exchange, dict[str, Any]]:
    """``/api/show`` of a model the test just made; skip when it does not answer 200."""
    exchange = client.post("/api/show", json={"model": name})
    assume_status(exchange, 200)
    return exchange, assume_json_object(exchange)


def _create(client: Client, body: dict[str, Any]) -> Exchange:
    return client.post("/api/create", json=body)


def _expect_created(exchange: Exchange, request: str) -> None:
    """The create ``request`` (described for the verdict) succeeded."""
    __tracebackhide__ = True
    check(
        scratch.create_succeeded(exchange),
        expected=f"{request} succeeds",
        actual=scratch.create_problem(exchange),
        exchange=exchange,
    )


def _expect_system(client: Client, name: str, system: str, what: str = "system") -> None:
    """``/api/show`` of ``name`` reports ``system`` (``what`` names it in the verdict)."""
    __tracebackhide__ = True
    show, body = _show(client, name)
    check(
        body.get("system") == system,
        expected=f"/api/show reports {what} {json.dumps(system)}",
        actual=f"system {body.get('system')!r}",
        exchange=show,
    )


def _expect_empty_200(exchange: Exchange) -> None:
    """Status 200 and no body at all (copy and delete answer nothing on success)."""
    __tracebackhide__ = True
    expect_status(exchange, 200)
    check(
        exchange.body == b"",
        expected="status 200 with an empty body",
        actual=f"body {exchange.text_preview(120)!r}",
        exchange=exchange,
    )


def _unchanged(before: dict[str, Any], after: dict[str, Any], exchange: Exchange) -> None:
    __tracebackhide__ = True
    check(
        set(after) == set(before),
        expected="the installed models unchanged",
        actual=f"added {scratch.names_in(set(after) - set(before))}, "
        f"removed {scratch.names_in(set(before) - set(after))}",
        exchange=exchange,
    )


# --------------------------------------------------------------------------------------------
# Create from an uploaded GGUF


@pytest.mark.requirement("lifecycle.create.files-stream")
def test_create_from_files_streams_progress(
    api_version: str, scratch_models: ScratchModels
) -> None:
    _, exchange = scratch_models.create_files(stream=True)
    expect_status(exchange, 200)
    expect_content_type(exchange, "application/x-ndjson")
    for value in exchange.values:
        expect_valid("create.progress", value, api_version, exchange)
    statuses = [v.get("status") for v in exchange.values if isinstance(v, dict)]
    last = exchange.values[-1] if exchange.values else None
    check(
        "parsing GGUF" in statuses
        and "writing manifest" in statuses
        and last == {"status": "success"},
        expected="status lines including 'parsing GGUF' and 'writing manifest', "
        'the last one {"status": "success"}',
        actual=f"lines {[json.dumps(v) for v in exchange.values][:12]}",
        exchange=exchange,
    )


@pytest.mark.requirement("lifecycle.create.files-nonstream")
def test_create_from_files_without_stream(scratch_models: ScratchModels) -> None:
    _, exchange = scratch_models.create_files(stream=False)
    expect_status(exchange, 200)
    body = expect_json_object(exchange)
    check(
        body.get("status") == "success" and "error" not in body,
        expected='{"status": "success"}',
        actual=f"body {exchange.text_preview(200)!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("lifecycle.create.listed")
def test_created_model_is_listed_with_latest_tag(client: Client, base: str) -> None:
    exchange, listed = _tags_answer(client)
    names = [entry.get("name") for entry in listed.values() if isinstance(entry, dict)]
    wanted = f"{base}:latest"
    check(
        any(isinstance(n, str) and n.lower() == wanted.lower() for n in names),
        expected=f"/api/tags lists {wanted}",
        actual=f"names {scratch.names_in(str(n) for n in names)}",
        exchange=exchange,
    )


@pytest.mark.requirement("lifecycle.create.show-details")
def test_created_model_reports_gguf_llama(client: Client, base: str) -> None:
    exchange, body = _show(client, base)
    details = _object(body.get("details"))
    check(
        details.get("format") == "gguf" and details.get("family") == "llama",
        expected='details.format "gguf" and details.family "llama"',
        actual=f"details {json.dumps(body.get('details'))[:200]}",
        exchange=exchange,
    )


@pytest.mark.requirement("lifecycle.create.generates")
def test_created_model_generates(client: Client, base: str) -> None:
    body = {"model": base, "prompt": "a", "raw": True, "stream": False, "options": SHORT}
    exchange = client.post("/api/generate", json=body)
    expect_status(exchange, 200)
    answer = expect_json_object(exchange)
    check(
        answer.get("done") is True,
        expected="a final object with done true",
        actual=f"body {exchange.text_preview(200)!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("lifecycle.create.from")
def test_create_from_existing_model_with_system(
    client: Client, base: str, scratch_models: ScratchModels
) -> None:
    name, exchange = scratch_models.create_from(base, system="S")
    _expect_created(exchange, f'create {{"model": {name!r}, "from": {base!r}, "system": "S"}}')
    _expect_system(client, name, "S")


@pytest.mark.requirement("lifecycle.create.template")
def test_create_keeps_the_template(client: Client, base: str) -> None:
    exchange, body = _show(client, base)
    check(
        body.get("template") == CHAT_TEMPLATE,
        expected=f"template {CHAT_TEMPLATE!r}, as given at create time",
        actual=f"template {body.get('template')!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("lifecycle.create.parameters")
def test_create_keeps_the_parameters(client: Client, scratch_models: ScratchModels) -> None:
    name = scratch_models.model(parameters={"seed": 42, "stop": ["zz"]})
    exchange, body = _show(client, name)
    parameters = body.get("parameters")
    lines = [" ".join(line.split()) for line in str(parameters or "").splitlines()]
    check(
        "seed 42" in lines and 'stop "zz"' in lines,
        expected="parameters with the lines 'seed 42' and 'stop \"zz\"'",
        actual=f"parameters {parameters!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("lifecycle.create.license")
def test_create_keeps_the_license(client: Client, scratch_models: ScratchModels) -> None:
    text = "conformance test licence"
    name = scratch_models.model(license=text)
    exchange, body = _show(client, name)
    license_ = body.get("license")
    check(
        license_ == text or (isinstance(license_, list) and license_ == [text]),
        expected=f"license {text!r}",
        actual=f"license {license_!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("lifecycle.create.messages")
def test_create_keeps_the_messages(client: Client, scratch_models: ScratchModels) -> None:
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "bcde"}]
    name = scratch_models.model(messages=messages)
    exchange, body = _show(client, name)
    shown = body.get("messages")
    pairs = (
        [(m.get("role"), m.get("content")) for m in shown if isinstance(m, dict)]
        if isinstance(shown, list)
        else None
    )
    check(
        pairs == [(m["role"], m["content"]) for m in messages],
        expected=f"messages {messages}",
        actual=f"messages {json.dumps(shown)[:200]}",
        exchange=exchange,
    )


@pytest.mark.requirement("lifecycle.create.replace")
def test_create_again_replaces_the_model(client: Client, scratch_models: ScratchModels) -> None:
    name = scratch_models.model(system="first")
    _, exchange = scratch_models.create_files(name, system="second")
    _expect_created(exchange, f"a second create of {name}")
    _expect_system(client, name, "second", what="the new system")


@pytest.mark.requirement("lifecycle.create.name-alias")
def test_create_accepts_name_for_the_target(
    client: Client, base: str, scratch_models: ScratchModels
) -> None:
    name = scratch_models.name()
    exchange = _create(client, {"name": name, "from": base, "stream": False})
    _expect_created(exchange, f'create {{"name": {name!r}, "from": {base!r}}}')
    show = client.post("/api/show", json={"model": name})
    check(
        show.status == 200,
        expected=f"{name} installed afterwards (/api/show 200)",
        actual=f"/api/show answered {show.status}",
        exchange=show,
    )


# --------------------------------------------------------------------------------------------
# Create errors


@pytest.mark.requirement("lifecycle.create.invalid-name")
def test_create_invalid_name_answers_400(client: Client, base: str) -> None:
    before = _tags(client)
    exchange = _create(client, {"model": INVALID_NAME, "from": base, "stream": False})
    expect_error(exchange, 400, "invalid model name")
    _unchanged(before, _tags(client), exchange)


@pytest.mark.requirement("lifecycle.create.path-relative")
def test_create_absolute_file_path_answers_400(
    client: Client, scratch_models: ScratchModels
) -> None:
    body = {
        "model": scratch_models.name(),
        "files": {"/etc/passwd": "sha256:" + secrets.token_hex(32)},
        "stream": False,
    }
    expect_error(_create(client, body), 400, "file path must be relative")


@pytest.mark.requirement("lifecycle.create.neither")
def test_streamed_create_without_source_answers_400(
    client: Client, scratch_models: ScratchModels
) -> None:
    exchange = _create(client, {"model": scratch_models.name()})
    expect_status(exchange, 400)
    expect_content_type(exchange, "application/json")
    expect_error(exchange, 400, NEITHER)


@pytest.mark.requirement("lifecycle.create.neither.pre-0-12-6")
def test_streamed_create_without_source_streams_the_error(
    client: Client, scratch_models: ScratchModels
) -> None:
    exchange = _create(client, {"model": scratch_models.name()})
    expect_status(exchange, 200)
    expect_content_type(exchange, "application/x-ndjson")
    wanted = {"error": NEITHER, "status": 400}
    check(
        wanted in exchange.values,
        expected=f"the line {json.dumps(wanted)}",
        actual=f"lines {[json.dumps(v) for v in exchange.values][:8]}",
        exchange=exchange,
    )


@pytest.mark.requirement("lifecycle.create.neither-nonstream")
def test_create_without_source_answers_400(client: Client, scratch_models: ScratchModels) -> None:
    exchange = _create(client, {"model": scratch_models.name(), "stream": False})
    expect_error(exchange, 400, NEITHER)


@pytest.mark.requirement("lifecycle.create.empty-digest")
def test_create_with_empty_digest_answers_400(
    client: Client, scratch_models: ScratchModels
) -> None:
    body = {"model": scratch_models.name(), "files": {"model.gguf": ""}, "stream": False}
    expect_error(_create(client, body), 400, "invalid digest format")


@pytest.mark.requirement("lifecycle.create.not-gguf")
def test_create_from_a_blob_that_is_not_gguf_answers_400(
    client: Client, scratch_models: ScratchModels
) -> None:
    digest, upload = scratch.ensure_blob(client, random_blob("not-gguf"))
    assume(upload.status in (200, 201), f"uploading the blob answered {upload.status}")
    body = {"model": scratch_models.name(), "files": {"model.gguf": digest}, "stream": False}
    expect_error(_create(client, body), 400, "supplied file was not in GGUF format")


@pytest.mark.requirement("lifecycle.create.template-error")
def test_create_with_broken_template_answers_400(base: str, scratch_models: ScratchModels) -> None:
    _, exchange = scratch_models.create_from(base, template="{{ .Prompt")
    expect_error(exchange, 400, starts_with="template error: ")


@pytest.mark.requirement("lifecycle.create.modelfile-legacy")
def test_legacy_modelfile_create(client: Client, base: str, scratch_models: ScratchModels) -> None:
    name = scratch_models.name()
    exchange = _create(client, {"name": name, "modelfile": f"FROM {base}\nSYSTEM S"})
    expect_status(exchange, 200)
    last = exchange.values[-1] if exchange.values else None
    if not exchange.read_as_lines:
        last, _ = exchange.json()
    check(
        last == {"status": "success"},
        expected='the stream ends with {"status": "success"}',
        actual=f"last line {json.dumps(last)}",
        exchange=exchange,
    )


@pytest.mark.requirement("lifecycle.create.modelfile-ignored")
def test_legacy_modelfile_is_no_longer_read(
    client: Client, base: str, scratch_models: ScratchModels
) -> None:
    name = scratch_models.name()
    exchange = _create(client, {"name": name, "modelfile": f"FROM {base}", "stream": False})
    expect_error(exchange, 400, NEITHER)
    check(
        normalize_name(name) not in _tags(client),
        expected=f"{name} not created",
        actual=f"/api/tags lists {name}",
        exchange=exchange,
    )


# --------------------------------------------------------------------------------------------
# Copy


@pytest.mark.requirement("lifecycle.copy.success")
def test_copy_answers_200_empty(client: Client, base: str, scratch_models: ScratchModels) -> None:
    destination = scratch_models.name()
    _expect_empty_200(client.post("/api/copy", json={"source": base, "destination": destination}))


@pytest.mark.requirement("lifecycle.copy.same-model")
def test_copy_lists_the_same_model(
    client: Client, base: str, scratch_models: ScratchModels
) -> None:
    destination = scratch_models.name()
    copied = client.post("/api/copy", json={"source": base, "destination": destination})
    assume_status(copied, 200)
    exchange, listed = _tags_answer(client)
    source = listed.get(normalize_name(base))
    assume(source is not None, f"/api/tags does not list the source {base}")
    keys = ("digest", "size", "details")
    wanted = {k: (source or {}).get(k) for k in keys}
    entry = listed.get(normalize_name(destination))
    got = None if entry is None else {k: entry.get(k) for k in keys}
    check(
        got == wanted,
        expected=f"{destination} listed with the digest, size and details of {base}: "
        f"{json.dumps(wanted)[:300]}",
        actual="not listed" if got is None else json.dumps(got)[:300],
        exchange=exchange,
    )


@pytest.mark.requirement("lifecycle.copy.source-missing")
def test_copy_missing_source_answers_404(client: Client, scratch_models: ScratchModels) -> None:
    body = {"source": ABSENT_MODEL, "destination": scratch_models.name()}
    expect_error(client.post("/api/copy", json=body), 404, f'model "{ABSENT_MODEL}" not found')


@pytest.mark.requirement("lifecycle.copy.invalid-source")
def test_copy_invalid_source_answers_400(client: Client, scratch_models: ScratchModels) -> None:
    body = {"source": INVALID_NAME, "destination": scratch_models.name()}
    expect_error(client.post("/api/copy", json=body), 400, f'source "{INVALID_NAME}" is invalid')


@pytest.mark.requirement("lifecycle.copy.invalid-destination")
def test_copy_invalid_destination_answers_400(client: Client, base: str) -> None:
    before = _tags(client)
    exchange = client.post("/api/copy", json={"source": base, "destination": INVALID_NAME})
    expect_error(exchange, 400, f'destination "{INVALID_NAME}" is invalid')
    _unchanged(before, _tags(client), exchange)


@pytest.mark.requirement("lifecycle.copy.overwrite")
def test_copy_onto_existing_model_replaces_it(
    client: Client, base: str, scratch_models: ScratchModels
) -> None:
    other = scratch_models.derived(base, system="to be replaced")
    listed = _tags(client)
    source, target = listed.get(normalize_name(base)), listed.get(normalize_name(other))
    assume(source is not None and target is not None, "the two scratch models are not listed")
    source_digest = source.get("digest") if source else None
    assume(
        source_digest != (target.get("digest") if target else None),
        "the two scratch models already share a digest; the copy could not be seen",
    )
    exchange = client.post("/api/copy", json={"source": base, "destination": other})
    assume_status(exchange, 200)
    after = _tags(client).get(normalize_name(other))
    check(
        after is not None and after.get("digest") == source_digest,
        expected=f"{other} now has the digest of {base}: {source_digest}",
        actual="not listed" if after is None else f"digest {after.get('digest')}",
        exchange=exchange,
    )


# --------------------------------------------------------------------------------------------
# Delete


def _gone(client: Client, name: str, exchange: Exchange) -> None:
    __tracebackhide__ = True
    check(
        normalize_name(name) not in _tags(client),
        expected=f"{name} no longer listed by /api/tags",
        actual=f"/api/tags still lists {name}",
        exchange=exchange,
    )


@pytest.mark.requirement("lifecycle.delete.success")
def test_delete_removes_the_model(client: Client, scratch_models: ScratchModels) -> None:
    name = scratch_models.model()
    exchange = client.delete("/api/delete", json={"model": name})
    _expect_empty_200(exchange)
    _gone(client, name, exchange)
    show = client.post("/api/show", json={"model": name})
    check(
        show.status == 404,
        expected=f"/api/show of the deleted {name} answers 404",
        actual=f"status {show.status}; body {show.text_preview(120)!r}",
        exchange=show,
    )


@pytest.mark.requirement("lifecycle.delete.name-alias")
def test_delete_accepts_name(client: Client, scratch_models: ScratchModels) -> None:
    name = scratch_models.model()
    exchange = client.delete("/api/delete", json={"name": name})
    expect_status(exchange, 200)
    _gone(client, name, exchange)


@pytest.mark.requirement("lifecycle.delete.not-found")
def test_delete_absent_model_answers_404(client: Client) -> None:
    exchange = client.delete("/api/delete", json={"model": ABSENT_MODEL})
    expect_error(exchange, 404, f"model '{ABSENT_MODEL}' not found")


@pytest.mark.requirement("lifecycle.delete.invalid-name")
def test_delete_invalid_name_answers_400(client: Client) -> None:
    exchange = client.delete("/api/delete", json={"model": INVALID_NAME})
    expect_error(exchange, 400, f'name "{INVALID_NAME}" is invalid')


@pytest.mark.requirement("lifecycle.delete.empty")
def test_delete_empty_name_answers_model_required(client: Client) -> None:
    expect_error(client.delete("/api/delete", json={"model": ""}), 400, "model is required")


@pytest.mark.requirement("lifecycle.delete.empty.pre-0-17-8-rc0")
def test_delete_empty_name_answers_invalid_before_0_17_8(client: Client) -> None:
    expect_error(client.delete("/api/delete", json={"model": ""}), 400, 'name "" is invalid')


@pytest.mark.requirement("lifecycle.delete.copy-keeps-source")
def test_deleting_a_copy_keeps_the_source(
    client: Client, base: str, scratch_models: ScratchModels
) -> None:
    copy = scratch_models.name()
    copied = client.post("/api/copy", json={"source": base, "destination": copy})
    assume_status(copied, 200)
    source_before = _tags(client).get(normalize_name(base))
    assume(source_before is not None, f"/api/tags does not list {base}")
    deleted = client.delete("/api/delete", json={"model": copy})
    assume_status(deleted, 200)
    source_after = _tags(client).get(normalize_name(base))
    digest = source_before.get("digest") if source_before else None
    check(
        source_after is not None and source_after.get("digest") == digest,
        expected=f"{base} still listed with digest {digest}",
        actual="not listed" if source_after is None else f"digest {source_after.get('digest')}",
        exchange=deleted,
    )
    show = client.post("/api/show", json={"model": base})
    check(
        show.status == 200,
        expected=f"/api/show of {base} answers 200",
        actual=f"status {show.status}; body {show.text_preview(120)!r}",
        exchange=show,
    )
