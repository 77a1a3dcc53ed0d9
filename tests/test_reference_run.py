"""Dogfooding: CI re-runs the committed reference suite from scratch and checks it against
``results/reference-embedded`` (see results/README.md for the procedure and the figures).

Float32 CPU results move with library versions, CPUs and thread counts, so the check asks
only for what is stable across machines, and each tolerance is far below a real change:

- identical structure: the same tasks, languages, items, data and prompt hashes, contexts,
  continuations, targets and token counts (any prompt, data or tokenisation change fails);
- every choice's log-likelihood within ``LL_TOL`` nats of the reference's. Measured drift:
  5.7e-4 between the committed reference and a re-run under transformers 5.24.0 (XCOPA
  Tamil, a 67-token continuation), 9.5e-5 between sdpa and eager attention, and the rest in
  results/README.md. A doubled space or one token more in a continuation moved four
  reference items' log-likelihoods by 5.4 to 9.1 nats;
- every prediction identical, except a *near-tie*: an item whose reference log-likelihoods
  of the two best choices are closer than ``NEAR_TIE`` = 2 · LL_TOL (each may move by
  LL_TOL), where float noise alone can flip the argmax;
- greedy generations (FLORES) identical in at least ``MIN_AGREEMENT`` of the items: one
  step with two logits within float noise changes the rest of a generation (1 of 92
  diverged between the reference and a re-run); an identical output must score identically;
- the real gate (``results/reference-embedded.gate.yaml``) with the margins a user gates a
  real regression with: a "regression" verdict fails.

The ``test_detects_*`` tests feed the same comparison deliberately changed copies of the
reference (a shifted log-likelihood, a flipped prediction that is no near-tie, generations
diverging above the rate, a changed scorer, a changed prompt, a real regression) and check
that it fails. ``python tests/test_reference_run.py RUN_DIR`` prints the drift of any run of
the suite against the reference.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.gate.fixed import exit_code, gate
from glotbench.harness.gate.policy import load_policy
from glotbench.harness.metrics.chrf import chrf_segment
from glotbench.harness.run.config import RunConfig
from glotbench.harness.run.execute import execute
from glotbench.harness.run.plan import plan
from glotbench.harness.store.schema import RunRecord, differences

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "results" / "reference-embedded"
POLICY = REPO / "results" / "reference-embedded.gate.yaml"
UPDATE = "if the change is intended, regenerate the reference on purpose and review the diff (results/README.md)"

LL_TOL = 5e-3
"""Largest |Δ log-likelihood| (nats) of one choice: ~9× the largest drift measured across
library versions (5.7e-4), 50× the sdpa/eager difference (9.5e-5)."""
NEAR_TIE = 2 * LL_TOL
"""A prediction may flip only where the reference's two best choices are closer than this."""
MIN_AGREEMENT = 0.9
"""Share of greedy generations that must be identical (measured: 91/92 across versions)."""
SCORE_KEYS = ("chrf++", "chrf_stats", "pred", "parsed", "n_tokens", "finish")
"""Fields of a generation record that follow from its response: equal when it is equal."""


@dataclass
class Drift:
    """What moved between the reference and another run of the suite."""

    choices: int = 0
    ll_max: float = 0.0
    ll_worst: str = "-"
    ll_over: list[str] = field(default_factory=list)
    near_tie_flips: list[str] = field(default_factory=list)
    flips: list[str] = field(default_factory=list)
    generations: int = 0
    diverged: list[str] = field(default_factory=list)
    scored_differently: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    versions: dict = field(default_factory=dict)

    @property
    def agreement(self) -> float:
        return 1.0 - len(self.diverged) / self.generations if self.generations else 1.0

    def problems(self) -> list[str]:
        """Everything that fails the check, one line each (empty: the run reproduces)."""
        out = [f"structure differs: {x}" for x in self.mismatched]
        out += [f"log-likelihood moved by more than {LL_TOL:g}: {x}" for x in self.ll_over]
        out += [f"prediction flipped on an item that is no near-tie (gap >= {NEAR_TIE:g}): {x}" for x in self.flips]
        out += [f"same output scored differently: {x}" for x in self.scored_differently]
        if self.agreement < MIN_AGREEMENT:
            out.append(f"greedy generations agree on {self.agreement:.1%} of items, below {MIN_AGREEMENT:.0%}: "
                       f"{', '.join(self.diverged[:10])}")
        return out

    def summary(self) -> str:
        moved = {k: v for k, v in self.versions.items() if v[0] != v[1]}
        return (f"{self.choices} log-likelihoods: max |Δ| {self.ll_max:.2e} ({self.ll_worst}), "
                f"{len(self.ll_over)} above {LL_TOL:g}; predictions: {len(self.flips)} flipped, "
                f"{len(self.near_tie_flips)} near-tie flips allowed {self.near_tie_flips}; "
                f"generations: {self.generations - len(self.diverged)}/{self.generations} identical "
                f"{self.diverged}; versions (reference, run): {moved or 'same'}")


