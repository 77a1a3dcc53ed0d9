"""Scorers of arbitrage candidates: a reward model, the pairwise LLM judge as a ranking, or a
Python callable. One protocol (:class:`Scorer`); :func:`build_scorer` reads the config block.

```yaml
scorer: {reward_model: ckpt/rm, batch_size: 8, device: cpu, dtype: float32, max_length: 2048}
scorer: {judge: {model: openai:gpt-4o, base_url: null, api_key_env: OPENAI_API_KEY,
                 prompt: aya101_pairwise, method: bradley_terry}}     # or method: wins
scorer: {callable: "my_rewards:length_penalty"}   # function(prompt: Prompt, completion: str) -> float
```

A score of None means "could not score": counted in the scorer's ``stats``, never chosen.

Judge ranking. Every pair of a prompt's candidates is judged in both orders through the
harness's judge engine (:class:`glotbench.harness.judge.engine.Engine`: request cache, so an
interrupted scoring resumes without paying twice; re-asks of unparseable verdicts; the one
OpenAI-protocol client's retries and rate limit). Identical completions are a tie without a
call. Invalid verdicts and API errors are counted and left out. ``bradley_terry``: the
candidate's Bradley–Terry strength (Elo scale, mean 0 within the prompt;
:func:`glotbench.harness.judge.winrate.bradley_terry`) with one virtual tie per pair, a weak
prior that keeps the fit finite when one candidate wins every game (with two candidates it
always would). ``wins``: the share of the candidate's valid games it won, ties ½ (a share, not
a count, so a candidate whose games came back invalid is not penalised for it). A candidate
without a valid game scores None; a prompt with a single candidate cannot be ranked (None).
The judge sees the prompt's last user turn as the instruction.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import numbers
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from glotbench.harness.core.errors import GlotbenchError, first_line
from glotbench.harness.core.hashing import file_sha256
from glotbench.harness.core.progress import progress_bar
from glotbench.harness.judge.config import JudgeConfig
from glotbench.harness.judge.engine import Engine
from glotbench.harness.judge.judges import make_judge
from glotbench.harness.judge.pairing import Item
from glotbench.harness.judge.prompt import DEFAULT_PROMPT, load_prompt
from glotbench.harness.judge.winrate import Match, bradley_terry
from glotbench.harness.run.cache import RequestCache
from glotbench.tasks.arena import LANGS as ARENA_NAMES
from glotbench.tasks.dolly import NAMES as DOLLY_NAMES
from glotbench.training.core.config import ConfigError, check_keys, resolve_path, typed
from glotbench.training.core.records import Candidate, Prompt

KINDS = ("reward_model", "judge", "callable")
RM_KEYS = ("reward_model", "batch_size", "device", "dtype", "max_length")
JUDGE_KEYS = ("model", "base_url", "api_key_env", "prompt", "method", "max_tokens", "temperature",
              "concurrency", "rpm", "tpm", "timeout", "attempts", "parse_attempts", "language_names")
METHODS = ("bradley_terry", "wins")
VIRTUAL_TIES = 1
"""Virtual ties added per candidate pair before the Bradley–Terry fit (see the module docstring)."""


@runtime_checkable
class Scorer(Protocol):
    """Scores candidates; may also expose ``stats: dict`` (counts for the manifest)."""

    identity: dict
    """What scored (kind, model or function, hashes, settings): recorded in the manifest."""

    def score(self, prompts: Mapping[str, Prompt], candidates: Sequence[Candidate]) -> list[float | None]:
        """One score per candidate, in order; None where it could not be scored."""
        ...


def build_scorer(block: dict, config_path: Path | None, *, progress: bool) -> Scorer:
    """The scorer of a config's ``scorer:`` block (exactly one of :data:`KINDS`)."""
    where = f"{config_path or 'arbitrage config'}: scorer"
    kinds = [k for k in KINDS if isinstance(block, dict) and k in block]
    if len(kinds) != 1:
        raise ConfigError(f"{where} must have exactly one of {', '.join(KINDS)} (found {', '.join(kinds) or 'none'})",
                          "e.g. scorer: {reward_model: ckpt/rm} or {callable: 'module:function'}")
    kind = kinds[0]
    if kind == "reward_model":
        return _reward_model(check_keys(block, RM_KEYS, where), config_path, where)
    check_keys(block, (kind,), where)
    if kind == "callable":
        return CallableScorer(typed(block, "callable", str, where), config_path, where)
    return JudgeScorer(check_keys(block["judge"], JUDGE_KEYS, f"{where}.judge", required=("model",)),
                       f"{where}.judge", progress)


