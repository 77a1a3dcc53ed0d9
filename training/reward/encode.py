"""The one tokenisation of a (prompt, completion) pair for a reward model: training and scoring
both go through it, so the model is scored on exactly the token sequences it was trained on.

Convention (shared by trl's RewardTrainer, OpenRLHF and verl): the RM tokenizer's chat
template applied to ``[*prompt messages, {assistant: completion}]``, the rendered text
tokenized *without* adding special tokens again (the template already holds BOS/EOS where
the model expects them; a second BOS would shift every score), and the score is
``logits[:, 0]`` of ``AutoModelForSequenceClassification`` at the last real token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from glotbench.harness.core.records import ChatMessage


@dataclass(frozen=True)
class Encoded:
    """A conversation's token ids, fitted to a length limit."""

    ids: tuple[int, ...] | None
    """The ids to score; None when the prompt alone fills the limit (no completion token left)."""
    full_length: int
    """Tokens before any truncation."""
    prompt_length: int
    """Tokens of the prompt part (the template up to where the completion starts)."""

    @property
    def truncated(self) -> bool:
        return self.ids is not None and len(self.ids) < self.full_length


def conversation(messages: Sequence[ChatMessage], completion: str) -> list[dict[str, str]]:
    """The chat-template input: the prompt's turns and the completion as the assistant turn."""
    return [{"role": m.role, "content": m.content} for m in messages] + [{"role": "assistant",
                                                                           "content": completion}]


def token_ids(tokenizer, messages: Sequence[ChatMessage], completion: str) -> list[int]:
    """Token ids of the whole conversation by the convention (no special tokens added twice)."""
    text = tokenizer.apply_chat_template(conversation(messages, completion), tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def prompt_length(tokenizer, messages: Sequence[ChatMessage], ids: Sequence[int]) -> int:
    """How many leading ``ids`` the prompt accounts for: the longest common prefix with the
    prompt rendered with the generation prompt (some templates render the assistant header
    differently once the answer follows, so the prefix is measured, not assumed)."""
    text = tokenizer.apply_chat_template([{"role": m.role, "content": m.content} for m in messages],
                                         tokenize=False, add_generation_prompt=True)
    prompt = tokenizer(text, add_special_tokens=False)["input_ids"]
    n = 0
    for a, b in zip(prompt, ids):
        if a != b:
            break
        n += 1
    return n


def encode(tokenizer, messages: Sequence[ChatMessage], completion: str, max_length: int | None) -> Encoded:
    """The conversation's ids cut to ``max_length`` keeping the start (the prompt and the first
    tokens of the answer: what a judge reads first); ``ids`` None when the prompt leaves no room
    for a single completion token (scoring it would score the prompt alone)."""
    ids = token_ids(tokenizer, messages, completion)
    if max_length is None or len(ids) <= max_length:
        return Encoded(tuple(ids), len(ids), prompt_length(tokenizer, messages, ids))
    plen = prompt_length(tokenizer, messages, ids)
    if plen >= max_length:
        return Encoded(None, len(ids), plen)
    return Encoded(tuple(ids[:max_length]), len(ids), plen)
