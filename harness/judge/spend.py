"""The judge spends money only when asked.

Before the first request, :func:`preflight` prints what the judging will send — requests not
already answered in the cache, estimated tokens (input at characters / 4, output at
``--judge-max-tokens``, the most a reply can be billed for) and the estimated cost at the
judge's price — and then, for a paid endpoint (the OpenAI API itself, i.e. no
``--judge-base-url``), requires consent: ``--yes``, or ``--max-cost USD`` (a cap: requests
stop once the estimated cost of those sent would exceed it), or a "y" typed at the prompt
when stdin is a terminal. An unknown price needs ``--yes`` (``--max-cost`` needs a price:
``--judge-price``). Local judges and ``--judge-base-url`` servers are assumed free (a server
of your own) and need no consent; ``--max-cost`` with ``--judge-price`` still caps them, for a
paid OpenAI-compatible provider.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.records import ChatMessage
from glotbench.harness.models.openai_client import OpenAIClient, cost_usd, estimate_prompt_tokens


@dataclass(frozen=True)
class Spending:
    """The user's consent to spend, from the command line."""

    yes: bool = False
    """``--yes``: send whatever it costs."""
    max_cost: float | None = None
    """``--max-cost USD``: consent up to this estimated cost, and a stop there."""
    interactive: bool = False
    """stdin is a terminal: ask when consent is needed and not given."""


@dataclass(frozen=True)
class Estimate:
    """What a judging will send, estimated before the first request."""

    requests: int
    """Requests to send (cached replies not counted; re-asks of unreadable verdicts come on top)."""
    cached: int
    """Replies already in the cache that will be reused."""
    prompt_tokens: int
    completion_tokens: int
    """At most: every reply at ``--judge-max-tokens``."""
    cost_usd: float | None

    def as_dict(self) -> dict:
        return asdict(self)


class CostLimitReached(GlotbenchError):
    """The judging stopped at ``--max-cost``; what finished is cached."""

    exit_code = 1


def estimate(pending: Sequence[Sequence[ChatMessage]], cached: int, max_tokens: int,
             price: tuple[float, float] | None) -> Estimate:
    prompt_tokens = sum(estimate_prompt_tokens(m) for m in pending)
    completion_tokens = len(pending) * max_tokens
    return Estimate(len(pending), cached, prompt_tokens, completion_tokens,
                    cost_usd(price, prompt_tokens, completion_tokens))


def describe(est: Estimate, spec: str, client) -> str:
    """The one line printed before the first request."""
    where = f" at {client.base_url}" if isinstance(client, OpenAIClient) else " (local)"
    line = (f"judge {spec}{where}: {est.requests} requests to send ({est.cached} replies cached); "
            f"est. {est.prompt_tokens:,} input + at most {est.completion_tokens:,} output tokens")
    if not isinstance(client, OpenAIClient):
        return line + "; no cost (a local model)"
    if est.cost_usd is None and client.paid:
        return line + "; cost unknown (no list price for this model: pass --judge-price IN,OUT)"
    if est.cost_usd is None:
        return line + "; no price given (a server of your own; --judge-price IN,OUT estimates a cost)"
    price = f"${client.price[0]:g} / ${client.price[1]:g} per million tokens"
    return line + f"; est. cost at most ${est.cost_usd:.2f} ({price})"


def preflight(est: Estimate, spec: str, client, spending: Spending,
              say: Callable[[str], None] | None = None, ask: Callable[[str], str] | None = None) -> None:
    """Check the consent to spend, then print the estimate and arm the ``--max-cost`` stop on
    the client. A refusal is one :class:`GlotbenchError` line that carries the estimate itself
    (nothing else is printed, nothing is sent)."""
    say = say or print
    ask = ask or _ask
    capped = spending.max_cost is not None and isinstance(client, OpenAIClient)
    if spending.max_cost is not None and not spending.max_cost > 0:
        raise GlotbenchError(f"--max-cost must be > 0 USD, got {spending.max_cost:g}", "e.g. --max-cost 5")
    if capped and client.price is None:
        raise GlotbenchError(f"--max-cost needs the price of {spec}, which is not in the list prices",
                             "pass --judge-price IN,OUT (USD per million input, output tokens)")
    if client.paid and est.requests > 0 and not spending.yes:
        _consent(est, spec, spending, ask)
    say(describe(est, spec, client))
    if capped:
        client.limit_cost(spending.max_cost)
        say(f"the judging stops once the estimated cost of the requests sent would exceed ${spending.max_cost:g}")


def _consent(est: Estimate, spec: str, spending: Spending, ask: Callable[[str], str]) -> None:
    """Raise unless spending on a paid judge is allowed by --max-cost or an answer at the terminal."""
    if est.cost_usd is None:
        raise GlotbenchError(f"{spec} is a paid API and its price is unknown, so the cost of {est.requests} "
                             "requests cannot be estimated; nothing was sent",
                             "pass --yes to send them anyway, or --judge-price IN,OUT (then --max-cost USD "
                             "can cap the spend)")
    if spending.max_cost is not None:
        return
    what = (f"{est.requests} requests, est. {est.prompt_tokens:,} input + at most {est.completion_tokens:,} "
            f"output tokens, est. cost at most ${est.cost_usd:.2f}")
    if not spending.interactive:
        raise GlotbenchError(f"{spec} is a paid API ({what}) and stdin is not a terminal to ask; "
                             "nothing was sent", "pass --yes to accept the cost, or --max-cost USD to cap it")
    answer = ask(f"send {what} to {spec}? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise GlotbenchError("judging not confirmed; nothing was sent",
                             "answer y, or pass --yes (or --max-cost USD) to skip the question")


def stopped(client, done: int, total: int) -> CostLimitReached:
    """The one line for a judging stopped at ``--max-cost``."""
    sent = f"${client.usage.estimated_cost:.2f}"
    return CostLimitReached(
        f"stopped at --max-cost ${client.max_cost:g} (est. {sent} sent): {done} of {total} judgments "
        "finished, their replies cached",
        f"rerun the same command to judge the other {total - done} (cached replies cost nothing; a higher "
        "--max-cost, or --yes instead, finishes in one go)")


def _ask(question: str) -> str:
    # The question goes to stderr so that --json keeps stdout clean; EOF is a "no".
    print(question, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline()
