"""Benchmark prompts: about N tokens long, different for every request.

Servers cache prompts (llama.cpp reuses the longest common prefix of the previous prompt in a
slot), so sending the same prompt twice measures the cache, not prefill. Every prompt therefore
*starts* with a nonce unique to the run, repetition and worker: a shared prefix of even a few
tokens would still be reused. The rest is common one-syllable English words, which nearly every
tokenizer maps to one token each, so the length in tokens is close to the number of words; the
server's ``prompt_eval_count`` records the true length of each prompt.
"""

from __future__ import annotations

import random
import secrets

__all__ = ["INSTRUCTION", "WORDS", "make_nonce", "make_prompt", "new_run_id"]

WORDS = (
    "the", "cat", "sat", "on", "a", "mat", "and", "saw", "red", "sun", "in", "sky",
    "while", "dog", "ran", "to", "big", "old", "tree", "by", "lake", "with", "fish", "that",
    "swim", "all", "day", "warm", "but", "not", "at", "night", "when", "stars", "come", "out",
    "so", "we", "go", "home", "eat", "bread", "drink", "tea", "read", "book", "then", "sleep",
    "well", "until", "bird", "sings", "dawn",
)  # fmt: skip

#: Appended so that the model keeps generating until ``num_predict`` instead of answering briefly
#: and stopping (which would make the sample "short-output"). Asking for a long story works for
#: real models, and the reference server answers any prompt mentioning "long" or "story" with a
#: dozen sentences (at least 72 tokens).
INSTRUCTION = "\n\nWrite a long story that uses all of these words. Do not stop early."
_INSTRUCTION_TOKENS = 16

#: Characters per token assumed for the nonce, which is made of hex digits and punctuation
#: (tokenizers split those finely).
_NONCE_CHARS_PER_TOKEN = 2


def new_run_id() -> str:
    """A short random id for one bench run, so two runs never share a prompt prefix."""
    return secrets.token_hex(4)


def make_nonce(run_id: str, phase: str, concurrency: int, repetition: int, worker: int) -> str:
    """The unique prefix of one request's prompt; recorded with the sample."""
    return f"[{run_id} {phase} c{concurrency} r{repetition} w{worker}]"


def make_prompt(tokens: int, nonce: str) -> str:
    """A prompt of roughly ``tokens`` tokens that begins with ``nonce``.

    The words are drawn from a generator seeded with the nonce, so the text after the prefix also
    differs between requests while staying reproducible for a given nonce.
    """
    if tokens < 1:
        raise ValueError(f"prompt tokens must be at least 1, got {tokens}")
    nonce_tokens = max(1, len(nonce) // _NONCE_CHARS_PER_TOKEN)
    count = max(1, tokens - nonce_tokens - _INSTRUCTION_TOKENS)
    rng = random.Random(nonce)
    return nonce + " " + " ".join(rng.choice(WORDS) for _ in range(count)) + INSTRUCTION
