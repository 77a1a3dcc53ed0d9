"""A served model through the OpenAI protocol: ``--model openai:<name> --base-url URL``.

Every request goes through the one OpenAI-protocol client
(:class:`~glotbench.harness.models.openai_client.OpenAIClient`: concurrency, rate limits,
retries, counting); the key comes from ``OPENAI_API_KEY`` (a local server gets a dummy key).

- **Generation.** With the chat template (``--chat auto``/``on``, the default) each prompt's
  messages go to ``/v1/chat/completions`` and *the server applies its own chat template*: the
  run cannot see it, so :attr:`OpenAIBackend.chat_template` is a description naming the
  endpoint and model, never ``None``, and :meth:`OpenAIBackend.apply_chat_template` renders
  the messages as their JSON array (what is sent, and what the run's records show; lm-eval's
  chat-completions models do the same). With ``--chat off`` the plain-text prompt goes to
  ``/v1/completions``. Stop strings, ``max_new_tokens``, temperature (0 = greedy) and the
  seed of sampled decoding are sent per request; stop strings are also cut here, for servers
  that ignore them or take only four (the OpenAI API).
- **Log-likelihoods** through ``/v1/completions`` with ``echo=True, logprobs=1,
  max_tokens=0`` (1 where the server refuses 0): the server tokenises ``context +
  continuation`` (lm-eval's spacing: trailing context spaces move to the continuation, see
  :class:`~glotbench.harness.core.records.LoglikelihoodRequest`) and returns each prompt
  token's log-probability and character offset; the continuation is the tokens from the one
  that starts at the continuation's first character (counted from the end of the echoed
  text, so a BOS token the server adds shifts nothing), and its log-probability their sum.
  This is the HF backend's split whenever the whole text tokenises as the context's tokens
  followed by the continuation's, which the word-boundary space guarantees for BPE
  tokenizers; a token that straddles the boundary (a context and continuation joined without
  a space, in a script that merges them) counts as continuation, where lm-eval would score
  the context's own tokens followed by the tail of the whole. A server without ``echo`` +
  ``logprobs`` (the OpenAI API's chat models) is refused in one line naming the tasks that
  need log-likelihoods; ``vllm serve`` supports them.
- **Identity.** The weights are not visible through the protocol: ``weights_sha256`` is
  ``unknown`` and the cache key is the endpoint, the served model id and the weights directory
  the server reports (vLLM's ``root``), so two servers or two models never share cache entries;
  the run trusts the server to keep serving the same weights under that id.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from glotbench.harness.core import versions
from glotbench.harness.core.errors import GlotbenchError, ModelError
from glotbench.harness.core.records import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)
from glotbench.harness.models.protocol import ModelIdentity

# HTTP statuses with which a server says it cannot do what was asked (an unknown route, an
# unsupported parameter); anything else keeps the client's own error.
UNSUPPORTED_STATUSES = (400, 404, 405, 422, 501)
# The OpenAI API accepts at most this many stop strings per request.
OPENAI_MAX_STOPS = 4
WEIGHTS_NOTE = ("weights not visible through the OpenAI protocol: identified by the endpoint, the served "
                "model id and the weights directory the server reports; the server is trusted to keep "
                "serving the same weights under that id")


@dataclass(frozen=True)
class ServedIdentity(ModelIdentity):
    """A served model's identity: who answers, since what answers cannot be hashed."""

    base_url: str = ""
    served_model: str = ""
    """The model id sent in every request."""
    server_root: str | None = None
    """The weights' directory or hub id the server reports for that id (vLLM's ``root``)."""
    server_max_model_len: int | None = None
    note: str = WEIGHTS_NOTE
    server: dict = field(default_factory=dict, hash=False)
    """What ``/v1/models`` said about the model (provenance only)."""

    @property
    def cache_key(self) -> str:
        return (f"{self.backend}|{self.base_url}|{self.served_model}|root={self.server_root}|"
                f"scoring={self.scoring_version}")


class LoglikelihoodUnsupported(GlotbenchError):
    """The server does not return the log-probabilities of prompt tokens."""

    def __init__(self, where: str, detail: str, tasks: Sequence[str] = ()):
        self.where, self.detail = where, detail
        needed = f" (needed by {', '.join(tasks)})" if tasks else ""
        super().__init__(f"{where} cannot score log-likelihoods{needed}: it does not return log-probabilities "
                         f"of prompt tokens ({detail})",
                         f"drop {','.join(tasks) if tasks else 'the log-likelihood tasks'} from --tasks, or serve "
                         "the model with a server whose /v1/completions supports echo and logprobs "
                         "(vllm serve does)")


def render_messages(messages: Sequence[ChatMessage]) -> str:
    """Chat messages as the JSON array sent to ``/v1/chat/completions``."""
    return json.dumps([{"role": m.role, "content": m.content} for m in messages], ensure_ascii=False)