def compare(reference: Path, run: Path) -> Drift:
    """Compare two runs of the same suite example by example (see the module docstring)."""
    ref, now = RunRecord.read(reference), RunRecord.read(run)
    drift = Drift(versions={k: (ref.versions.get(k), now.versions.get(k))
                            for k in sorted(set(ref.versions) | set(now.versions))})
    if ref.tasks() != now.tasks():
        drift.mismatched.append(f"tasks {ref.tasks()} vs {now.tasks()}")
    for task in [t for t in ref.tasks() if now.has(t)]:
        if ref.languages(task) != now.languages(task):
            drift.mismatched.append(f"{task} languages {ref.languages(task)} vs {now.languages(task)}")
        drift.mismatched += [d.describe() for d in differences(ref, now, task)]
        for lang in [x for x in ref.languages(task) if now.has(task, x)]:
            old, new = ref.samples(task, lang), now.samples(task, lang)
            if [r["doc_id"] for r in old] != [r["doc_id"] for r in new]:
                drift.mismatched.append(f"{task}/{lang} items {[r['doc_id'] for r in new]}, "
                                        f"reference {[r['doc_id'] for r in old]}")
                continue
            for o, n in zip(old, new):
                where = f"{task}/{lang} doc {o['doc_id']}"
                if o.get("target") != n.get("target") or o.get("target_text") != n.get("target_text"):
                    drift.mismatched.append(f"{where}: target")
                elif "choices" in o:
                    _compare_choices(where, o, n, drift)
                else:
                    _compare_generation(where, o, n, drift)
    return drift


def _compare_choices(where: str, o: dict, n: dict, drift: Drift) -> None:
    co, cn = o["choices"], n.get("choices") or []
    same = ("context", "continuation", "n_tokens")
    if len(co) != len(cn) or any(a.get(k) != b.get(k) for a, b in zip(co, cn) for k in same):
        drift.mismatched.append(f"{where}: choices (context, continuation or token count)")
        return
    for i, (a, b) in enumerate(zip(co, cn)):
        d = abs(a["logprob"] - b["logprob"])
        drift.choices += 1
        if not d <= LL_TOL:  # NaN fails too
            drift.ll_over.append(f"{where} choice {i}: {a['logprob']:.6f} -> {b['logprob']:.6f}")
        if d > drift.ll_max:
            drift.ll_max, drift.ll_worst = d, f"{where} choice {i}"
    if n.get("acc") != float(n.get("pred") == n.get("target")):
        drift.scored_differently.append(f"{where}: acc {n.get('acc')} for pred {n.get('pred')}")
    if o["pred"] != n.get("pred"):
        top = sorted((c["logprob"] for c in co), reverse=True)
        gap = top[0] - top[1]
        line = f"{where}: pred {o['pred']} -> {n.get('pred')} (reference gap {gap:.2e})"
        (drift.near_tie_flips if gap < NEAR_TIE else drift.flips).append(line)


def _compare_generation(where: str, o: dict, n: dict, drift: Drift) -> None:
    if o.get("prompt") != n.get("prompt"):
        drift.mismatched.append(f"{where}: prompt")
        return
    drift.generations += 1
    if o.get("response") != n.get("response"):
        drift.diverged.append(where)
        return
    moved = [k for k in SCORE_KEYS if o.get(k) != n.get(k)]
    if moved:
        drift.scored_differently.append(f"{where}: {', '.join(moved)}")


def rerun(reference: Path, out: Path) -> Path:
    """The reference's own config, run from scratch (an empty request cache) into ``out``."""
    config = RunRecord.read(reference).config
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    cfg = {k: v for k, v in config.items() if k in fields}
    cfg.update(tasks=tuple(cfg["tasks"]), output=str(out / "run"), cache_path=str(out / "cache.sqlite"),
               langs=tuple(cfg["langs"]) if cfg.get("langs") else None)
    run_config = RunConfig(**cfg)
    return execute(run_config, plan(run_config), progress=False)


def check(reference: Path, run: Path) -> list[str]:
    """Every reason ``run`` does not reproduce ``reference``, the gate's verdict included."""
    found = compare(reference, run).problems()
    result = gate(reference, run, load_policy(POLICY))
    if exit_code(result):
        regressed = [f"{t}/{m}" for t, v in result["tasks"].items() for m, f in v["metrics"].items()
                     if f["verdict"] == "regression"]
        found.append(f"the gate ({POLICY.name}) says {result['verdict']}: {', '.join(regressed)}")
    return found


