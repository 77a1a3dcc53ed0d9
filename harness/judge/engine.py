"""``glotbench judge``: two runs' open-ended completions compared prompt by prompt by an LLM.

Pairing. Run A and each run B must hold the same judged tasks, languages and prompts
(``prompt_id`` and instruction text equal); anything else is a one-line error before a
single request is sent. Every prompt is judged in both orders (model A shown first, then
model B first) so that position bias cancels; identical completions are a tie without a
judge call (as AlpacaEval does), recorded as ``identical``.

Judging. Requests go out concurrently (``concurrency`` in flight) under a requests/tokens
per-minute limit (:class:`glotbench.harness.core.retry.RateLimiter`; a request's token cost is estimated as
its characters / 4 plus ``max_tokens``, as providers count it). API failures are retried by
:func:`glotbench.harness.core.retry.retry_async` (429, 5xx, timeouts: backoff with full jitter, Retry-After
honoured); failures no retry fixes (bad key, unknown model, unreachable endpoint) stop the
command with a one-line error. A reply whose verdict cannot be parsed is re-asked up to
``parse_attempts`` times (not for a deterministic local judge, which would repeat itself) and
then recorded as ``invalid``: never a tie, never dropped. A request still failing after its
retries is recorded as an API error (outcome ``invalid``, counted apart) and the command
exits 1; rerunning it sends only those again.

Cache. Every judge reply is committed to the SQLite request cache as it arrives, keyed by
the judge's identity, the exact messages, the decoding settings and the attempt number, so
a judging killed at any point (kill -9 included) resumes without paying again for finished
judgments. Usage and estimated cost are reported for this invocation and for the replies
reused from the cache.

Output: ``judge.json`` (config, provenance: runs, judge, prompt file sha256; results per
pair, task and language from :func:`glotbench.harness.judge.winrate.per_language`; Bradley–Terry strengths
when more than two models; usage) and ``judgments/<A>__vs__<B>/<task>/<lang>.jsonl`` (every
judgment: order, verdict, outcome, the judge's raw replies, attempts, tokens, error).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from glotbench import harness
from glotbench.harness.run.cache import RequestCache
from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import json_sha256
from glotbench.harness.judge.clients import DEFAULT_JUDGE, Reply, make_judge
from glotbench.harness.judge.prompt import DEFAULT_PROMPT, JudgePrompt, load_prompt
from glotbench.harness.taskapi.registry import get_task
from glotbench.harness.core.retry import RateLimiter, RetryPolicy, is_transient, retry_async
from glotbench.harness.store.rundir import RunWriter, read_run, read_samples
from glotbench.harness.core.records import ChatMessage
from glotbench.harness.judge.winrate import Judgment, Match, bradley_terry, per_language

JUDGE_FILE = "judge.json"


@dataclass(frozen=True)
class JudgeConfig:
    """Everything that defines a judging; recorded verbatim in ``judge.json``."""

    run_a: str
    runs_b: tuple[str, ...]
    judge: str = DEFAULT_JUDGE
    base_url: str | None = None
    prompt: str = DEFAULT_PROMPT
    """Bundled judge prompt name or a path to a prompt YAML file."""
    tasks: tuple[str, ...] | None = None
    langs: tuple[str, ...] | None = None
    limit: int | None = None
    """First N prompts per language (in run A's order)."""
    max_tokens: int = 1024
    temperature: float = 0.0
    concurrency: int = 16
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = 120.0
    """Seconds per HTTP request."""
    attempts: int = 6
    """Tries per request for transient API failures (first call included)."""
    parse_attempts: int = 3
    """Judge replies per judgment while its verdict cannot be parsed."""
    price: tuple[float, float] | None = None
    """USD per million input / output tokens (default: the known list price of the model)."""
    seed: int = 1234
    output: str | None = None
    results_dir: str = "results"
    cache_path: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8


@dataclass(frozen=True)
class Item:
    """One judgment to make: a prompt, a pair of models, an order."""

    pair: tuple[str, str]
    task: str
    lang: str
    prompt_id: str
    order: str
    """``ab``: model A shown as Answer (A); ``ba``: model B shown first."""
    messages: tuple[ChatMessage, ...] | None
    """None when both completions are identical (a tie without a judge call)."""


@dataclass
class Usage:
    calls: int = 0
    """HTTP requests / generations sent by this invocation (retries included)."""
    replies: int = 0
    from_cache: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    retries: Counter = field(default_factory=Counter)


def plan(cfg: JudgeConfig) -> tuple[dict, list[Item], JudgePrompt]:
    """Read and pair the runs, render every judge prompt: all input errors surface here."""
    if not cfg.runs_b:
        raise GlotbenchError("no run to compare with --a", "pass --b RUN (one or more)")
    for name, value, lo in (("--limit", cfg.limit, 1), ("--concurrency", cfg.concurrency, 1),
                            ("--judge-max-tokens", cfg.max_tokens, 1), ("--attempts", cfg.attempts, 1),
                            ("--parse-attempts", cfg.parse_attempts, 1)):
        if value is not None and value < lo:
            raise GlotbenchError(f"{name} must be >= {lo}, got {value}")
    for name, value in (("--rpm", cfg.rpm), ("--tpm", cfg.tpm), ("--timeout", cfg.timeout)):
        if value is not None and value <= 0:
            raise GlotbenchError(f"{name} must be > 0, got {value}")
    prompt = load_prompt(cfg.prompt)
    paths = [Path(cfg.run_a), *map(Path, cfg.runs_b)]
    if len({p.resolve() for p in paths}) < len(paths):
        raise GlotbenchError("the same run is named twice among --a and --b", "compare different runs")
    runs = {p: _completions(p) for p in paths}
    names = _names(paths)
    a = paths[0]
    items: list[Item] = []
    units: dict[str, list[str]] = {}
    for b in paths[1:]:
        selected = _select(runs[a], runs[b], names[a], names[b], cfg)
        for task, lang in selected:
            units.setdefault(task, [])
            if lang not in units[task]:
                units[task].append(lang)
            items += _items((names[a], names[b]), task, lang, runs[a][task][lang], runs[b][task][lang],
                            prompt, cfg.limit)
    meta = {"names": {names[p]: str(p) for p in paths}, "units": units,
            "runs": {names[p]: _run_info(p) for p in paths}}
    return meta, items, prompt


def _completions(path: Path) -> dict[str, dict[str, list[dict]]]:
    """task → lang → records of a run's judged (open-ended) tasks."""
    run = read_run(path)
    out: dict[str, dict[str, list[dict]]] = {}
    for task, prov in run["provenance"]["tasks"].items():
        try:
            judged = get_task(task).judged
        except GlotbenchError:
            continue
        if not judged:
            continue
        for lang in prov["languages"]:
            try:
                records = read_samples(path, task, lang)
            except OSError:
                raise GlotbenchError(f"run {path} lacks its samples of {task}/{lang}",
                                     "the run directory is incomplete; regenerate it with glotbench run") from None
            if any("prompt_id" not in r or "instruction" not in r for r in records):
                raise GlotbenchError(f"run {path} ({task}/{lang}) has no prompt ids in its records",
                                     "regenerate it with this version of glotbench run")
            out.setdefault(task, {})[lang] = records
    return out


def _names(paths: list[Path]) -> dict[Path, str]:
    names = {p: p.resolve().name for p in paths}
    if len(set(names.values())) < len(paths):  # same directory name in different places
        names = {p: f"{i}:{p.resolve().name}" for i, p in enumerate(paths)}
    return names


def _select(ra: dict, rb: dict, na: str, nb: str, cfg: JudgeConfig) -> list[tuple[str, str]]:
    """The (task, language) units both runs must share; differences are errors."""
    if not ra:
        raise GlotbenchError(f"run {na} has no open-ended task to judge",
                             "generate completions first: glotbench run --tasks m_arenahard (or dolly)")
    if not rb:
        raise GlotbenchError(f"run {nb} has no open-ended task to judge",
                             "generate completions first: glotbench run --tasks m_arenahard (or dolly)")
    tasks = list(cfg.tasks) if cfg.tasks else sorted(set(ra) | set(rb))
    out = []
    for task in tasks:
        for name, r in ((na, ra), (nb, rb)):
            if task not in r:
                raise GlotbenchError(f"run {name} has no completions for task {task!r}",
                                     f"judge the tasks both runs share ({', '.join(sorted(set(ra) & set(rb))) or 'none'}) "
                                     "with --tasks, or generate the missing one")
        langs = list(cfg.langs) if cfg.langs else sorted(set(ra[task]) | set(rb[task]))
        for lang in langs:
            for name, r in ((na, ra), (nb, rb)):
                if lang not in r[task]:
                    shared = sorted(set(ra[task]) & set(rb[task]))
                    raise GlotbenchError(f"run {name} has no completions for {task}/{lang}",
                                         f"judge the languages both runs share with --langs {','.join(shared)}"
                                         if shared else "the runs share no language of this task")
            out.append((task, lang))
    return out


def _items(pair: tuple[str, str], task: str, lang: str, recs_a: list[dict], recs_b: list[dict],
           prompt: JudgePrompt, limit: int | None) -> list[Item]:
    by_a = {r["prompt_id"]: r for r in recs_a}
    by_b = {r["prompt_id"]: r for r in recs_b}
    if set(by_a) != set(by_b):
        shared = len(set(by_a) & set(by_b))
        raise GlotbenchError(f"{task}/{lang}: the runs answered different prompts ({pair[0]}: {len(by_a)}, "
                             f"{pair[1]}: {len(by_b)}, {shared} shared)",
                             "generate both runs with the same data and --limit")
    language = get_task(task).language_name(lang)
    items = []
    for rec in recs_a[:limit] if limit else recs_a:
        pid = rec["prompt_id"]
        other = by_b[pid]
        if rec["instruction"] != other["instruction"]:
            raise GlotbenchError(f"{task}/{lang} prompt {pid}: the runs were given different instructions",
                                 "generate both runs from the same data (check data_sha256 in run.json)")
        ans_a, ans_b = rec["response"].strip(), other["response"].strip()
        for order, (first, second) in (("ab", (ans_a, ans_b)), ("ba", (ans_b, ans_a))):
            messages = None if ans_a == ans_b else prompt.render(rec["instruction"], first, second, language)
            items.append(Item(pair, task, lang, pid, order, messages))
    return items


def _run_info(path: Path) -> dict:
    run = read_run(path)
    prov = run["provenance"]
    return {"path": str(path), "created": run.get("created"), "model": prov.get("model"),
            "run_sha256": json_sha256(run),
            "tasks": {t: {"version": p.get("version"), "prompting": p.get("prompting"),
                          "languages": {lang: {k: v.get(k) for k in ("data_sha256", "prompt_sha256")}
                                        for lang, v in p["languages"].items()}}
                      for t, p in prov["tasks"].items() if t in _judged_names()}}


def _judged_names() -> set[str]:
    from glotbench import tasks as catalogue

    return {n for n in catalogue.REGISTRY if get_task(n).judged}


# ---------------------------------------------------------------------------- judging


class Engine:
    """Sends the judge requests of a plan: cache first, then bounded, rate-limited, retried."""

    def __init__(self, client, prompt: JudgePrompt, cache: RequestCache, cfg: JudgeConfig, bar=None):
        self.client, self.prompt, self.cache, self.cfg, self.bar = client, prompt, cache, cfg, bar
        self.usage = Usage()
        self.policy = RetryPolicy(attempts=cfg.attempts)
        self.limiter = RateLimiter(cfg.rpm, cfg.tpm)
        self.sem = asyncio.Semaphore(cfg.concurrency)

    def key(self, messages: tuple[ChatMessage, ...], attempt: int) -> str:
        return json_sha256(["judge", [[m.role, m.content] for m in messages], self.cfg.temperature,
                            self.cfg.max_tokens, attempt])

    async def run(self, items: list[Item]) -> list[dict]:
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self.one(item)) for item in items]
        except ExceptionGroup as eg:  # the first failure cancelled the rest; report it alone
            user = eg.subgroup(lambda e: isinstance(e, GlotbenchError))
            if user is None:
                raise
            first = user.exceptions[0]
            while isinstance(first, ExceptionGroup):
                first = first.exceptions[0]
            raise first from None
        finally:
            await self.client.close()
        return [t.result() for t in tasks]

    async def one(self, item: Item) -> dict:
        rec = {"prompt_id": item.prompt_id, "order": item.order,
               "first": item.pair[0] if item.order == "ab" else item.pair[1]}
        if item.messages is None:
            self._tick()
            return {**rec, "outcome": "tie", "verdict": "identical", "position": None, "attempts": 0,
                    "replies": [], "error": None}
        replies: list[str] = []
        verdict = None
        error = None
        tokens = [0, 0]
        for attempt in range(self.cfg.parse_attempts):
            try:
                reply, cached = await self._reply(item.messages, attempt)
            except GlotbenchError:
                raise
            except Exception as exc:  # retries spent, or a reply no retry could read: recorded, counted
                error = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
                break
            replies.append(reply.text)
            tokens[0] += reply.prompt_tokens
            tokens[1] += reply.completion_tokens
            verdict = self.prompt.parse(reply.text)
            if verdict is not None or self.client.deterministic:
                break
        self._tick()
        if verdict is None:
            outcome = "invalid"
        elif verdict.position == "tie":
            outcome = "tie"
        else:  # map the winning position back to the model shown there
            outcome = "a" if (verdict.position == "A") == (item.order == "ab") else "b"
        return {**rec, "outcome": outcome, "verdict": verdict.label if verdict else None,
                "position": verdict.position if verdict else None, "attempts": len(replies),
                "replies": replies, "error": error, "prompt_tokens": tokens[0], "completion_tokens": tokens[1]}

    async def _reply(self, messages: tuple[ChatMessage, ...], attempt: int) -> tuple[Reply, bool]:
        key = self.key(messages, attempt)
        hit = self.cache.get_many(self.client.identity, [key]).get(key)
        if hit is not None:
            reply = Reply(**hit)
            self.usage.from_cache += 1
            self.usage.cached_prompt_tokens += reply.prompt_tokens
            self.usage.cached_completion_tokens += reply.completion_tokens
            return reply, True
        estimate = sum(len(m.content) for m in messages) // 4 + self.cfg.max_tokens

        async def call() -> Reply:
            async with self.sem:
                await self.limiter.acquire(estimate)
                self.usage.calls += 1
                return await self.client.complete(messages)

        def on_retry(n: int, exc: BaseException, delay: float) -> None:
            self.usage.retries[_kind(exc)] += 1

        try:
            reply = await retry_async(call, self.policy, retryable=self._retryable, on_retry=on_retry)
        except Exception as exc:
            fatal = self.client.fatal(exc)
            if fatal is not None:
                raise fatal from None
            raise
        self.cache.put_many(self.client.identity, [(key, asdict(reply))])
        self.usage.replies += 1
        self.usage.prompt_tokens += reply.prompt_tokens
        self.usage.completion_tokens += reply.completion_tokens
        return reply, False

    def _retryable(self, exc: BaseException) -> bool:
        # An unreachable endpoint is retried too (a server restarting), then reported as fatal.
        if type(exc).__name__ == "APIConnectionError":
            return True
        return is_transient(exc) and self.client.fatal(exc) is None

    def _tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)


