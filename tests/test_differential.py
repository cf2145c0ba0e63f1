"""The differential comparison: shapes, normalisation, the diff of two exchanges, the corpus.

The differential is only useful if it stays quiet where two correct servers legitimately differ
(values, model names, machine paths) and speaks up where they do not (status, content type, error
text, keys). These tests pin both halves on small hand-made observations, check the corpus keeps
its promises (bounded, every endpoint, good and bad inputs), and run the whole corpus against two
reference servers with the same configuration, which must agree completely.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from conformance import differential as d
from conformance.differential import (
    CORPUS,
    Difference,
    KnownDifferences,
    KnownDifferencesError,
    Observation,
    Params,
    compare,
    compare_runs,
    contract_kinds,
    diff_shapes,
    fill,
    load_known,
    normalize_error,
    scrub_text,
    shape_of,
)
from conformance.reference.config import ReferenceConfig
from conformance.reference.server import start_background

PARAMS_A = Params(model="conformance-tiny-cycle", embed_model="conformance-tiny-embed", nonce="1")
PARAMS_B = Params(model="tiny-completion", embed_model="tiny-embed", nonce="2")


def obs(
    probe: str = "generate.single-length",
    *,
    status: int | None = 200,
    content_type: str = "application/json; charset=utf-8",
    body: Any = None,
    lines: list[Any] | None = None,
    endpoint: str | None = "generate",
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> Observation:
    """A hand-made observation (lines are given as plain values)."""
    all_headers = {"content-type": content_type} if content_type else {}
    all_headers.update(headers or {})
    kind = "ndjson" if lines is not None else ("json" if body is not None else "empty")
    return Observation(
        probe=probe,
        endpoint=endpoint,
        request={"method": method, "path": "/api/generate"},
        status=status,
        headers=all_headers,
        body_kind=kind,
        body=body,
        lines=[{"at": 0.01 * i, "value": v} for i, v in enumerate(lines)] if lines else lines,
    )


def final(model: str, reason: str = "length", **extra: Any) -> dict[str, Any]:
    value = {
        "model": model,
        "created_at": "2026-11-23T19:25:34.371180174Z",
        "response": "",
        "done": True,
        "done_reason": reason,
        "total_duration": 5,
        "load_duration": 1,
        "prompt_eval_count": 1,
        "prompt_eval_duration": 1,
        "eval_count": 5,
        "eval_duration": 2,
    }
    value.update(extra)
    return value


def chunk(model: str, text: str) -> dict[str, Any]:
    return {"model": model, "created_at": "2026-11-23T19:25:34.1Z", "response": text, "done": False}


def aspects(diffs: list[Difference]) -> set[str]:
    return {x.aspect for x in diffs}


# -- shapes ------------------------------------------------------------------------------------


def test_shape_keeps_keys_and_types_not_values() -> None:
    a = shape_of({"model": "x", "n": 1, "ok": True, "v": [0.5, 1], "nested": {"k": None}})
    b = shape_of({"model": "y", "n": 2.5, "ok": False, "v": [3], "nested": {"k": None}})
    assert diff_shapes(a, b) == []
    assert a.to_json() == {
        "model": "string",
        "n": "number",
        "nested": {"k": "null"},
        "ok": "boolean",
        "v": ["number"],
    }


def test_shape_diff_names_the_path_and_the_side() -> None:
    a = shape_of({"a": 1, "b": {"c": "s"}, "only_a": [1]})
    b = shape_of({"a": "1", "b": {"c": "s", "d": 0}})
    assert diff_shapes(a, b) == [
        "$.a: number vs string",
        '$.b.d: only in b ("number")',
        '$.only_a: only in a (["number"])',
    ]


def test_array_elements_are_merged_and_empty_arrays_say_nothing() -> None:
    mixed = shape_of({"models": [{"name": "a"}, {"name": "b", "extra": 1}]})
    assert mixed.to_json() == {"models": [{"extra": "number", "name": "string"}]}
    assert diff_shapes(shape_of({"e": []}), shape_of({"e": [[0.1, 0.2]]})) == []
    assert diff_shapes(shape_of({"e": ["x"]}), shape_of({"e": [1]})) == ["$.e[]: string vs number"]


def test_opaque_objects_keep_their_type_only() -> None:
    a = shape_of({"model_info": {"llama.block_count": 1}})
    b = shape_of({"model_info": {"bert.block_count": 1}})
    assert diff_shapes(a, b) == []
    assert diff_shapes(a, shape_of({"model_info": None})) == ["$.model_info: object vs null"]


# -- normalisation -----------------------------------------------------------------------------


def test_scrub_replaces_model_store_paths() -> None:
    text = "open /tmp/ollama-conformance-x1/models/blobs/sha256-11: no such file or directory"
    assert scrub_text(text) == "open <OLLAMA_MODELS>/blobs/sha256-11: no such file or directory"
    pushed = "open /home/u/.ollama/models/manifests/registry.ollama.ai/library/x/latest: nope"
    assert scrub_text(pushed).startswith("open <OLLAMA_MODELS>/manifests/registry.ollama.ai/")
    assert scrub_text("FROM /srv/store/blobs/sha256-22", ["/srv/store"]) == (
        "FROM <OLLAMA_MODELS>/blobs/sha256-22"
    )
    assert scrub_text("already <OLLAMA_MODELS>/blobs/x") == "already <OLLAMA_MODELS>/blobs/x"


def test_error_normalisation_hides_each_sides_names() -> None:
    a = normalize_error("registry.ollama.ai/library/conformance-tiny-cycle:latest nope", PARAMS_A)
    b = normalize_error("registry.ollama.ai/library/tiny-completion:latest nope", PARAMS_B)
    assert a == b == "registry.ollama.ai/library/${model}:latest nope"
    copy = normalize_error("model 'CONFORMANCE-DIFFERENTIAL-COPY' not found", PARAMS_A)
    assert copy == "model '${copy}' not found"  # case-insensitive, longest name first


def test_fill_replaces_placeholders_everywhere() -> None:
    body = {"model": "${model}", "files": {"${scratch}": ["${embed_model}"]}, "n": 1}
    assert fill(body, PARAMS_B.substitutions()) == {
        "model": "tiny-completion",
        "files": {"conformance-differential-scratch": ["tiny-embed"]},
        "n": 1,
    }


def test_params_nonce_blob_is_unique_and_its_digest_matches() -> None:
    import hashlib

    assert PARAMS_A.nonce_blob != PARAMS_B.nonce_blob
    assert PARAMS_A.nonce_digest == "sha256:" + hashlib.sha256(PARAMS_A.nonce_blob).hexdigest()
    assert PARAMS_A.gguf_digest == PARAMS_B.gguf_digest  # the scratch model is the same GGUF


# -- the diff of two exchanges -----------------------------------------------------------------


def test_same_answers_with_different_values_do_not_differ() -> None:
    a = obs(lines=[chunk("conformance-tiny-cycle", "b"), final("conformance-tiny-cycle")])
    b = obs(lines=[chunk("tiny-completion", " The"), chunk("tiny-completion", " sky"),
                   final("tiny-completion", eval_count=9)])  # fmt: skip
    a.headers["content-type"] = b.headers["content-type"] = "application/x-ndjson"
    assert compare(a, b, params_a=PARAMS_A, params_b=PARAMS_B, version_a="0.24.0") == []


def test_status_content_type_and_done_reason_differences() -> None:
    a = obs(body=final("m", "stop"))
    b = obs(body=final("m", "length"), content_type="application/json")
    found = compare(a, b, params_a=PARAMS_A, params_b=PARAMS_B)
    assert aspects(found) == {"content_type", "done_reason"}
    reason = next(x for x in found if x.aspect == "done_reason")
    assert (reason.a, reason.b) == ("stop", "length")
    c = obs(status=404, body={"error": "model 'x' not found"}, endpoint="generate")
    assert "status" in aspects(compare(a, c, params_a=PARAMS_A, params_b=PARAMS_B))


def test_error_strings_compare_after_normalisation() -> None:
    a = obs(status=400, body={"error": '"conformance-tiny-cycle" does not support thinking'})
    b = obs(status=400, body={"error": '"tiny-completion" does not support thinking'})
    assert compare(a, b, params_a=PARAMS_A, params_b=PARAMS_B) == []
    c = obs(status=400, body={"error": '"tiny-completion" does not support thinking!'})
    found = compare(a, c, params_a=PARAMS_A, params_b=PARAMS_B)
    assert aspects(found) == {"error"}


def test_stream_structure_is_compared() -> None:
    good = obs(lines=[chunk("m", "b"), final("m")], content_type="application/x-ndjson")
    no_final = obs(lines=[chunk("m", "b"), chunk("m", "c")], content_type="application/x-ndjson")
    found = compare(good, no_final, params_a=PARAMS_A, params_b=PARAMS_B, version_a="0.24.0")
    assert "stream" in aspects(found)
    assert "done_reason" in aspects(found)


def test_contract_validity_and_shape() -> None:
    a = obs(body=final("m"))
    missing = final("m")
    del missing["done_reason"]
    found = compare(a, obs(body=missing), params_a=PARAMS_A, params_b=PARAMS_B, version_b="0.24.0")
    assert "contract" in aspects(found) and "shape" not in aspects(found)
    extra = obs(body=final("m", context=[1, 2]))
    found = compare(a, extra, params_a=PARAMS_A, params_b=PARAMS_B, version_a="0.24.0")
    shape = next(x for x in found if x.aspect == "shape")
    assert "body.context: only in b" in shape.a


def test_no_answer_is_a_transport_difference_only() -> None:
    a = obs(body=final("m"))
    b = obs(status=None, body=None, content_type="")
    b.error = "connection refused"
    found = compare(a, b, params_a=PARAMS_A, params_b=PARAMS_B)
    assert [(x.aspect, x.b) for x in found] == [("transport", "connection refused")]


def test_headers_that_carry_meaning_are_compared() -> None:
    a = obs(status=405, content_type="text/plain", headers={"allow": "POST"}, endpoint=None)
    b = obs(status=405, content_type="text/plain", headers={"allow": "GET"}, endpoint=None)
    found = compare(a, b, params_a=PARAMS_A, params_b=PARAMS_B)
    assert [(x.aspect, x.a, x.b) for x in found] == [("headers", "allow: POST", "allow: GET")]


def test_contract_kinds_follow_endpoint_and_status() -> None:
    stream = obs(lines=[chunk("m", "b"), final("m")], content_type="application/x-ndjson")
    assert [k for k, _ in contract_kinds(stream)] == ["generate.chunk", "generate.final"]
    assert [k for k, _ in contract_kinds(obs(body=final("m")))] == ["generate.response"]
    assert [k for k, _ in contract_kinds(obs(status=404, body={"error": "x"}))] == ["error"]
    head = obs(method="HEAD", status=404, body=None)
    assert contract_kinds(head) == []
    created = obs(body={"status": "success"}, endpoint="create")
    assert [k for k, _ in contract_kinds(created)] == ["create.progress"]


def test_observation_round_trips_through_json() -> None:
    a = obs(lines=[chunk("m", "b"), final("m")], content_type="application/x-ndjson")
    again = Observation.from_dict(json.loads(json.dumps(a.to_dict())))
    assert again == a


# -- known differences -------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "known.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_known_differences_explain_and_go_stale(tmp_path: Path) -> None:
    known = load_known(
        write(
            tmp_path,
            '["show.model"]\nshape = "model-dependent"\n["embed.single"]\n"*" = "all of it"\n',
        )
    )
    diffs = [
        Difference("embed.single", "status", "200", "500"),
        Difference("tags.get", "shape", "x", "y"),
    ]
    explained = known.explain(diffs)
    assert [x.reason for x in explained] == ["all of it", None]
    assert known.stale(diffs, ["show.model", "embed.single", "tags.get"]) == [
        ("show.model", "shape")
    ]
    assert known.stale(diffs, ["embed.single"]) == []  # show.model did not run: not stale


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('["no.such-probe"]\nshape = "x"\n', "unknown probe"),
        ('["show.model"]\nlooks = "x"\n', "unknown aspect"),
        ('["show.model"]\nshape = " "\n', "needs a reason"),
        ('["show.model"\n', "not valid TOML"),
    ],
)
def test_bad_known_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(KnownDifferencesError, match=message):
        load_known(write(tmp_path, text))


def test_shipped_known_files_load() -> None:
    root = Path(__file__).resolve().parent.parent / "fixtures" / "expectations"
    files = sorted(root.glob("differential-*.toml"))
    assert files, "fixtures/expectations/differential-<version>.toml are missing"
    for file in files:
        assert isinstance(load_known(file), KnownDifferences)


# -- the corpus --------------------------------------------------------------------------------


def test_corpus_covers_every_endpoint_with_good_and_bad_inputs() -> None:
    assert len(CORPUS) >= 40
    assert len({p.id for p in CORPUS}) == len(CORPUS)
    paths = {(p.method, p.path.split("/api/blobs/")[0] or p.path) for p in CORPUS}
    for wanted in [
        ("GET", "/"),
        ("GET", "/api/version"),
        ("GET", "/api/tags"),
        ("GET", "/api/ps"),
        ("POST", "/api/show"),
        ("POST", "/api/generate"),
        ("POST", "/api/chat"),
        ("POST", "/api/embed"),
        ("POST", "/api/embeddings"),
        ("POST", "/api/create"),
        ("POST", "/api/copy"),
        ("DELETE", "/api/delete"),
        ("POST", "/api/push"),
    ]:
        assert wanted in paths, wanted
    assert any(p.path.startswith("/api/blobs/") and p.method == "HEAD" for p in CORPUS)
    ids = {p.id for p in CORPUS}
    for needed in (
        "generate.missing-model",
        "generate.truncated-json",
        "method.get-generate",
        "route.unknown-get",
        "blobs.post-mismatch",
        "blobs.post-bad-digest",
        "generate.stream-length",
        "generate.single-stop",
        "chat.stream-stop",
        "generate.load",
        "generate.unload",
        "create.neither",
        "copy.missing-source",
        "delete.again",
    ):
        assert needed in ids, needed


#: Probes with a prompt that are refused before anything is generated, so need no bound.
REFUSED_BEFORE_GENERATING = {
    "generate.missing-model",
    "generate.empty-model",
    "generate.invalid-name",
    "generate.prompt-number",
    "generate.raw-with-system",
    "generate.option-wrong-type",
    "chat.missing-model",
    "chat.empty-model",
    "chat.content-number",
}


def test_every_generation_in_the_corpus_is_bounded() -> None:
    """The brief caps transcripts at num_predict 10: every probe that may generate sets it."""
    for probe in CORPUS:
        body, _ = probe.request_body(PARAMS_A)
        if probe.path not in ("/api/generate", "/api/chat") or not isinstance(body, dict):
            continue
        if not (body.get("prompt") or body.get("messages")):
            continue  # load / unload: nothing is generated
        if probe.id in REFUSED_BEFORE_GENERATING:
            continue
        predict = (body.get("options") or {}).get("num_predict")
        assert isinstance(predict, int) and 0 < predict <= 10, f"{probe.id}: {predict!r}"


def test_the_scratch_model_is_made_before_use_and_deleted_at_the_end() -> None:
    order = [p.id for p in CORPUS]
    assert (
        order.index("blobs.post-gguf") < order.index("create.files") < order.index("show.scratch")
    )
    assert order.index("copy.ok") < order.index("delete.ok") < order.index("delete.again")
    assert order[-2:] == ["delete.scratch", "tags.after"]


# -- two reference servers with the same configuration -----------------------------------------


def test_reference_against_itself_has_no_differences() -> None:
    def config() -> ReferenceConfig:
        return ReferenceConfig(version="0.24.0", token_rate=0.0, load_time=0.0)

    with start_background(config()) as one, start_background(config()) as two:
        side_a = d.live_side("a", one.url, model="tiny-completion", embed_model="tiny-embed")
        side_b = d.live_side("b", two.url, model="tiny-completion", embed_model="tiny-embed")
    result = compare_runs(side_a, side_b)
    assert [x.line() for x in result.differences] == []
    assert result.missing == []
    assert len(side_a.observations) == len(CORPUS)
    # The corpus did what it says on the reference server, too.
    answers = side_a.by_probe()
    assert answers["blobs.post-new"].status == 201 and answers["blobs.post-again"].status == 200
    assert answers["generate.stream-length"].final["done_reason"] == "length"  # type: ignore[index]
    assert answers["delete.again"].status == 404


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ollama-conformance")
    d.register(parser.add_subparsers())
    return parser


def test_command_line_reports_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known = write(tmp_path, '["show.model"]\nshape = "the models differ"\n')
    out = tmp_path / "diff.json"
    config = ReferenceConfig(version="0.24.0", token_rate=0.0, load_time=0.0)
    with start_background(config) as one, start_background(config) as two:
        args = _parser().parse_args(
            ["differential", "--a", one.url, "--b", two.url, "--model-a", "tiny-completion",
             "--model-b", "tiny-completion", "--embed-model-a", "tiny-embed",
             "--embed-model-b", "tiny-embed", "--known", str(known), "--out", str(out)]
        )  # fmt: skip
        code = args.handler(args)
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "STALE     show.model [shape]" in printed  # the same model on both sides
    data = json.loads(out.read_text())
    assert data["unexplained"] == [] and data["probes"] == len(CORPUS)


def test_command_line_refuses_an_unreachable_server() -> None:
    from conformance.cli import UsageError

    args = _parser().parse_args(["differential", "--a", "http://127.0.0.1:9", "--b", "x"])
    with pytest.raises(UsageError, match="unreachable"):
        args.handler(args)
