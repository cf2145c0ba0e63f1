"""The deterministic "model": text as a function of model, prompt and sampling options, paced.

Two sources of tokens share one runner. Uploaded GGUFs small enough to compute are run for real
(:mod:`.weights`, :func:`plan_weights`), so a model answers as its weights dictate. Everything
else — the built-in catalogue above all — uses the synthetic engine here: a generation is planned
up front from a hash of (model, rendered prompt, format, think, and — only when sampling is
random — temperature and seed), then emitted token by token at the configured rate:

* ``temperature: 0`` is greedy: the text ignores the seed and repeats exactly;
  ``temperature > 0`` with a ``seed`` repeats for that seed; without a seed it varies.
* ``num_predict`` cuts the text → ``done_reason: "length"``; a stop sequence or the natural end of
  the text → ``"stop"`` (§19.5). Text that could be the start of a stop sequence is held back
  until it is clear, so a stop string never leaks into the output.
* Answers are one or two short sentences; a prompt that asks for length (it mentions "long",
  "story", "essay" or "detail") gets a dozen sentences, which rate and limit tests rely on.
* No token is ever repeated back to back (real Ollama silently ends a stream after 30 repeats).
* Pacing uses absolute deadlines (token *k* is due at ``start + k/rate``), so ``eval_count /
  eval_duration`` recovers the configured rate however long each chunk takes to write.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import secrets
import string
import time
import zlib
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .options import Options
from .schemagen import instance_for
from .weights import Detokenizer, TinyModel

_WORDS = [
    "the",
    "sky",
    "is",
    "blue",
    "because",
    "light",
    "from",
    "the",
    "sun",
    "scatters",
    "in",
    "air",
    "and",
    "shorter",
    "waves",
    "spread",
    "more",
    "across",
    "our",
    "view",
    "while",
    "longer",
    "ones",
    "pass",
    "through",
    "so",
    "we",
    "see",
    "a",
    "bright",
    "color",
    "above",
    "us",
    "during",
    "day",
    "at",
    "sunset",
    "path",
    "grows",
    "through",
    "thicker",
    "layers",
    "red",
    "orange",
    "tones",
    "remain",
    "models",
    "like",
    "this",
    "one",
    "answer",
    "with",
    "small",
    "sentences",
    "that",
    "sound",
    "plausible",
    "enough",
    "for",
    "tests",
    "to",
    "read",
    "each",
    "word",
    "comes",
    "from",
    "fixed",
    "list",
    "chosen",
    "by",
    "seeded",
    "random",
    "numbers",
    "never",
    "repeating",
    "itself",
    "twice",
    "in",
    "row",
    "clients",
    "can",
    "compare",
    "streams",
    "exactly",
    "rivers",
    "mountains",
    "forests",
    "cities",
    "ocean",
    "winds",
    "stars",
    "gentle",
    "quiet",
    "rapid",
    "simple",
    "careful",
    "useful",
    "honest",
    "modern",
    "ancient",
    "golden",
    "silver",
    "green",
]
_THOUGHTS = [
    "let",
    "me",
    "think",
    "about",
    "what",
    "is",
    "being",
    "asked",
    "first",
    "I",
    "should",
    "consider",
    "the",
    "question",
    "carefully",
    "then",
    "weigh",
    "possible",
    "answers",
    "and",
    "check",
    "each",
    "step",
    "before",
    "I",
    "reply",
    "briefly",
]
_LONG_HINTS = ("long", "story", "essay", "detail")
_SPIN_NS = 2_000_000
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_PIECE_RE = re.compile(r"\s*\w+|\s*[^\w\s]|\s+")


def prompt_tokens(text: str) -> list[int]:
    """Stable token ids for a prompt (words and punctuation marks; at least one token)."""
    pieces = _TOKEN_RE.findall(text) or [""]
    return [zlib.crc32(p.encode()) % 32000 + 256 for p in pieces]


def token_id(piece: str) -> int:
    return zlib.crc32(piece.strip().encode()) % 32000 + 256


def split_pieces(text: str) -> list[str]:
    """Split generated text into token-sized pieces (each keeps its leading space)."""
    return _PIECE_RE.findall(text)


def tool_call_id() -> str:
    """``call_`` plus 8 random ``[a-z0-9]`` characters, as Ollama 0.12.11+ assigns (§8.3)."""
    alphabet = string.ascii_lowercase + string.digits
    return "call_" + "".join(secrets.choice(alphabet) for _ in range(8))


# --- planning --------------------------------------------------------------------------------


@dataclass
class Plan:
    """What the model will say, before limits and stop sequences apply.

    ``content`` is a list for the synthetic engine and a lazy iterator when real weights compute
    it token by token (:func:`plan_weights`); an empty piece is a token with no text (an
    end-of-generation token, or half of a UTF-8 character). ``token_ids`` collects the real ids
    when there are any.
    """

    thinking: list[str] = field(default_factory=list)
    content: Sequence[str] | Iterator[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_tokens: int = 0
    token_ids: list[int] | None = None


def plan_weights(model: TinyModel, prompt_ids: list[int], options: Options, num_ctx: int) -> Plan:
    """A plan computed by running ``model`` (see :mod:`.weights`), one token per step."""
    ids: list[int] = []
    detokenizer = Detokenizer(model)

    def pieces() -> Iterator[str]:
        for token in model.generate(prompt_ids, options, 1 << 30, num_ctx):
            ids.append(token)
            yield "" if token in model.eog else detokenizer.piece(token)

    return Plan(content=pieces(), token_ids=ids)


def _rng(*parts: Any) -> random.Random:
    try:
        text = json.dumps(parts, default=str, sort_keys=True)
    except (RecursionError, ValueError):
        # A client value nested deeper than Python can walk: fall back to a shallow rendering.
        text = repr(
            [p if isinstance(p, str | int | float | bool) else type(p).__name__ for p in parts]
        )
    digest = hashlib.sha256(text.encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def sampling_key(options: Options) -> list[Any]:
    """The part of the seed that sampling options contribute.

    Greedy decoding (temperature 0) does not depend on the seed; random sampling without a seed
    is fresh randomness every time, like the real server.
    """
    if options.temperature <= 0:
        return ["greedy"]
    if options.seed < 0:
        return ["random", secrets.token_hex(8)]
    return ["seeded", options.seed, round(options.temperature, 6), options.top_k, options.top_p]


def _sentence(rng: random.Random, words: Sequence[str], low: int, high: int) -> list[str]:
    length = rng.randint(low, high)
    out: list[str] = []
    previous = ""
    for index in range(length):
        word = rng.choice(words)
        while word == previous:
            word = rng.choice(words)
        previous = word
        out.append(word.capitalize() if index == 0 else " " + word)
    out.append(".")
    return out


def plan_text(
    model_key: str,
    prompt: str,
    options: Options,
    *,
    think: bool = False,
    fmt: str | dict[str, Any] | None = None,
    extra: Sequence[Any] = (),
) -> Plan:
    """Plan a plain answer (with optional thinking and structured output)."""
    rng = _rng(model_key, prompt, fmt, think, list(extra), sampling_key(options))
    plan = Plan()
    if think:
        plan.thinking = _sentence(rng, _THOUGHTS, 8, 16)
    if fmt is not None:
        schema: Any = (
            fmt
            if isinstance(fmt, dict)
            else {
                "type": "object",
                "properties": {"response": {"type": "string"}},
            }
        )
        value = instance_for(schema, rng, prompt)
        if fmt == "json" and isinstance(value, dict):
            value["response"] = "".join(_sentence(rng, _WORDS, 4, 10)).strip()
        plan.content = split_pieces(json.dumps(value, ensure_ascii=False))
        return plan
    wants_length = any(word in prompt.lower() for word in _LONG_HINTS)
    sentences = rng.randint(12, 14) if wants_length else rng.randint(1, 2)
    content: list[str] = []
    for index in range(sentences):
        pieces = _sentence(rng, _WORDS, 5, 14)
        if index:
            pieces[0] = " " + pieces[0].strip()
        content.extend(pieces)
    plan.content = content
    return plan


def plan_tool_calls(
    model_key: str,
    prompt: str,
    options: Options,
    tools: list[dict[str, Any]],
    user_text: str,
    *,
    with_ids: bool,
    with_index: bool,
) -> Plan | None:
    """Call one of the offered tools, with arguments built from its parameter schema."""
    candidates = [t.get("function") for t in tools if isinstance(t, dict)]
    functions: list[dict[str, Any]] = [
        f for f in candidates if isinstance(f, dict) and f.get("name")
    ]
    if not functions:
        return None
    lowered = user_text.lower()
    chosen = next(
        (f for f in functions if str(f["name"]).lower().replace("_", " ") in lowered), None
    ) or next((f for f in functions if str(f["name"]).lower() in lowered), functions[0])
    rng = _rng(model_key, prompt, "tools", sampling_key(options))
    schema = chosen.get("parameters")
    if not isinstance(schema, dict):
        schema = {"type": "object", "properties": {}}
    arguments = instance_for({**schema, "type": "object"}, rng, user_text)
    if not isinstance(arguments, dict):
        arguments = {}
    call: dict[str, Any] = {}
    if with_ids:
        call["id"] = tool_call_id()
    function: dict[str, Any] = {"index": 0} if with_index else {}
    function |= {"name": str(chosen["name"]), "arguments": arguments}
    call["function"] = function
    raw = json.dumps(call["function"])
    return Plan(tool_calls=[call], tool_call_tokens=len(_TOKEN_RE.findall(raw)))


def plan_tool_answer(model_key: str, prompt: str, options: Options, tool_output: str) -> Plan:
    """The answer after a ``tool`` message: it reports what the tool returned."""
    rng = _rng(model_key, prompt, "tool-answer", sampling_key(options))
    snippet = " ".join(tool_output.split())[:80] or "nothing"
    text = f"According to the tool, the result is {snippet}."
    tail = "".join(_sentence(rng, _WORDS, 4, 8))
    return Plan(content=split_pieces(text + " " + tail))


# --- running ---------------------------------------------------------------------------------


@dataclass
class Emission:
    """One unit of output: a piece of ``thinking`` or ``content``, or the finished tool calls."""

    kind: str  # "thinking" | "content" | "tool_calls"
    text: str = ""
    tool_calls: list[dict[str, Any]] | None = None


@dataclass
class RunStats:
    done_reason: str = "stop"
    eval_count: int = 0
    eval_duration_ns: int = 0
    output_ids: list[int] = field(default_factory=list)
    #: The repeat guard fired: the stream ends without a final object (§18.5).
    aborted: bool = False


#: Ollama ends a completion silently once one trimmed piece repeats more than this many times.
REPEAT_LIMIT = 30


def _held_back(pending: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of ``pending`` that could still grow into a stop sequence."""
    best = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(pending)), best, -1):
            if pending.endswith(stop[:k]):
                best = k
                break
    return best


