"""Building blocks of the reference server, checked in isolation.

Go-compatible JSON in and out (§1.3, §1.4), Go durations (§19.2), model names (§21), template
checks (§11.3), the schema instance generator and the catalogue's GGUF writer.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conformance.reference.bodies import BindError, bind
from conformance.reference.config import ReferenceConfig
from conformance.reference.gojson import F32, GoMap, dumps, format_float, format_float_v, go_quote
from conformance.reference.gotemplate import GoTemplate, TemplateExecError
from conformance.reference.gotime import DurationError, parse_go_duration, rfc3339_utc
from conformance.reference.names import parse_name
from conformance.reference.request_types import CorruptBase64, go_base64_decode, request_struct
from conformance.reference.schemagen import instance_for
from conformance.reference.templates import TemplateError, check_template

NEWEST = ReferenceConfig()


def _bind(body: bytes, kind: str = "generate", config: ReferenceConfig = NEWEST) -> dict[str, Any]:
    return bind(body, request_struct(kind, config))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "missing request body"),
        (b"\r\n ", "missing request body"),
        (b'{"model":', "unexpected EOF"),
        (b'{"model":"x"', "unexpected EOF"),
        (b"hello", "invalid character 'h' looking for beginning of value"),
        (b"{'a':1}", "invalid character '\\'' looking for beginning of object key string"),
        (b'{"a" 1}', "invalid character '1' after object key"),
        (b'{"a":1 "b":2}', "invalid character '\"' after object key:value pair"),
        (b'{"a":[1 2]}', "invalid character '2' after array element"),
        (b'{"a":"\x01"}', "invalid character '\\x01' in string literal"),
        (b'{"a":"\\q"}', "invalid character 'q' in string escape code"),
        (b'{"a":"\\u12x4"}', "invalid character 'x' in \\u hexadecimal character escape"),
        (b'{"a":-x}', "invalid character 'x' in numeric literal"),
        (b'{"a":1.}', "invalid character '}' after decimal point in numeric literal"),
        (b'{"a":1e+}', "invalid character '}' in exponent of numeric literal"),
        (b'{"a":nul}', "invalid character '}' in literal null (expecting 'l')"),
        (b'{"a":NaN}', "invalid character 'N' looking for beginning of value"),
        (b"1.", "unexpected EOF"),
        (b"42", "json: cannot unmarshal number into Go value of type api.GenerateRequest"),
        (b'"x"', "json: cannot unmarshal string into Go value of type api.GenerateRequest"),
        (
            b'{"stream":"yes"}',
            "json: cannot unmarshal string into Go struct field GenerateRequest.stream "
            "of type bool",
        ),
        (
            b'{"context":{}}',
            "json: cannot unmarshal object into Go struct field GenerateRequest.context "
            "of type []int",
        ),
        (
            b'{"top_logprobs":1e2}',
            "json: cannot unmarshal number 1e2 into Go struct field "
            "GenerateRequest.top_logprobs of type int",
        ),
        (
            b'{"prompt":1,"system":2}',
            "json: cannot unmarshal number into Go struct field GenerateRequest.prompt "
            "of type string",
        ),
        (b'{"prompt":1,"keep_alive":"1"}', 'time: missing unit in duration "1"'),
        (b'{"keep_alive":[]}', "Unsupported type: '[]interface {}'"),
        (b"[" * 10001 + b"]" * 10001, "invalid character '[' exceeded max depth"),
    ],
)
def test_go_decoder_messages(body: bytes, message: str) -> None:
    with pytest.raises(BindError) as caught:
        _bind(body)
    assert str(caught.value) == message


def test_go_decoder_acceptance() -> None:
    assert _bind(b"null")["model"] == ""
    assert _bind(b'{"model":"m"} trailing garbage')["model"] == "m"
    assert _bind(b'{"MODEL":"m","Prompt":"p","unknown":[1,{}]}')["prompt"] == "p"
    assert _bind(b'{"stream":null,"keep_alive":null}')["stream"] is None
    assert _bind(b'{"keep_alive":"1h30m"}')["keep_alive"] == 5400 * 10**9
    assert _bind(b'{"keep_alive":1.5}')["keep_alive"] == 1_500_000_000
    assert _bind(b'{"keep_alive":-1}')["keep_alive"] == (1 << 63) - 1
    assert _bind(b'{"images":["aGk="]}')["images"] == [b"hi"]
    nested = b"[" * 3000 + b"]" * 3000  # deeper than Python's recursion limit, fine for Go
    with pytest.raises(BindError, match="cannot unmarshal array"):
        _bind(b'{"prompt":' + nested + b"}")
    chat = _bind(b'{"messages":[{"role":"ASSISTANT","content":"x"}]}', "chat")
    assert chat["messages"][0]["role"] == "assistant"
    old = ReferenceConfig(version="0.9.0")
    assert _bind(b'{"keep_alive":1.9}', config=old)["keep_alive"] == 1_000_000_000


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("!", 0),
        ("QQ", 0),
        ("QQ=", 3),
        ("QQ==QQ==", 4),
        ("QUJD\nREVG", None),
        ("YQ==", None),
        ("Y===", 1),
    ],
)
def test_base64_offsets(text: str, offset: int | None) -> None:
    if offset is None:
        go_base64_decode(text)
        return
    with pytest.raises(CorruptBase64) as caught:
        go_base64_decode(text)
    assert str(caught.value) == f"illegal base64 data at input byte {offset}"


def test_go_json_encoding() -> None:
    assert dumps({"a": "<b>&", "n": 1.0, "f": 0.5, "t": True, "z": None}) == (
        b'{"a":"\\u003cb\\u003e\\u0026","n":1,"f":0.5,"t":true,"z":null}'
    )
    assert dumps(GoMap(status=400, error="x")) == b'{"error":"x","status":400}'
    assert dumps(["\u2028", "é", "\x01"]) == '["\\u2028","é","\\u0001"]'.encode()
    assert format_float(1e-7) == "1e-7" and format_float(1e21) == "1e+21"
    assert format_float(123456789.0) == "123456789" and format_float(-0.0) == "-0"
    assert dumps([F32(0.1), F32(1e-05)]) == b"[0.1,0.00001]"
    assert format_float_v(42.0) == "42" and format_float_v(1e6) == "1e+06"
    assert format_float_v(0.9) == "0.9" and format_float_v(0.00001) == "1e-05"
    assert go_quote('a"b\\c\n\x00') == '"a\\"b\\\\c\\n\\x00"'


@pytest.mark.parametrize(
    ("text", "ns"),
    [("0", 0), ("1s", 10**9), ("1.5h", 5400 * 10**9), ("-2m", -120 * 10**9), ("300ms", 3 * 10**8),
     ("1h2m3s4ms5us6ns", 3723004005006), ("2\u00b5s", 2000)],
)  # fmt: skip
def test_durations(text: str, ns: int) -> None:
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize(
    ("text", "message"),
    [("", 'time: invalid duration ""'), ("10", 'time: missing unit in duration "10"'),
     ("1d", 'time: unknown unit "d" in duration "1d"'), (".s", 'time: invalid duration ".s"'),
     ("-", 'time: invalid duration "-"'), ("9999999999h", 'time: invalid duration "9999999999h"')],
)  # fmt: skip
def test_duration_errors(text: str, message: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_go_duration(text)
    assert str(caught.value) == message


def test_utc_timestamp_trims_zeros() -> None:
    assert rfc3339_utc(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert rfc3339_utc(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


@pytest.mark.parametrize(
    ("text", "valid", "shortest", "full"),
    [
        ("llama3", True, "llama3:latest", "registry.ollama.ai/library/llama3:latest"),
        ("me/m:7b", True, "me/m:7b", "registry.ollama.ai/me/m:7b"),
        ("example.com:5000/ns/m:t", True, "example.com:5000/ns/m:t", "example.com:5000/ns/m:t"),
        ("https://example.com/ns/m", True, "example.com/ns/m:latest", "example.com/ns/m:latest"),
        ("a:", False, None, None),
        ("/x", False, None, None),
        ("", False, None, None),
        ("bad name", False, None, None),
        ("-lead", False, None, None),
        ("na.me/model", False, None, None),
        ("m" * 81, False, None, None),
        ("a/b/c/d", False, None, None),
    ],
)
def test_model_names(text: str, valid: bool, shortest: str | None, full: str | None) -> None:
    name = parse_name(text)
    assert name.valid is valid
    if valid:
        assert (name.shortest, name.full) == (shortest, full)


def test_names_match_case_insensitively() -> None:
    assert parse_name("Tiny-Completion").key == parse_name("tiny-completion:LATEST").key


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ .Prompt", "template: :1: unclosed action"),
        ("{{ if .Prompt }}", "template: :1: unexpected EOF"),
        ("{{ Prompt }}", 'template: :1: function "Prompt" not defined'),
        ("{{ end }}", "template: :1: unexpected {{end}}"),
        ("a\n{{ .X", "template: :2: unclosed action"),
        ("{{ .System }}{{ range .Messages }}{{ .Role }}{{ end }}", None),
        ('{{- if .Tools }}{{ json .Tools }}{{ else if eq .Role "x" }}{{ end -}}', None),
        ('{{/* a comment */}}{{ printf "%s" .Prompt }}', None),
    ],
)
def test_template_checks(template: str, message: str | None) -> None:
    if message is None:
        check_template(template)
        return
    with pytest.raises(TemplateError) as caught:
        check_template(template)
    assert str(caught.value) == message


SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "object",
        "properties": {"age": {"type": "integer"}, "ok": {"type": "boolean"}},
        "required": ["age"],
    },
    {
        "type": "array",
        "items": {"type": "number", "minimum": 2.5, "maximum": 3},
        "minItems": 3,
        "maxItems": 4,
    },
    {"type": "string", "minLength": 12, "maxLength": 20},
    {"type": "string", "format": "date-time"},
    {"type": "string", "pattern": "^[A-Z][0-9]$"},
    {"enum": ["red", "green"]},
    {"const": {"x": 1}},
    {"anyOf": [{"type": "integer", "multipleOf": 7, "minimum": 10}, {"type": "string"}]},
    {
        "allOf": [
            {"properties": {"a": {"type": "string"}}},
            {"required": ["b"], "properties": {"b": {"type": "null"}}},
        ]
    },
    {
        "$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}},
        "$ref": "#/$defs/node",
    },
    {"type": ["null", "integer"], "exclusiveMinimum": 5, "exclusiveMaximum": 7},
    {"type": "object", "minProperties": 2, "additionalProperties": {"type": "integer"}},
    {"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}]},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_schema_instances_validate(schema: dict[str, Any]) -> None:
    for seed in range(5):
        value = instance_for(schema, random.Random(seed), "Paris has 7 bridges and 12 towers")
        jsonschema.validate(value, schema)
        json.dumps(value)


def test_catalogue_gguf_reads_back(tmp_path: Path) -> None:
    from conformance.reference import catalogue
    from conformance.reference.ggufinfo import read_facts

    for entry in catalogue.CATALOGUE:
        blobs, _, facts = catalogue.build(entry)
        path = tmp_path / f"{entry.name}.gguf"
        path.write_bytes(blobs[0].data)
        read = read_facts(path)
        assert read.kv == facts.kv
        assert read.tensors == facts.tensors
        assert read.parameter_count == facts.parameter_count
        assert read.has_pooling is entry.pooling


TEMPLATE_DATA = {
    "System": "sys",
    "Prompt": "p",
    "Response": "",
    "Messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo", "tool_calls": [{"function": {"name": "f"}}]},
    ],
    "Tools": [{"type": "function", "function": {"name": "f"}}],
}


@pytest.mark.parametrize(
    ("template", "rendered"),
    [
        ("{{ .Prompt }}q", "pq"),
        ("{{- if .System }} [{{ .System }}] {{- end }}\n{{ .Prompt }}", " [sys]\np"),
        ("{{ range .Messages }}<{{ .Role }}>{{ .Content }}{{ end }}", "<user>hi<assistant>yo"),
        ("{{ range $i, $m := .Messages }}{{ $i }}"
         "{{ if eq $m.Role \"user\" }}U{{ else }}A{{ end }}{{ end }}", "0U1A"),
        ("{{ range .Messages }}{{ range .ToolCalls }}{{ .Function.Name }}{{ end }}{{ end }}", "f"),
        ("{{ $last := index .Messages 1 }}{{ $last.Content }}", "yo"),
        ("{{ len (slice .Messages 1) }}", "1"),
        ("{{ json .Tools }}", '[{"type":"function","function":{"name":"f"}}]'),
        ("{{ with .Missing }}x{{ else }}none{{ end }} {{ .Missing }}", "none <no value>"),
        ("{{ range .Messages }}{{ if eq .Role \"assistant\" }}{{ break }}{{ end }}"
         "{{ .Content }}{{ end }}", "hi"),
        ("{{ printf \"%s=%d %q\" .Prompt 3 .System }}", 'p=3 "sys"'),
        ("{{ and .System .Prompt }}|{{ or .Missing \"dflt\" }}|{{ not .Prompt }}", "p|dflt|false"),
    ],
)  # fmt: skip
def test_go_template_rendering(template: str, rendered: str) -> None:
    assert GoTemplate.parse(template).execute(TEMPLATE_DATA) == rendered


def test_go_template_cut_and_errors() -> None:
    template = GoTemplate.parse("{{ .Prompt }}{{ .Response }}<end>")
    assert template.execute(TEMPLATE_DATA, cut_at_response=True) == "p"
    assert template.execute(TEMPLATE_DATA) == "p<end>"
    for bad in ("{{ if .X }}", "{{ end }}", "{{ .X", '{{ template "x" }}'):
        with pytest.raises(TemplateExecError):
            GoTemplate.parse(bad)
    with pytest.raises(TemplateExecError, match="undefined variable"):
        GoTemplate.parse("{{ $nope }}").execute({})
