"""Parity with the reference implementation, lm-eval 0.4.13, on real data and the real
embedded model: per-example log-likelihoods within 1e-4, identical predictions; and the same
predictions at batch sizes 1 and 16."""

from __future__ import annotations

import json

import numpy as np
import pytest

from glotbench.harness.models.hf import HFBackend
from glotbench.harness.models.lmeval_ref import run_reference
from glotbench.harness.taskapi import data
from glotbench.harness.taskapi.registry import get_task

SLICES = {"xcopa": (("et", "zh"), 32), "xwinograd": (("en", "jp"), 32)}
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def backend(embedded_dir) -> HFBackend:
    return HFBackend(str(embedded_dir), device="cpu", batch_size=16)


def ours(backend: HFBackend, task, lang: str, limit: int) -> list[list[float]]:
    prompts = [task.render(s) for s in data.load(task, lang, "bundled").samples[:limit]]
    flat = backend.loglikelihood([p for pr in prompts for p in pr.pairs])
    out, i = [], 0
    for pr in prompts:
        out.append([r.logprob for r in flat[i:i + len(pr.pairs)]])
        i += len(pr.pairs)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("task_name", list(SLICES))
def test_loglikelihoods_equal_lm_eval(task_name, backend, embedded_dir, tmp_path):
    task = get_task(task_name)
    langs, limit = SLICES[task_name]
    files = {lang: data.local_file(task, lang, data.BUNDLED_DIR) for lang in langs}
    ref = run_reference(task, embedded_dir, files, limit=limit, batch_size=16)
    report = {}
    for lang in langs:
        mine = np.array(ours(backend, task, lang, limit))
        theirs = np.array(ref.loglikelihoods[lang])
        assert mine.shape == theirs.shape == (limit, 2)
        diff = float(np.abs(mine - theirs).max())
        report[lang] = diff
        assert diff <= TOLERANCE, (lang, diff)
        assert (mine.argmax(1) == theirs.argmax(1)).all()
        assert (mine.argmax(1) == np.array([task.render(s).gold for s in
                                            data.load(task, lang, "bundled").samples[:limit]])).astype(float).tolist() \
            == ref.acc[lang]
    (tmp_path / "parity.json").write_text(json.dumps(report))


@pytest.mark.slow
def test_predictions_identical_at_batch_sizes_1_and_16(backend):
    task = get_task("xcopa")
    preds = {}
    for bs in (1, 16):
        backend.batch_size = bs
        try:
            preds[bs] = [np.argmax(x) for lang in ("et", "zh") for x in ours(backend, task, lang, 32)]
        finally:
            backend.batch_size = 16
    assert preds[1] == preds[16]
