"""Dogfooding: CI re-runs the committed reference suite from scratch and gates it against
``results/reference-embedded`` (see results/README.md). A change that moves any score fails
here until the reference run is regenerated on purpose."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from glotbench.harness.gate.fixed import exit_code, gate
from glotbench.harness.gate.policy import load_policy
from glotbench.harness.run.config import RunConfig
from glotbench.harness.run.execute import execute
from glotbench.harness.run.plan import plan
from glotbench.harness.store.rundir import read_run, read_samples

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "results" / "reference-embedded"
POLICY = REPO / "results" / "reference-embedded.gate.yaml"
UPDATE = "regenerate it on purpose and review the diff (results/README.md)"

pytestmark = pytest.mark.slow


def test_reference_suite_still_scores_the_same(tmp_path):
    ref = read_run(REFERENCE)
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    cfg = {k: v for k, v in ref["config"].items() if k in fields}
    cfg.update(tasks=tuple(cfg["tasks"]), output=str(tmp_path / "now"), cache_path=str(tmp_path / "cache.sqlite"),
               langs=tuple(cfg["langs"]) if cfg.get("langs") else None)
    config = RunConfig(**cfg)
    now = execute(config, plan(config), progress=False)
    result = gate(REFERENCE, now, load_policy(POLICY))
    assert exit_code(result) == 0, "the reference suite gates as " + result["verdict"] + ": " + UPDATE
    for task, prov in ref["provenance"]["tasks"].items():
        for lang in prov["languages"]:
            old, new = read_samples(REFERENCE, task, lang), read_samples(now, task, lang)
            keys = ("doc_id", "pred", "acc", "response", "chrf++")
            moved = [o["doc_id"] for o, n in zip(old, new) if any(o.get(k) != n.get(k) for k in keys)]
            assert len(old) == len(new) and not moved, f"{task}/{lang} items {moved} changed: {UPDATE}"
    assert json.loads(json.dumps(read_run(now)["results"])) == ref["results"], UPDATE