def parse_messages(prompt: str) -> list[ChatMessage] | None:
    """The messages of a prompt from :func:`render_messages`, None for a plain-text prompt."""
    if not prompt.startswith('[{"role": '):
        return None
    try:
        items = json.loads(prompt)
    except ValueError:
        return None
    if not isinstance(items, list) or not all(isinstance(m, dict) and set(m) == {"role", "content"}
                                              for m in items):
        return None
    return [ChatMessage(m["role"], m["content"]) for m in items]


def continuation_start(tokens: Sequence[str], offsets: Sequence[int], n_chars: int) -> int:
    """Index of the first continuation token among echoed prompt tokens, the continuation
    being the last ``n_chars`` characters of the text. Offsets are counted from the end of the
    echoed text (a BOS token the server adds before the text shifts nothing). A token that
    straddles the boundary counts as continuation; a token with empty text (the leading bytes
    of a character split over several tokens: vLLM shows them as '') belongs to the character
    whose text comes later, so it sits on the side of its offset."""
    end = offsets[-1] + len(tokens[-1])
    boundary = end - n_chars
    start = next((i for i, off in enumerate(offsets) if off >= boundary), len(offsets))
    if start > 0 and offsets[start - 1] + len(tokens[start - 1]) > boundary:
        start -= 1
    return start


