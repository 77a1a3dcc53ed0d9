"""The runner on generative tasks with a tiny model: chat layouts, provenance, cache, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from glotbench.harness.cli.main import main
from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.run.config import RunConfig
from glotbench.harness.run.execute import execute
from glotbench.harness.run.plan import plan
from glotbench.harness.store.rundir import read_run, read_samples


def run(tmp_path: Path, model_dir: Path, name: str, **kw) -> tuple[dict, list[dict]]:
    cfg = RunConfig(tasks=("mgsm",), langs=("en",), limit=2, model=f"hf:{model_dir}", max_new_tokens=6,
                    data="bundled", output=str(tmp_path / name), **kw)
    path = execute(cfg, plan(cfg), progress=False)
    return read_run(path), read_samples(path, "mgsm", "en")


@pytest.fixture(scope="module")
def no_template_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with its chat template removed (a base model)."""
    out = tmp_path_factory.mktemp("tiny-base") / "model"
    shutil.copytree(tiny_model_dir, out)
    (out / "chat_template.jinja").unlink(missing_ok=True)
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("chat_template", None)
    cfg_path.write_text(json.dumps(cfg))
    return out


def test_chat_layouts_are_recorded_and_cached(tiny_model_dir, tmp_path, isolated_cache):
    first, records = run(tmp_path, tiny_model_dir, "a")
    prompting = first["provenance"]["tasks"]["mgsm"]["prompting"]
    assert prompting["chat_template"] is True and prompting["fewshot_as"] == "multiturn"
    assert prompting["max_new_tokens"] == 6 and len(prompting["chat_template_sha256"]) == 64
    assert records[0]["prompt"].count("<|im_start|>user") == 6  # five shots and the question
    assert {"response", "finish", "n_tokens", "strict_match", "flexible_extract", "parsed"} <= set(records[0])
    cell = first["results"]["mgsm"]["en"]
    assert cell["n"] == 2 and cell["unparsed"] == sum(not r["parsed"] for r in records)
    assert set(cell["metrics"]) == {"strict_match", "flexible_extract"}
    assert first["provenance"]["requests"]["computed"] == 2

    again, records2 = run(tmp_path, tiny_model_dir, "b")
    assert again["provenance"]["requests"] == {"total": 2, "from_cache": 2, "computed": 0}
    assert [r["response"] for r in records2] == [r["response"] for r in records]

    single, records3 = run(tmp_path, tiny_model_dir, "c", fewshot_as="single-turn")
    assert records3[0]["prompt"].count("<|im_start|>user") == 1
    assert single["provenance"]["tasks"]["mgsm"]["prompting"]["fewshot_as"] == "single-turn"
    assert single["provenance"]["tasks"]["mgsm"]["languages"]["en"]["prompt_sha256"] != \
        first["provenance"]["tasks"]["mgsm"]["languages"]["en"]["prompt_sha256"]

    plain, records4 = run(tmp_path, tiny_model_dir, "d", chat="off")
    assert records4[0]["prompt"].startswith("Question: ") and "<|im_start|>" not in records4[0]["prompt"]
    assert plain["provenance"]["tasks"]["mgsm"]["prompting"] == {
        "chat_template": False, "layout": "plain text", "max_new_tokens": 6}


def test_base_model_without_chat_template(no_template_dir, tmp_path, isolated_cache):
    auto, records = run(tmp_path, no_template_dir, "auto")
    assert auto["provenance"]["tasks"]["mgsm"]["prompting"]["chat_template"] is False
    assert records[0]["prompt"].startswith("Question: ")
    with pytest.raises(GlotbenchError, match="has no chat template"):
        run(tmp_path, no_template_dir, "on", chat="on")
    assert not (tmp_path / "on").exists()


def test_cli_bad_generation_flags(capsys, tmp_path):
    assert main(["run", "--tasks", "mgsm", "--max-new-tokens", "0", "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--max-new-tokens must be >= 1" in err[0]
