"""lm-eval 0.4.13's tokenisation of log-likelihood requests, shared by every backend that
scores token sequences itself (hf, vllm), so they score exactly the same tokens.

Trailing context spaces move to the continuation; ``context + continuation`` is encoded whole
and split after the tokens of the context alone; no special tokens unless the tokenizer adds
them by default (and never a second BOS before a prompt whose chat template already wrote
it); an empty context becomes the BOS/EOS token; over-long inputs are truncated from the left.
"""

from __future__ import annotations

from collections.abc import Sequence

from glotbench.harness.core.errors import GlotbenchError, ModelError
from glotbench.harness.core.records import ChatMessage
from glotbench.harness.models.prefix import Sequence as TokSeq


class PairEncoder:
    """A tokenizer and a context limit: ``encode(text)``, ``encode_pair(context, continuation)``."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length
        self.prefix_token_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id

    def encode(self, text: str) -> list[int]:
        # A prompt rendered by the chat template already carries its BOS text; adding the
        # tokenizer's special tokens again would double it.
        bos = self.tokenizer.bos_token
        return self.tokenizer.encode(text, add_special_tokens=not (bos and text.startswith(bos)))

    def encode_pair(self, context: str, continuation: str) -> TokSeq:
        if not context:
            cont = self.encode(continuation)
            return TokSeq(tuple([self.prefix_token_id] + cont), 1)
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        whole = self.encode(context + continuation)
        ctx = self.encode(context)
        tokens = ctx + whole[len(ctx):]
        n_ctx = len(ctx)
        if len(tokens) > self.max_length + 1:  # left-truncate, as lm-eval does
            cut = len(tokens) - (self.max_length + 1)
            if cut >= n_ctx:
                raise GlotbenchError(
                    f"a continuation of {len(tokens) - n_ctx} tokens exceeds the model's "
                    f"context of {self.max_length}", "shorten the item or use a longer-context model")
            tokens, n_ctx = tokens[cut:], n_ctx - cut
        return TokSeq(tuple(tokens), n_ctx)

    # ---- chat templates -------------------------------------------------------------
    @property
    def chat_template(self) -> str | None:
        """The model's chat template (None: a base model without one)."""
        template = getattr(self.tokenizer, "chat_template", None)
        return template if isinstance(template, str) and template else None

    def apply_chat_template(self, messages: Sequence[ChatMessage], model_name: str) -> str:
        if not self.chat_template:
            raise ModelError(f"model {model_name!r} has no chat template",
                             "evaluate it without the chat template (drop --chat)")
        return self.tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            tokenize=False, add_generation_prompt=True)