async def run(
    plan: Plan, options: Options, *, rate: float, limit: int, stats: RunStats
) -> AsyncIterator[Emission]:
    """Emit ``plan`` at ``rate`` tokens/s, honouring ``limit`` (num_predict) and stop sequences.

    ``stats`` is filled in as the run proceeds and is complete when the iterator ends.
    """
    stops = [s for s in options.stop if s]
    interval = 1e9 / rate if rate > 0 else 0.0
    if plan.tool_calls is not None:
        planned = len(plan.thinking) + plan.tool_call_tokens
    elif isinstance(plan.content, Sequence):
        planned = len(plan.thinking) + len(plan.content)
    else:
        planned = limit
    last = min(planned, limit)
    start = time.perf_counter_ns()
    finished = start
    produced = 0

    async def pace() -> None:
        # Token k is due at start + k * interval, so lateness of earlier chunks is absorbed and
        # only the last token's wake-up error reaches eval_duration. The event loop wakes up
        # ~1 ms late (more under load), so the (expected) last token waits out its final
        # stretch with a precise blocking sleep.
        nonlocal produced, finished
        produced += 1
        due = start + produced * interval
        if interval:
            precise = produced == last
            coarse = (due - time.perf_counter_ns() - (_SPIN_NS if precise else 0)) / 1e9
            if coarse > 0:
                await asyncio.sleep(coarse)
            remaining = (due - time.perf_counter_ns()) / 1e9
            if precise and remaining > 0:
                # A short blocking sleep (at most _SPIN_NS, once per generation) is far more
                # punctual than an event-loop timer, which other streams can delay.
                time.sleep(remaining)
        await asyncio.sleep(0)
        finished = time.perf_counter_ns()

    try:
        for piece in plan.thinking:
            if produced >= limit:
                stats.done_reason = "length"
                return
            await pace()
            yield Emission("thinking", piece)
        if plan.tool_calls is not None:
            for _ in range(plan.tool_call_tokens):
                if produced >= limit:
                    stats.done_reason = "length"
                    return
                await pace()
            yield Emission("tool_calls", tool_calls=plan.tool_calls)
            return
        pending = ""
        repeated, previous = 0, ""
        pieces = iter(plan.content)
        while True:
            if produced >= limit:
                stats.done_reason = "length"
                if pending:
                    yield Emission("content", pending)
                return
            next_piece = next(pieces, None)
            if next_piece is None:
                break
            piece = next_piece
            await pace()
            if plan.token_ids is None:
                stats.output_ids.append(token_id(piece))
            if piece.strip():
                # Counted like Ollama: repeats after the first sighting; the 32nd equal piece
                # in a row is the one that aborts.
                repeated = repeated + 1 if piece.strip() == previous else 0
                previous = piece.strip()
                if repeated > REPEAT_LIMIT:
                    stats.aborted = True
                    return
            pending += piece
            hits = [i for i in (pending.find(s) for s in stops) if i >= 0]
            if hits:
                cut = pending[: min(hits)]
                if cut:
                    yield Emission("content", cut)
                return
            keep = _held_back(pending, stops)
            ready, pending = pending[: len(pending) - keep], pending[len(pending) - keep :]
            if ready:
                yield Emission("content", ready)
        if pending:
            yield Emission("content", pending)
    finally:
        stats.eval_count = produced
        stats.eval_duration_ns = max(finished - start, 1)
        if plan.token_ids is not None:
            stats.output_ids = list(plan.token_ids)