def _kind(exc: BaseException) -> str:
    name = type(exc).__name__
    if "Timeout" in name:
        return "timeout"
    if "Connection" in name:
        return "connection"
    status = getattr(exc, "status_code", None)
    return str(status) if status is not None else name


# ---------------------------------------------------------------------------- results


def execute(cfg: JudgeConfig, meta: dict, items: list[Item], prompt: JudgePrompt, progress: bool = True) -> Path:
    started = time.time()
    client = make_judge(cfg.judge, base_url=cfg.base_url, timeout=cfg.timeout, max_tokens=cfg.max_tokens,
                        temperature=cfg.temperature, device=cfg.device, dtype=cfg.dtype,
                        batch_size=cfg.batch_size)
    names = list(meta["names"])
    default = f"judge-{names[0]}-vs-{'+'.join(names[1:])}"[:120] + datetime.now().strftime("-%Y%m%d-%H%M%S")
    writer = RunWriter(Path(cfg.output or Path(cfg.results_dir) / _slug(default)))
    cache = RequestCache(Path(cfg.cache_path) if cfg.cache_path else None)
    bar = _progress(len(items), progress)
    engine = Engine(client, prompt, cache, cfg, bar)
    try:
        records = asyncio.run(engine.run(items))
        bar.close()
        results, counts = {}, Counter()
        grouped: dict[tuple, list[tuple[Item, dict]]] = {}
        for item, rec in zip(items, records):
            grouped.setdefault((item.pair, item.task, item.lang), []).append((item, rec))
            counts["judgments"] += 1
            counts["identical"] += rec["verdict"] == "identical"
            counts["invalid"] += rec["outcome"] == "invalid" and rec["error"] is None
            counts["api_errors"] += rec["error"] is not None
            counts["reasked"] += rec["attempts"] > 1
        for (pair, task, lang), rows in grouped.items():
            writer.write_records(f"judgments/{pair[0]}__vs__{pair[1]}/{task}/{lang}.jsonl", [r for _, r in rows])
        for pair in dict.fromkeys(p for p, _, _ in grouped):
            key = f"{pair[0]} vs {pair[1]}"
            results[key] = {}
            for task in dict.fromkeys(t for p, t, _ in grouped if p == pair):
                js = [_judgment(item, rec) for (p, t, _), rows in grouped.items() if p == pair and t == task
                      for item, rec in rows]
                summary = per_language(js, cfg.seed)
                summary["identical"] = sum(rec["verdict"] == "identical" for (p, t, _), rows in grouped.items()
                                           if p == pair and t == task for _, rec in rows)
                summary["api_errors"] = sum(rec["error"] is not None for (p, t, _), rows in grouped.items()
                                            if p == pair and t == task for _, rec in rows)
                results[key][task] = summary
        ranking = _ranking(grouped, names, cfg.seed) if len(names) > 2 else None
        price = cfg.price or client.price
        usage = engine.usage
        out = {
            "format": "glotbench-judge/1",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": asdict(cfg),
            "results": results,
            **({"bradley_terry": ranking} if ranking is not None else {}),
            "counts": dict(counts),
            "usage": {
                "requests_sent": usage.calls, "replies": usage.replies, "from_cache": usage.from_cache,
                "retries": dict(usage.retries),
                "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                "cost_usd": _cost(price, usage.prompt_tokens, usage.completion_tokens),
                "cached_prompt_tokens": usage.cached_prompt_tokens,
                "cached_completion_tokens": usage.cached_completion_tokens,
                "cached_cost_usd": _cost(price, usage.cached_prompt_tokens, usage.cached_completion_tokens),
                "price_usd_per_million": list(price) if price else None,
            },
            "provenance": {
                "glotbench_version": harness.__version__,
                "runs": meta["runs"],
                "judge": {"spec": cfg.judge, **client.describe(), "temperature": cfg.temperature,
                          "max_tokens": cfg.max_tokens, "parse_attempts": cfg.parse_attempts},
                "prompt": {"name": prompt.name, "version": prompt.version, "sha256": prompt.sha256,
                           "source": prompt.source},
                "seed": cfg.seed,
                "timings_s": {"total": round(time.time() - started, 3)},
            },
        }
        return writer.finish(out, JUDGE_FILE)
    except BaseException:
        writer.abort()
        raise
    finally:
        cache.close()


