"""The prompt text a model sees, built the way Ollama does (reference facts §7.3, §8.3, §22.2).

* ``raw`` generate requests use the prompt verbatim.
* Otherwise the model's Go template (or the request's ``template``; a model without one uses
  ``{{ .Prompt }}``) is executed:
  - with ``Prompt`` and ``Suffix`` when a suffix is given (fill in the middle);
  - with ``System``, ``Messages``, ``Tools`` and the think values when it uses ``.Messages``;
  - otherwise the legacy way: once per user/assistant turn with ``System``/``Prompt``/
    ``Response``, concatenated, the last turn cut at ``.Response``.
* Generate turns its prompt into messages: the request ``system`` (else the model's), the
  model's own messages (unless ``context`` is given), then the user prompt.
* Chat prepends the model's messages, and the model's system prompt unless the chat already
  starts with a system message.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from .gotemplate import GoTemplate
from .options import think_enabled

DEFAULT_TEMPLATE = "{{ .Prompt }}"


@lru_cache(maxsize=256)
def parsed_template(text: str) -> GoTemplate:
    """Parse once per distinct template text (raises ``TemplateExecError``)."""
    return GoTemplate.parse(text or DEFAULT_TEMPLATE)


def _think_values(think: bool | str | None) -> dict[str, Any]:
    level = think if isinstance(think, str) else ("medium" if think is True else "")
    return {"Think": think_enabled(think), "ThinkLevel": level, "IsThinkSet": think is not None}


def execute(
    template: GoTemplate,
    messages: Sequence[dict[str, Any]],
    *,
    tools: Sequence[Any] | None = None,
    prompt: str = "",
    suffix: str = "",
    think: bool | str | None = None,
) -> str:
    """Ollama's ``Template.Execute``."""
    extra = _think_values(think)
    if prompt and suffix:
        return template.execute({"Prompt": prompt, "Suffix": suffix, "Response": "", **extra})
    system = "\n\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    if template.uses("Messages"):
        data = {
            "System": system,
            "Messages": list(messages),
            "Tools": list(tools or []),
            "Response": "",
            **extra,
        }
        return template.execute(data)
    out: list[str] = []
    turn = {"System": "", "Prompt": "", "Response": ""}

    def flush() -> None:
        out.append(template.execute({**turn, **extra}))
        turn.update(System="", Prompt="", Response="")

    for message in messages:
        role, content = message.get("role"), str(message.get("content") or "")
        if role == "system":
            if turn["Prompt"] or turn["Response"]:
                flush()
            turn["System"] = content
        elif role == "user":
            if turn["Response"]:
                flush()
            turn["Prompt"] = content
        elif role == "assistant":
            turn["Response"] = content
    out.append(template.execute({**turn, **extra}, cut_at_response=True))
    return "".join(out)


def generate_prompt(
    *,
    template_text: str,
    prompt: str,
    system: str,
    suffix: str,
    model_messages: Sequence[dict[str, Any]],
    has_context: bool,
    raw: bool,
    think: bool | str | None,
) -> str:
    """The rendered prompt of a generate request (without the ``context`` prefix)."""
    if raw:
        return prompt
    template = parsed_template(template_text)
    if suffix:
        return execute(template, [], prompt=prompt, suffix=suffix, think=think)
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    if not has_context:
        messages.extend(model_messages)
    messages.append({"role": "user", "content": prompt})
    return execute(template, messages, think=think)


def chat_prompt(
    *,
    template_text: str,
    messages: Sequence[dict[str, Any]],
    system: str,
    model_messages: Sequence[dict[str, Any]],
    tools: Sequence[Any] | None,
    think: bool | str | None,
) -> str:
    convo = [*model_messages, *messages]
    if system and not (convo and convo[0].get("role") == "system"):
        convo = [{"role": "system", "content": system}, *convo]
    return execute(parsed_template(template_text), convo, tools=tools, think=think)
