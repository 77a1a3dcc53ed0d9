"""The default ``glotbench run``: what it plans on a CPU (every family with local data, cut to
fit), what it says first, ``--full``; and the time-weighted ETA of the progress bar.

The ≤ 10 minute goal is a measurement (docs/running.md, "The default run"), not a timed test."""

from __future__ import annotations

import pytest

from glotbench.harness.cli.main import main
from glotbench.harness.core.progress import WorkBar, WorkEta, format_seconds
from glotbench.harness.core.records import GenerationRequest, LoglikelihoodRequest
from glotbench.harness.run import eta
from glotbench.harness.run.defaults import CPU_CUTS, announce, default_plan


class _Captured(BaseException):
    """Stops a run right after the default line; not an Exception, so the CLI lets it through."""


@pytest.fixture
def planned(monkeypatch):
    """Run the CLI up to ``execute`` and keep the config and planned units."""
    from glotbench.harness.run import execute as execute_mod

    seen: dict = {}

    def fake_execute(cfg, units, progress=True):
        seen["cfg"], seen["units"] = cfg, units
        raise _Captured

    monkeypatch.setattr(execute_mod, "execute", fake_execute)

    def run(*argv: str) -> dict:
        with pytest.raises(_Captured):
            main(["run", "--device", "cpu", *argv])
        return seen

    return run


def test_default_run_covers_every_local_family_with_cut_items(planned, capsys):
    seen = planned()
    cfg, units = seen["cfg"], seen["units"]
    # xstorycloze, global_mmlu, include_loglik, dolly have no bundled data; the rest run
    assert cfg.tasks == ("xcopa", "xwinograd", "mgsm", "flores", "m_arenahard")
    assert cfg.limit is None and cfg.max_new_tokens is None
    assert cfg.task_limits == {"xcopa": 30, "xwinograd": 30, "mgsm": 1, "flores": 1, "m_arenahard": 2}
    assert cfg.task_max_new_tokens == {"mgsm": 256, "flores": 128, "m_arenahard": 256}
    assert cfg.task_langs["mgsm"] == ("de", "en", "es", "fr", "sw", "zh")  # prompts under ~1,300 tokens
    assert cfg.task_langs["m_arenahard"] == ("en",)
    families = {u.task.name: u.task for u in units}
    assert {t.output_type for t in families.values()} == {"multiple_choice", "generate"}
    assert any(t.judged for t in families.values()) and any(t.source_field for t in families.values())
    assert len({u.lang for u in units if u.task.name == "flores"}) == 46  # every direction, one segment
    assert all(len(u.prompts) <= CPU_CUTS[u.task.name].items for u in units)
    err = capsys.readouterr().err
    line = [x for x in err.splitlines() if x.startswith("default run:")]
    assert line == ["default run: 550 items of these tasks (330 xcopa, 166 xwinograd, 6 mgsm, 46 flores, "
                    "2 m_arenahard), about 5 minutes on this machine's CPU; --full runs everything"]
    assert "skipping xstorycloze: no local data" in err and "mgsm on CPU: first 1 item per language" in err


def test_full_removes_every_cut(planned, capsys):
    cfg = planned("--full")["cfg"]
    assert cfg.task_limits == {} and cfg.task_max_new_tokens == {} and cfg.limit is None
    assert cfg.task_langs == {"m_arenahard": ("en",)}  # only the data decides
    assert "full run: 59263 items" in capsys.readouterr().err


def test_limit_and_max_new_tokens_lift_their_own_cut(planned):
    cfg = planned("--limit", "3")["cfg"]
    assert cfg.limit == 3 and cfg.task_limits == {} and "mgsm" not in cfg.task_langs
    assert cfg.task_max_new_tokens["mgsm"] == 256
    cfg = planned("--max-new-tokens", "64")["cfg"]
    assert cfg.max_new_tokens == 64 and cfg.task_max_new_tokens == {} and cfg.task_limits["xcopa"] == 30
    cfg = planned("--tasks", "mgsm")["cfg"]
    assert cfg.task_limits == {} and cfg.tasks == ("mgsm",)


def test_langs_are_not_cut_when_given(planned):
    seen = planned("--langs", "ru,fr")
    assert "mgsm" not in seen["cfg"].task_langs and seen["cfg"].task_limits["mgsm"] == 1
    assert {u.lang for u in seen["units"] if u.task.name == "mgsm"} == {"ru", "fr"}