def _judgment(item: Item, rec: dict) -> Judgment:
    return Judgment(item.prompt_id, item.lang, item.order, rec["outcome"])


def _ranking(grouped: dict, names: list[str], seed: int) -> dict:
    """Bradley–Terry per task over every valid judgment of every pair (model A anchored at 0);
    all judgments of one prompt (both orders, every pair) are resampled together."""
    out = {}
    for task in dict.fromkeys(t for _, t, _ in grouped):
        matches = [Match(p[0], p[1], {"a": "i", "b": "j", "tie": "tie"}[rec["outcome"]], f"{lang}/{item.prompt_id}")
                   for (p, t, lang), rows in grouped.items() if t == task
                   for item, rec in rows if rec["outcome"] != "invalid"]
        try:
            out[task] = bradley_terry(matches, seed, anchor=names[0])
        except ValueError as exc:
            out[task] = {"error": str(exc)}
    return out


def _cost(price: tuple[float, float] | None, prompt_tokens: int, completion_tokens: int) -> float | None:
    if price is None:
        return None
    return round((prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6, 6)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_+." else "-" for c in name)


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="judgments", unit="judgment", disable=not enabled, file=sys.stderr,
                dynamic_ncols=True)


def format_summary(out: dict) -> str:
    lines = []
    for pair, by_task in out["results"].items():
        for task, s in by_task.items():
            lines.append(f"{pair} — {task} (win = first model preferred)")
            lines.append(f"{'lang':<10} {'win':>5} {'tie':>5} {'loss':>5} {'inval':>5} {'win-rate':>9} "
                         f"{'95% CI':>15} {'ties ½':>7} {'flip':>6}")
            for lang, x in s["languages"].items():
                ci = x["win_rate_ci95"]
                lines.append(f"{lang:<10} {x['wins']:>5} {x['ties']:>5} {x['losses']:>5} {x['invalid']:>5} "
                             f"{_pct(x['win_rate']):>9} {_ci(ci):>15} {_pct(x['win_rate_ties_half']):>7} "
                             f"{_pct(x['order_flip_rate']):>6}")
            m = s["macro"]
            lines.append(f"{'macro':<10} {'':>5} {'':>5} {'':>5} {'':>5} {_pct(m['win_rate']):>9} "
                         f"{_ci(m['win_rate_ci95']):>15} {_pct(m['win_rate_ties_half']):>7}")
            lines.append("")
    for task, bt in out.get("bradley_terry", {}).items():
        if "scores" in bt:
            lines.append(f"Bradley–Terry ({task}, Elo scale, {bt['anchor']} = 0): " + ", ".join(
                f"{m} {bt['scores'][m]:+.0f} [{_ci(bt['ci95'][m], '{:+.0f}')}]" for m in bt["models"]))
    c, u = out["counts"], out["usage"]
    lines.append(f"judgments: {c.get('judgments', 0)} ({c.get('invalid', 0)} invalid verdicts, "
                 f"{c.get('api_errors', 0)} API errors, {c.get('identical', 0)} identical answers, "
                 f"{c.get('reasked', 0)} re-asked)")
    retries = ", ".join(f"{k} {v}" for k, v in sorted(u["retries"].items())) or "none"
    cost = f"${u['cost_usd']:.4f}" if u["cost_usd"] is not None else "unknown (pass --judge-price)"
    lines.append(f"judge requests: {u['requests_sent']} sent, {u['from_cache']} from cache; retries: {retries}; "
                 f"tokens {u['prompt_tokens']} in / {u['completion_tokens']} out; est. cost {cost}")
    return "\n".join(lines)


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _ci(ci, fmt: str = "{:.1f}") -> str:
    if ci is None:
        return "-"
    scale = 100 if fmt == "{:.1f}" else 1
    return f"{fmt.format(scale * ci[0])}–{fmt.format(scale * ci[1])}"