@pytest.mark.slow
def test_reference_suite_reproduces(tmp_path):
    now = rerun(REFERENCE, tmp_path)
    drift = compare(REFERENCE, now)
    print(drift.summary())
    found = check(REFERENCE, now)
    assert not found, "the reference suite no longer reproduces:\n" + "\n".join(found) + "\n" + UPDATE


# --------------------------------------------------- the comparison catches real changes
#
# Each test below edits a copy of the reference as a real change would and runs the same
# comparison. A copy without FLORES is enough for the gate tests (its 46 chrF++ bootstraps
# take most of a gate's time).


def _copy(tmp_path: Path, name: str, drop: tuple[str, ...] = ()) -> Path:
    out = tmp_path / name
    shutil.copytree(REFERENCE, out)
    if drop:
        data = json.loads((out / "run.json").read_text(encoding="utf-8"))
        for task in drop:
            for section in (data["results"], data["averages"], data["provenance"]["tasks"]):
                section.pop(task, None)
            shutil.rmtree(out / "samples" / task)
        data["config"]["tasks"] = [t for t in data["config"]["tasks"] if t not in drop]
        (out / "run.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return out


def _edit(run: Path, task: str, lang: str, change) -> None:
    """Apply ``change(records)`` to one task × language's samples file."""
    path = run / "samples" / task / f"{lang}.jsonl"
    recs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    change(recs)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")


def _gap(rec: dict) -> float:
    top = sorted((c["logprob"] for c in rec["choices"]), reverse=True)
    return top[0] - top[1]


def _not_a_tie(run: Path, task: str = "xcopa") -> tuple[str, int]:
    """A language and item of ``task`` whose two best choices are far apart."""
    for lang in RunRecord.read(run).languages(task):
        for i, rec in enumerate(RunRecord.read(run).samples(task, lang)):
            if _gap(rec) > 10 * NEAR_TIE:
                return lang, i
    raise AssertionError(f"no {task} item with a clear winner in the reference")


def _regenerate(rec: dict, text: str) -> None:
    """Replace a FLORES record's output and rescore it, as a diverged generation would be."""
    stats, sentence = chrf_segment(text, rec["target"])
    rec.update(response=text, pred=text, **{"chrf++": sentence, "chrf_stats": stats})


def test_reference_matches_itself(tmp_path):
    """The baseline of the tests below: an untouched copy shows no drift at all."""
    drift = compare(REFERENCE, _copy(tmp_path, "same"))
    assert not drift.problems() and drift.ll_max == 0 and drift.agreement == 1
    assert (drift.choices, drift.generations) == (68, 92), drift.summary()  # 17 languages x 2 x 2; 46 x 2


def test_float_noise_within_the_tolerances_passes(tmp_path):
    """What another machine does: every log-likelihood moved by up to 0.9 · LL_TOL, a
    near-tie flipped, and generations diverging just within the rate."""
    run = _copy(tmp_path, "noisy")
    ref = RunRecord.read(REFERENCE)
    for lang in ref.languages("xcopa"):
        def jitter(recs):
            for k, rec in enumerate(recs):
                for j, c in enumerate(rec["choices"]):
                    c["logprob"] += (-1) ** (k + j) * 0.9 * LL_TOL
        _edit(run, "xcopa", lang, jitter)
    lang, i = ref.languages("xwinograd")[0], 0

    def near_tie(recs):  # make item i a near-tie in both runs, won by the other choice here
        rec = recs[i]
        best = max(c["logprob"] for c in rec["choices"])
        other = 1 - rec["pred"]
        rec["choices"][other]["logprob"] = best + 0.5 * LL_TOL
        rec["choices"][rec["pred"]]["logprob"] = best
        rec["pred"], rec["acc"] = other, float(other == rec["target"])
    _edit(run, "xwinograd", lang, near_tie)
    base = _copy(tmp_path, "base")
    _edit(base, "xwinograd", lang, lambda recs: recs[i]["choices"][1 - recs[i]["pred"]].update(
        logprob=max(c["logprob"] for c in recs[i]["choices"]) - 0.5 * LL_TOL))
    allowed = int((1 - MIN_AGREEMENT) * 92)
    for lang in ref.languages("flores")[:allowed]:
        _edit(run, "flores", lang, lambda recs: _regenerate(recs[0], recs[0]["response"] + " (diverged)"))
    drift = compare(base, run)
    assert drift.problems() == [], drift.summary()
    assert len(drift.near_tie_flips) == 1 and len(drift.diverged) == allowed
    assert LL_TOL * 0.8 < drift.ll_max <= LL_TOL


def test_detects_a_shifted_loglikelihood(tmp_path):
    run = _copy(tmp_path, "shifted")
    lang, i = _not_a_tie(run)
    _edit(run, "xcopa", lang, lambda recs: recs[i]["choices"][0].update(
        logprob=recs[i]["choices"][0]["logprob"] - 2 * LL_TOL))
    problems = compare(REFERENCE, run).problems()
    assert len(problems) == 1 and f"xcopa/{lang} doc" in problems[0] and "moved by more than" in problems[0]


def test_detects_a_flipped_prediction_that_is_no_near_tie(tmp_path):
    """A scoring bug: the log-likelihoods are right but the prediction is not their argmax."""
    run = _copy(tmp_path, "flipped")
    lang, i = _not_a_tie(run)

    def flip(recs):
        recs[i]["pred"] = 1 - recs[i]["pred"]
        recs[i]["acc"] = float(recs[i]["pred"] == recs[i]["target"])
    _edit(run, "xcopa", lang, flip)
    problems = compare(REFERENCE, run).problems()
    assert len(problems) == 1 and "no near-tie" in problems[0] and f"xcopa/{lang}" in problems[0]


def test_detects_generations_diverging_above_the_rate(tmp_path):
    run = _copy(tmp_path, "diverged")
    langs = RunRecord.read(run).languages("flores")
    too_many = int((1 - MIN_AGREEMENT) * 92) + 1
    for lang in langs[:too_many]:
        _edit(run, "flores", lang, lambda recs: _regenerate(recs[0], "Something else entirely."))
    problems = compare(REFERENCE, run).problems()
    assert len(problems) == 1 and "greedy generations agree" in problems[0]


def test_detects_an_identical_output_scored_differently(tmp_path):
    run = _copy(tmp_path, "rescored")
    lang = RunRecord.read(run).languages("flores")[0]
    _edit(run, "flores", lang, lambda recs: recs[1].update({"chrf++": recs[1]["chrf++"] + 0.5}))
    problems = compare(REFERENCE, run).problems()
    assert problems == [f"same output scored differently: flores/{lang} doc 1: chrf++"]


def test_detects_a_changed_prompt_or_tokenisation(tmp_path):
    run = _copy(tmp_path, "prompt")
    lang = RunRecord.read(run).languages("xwinograd")[0]
    data = json.loads((run / "run.json").read_text(encoding="utf-8"))
    data["provenance"]["tasks"]["xwinograd"]["languages"][lang]["prompt_sha256"] = "0" * 64
    (run / "run.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    _edit(run, "xcopa", "et", lambda recs: recs[0]["choices"][0].update(n_tokens=recs[0]["choices"][0]["n_tokens"] + 1))
    problems = compare(REFERENCE, run).problems()
    assert any(f"xwinograd/{lang}: the runs used different prompts" in p for p in problems), problems
    assert any("xcopa/et doc 0: choices" in p for p in problems), problems
    with pytest.raises(GlotbenchError, match="different prompts"):
        gate(REFERENCE, run, load_policy(POLICY))


def test_gate_ignores_one_changed_item_and_fails_a_real_regression(tmp_path):
    """The gate's margins are meant for real regressions: one changed item (what float noise
    can do to a near-tie) passes, a model right on every XCOPA item against one wrong on
    every item regresses. (At --limit 2 the reference model scores 3/22 on XCOPA, too few
    right answers to lose, so the baseline here is a copy made right everywhere.)"""
    base = _copy(tmp_path, "base", drop=("flores",))
    one = _copy(tmp_path, "one", drop=("flores",))

    def flip_first(recs):
        recs[0]["pred"] = 1 - recs[0]["pred"]
        recs[0]["acc"] = float(recs[0]["pred"] == recs[0]["target"])
    _edit(one, "xwinograd", "en", flip_first)
    assert exit_code(gate(base, one, load_policy(POLICY))) == 0
    good, bad = (_copy(tmp_path, name, drop=("flores",)) for name in ("good", "bad"))
    for lang in RunRecord.read(good).languages("xcopa"):
        for run, right in ((good, True), (bad, False)):
            def answer(recs, right=right):
                for rec in recs:
                    rec["pred"] = rec["target"] if right else 1 - rec["target"]
                    rec["acc"] = float(right)
            _edit(run, "xcopa", lang, answer)
    result = gate(good, bad, load_policy(POLICY))
    assert result["verdict"] == "regression" and exit_code(result) == 1
    assert result["tasks"]["xcopa"]["verdict"] == "regression"
    assert result["tasks"]["xwinograd"]["verdict"] == "pass"

if __name__ == "__main__":  # python tests/test_reference_run.py RUN_DIR [REFERENCE_DIR]
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python tests/test_reference_run.py RUN_DIR [REFERENCE_DIR]")
    reference = Path(sys.argv[2]) if len(sys.argv) == 3 else REFERENCE
    drift = compare(reference, Path(sys.argv[1]))
    print(drift.summary())
    print("\n".join(drift.problems()) or "reproduces within the tolerances")
