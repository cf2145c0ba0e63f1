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
* Images become ``[img-N]`` markers in their message's text (the first ``[img]`` in the text is
  replaced, otherwise the marker is put in front), numbered across the conversation.
* Before the template runs, consecutive messages of one role are merged into one, their texts
  joined by a blank line (tool results stay apart from v0.9.6-rc0). Real 0.24.0 renders the
  messages ``user a``, ``user b`` through ``{{ range .Messages }}{{ .Content }}{{ end }}`` as
  ``"a\n\nb"``.
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


def collate(messages: Sequence[dict[str, Any]], *, merge_tools: bool) -> list[dict[str, Any]]:
    """Ollama's ``collate``: runs of one role become one message, texts joined by a blank line.

    The merged message keeps the first message's other fields. ``merge_tools`` is the behaviour
    before v0.9.6-rc0, which merged consecutive tool results too.
    """
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if out and out[-1].get("role") == role and (merge_tools or role != "tool"):
            joined = str(out[-1].get("content") or "") + "\n\n" + str(message.get("content") or "")
            out[-1] = {**out[-1], "content": joined}
        else:
            out.append(dict(message))
    return out


def tag_images(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``[img-N]`` markers for the images of each message (``chatPrompt``), N counted across all."""
    count = 0
    out: list[dict[str, Any]] = []
    for message in messages:
        images = message.get("images") or []
        if not images:
            out.append(message)
            continue
        prefix, content = "", str(message.get("content") or "")
        for _ in images:
            marker = f"[img-{count}]"
            count += 1
            if "[img]" in content:
                content = content.replace("[img]", marker, 1)
            else:
                prefix += marker
        out.append({**message, "content": prefix + content})
    return out


def execute(
    template: GoTemplate,
    messages: Sequence[dict[str, Any]],
    *,
    tools: Sequence[Any] | None = None,
    prompt: str = "",
    suffix: str = "",
    think: bool | str | None = None,
    merge_tools: bool = False,
) -> str:
    """Ollama's ``Template.Execute`` (collating the messages first)."""
    extra = _think_values(think)
    if prompt and suffix:
        return template.execute({"Prompt": prompt, "Suffix": suffix, "Response": "", **extra})
    system = "\n\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    messages = collate(messages, merge_tools=merge_tools)
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
    images: int = 0,
    image_style: str = "tags",
    merge_tools: bool = False,
) -> str:
    """The rendered prompt of a generate request (without the ``context`` prefix).

    ``image_style`` is how the release marks ``images``: ``"tags"`` (v0.12.6-rc0+, rendered like
    a chat: the user message gets ``[img-N]`` markers), ``"messages"`` (before: one user message
    ``[img-N]`` per image in front of the prompt, merged with it by the collation) or ``"none"``
    (v0.12.6-rc0+ with a template given in the request, which is executed as it is).
    """
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
    if image_style == "messages":
        messages += [{"role": "user", "content": f"[img-{n}]"} for n in range(images)]
    user: dict[str, Any] = {"role": "user", "content": prompt}
    if image_style == "tags" and images:
        user = tag_images([{**user, "images": [b""] * images}])[0]
        del user["images"]
    messages.append(user)
    return execute(template, messages, think=think, merge_tools=merge_tools)


def chat_prompt(
    *,
    template_text: str,
    messages: Sequence[dict[str, Any]],
    system: str,
    model_messages: Sequence[dict[str, Any]],
    tools: Sequence[Any] | None,
    think: bool | str | None,
    merge_tools: bool = False,
    mark_images: bool = True,
) -> str:
    """The rendered prompt of a chat; ``mark_images`` is off for models with a renderer."""
    convo = [*model_messages, *messages]
    if system and not (convo and convo[0].get("role") == "system"):
        convo = [{"role": "system", "content": system}, *convo]
    if mark_images:
        convo = tag_images(convo)
    return execute(
        parsed_template(template_text), convo, tools=tools, think=think, merge_tools=merge_tools
    )
