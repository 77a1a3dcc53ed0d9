"""Shared fixtures: an isolated request cache, the embedded model, a tiny random Llama; and
the rule that a skip under ``CI=true`` is a failure (only GPU-marked tests may skip there)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

# No test reads or writes the developer's request cache (~/.cache/glotbench/requests.sqlite):
# a stale log-likelihood there could make a test pass that should fail. One temporary cache
# per session (subprocesses inherit it); tests that need a fresh one set their own. The
# converted embedded model and the isolated COMET / mergekit environments stay in the user
# cache: they are content-addressed builds, not answers.
_SESSION_CACHE = Path(tempfile.mkdtemp(prefix="glotbench-test-cache-"))
os.environ["GLOTBENCH_REQUEST_CACHE"] = str(_SESSION_CACHE / "requests.sqlite")


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skipped test fails (the README's evidence must run there), except tests
    marked ``gpu``: CI has no GPU. Outside CI a test may skip, saying why."""
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and not hasattr(rep, "wasxfail") and in_ci() and "gpu" not in item.keywords:
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"skipped under CI=true ({reason}): a skip in CI is a failure; only gpu tests may skip"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same rule for a whole module skipped at import (``pytest.importorskip``)."""
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and in_ci():
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"module skipped under CI=true ({reason}): a skip in CI is a failure"


@pytest.fixture(scope="session")
def embedded_dir() -> Path:
    """The converted embedded model (converted once per machine, in the user cache)."""
    from glotbench.harness.models.embedded import converted_dir

    return converted_dir()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, embedded_dir) -> Path:
    """A 2-layer random Llama with the embedded model's tokenizer: fast, real code paths."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-llama")
    tok = AutoTokenizer.from_pretrained(embedded_dir)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.float32)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_rm_dir(tmp_path_factory, embedded_dir) -> Path:
    """A 2-layer random Llama reward model (one label) with the embedded model's tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    out = tmp_path_factory.mktemp("tiny-rm")
    tok = AutoTokenizer.from_pretrained(embedded_dir)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, num_labels=1,
                      pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(1)
    LlamaForSequenceClassification(cfg).to(torch.float32).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture()
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """A fresh user cache for the request cache; the converted models stay shared."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("GLOTBENCH_REQUEST_CACHE", str(cache / "requests.sqlite"))
    return cache