def _reward_model(block: dict, config_path: Path | None, where: str) -> Scorer:
    path = resolve_path(str(typed(block, "reward_model", str, where)), config_path)
    if not path.is_dir():
        raise ConfigError(f"{where}: reward_model {path} is not a directory",
                          "train one with glotbench train reward CONFIG.yaml -o DIR")
    try:  # lazily: torch and transformers load only for a reward-model scorer
        from glotbench.training.reward.score import RewardModelScorer
    except ModuleNotFoundError as exc:
        if exc.name != "glotbench.training.reward.score":
            raise
        raise GlotbenchError("the reward-model scorer (glotbench.training.reward.score) is not installed",
                             "reinstall glotbench (pip install -e .)") from None
    return RewardModelScorer(path, batch_size=typed(block, "batch_size", int, where, 8),
                             device=typed(block, "device", str, where, "cpu"),
                             dtype=typed(block, "dtype", str, where, "float32"),
                             max_length=typed(block, "max_length", int, where, None))


class CallableScorer:
    """``module:function`` called as ``function(prompt, completion) -> float`` per candidate."""

    def __init__(self, spec: str, config_path: Path | None, where: str = "scorer"):
        module_name, sep, attr = spec.partition(":")
        if not (sep and module_name.strip() and attr.strip()):
            raise ConfigError(f"{where}: callable {spec!r} is not module:function",
                              "e.g. callable: my_rewards:length_penalty")
        module = _import(module_name, config_path, where)
        fn = getattr(module, attr, None)
        if fn is None or not callable(fn):
            raise ConfigError(f"{where}: module {module_name!r} has no function {attr!r}",
                              f"define {attr}(prompt, completion) -> float in {getattr(module, '__file__', module_name)}")
        self.spec, self.fn = spec, fn
        source = getattr(module, "__file__", None)
        self.identity = {"kind": "callable", "callable": spec, "file": source,
                         "sha256": file_sha256(Path(source)) if source else None}
        self.stats = {"candidates": 0, "scored": 0, "non_finite": 0}

    def score(self, prompts: Mapping[str, Prompt], candidates: Sequence[Candidate]) -> list[float | None]:
        out: list[float | None] = []
        for c in candidates:
            what = f"prompt {c.prompt_id} (teacher {c.teacher}, sample {c.sample})"
            try:
                value = self.fn(prompts[c.prompt_id], c.completion)
            except Exception as exc:  # the user's code: its failure is one line naming the candidate
                raise GlotbenchError(f"callable scorer {self.spec} failed on {what}: "
                                     f"{type(exc).__name__}: {first_line(exc)}",
                                     "fix the function (--debug shows the traceback)") from exc
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise GlotbenchError(f"callable scorer {self.spec} returned {type(value).__name__} "
                                     f"{value!r:.40} on {what}, not a number", "return a float")
            self.stats["candidates"] += 1
            if math.isfinite(float(value)):
                out.append(float(value))
                self.stats["scored"] += 1
            else:  # NaN or inf: could not score, counted
                out.append(None)
                self.stats["non_finite"] += 1
        return out