@pytest.mark.parametrize("argv", [("--full", "--tasks", "xcopa"), ("--full", "--limit", "2")])
def test_full_with_a_selection_is_one_line_error(argv, capsys):
    assert main(["run", "--device", "cpu", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("glotbench: error: --full") and "Traceback" not in err


def test_hub_data_keeps_every_task_and_no_cut_on_gpu():
    out = default_plan("hub", None, cut_items=False, cut_tokens=False)
    assert "xstorycloze" in out.tasks and "global_mmlu" in out.tasks and "dolly" in out.tasks
    assert out.task_limits == {} and out.task_langs == {}


def test_estimate_grows_with_the_cut():
    class Prompt:
        def __init__(self, text, tokens):
            self.text, self.max_new_tokens = text, tokens

        def plain(self):
            return self.text

    class Unit:
        def __init__(self, name, prompts):
            self.task = type("T", (), {"name": name})()
            self.prompts = prompts

    class Cfg:
        max_new_tokens = None
        task_max_new_tokens = {"mgsm": 256}

    units = [Unit("mgsm", [Prompt("x" * 3000, 768)] * 20)]
    cut, full = announce(units, Cfg()), announce(units, type("C", (), {"max_new_tokens": None,
                                                                        "task_max_new_tokens": {}})())
    assert cut.startswith("default run: 20 items of these tasks (20 mgsm), about ")
    minutes = [int(x.split("about ")[1].split(" ")[0]) for x in (cut, full)]
    assert minutes[0] < minutes[1]
    # the cost model is the embedded model's on this CPU: no minutes for another model or a GPU
    assert announce(units, Cfg(), embedded=False).endswith("time depends on the model; --full runs everything")


# ------------------------------------------------------------------ the time-weighted ETA


class Clock:
    """A clock the test moves by hand: no real time, no flakiness."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_long_generation_dominates_the_eta():
    gen = GenerationRequest("Question: " + "x" * 2000, max_new_tokens=768)
    lls = [LoglikelihoodRequest("The man broke his toe because", f" choice {i:03d}") for i in range(150)]
    weights = {"g": eta.request_units(gen)} | {f"l{i}": eta.request_units(r) for i, r in enumerate(lls)}
    kinds = {"g": "generate"} | {f"l{i}": "loglikelihood" for i in range(150)}
    clock = Clock()
    bar = WorkBar(weights, kinds, list(weights), eta.PRIOR, enabled=False, clock=clock)
    assert bar.eta.seconds_left() is None  # nothing timed yet
    # 100 of the 150 log-likelihoods answered, on a machine 3x slower than the prior
    per_ll = weights["l0"] * eta.SECONDS_PER_UNIT * 3
    for i in range(100):
        clock.now += per_ll
        bar.update(1, keys=[f"l{i}"])
    left = bar.eta.seconds_left()
    ll_left = 50 * per_ll
    gen_left = weights["g"] * eta.SECONDS_PER_UNIT * 3  # priced by the speed seen so far
    assert left == pytest.approx(ll_left + gen_left)
    assert gen_left > 10 * ll_left  # one 768-token generation outweighs 100 log-likelihoods
    # counting requests, 51 left after 100 in clock.now seconds: a tenth of the honest ETA
    assert left > 10 * (clock.now * 51 / 100)
    assert bar.status().startswith("100/151 req, ")


def test_observed_rates_replace_the_prior_per_kind():
    clock = Clock()
    est = WorkEta({"loglikelihood": 100.0, "generate": 1000.0}, eta.PRIOR, clock)
    clock.now = 1.0
    est.done("loglikelihood", 50.0)  # 0.02 s per unit
    clock.now = 2.0
    est.skip("generate", 500.0)  # cached: off the remainder, not timed
    clock.now = 7.0
    est.done("generate", 100.0)  # 0.05 s per unit, timed from the skip
    assert est.rate("loglikelihood") == pytest.approx(0.02)
    assert est.rate("generate") == pytest.approx(0.05)
    assert est.seconds_left() == pytest.approx(50 * 0.02 + 400 * 0.05)


def test_cached_answers_cost_no_time():
    clock = Clock()
    bar = WorkBar({"a": 10.0, "b": 10.0}, {"a": "loglikelihood", "b": "loglikelihood"}, ["a", "b"],
                  eta.PRIOR, enabled=False, clock=clock)
    clock.now = 100.0
    bar.update(1, keys=["a"], cached=True)
    clock.now = 101.0
    bar.update(1, keys=["b"])
    assert bar.eta.rate("loglikelihood") == pytest.approx(0.1)  # 1 s for b, not 101
    assert bar.eta.seconds_left() == 0


def test_generation_weight_counts_decode_and_context():
    short = eta.generation_units(100, 256)
    assert short == pytest.approx(100 + 256 * eta.DECODE_FACTOR * (1 + 100 / eta.DECODE_CONTEXT))
    assert eta.generation_units(6000, 256) > 4 * short
    assert eta.request_units(LoglikelihoodRequest("ab" * 30, " c"), count=len) == 62
    assert eta.request_kind(GenerationRequest("x")) == "generate"


def test_eta_refuses_a_kind_without_a_prior():
    with pytest.raises(ValueError, match="no prior"):
        WorkEta({"rerank": 1.0}, eta.PRIOR)


@pytest.mark.parametrize("seconds,shown", [(None, "?"), (59.6, "01:00"), (754.2, "12:34"), (3723, "1:02:03")])
def test_format_seconds(seconds, shown):
    assert format_seconds(seconds) == shown
