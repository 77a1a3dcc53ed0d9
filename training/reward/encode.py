"""The one tokenisation of a (prompt, completion) pair for a reward model: training and scoring
both go through it, so the model is scored on exactly the token sequences it was trained on.

It lives in the harness (:mod:`glotbench.harness.models.reward`, where the ``rm:`` judge uses
it too; the harness never imports training/) and is re-exported here for the training stages.
Convention: the RM tokenizer's chat template applied to ``[*prompt messages, {assistant:
completion}]``, no special tokens added twice, ``logits[:, 0]`` at the last real token.
"""

from __future__ import annotations

from glotbench.harness.models.reward import Encoded, conversation, encode, prompt_length, token_ids

__all__ = ["Encoded", "conversation", "encode", "prompt_length", "token_ids"]
