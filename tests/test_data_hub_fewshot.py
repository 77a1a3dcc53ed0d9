"""Hub loaders of the few-shot and generative tasks, on local stand-ins of hub repositories
(the hub itself is unreachable here): Global-MMLU's test + dev splits, MGSM's test + train
(exemplars) splits in the hub schema, INCLUDE's language-name configs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from glotbench.harness.taskapi.data import load
from glotbench.harness.taskapi.registry import get_task

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture()
def datasets_offline(monkeypatch, tmp_path):
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets-cache")
    return datasets


def fake_hub(root: Path, configs: dict[str, dict[str, list[dict]]]) -> Path:
    """A directory shaped like a hub dataset repo: one config per key, one file per split."""
    front = ["---", "configs:"]
    for config, splits in configs.items():
        front += [f"- config_name: {config}", "  data_files:"]
        for split, rows in splits.items():
            path = root / config / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            front += [f"  - split: {split}", f"    path: {config}/{split}.jsonl"]
    (root / "README.md").write_text("\n".join(front + ["---", ""]), encoding="utf-8")
    return root


def jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def on_hub(task, repo: Path):
    return dataclasses.replace(task, data=dataclasses.replace(task.data, hub_id=str(repo)))


def test_global_mmlu_hub_loads_test_and_dev(tmp_path, datasets_offline):
    task = get_task("global_mmlu")
    fx = FIXTURES / "global_mmlu" / "fr"
    repo = fake_hub(tmp_path / "gmmlu", {"fr": {"test": jsonl(fx / "test.jsonl"), "dev": jsonl(fx / "dev.jsonl")}})
    hub = load(on_hub(task, repo), "fr", "hub")
    local = load(task, "fr", "local", FIXTURES)
    assert hub.source == f"hub:{repo}/fr/test"
    assert [dict(s.fields) for s in hub.samples] == [dict(s.fields) for s in local.samples]
    assert [dict(s.fields) for s in hub.fewshot] == [dict(s.fields) for s in local.fewshot]
    assert hub.sha256 == local.sha256
    assert task.prompt(hub.samples[3], hub.fewshot) == task.prompt(local.samples[3], local.fewshot)


def test_mgsm_hub_schema_renders_like_the_bundled_copy(tmp_path, datasets_offline):
    task = get_task("mgsm")
    bundled = load(task, "de", "bundled")
    test = [{"question": s.fields["question"], "answer": None,
             "answer_number": int(s.fields["answer_number"].replace(",", "")), "equation_solution": None}
            for s in bundled.samples[:5]]
    train = [{"question": s.fields["question"], "answer": s.fields["answer"], "answer_number": 0,
              "equation_solution": None} for s in bundled.fewshot]
    repo = fake_hub(tmp_path / "mgsm", {"de": {"train": train, "test": test}})
    hub = load(on_hub(task, repo), "de", "hub")
    assert len(hub.samples) == 5 and len(hub.fewshot) == 8
    for h, b in zip(hub.samples, bundled.samples):
        assert task.prompt(h, hub.fewshot) == task.prompt(b, bundled.fewshot)


def test_include_hub_configs_are_language_names(tmp_path, datasets_offline):
    task = get_task("include")
    assert task.data.hub_configs["de"] == "German" and task.data.hub_configs["zh"] == "Chinese"
    rows = jsonl(FIXTURES / "include" / "de.jsonl")
    repo = fake_hub(tmp_path / "include", {"German": {"test": rows}})
    hub = load(on_hub(task, repo), "de", "hub")
    assert hub.source == f"hub:{repo}/German/test"
    assert [dict(s.fields) for s in hub.samples] == rows


def test_missing_fewshot_pool_is_a_one_line_error(tmp_path):
    from glotbench.harness.core.errors import DataError

    task = get_task("global_mmlu")
    (tmp_path / "global_mmlu" / "en").mkdir(parents=True)
    (tmp_path / "global_mmlu" / "en" / "test.jsonl").write_text(
        (FIXTURES / "global_mmlu" / "en" / "test.jsonl").read_text())
    with pytest.raises(DataError, match="few-shot file .*dev.jsonl does not exist"):
        load(task, "en", "local", tmp_path)


def test_m_arenahard_hub_configs_are_languages(tmp_path, datasets_offline):
    task = get_task("m_arenahard")
    de = jsonl(FIXTURES / "m-ArenaHard" / "de.jsonl")
    en = jsonl(FIXTURES.parent.parent / "tasks" / "data" / "m-ArenaHard" / "en.jsonl")[:3]
    repo = fake_hub(tmp_path / "marena", {"de": {"test": de}, "en": {"test": en}})
    hub = load(on_hub(task, repo), "de", "hub")
    local = load(task, "de", "local", FIXTURES)
    assert hub.source == f"hub:{repo}/de/test"
    assert [dict(s.fields) for s in hub.samples] == [dict(s.fields) for s in local.samples]
    assert hub.sha256 == local.sha256
    # the same question_id names the same prompt in every language
    assert [s.fields["question_id"] for s in hub.samples] == [r["question_id"] for r in en]


def test_dolly_hub_rows_are_selected_by_language_and_script(tmp_path, datasets_offline):
    from glotbench.harness.core.errors import DataError

    task = get_task("dolly")
    root = FIXTURES / "aya_evaluation_suite" / "dolly_machine_translated"
    rows = [r for lang in ("eng", "fra", "zho") for r in jsonl(root / f"{lang}.jsonl")]
    rows += [{**r, "language": "kas", "script": script} for script in ("Arab", "Deva")
             for r in jsonl(root / "eng.jsonl")]
    repo = fake_hub(tmp_path / "aya", {"dolly_machine_translated": {"test": rows}})
    hub = load(on_hub(task, repo), "fra", "hub")
    local = load(task, "fra", "local", FIXTURES)
    assert hub.source == f"hub:{repo}/dolly_machine_translated/test/fra"
    assert [dict(s.fields) for s in hub.samples] == [dict(s.fields) for s in local.samples]
    assert hub.sha256 == local.sha256
    assert [s.fields["script"] for s in load(on_hub(task, repo), "kas_Deva", "hub").samples] == ["Deva"] * 3
    with pytest.raises(DataError, match="several scripts.*kas_Arab, kas_Deva"):
        load(on_hub(task, repo), "kas", "hub")
    with pytest.raises(DataError, match="no rows for language 'swa'.*eng, fra, kas, zho"):
        load(on_hub(task, repo), "swa", "hub")
    assert task.supports("kas_Deva") and task.supports("swa") and not task.supports("xx")
    assert task.language_name("kas_Deva") == "Kashmiri"


def test_dolly_human_edited_reads_its_own_config(tmp_path, datasets_offline):
    task = get_task("dolly_human")
    rows = jsonl(FIXTURES / "aya_evaluation_suite" / "dolly_human_edited" / "ara.jsonl")
    repo = fake_hub(tmp_path / "aya", {"dolly_human_edited": {"test": rows}})
    hub = load(on_hub(task, repo), "ara", "hub")
    assert hub.source == f"hub:{repo}/dolly_human_edited/test/ara" and len(hub.samples) == 3
    prompt = task.prompt(hub.samples[0])
    assert prompt.question == rows[0]["inputs"] and prompt.target == rows[0]["targets"]
