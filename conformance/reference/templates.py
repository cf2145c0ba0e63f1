"""Just enough of Go's ``text/template`` to accept or reject a model template like Ollama does.

``/api/create`` parses the ``template`` field and fails with ``template error: <Go parser error>``
(§11.2-11.3; the repo tests use ``{{ .Prompt``, ``{{ if .Prompt }}`` and ``{{ Prompt }}``). The
reference server never executes templates (its engine builds prompts itself), but capabilities
are derived from what a template mentions (§20): ``.Tools`` → tools, ``.Suffix`` → insert,
``.Thinking`` → thinking.
"""

from __future__ import annotations

import re

_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break"}
_KEYWORDS |= {"continue", "nil", "true", "false"}
#: text/template's built-in functions plus the ones Ollama registers for model templates.
_FUNCTIONS = {
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
    "json", "currentDate", "yesterdayDate", "toTypeScriptType",
}  # fmt: skip
_OPENERS = {"if", "range", "with", "define", "block"}

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`|\'(?:[^\'\\]|\\.)*\'')
_BAREWORD = re.compile(r"(?<![.$\w])([A-Za-z_]\w*)")


class TemplateError(ValueError):
    """A template Go's parser rejects; ``str()`` is Go's message (``template: :1: ...``)."""


def check_template(text: str) -> None:
    """Raise :class:`TemplateError` if Go's ``template.New("").Parse(text)`` would fail."""
    depth: list[str] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            break
        line = text.count("\n", 0, start) + 1
        end = text.find("}}", start + 2)
        if end < 0:
            raise TemplateError(f"template: :{line}: unclosed action")
        body = text[start + 2 : end]
        pos = end + 2
        body = body.removeprefix("-").removesuffix("-").strip()
        if body.startswith("/*"):
            if not body.endswith("*/"):
                raise TemplateError(f"template: :{line}: unclosed comment")
            continue
        if not body:
            raise TemplateError(f"template: :{line}: missing value for command")
        words = _BAREWORD.findall(_STRINGS.sub('""', body))
        first = body.split(None, 1)[0]
        if first in _OPENERS:
            depth.append(first)
        elif first == "end":
            if not depth:
                raise TemplateError(f"template: :{line}: unexpected {{{{end}}}}")
            depth.pop()
        elif first == "else" and not depth:
            raise TemplateError(f"template: :{line}: unexpected {{{{else}}}}")
        for word in words:
            if word not in _KEYWORDS and word not in _FUNCTIONS:
                raise TemplateError(f'template: :{line}: function "{word}" not defined')
    if depth:
        last_line = text.count("\n") + 1
        raise TemplateError(f"template: :{last_line}: unexpected EOF")


def template_capabilities(text: str) -> set[str]:
    """Capabilities a Go template grants (§20)."""
    caps = set()
    if ".Tools" in text:
        caps.add("tools")
    if ".Suffix" in text:
        caps.add("insert")
    if ".Thinking" in text or ".IsThinkSet" in text:
        caps.add("thinking")
    return caps


def native_template_capabilities(chat_template: str) -> set[str]:
    """0.32 native mode: capabilities read from a GGUF ``tokenizer.chat_template`` (§20)."""
    caps = set()
    if "tools" in chat_template or "tool_call" in chat_template:
        caps.add("tools")
    if "<think>" in chat_template and "</think>" in chat_template:
        caps.add("thinking")
    return caps