class OpenAIBackend:
    """A model served behind an OpenAI-compatible endpoint."""

    def __init__(self, model: str, *, base_url: str | None, batch_size: int = 16, timeout: float = 600.0,
                 rpm: float | None = None, tpm: float | None = None):
        from glotbench.harness.models.openai_client import Hints, OpenAIClient, package_version

        if batch_size < 1:
            raise GlotbenchError(f"batch size must be >= 1, got {batch_size}", "pass --batch-size 1 or more")
        self.batch_size = batch_size
        """Requests in flight at once."""
        hints = Hints(what="the model server", model="--model openai:<name>", base_url="--base-url",
                      max_tokens="--max-new-tokens (prompt + new tokens must fit the server's context)",
                      resume="; finished requests are cached, so a rerun resumes")
        self._loop = asyncio.new_event_loop()
        self.client = OpenAIClient(model, base_url=base_url, timeout=timeout, concurrency=batch_size,
                                   rpm=rpm, tpm=tpm, hints=hints)
        self._echo_max_tokens = 0
        self._ll_tasks: tuple[str, ...] = ()
        listed = self._run(self.client.served_models())
        entry = next((m for m in listed if m.get("id") == model), None)
        if entry is None:
            ids = ", ".join(str(m.get("id")) for m in listed[:10]) or "none"
            raise ModelError(f"{self.client.base_url} does not serve a model {model!r} (it serves: {ids})",
                             "pass --model openai:<one of those>")
        root = entry.get("root")
        max_len = entry.get("max_model_len")
        self.identity = ServedIdentity(
            backend="openai", name=f"openai:{model}", weights_sha256="unknown", dtype="unknown", device="served",
            hardware="", attn_implementation="", libraries={"openai": package_version("openai")},
            scoring_version=versions.SCORING_VERSION, base_url=self.client.base_url, served_model=model,
            server_root=root if isinstance(root, str) else None,
            server_max_model_len=max_len if isinstance(max_len, int) else None,
            server={k: entry[k] for k in ("id", "owned_by", "root", "max_model_len") if k in entry})

    # ---- the protocol ----------------------------------------------------------------
    @property
    def chat_template(self) -> str | None:
        """A description, not a template: the server applies its own, which the run cannot see."""
        return f"applied by the server: model {self.client.model!r} at {self.client.base_url}"

    def apply_chat_template(self, messages: Sequence[ChatMessage]) -> str:
        return render_messages(messages)

    def expect_loglikelihood(self, tasks: Sequence[str]) -> None:
        """The tasks that need log-likelihoods: a refusal names them."""
        self._ll_tasks = tuple(tasks)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        """Each pair's continuation log-probability from the server's echoed prompt logprobs."""
        if not requests:
            return []
        # The first request alone: it settles max_tokens=0 or 1 and refuses an unsupporting
        # server before the rest are sent.
        first = self._run(self._loglikelihood_one(requests[0]))
        rest = self._run(self._gather([self._loglikelihood_one(r) for r in requests[1:]]))
        return [first, *rest]

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Chat completions for prompts from :meth:`apply_chat_template`, completions for
        plain-text ones, all concurrently (``batch_size`` in flight)."""
        return self._run(self._gather([self._generate_one(r) for r in requests]))

    def release(self) -> None:
        """Close the client's connections and the event loop (the end of a run)."""
        if not self._loop.is_closed():
            self._run(self.client.close())
            self._loop.close()

    # ---- log-likelihood ---------------------------------------------------------------
    async def _loglikelihood_one(self, req: LoglikelihoodRequest) -> LoglikelihoodResult:
        from glotbench.harness.models.openai_client import RequestRefused

        context, continuation = req.context, req.continuation
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:  # lm-eval's convention: the word-boundary space belongs to the continuation
            context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
        if not context:
            raise GlotbenchError("a log-likelihood request with an empty context cannot be scored by a served "
                                 "model (its first token has no log-probability)",
                                 "use --model hf:<dir> for this task")
        where = f"{self.identity.name} at {self.client.base_url}"
        while True:
            try:
                reply = await self.client.complete(context + continuation, max_tokens=self._echo_max_tokens,
                                                   temperature=0.0, echo=True, logprobs=1)
                break
            except RequestRefused as exc:
                if exc.status not in UNSUPPORTED_STATUSES:
                    raise
                if self._echo_max_tokens == 0:  # some servers refuse max_tokens=0: ask for one token
                    self._echo_max_tokens = 1
                    continue
                detail = f"/v1/completions with echo and logprobs answered {exc.status}: {exc.detail}"
                raise LoglikelihoodUnsupported(where, detail, self._ll_tasks) from None
        tokens, logprobs, offsets = reply.tokens, reply.token_logprobs, reply.text_offset
        if not tokens or logprobs is None or offsets is None or not (len(tokens) == len(logprobs) == len(offsets)):
            raise LoglikelihoodUnsupported(where, "its reply has no per-token logprobs with offsets",
                                           self._ll_tasks)
        n_prompt = reply.prompt_tokens if 0 < reply.prompt_tokens <= len(tokens) else len(tokens)
        if self._echo_max_tokens and n_prompt == len(tokens):
            n_prompt -= self._echo_max_tokens  # the reply counted no prompt tokens: drop the generated one
        if n_prompt < 2 or len(tokens) < n_prompt:
            raise LoglikelihoodUnsupported(where, "its reply does not echo the prompt's tokens", self._ll_tasks)
        tokens, logprobs, offsets = tokens[:n_prompt], logprobs[:n_prompt], offsets[:n_prompt]
        start = continuation_start(tokens, offsets, len(continuation))
        if start == 0:
            raise GlotbenchError(f"{where}: the context {req.context[:40]!r} has no token of its own",
                                 "use --model hf:<dir> for this task")
        picked = logprobs[start:]
        if any(lp is None for lp in picked):
            raise LoglikelihoodUnsupported(where, "its reply has prompt tokens without a logprob", self._ll_tasks)
        greedy = True
        for i in range(start, n_prompt):
            top = (reply.top_logprobs or [None] * n_prompt)[i]
            # The scored token is the argmax when no alternative the server lists beats it.
            if top and max(top.values()) > logprobs[i] + 1e-6:
                greedy = False
        return LoglikelihoodResult(float(sum(picked)), greedy, n_prompt - start)

    # ---- generation -------------------------------------------------------------------
    async def _generate_one(self, req: GenerationRequest) -> GenerationResult:
        stops = list(req.stop)
        if self.client.paid:
            stops = stops[:OPENAI_MAX_STOPS]  # the rest are cut below
        sampled = req.temperature > 0
        kwargs = dict(max_tokens=req.max_new_tokens, temperature=req.temperature,
                      seed=req.seed if sampled else None, stop=stops)
        messages = parse_messages(req.prompt)
        if messages is not None:
            reply = await self.client.chat(messages, **kwargs)
        else:
            reply = await self.client.complete(req.prompt, **kwargs)
        text = reply.text
        cut = min((text.find(s) for s in req.stop if s in text), default=-1)
        if cut >= 0:
            text = text[:cut]
        if reply.finish == "length" and cut < 0:
            finish = "length"
        elif cut >= 0 or reply.stop_reason is not None:
            finish = "stop"
        else:
            finish = "eos"  # vLLM: a "stop" finish without a stop string is the end-of-sequence token
        # The server counts the end-of-sequence token; the HF backend's count stops before it.
        n_tokens = reply.completion_tokens - 1 if finish == "eos" and reply.completion_tokens else reply.completion_tokens
        return GenerationResult(text, n_tokens, finish)

    # ---- plumbing ---------------------------------------------------------------------
    async def _gather(self, coros: list) -> list:
        """Run concurrently (the client bounds what is in flight); the first error cancels the rest."""
        tasks = [asyncio.ensure_future(c) for c in coros]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def _run(self, coro):
        """One event loop for the backend's life: the client's connections and semaphore live on it."""
        from glotbench.harness.core.retry import RetriesExhausted
        from glotbench.harness.models.openai_client import UnreadableReply

        try:
            return self._loop.run_until_complete(coro)
        except (RetriesExhausted, UnreadableReply) as exc:
            # A run's scores need every answer: a request that failed past its retries stops
            # the run (what was answered is cached; a rerun resumes).
            raise GlotbenchError(f"{self.identity.name if hasattr(self, 'identity') else 'the model server'} "
                                 f"failed a request: {exc}",
                                 "check the server and rerun (finished requests are cached)") from None