def _import(module_name: str, config_path: Path | None, where: str):
    """The module from sys.path, else from the config file's directory (a rewards.py beside it)."""
    extra = [str(Path(config_path).resolve().parent)] if config_path else []
    for path in [None, *extra]:
        if path is not None:
            sys.path.insert(0, path)
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (module_name == exc.name or module_name.startswith(exc.name + ".")):
                raise ConfigError(f"{where}: importing {module_name!r} failed: {first_line(exc)}",
                                  "install the missing package") from exc
        except Exception as exc:  # a syntax error or a failing import in the user's module
            raise ConfigError(f"{where}: importing {module_name!r} failed: {type(exc).__name__}: "
                              f"{first_line(exc)}", "fix the module (--debug shows the traceback)") from exc
        finally:
            if path is not None:
                sys.path.remove(path)
    raise ConfigError(f"{where}: no module named {module_name!r}",
                      "put it on PYTHONPATH or beside the config file")


class JudgeScorer:
    """The pairwise judge as a ranking of each prompt's candidates (see the module docstring)."""

    def __init__(self, block: dict, where: str, progress: bool):
        model = typed(block, "model", str, where)
        spec = model if model in ("embedded", "local") or model.startswith(("hf:", "openai:")) else f"openai:{model}"
        self.method = typed(block, "method", str, where, "bradley_terry")
        if self.method not in METHODS:
            raise ConfigError(f"{where}: method {self.method!r} is not one of {', '.join(METHODS)}",
                              "bradley_terry: strength from the games; wins: share of games won")
        ints = {k: typed(block, k, int, where, d) for k, d in
                (("max_tokens", 1024), ("concurrency", 16), ("attempts", 6), ("parse_attempts", 3))}
        floats = {k: typed(block, k, float, where, d) for k, d in
                  (("temperature", 0.0), ("rpm", None), ("tpm", None), ("timeout", 120.0))}
        for key, value in {**ints, **floats}.items():
            if value is not None and (value < 0 if key == "temperature" else value <= 0):
                rule = "at least 0" if key == "temperature" else "positive"
                raise ConfigError(f"{where}: {key} must be {rule}, not {value}", f"set {key} to a number {rule}")
        self.cfg = JudgeConfig(run_a="arbitrage", runs_b=(), judge=spec, base_url=typed(block, "base_url", str, where),
                               prompt=typed(block, "prompt", str, where, DEFAULT_PROMPT), **ints, **floats)
        self.prompt = load_prompt(self.cfg.prompt)
        self.api_key_env = typed(block, "api_key_env", str, where, "OPENAI_API_KEY")
        names = typed(block, "language_names", dict, where, {})
        self.language_names = {**DOLLY_NAMES, **ARENA_NAMES, **names}
        self.progress = progress
        self.identity = {"kind": "judge", "judge": spec, "base_url": self.cfg.base_url, "method": self.method,
                         "prompt": {"name": self.prompt.name, "version": self.prompt.version,
                                    "sha256": self.prompt.sha256},
                         "temperature": self.cfg.temperature, "max_tokens": self.cfg.max_tokens,
                         "parse_attempts": self.cfg.parse_attempts, "virtual_ties": VIRTUAL_TIES}
        self.stats = {"prompts": 0, "single_candidate": 0, "unranked_prompts": 0, "judgments": 0,
                      "identical": 0, "invalid": 0, "api_errors": 0, "unscored_candidates": 0}
        self._local = None

    def score(self, prompts: Mapping[str, Prompt], candidates: Sequence[Candidate]) -> list[float | None]:
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(candidates):
            groups.setdefault(c.prompt_id, []).append(i)
        items = [item for pid, idx in groups.items() for item in self._items(prompts[pid], candidates, idx)]
        records = self._judge(items) if items else []
        games: dict[str, list[tuple[str, str, str]]] = {}
        for item, rec in zip(items, records):
            self.stats["judgments"] += 1
            self.stats["identical"] += rec["verdict"] == "identical"
            self.stats["api_errors"] += rec["error"] is not None
            self.stats["invalid"] += rec["outcome"] == "invalid" and rec["error"] is None
            if rec["outcome"] != "invalid":
                games.setdefault(item.prompt_id, []).append((*item.pair, rec["outcome"]))
        scores: list[float | None] = [None] * len(candidates)
        for pid, idx in groups.items():
            self.stats["prompts"] += 1
            if len(idx) < 2:
                self.stats["single_candidate"] += 1
                continue
            ranked = self._rank(games.get(pid, []))
            if not ranked:
                self.stats["unranked_prompts"] += 1
            for i in idx:
                scores[i] = ranked.get(str(i))
        self.stats["unscored_candidates"] += sum(s is None for s in scores)
        return scores

    def _items(self, prompt: Prompt, candidates: Sequence[Candidate], idx: list[int]) -> list[Item]:
        language = self.language_names.get(prompt.language, "")
        if not language and "{language}" in self.prompt.system + self.prompt.template:
            raise GlotbenchError(f"judge scorer: no English name for language {prompt.language!r}",
                                 f"add language_names: {{{prompt.language}: <name>}} to the judge block")
        items = []
        for n, i in enumerate(idx):
            for j in idx[n + 1:]:
                a, b = candidates[i].completion.strip(), candidates[j].completion.strip()
                for order, (first, second) in (("ab", (a, b)), ("ba", (b, a))):
                    messages = None if a == b else self.prompt.render(prompt.text, first, second, language)
                    items.append(Item((str(i), str(j)), "arbitrage", prompt.language, prompt.prompt_id, order, messages))
        return items

    def _judge(self, items: list[Item]) -> list[dict]:
        client = self._client()
        cache = RequestCache(None)
        try:
            engine = Engine(client, self.prompt, cache, self.cfg,
                            progress_bar(len(items), "judging candidates", "judgment", self.progress))
            records = asyncio.run(engine.run(items))
            engine.bar.close()
        finally:
            cache.close()
        self.stats["client"] = client.describe()
        return records

    def _client(self):
        """A fresh OpenAI-protocol client per scoring (the engine closes it); a local judge once."""
        kind = self.cfg.judge.partition(":")[0]
        if kind != "openai":
            self._local = self._local or make_judge(self.cfg)
            return self._local
        key = os.environ.get(self.api_key_env)
        if key is None:
            if self.cfg.base_url is None:
                raise GlotbenchError(f"judge scorer: {self.api_key_env} is not set (the OpenAI API needs a key)",
                                     f"export {self.api_key_env}=..., or set base_url to a server of your own")
            return make_judge(self.cfg)
        # The client reads OPENAI_API_KEY when it is built; api_key_env names another variable.
        saved = os.environ.get("OPENAI_API_KEY")
        os.environ["OPENAI_API_KEY"] = key
        try:
            return make_judge(self.cfg)
        finally:
            if saved is None:
                del os.environ["OPENAI_API_KEY"]
            else:
                os.environ["OPENAI_API_KEY"] = saved

    def _rank(self, games: list[tuple[str, str, str]]) -> dict[str, float]:
        """Candidate key → score from the valid games of one prompt (empty when there are none)."""
        played = sorted({k for a, b, _ in games for k in (a, b)}, key=int)
        if not played:
            return {}
        if self.method == "wins":
            won = dict.fromkeys(played, 0.0)
            n = dict.fromkeys(played, 0)
            for a, b, outcome in games:
                won[a] += {"a": 1.0, "b": 0.0, "tie": 0.5}[outcome]
                won[b] += {"a": 0.0, "b": 1.0, "tie": 0.5}[outcome]
                n[a] += 1
                n[b] += 1
            return {k: won[k] / n[k] for k in played}
        matches = [Match(a, b, {"a": "i", "b": "j", "tie": "tie"}[o]) for a, b, o in games]
        matches += [Match(a, b, "tie") for n, a in enumerate(played) for b in played[n + 1:]
                    for _ in range(VIRTUAL_TIES)]
        return bradley_terry(matches, seed=0, resamples=0)["scores"]
