"""SFT stage on tiny random Llamas (embedded tokenizer): assistant-only masking as trl
prepares it, a few real training steps, LoRA merged into the output, config errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from glotbench.harness.cli.main import main
from glotbench.harness.core.errors import GlotbenchError
from glotbench.training.sft.config import parse_config
from glotbench.training.sft.data import load_rows, to_dataset, write_jsonl
from glotbench.training.sft.train import run_stage
from glotbench.training.sft.trainer import build_trainer, loss_mode

ANNOTATIONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_eval_2" / "annotations"
LANGS = ("en", "es", "fr", "zh", "ja")


def alpaca_rows(n: int, teacher: str = "claude-2", chars: int = 300) -> list[dict]:
    """``n`` sft.jsonl rows from real AlpacaEval outputs (languages assigned round-robin: the
    rows are English, the labels exercise the per-language plumbing)."""
    data = json.loads((ANNOTATIONS / f"{teacher}.json").read_text())
    return [{"prompt_id": f"alpaca-{i}", "language": LANGS[i % len(LANGS)], "teacher": teacher, "score": 1.0,
             "messages": [{"role": "user", "content": r["instruction"]},
                          {"role": "assistant", "content": r["output_2"][:chars]}]} for i, r in enumerate(data[:n])]


def write_sft(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_config(path: Path, **cfg) -> Path:
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def sft_file(tmp_path_factory) -> Path:
    return write_sft(tmp_path_factory.mktemp("sft-data") / "sft.jsonl", alpaca_rows(16))


def tiny_cfg(tiny_model_dir, sft_file, **extra) -> dict:
    return {"model": f"hf:{tiny_model_dir}", "data": {"file": str(sft_file)}, "max_steps": 4, "learning_rate": 3e-3,
            "batch_size": 4, "max_length": 96, "seed": 0, **extra}


def weights(d: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(Path(d).glob("*.safetensors")):
        out.update(load_file(f))
    return out


@pytest.mark.parametrize("template", ["own", "generation markers"])
def test_only_assistant_tokens_carry_loss(tiny_model_dir, sft_file, tmp_path, template):
    """The labels trl builds are -100 everywhere but the last assistant turn (content and its
    end-of-turn), with the model's own template (prompt/completion split) and with a template
    marking generations (trl's assistant_only_loss)."""
    from transformers import AutoTokenizer

    extra = {}
    if template == "generation markers":
        extra["chat_template"] = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' }}{% if m['role'] == "
                                  "'assistant' %}{% generation %}{{ m['content'] + '<|im_end|>' }}{% endgeneration %}"
                                  "{% else %}{{ m['content'] + '<|im_end|>' }}{% endif %}{{ '\n' }}{% endfor %}"
                                  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    cfg = parse_config(tiny_cfg(tiny_model_dir, sft_file, max_length=1024, **extra))
    rows, _ = load_rows(cfg.data)
    trainer, _ = build_trainer(cfg, tiny_model_dir, rows[:3], tmp_path / "work", progress=False)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert trainer.args.assistant_only_loss == (template == "generation markers")
    for row, ex in zip(rows[:3], trainer.train_dataset):
        ids, labels = ex["input_ids"], ex["labels"]
        trained = [i for i, label in enumerate(labels) if label != -100]
        assert trained and all(labels[i] == ids[i] for i in trained)
        assert trained == list(range(trained[0], trained[-1] + 1)), "one contiguous span"
        text = tok.decode([ids[i] for i in trained])
        answer = row["messages"][-1]["content"]
        assert text.startswith(answer) and "<|im_end|>" in text[len(answer):], text[-40:]
        assert row["messages"][0]["content"][:20] not in text  # the user turn is never a target
        assert "<|im_start|>assistant" in tok.decode(ids[:trained[0]])


def test_loss_all_trains_every_token(tiny_model_dir, sft_file, tmp_path):
    cfg = parse_config(tiny_cfg(tiny_model_dir, sft_file, loss="all"))
    rows, _ = load_rows(cfg.data)
    trainer, _ = build_trainer(cfg, tiny_model_dir, rows[:2], tmp_path / "work", progress=False)
    assert all(label != -100 for ex in trainer.train_dataset for label in ex["labels"])
    assert loss_mode(None, "assistant") == "prompt_completion"


def test_a_few_steps_lower_the_loss_change_the_weights_and_load(tiny_model_dir, sft_file, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "ckpt"
    cfg = write_config(tmp_path / "sft.yaml", **tiny_cfg(tiny_model_dir, sft_file, max_steps=6, eval_fraction=0.25))
    summary = run_stage(cfg, out)
    assert "12 rows (4 eval), 6 steps" in summary
    m = json.loads((out / "metrics.json").read_text())
    curve = [p["loss"] for p in m["loss_curve"]]
    assert len(curve) == 6 and curve[-1] < curve[0] - 0.05, curve
    assert m["eval_loss_after"] < m["eval_loss_before"]
    assert m["tokens"] > 0 and m["tokens_per_second"] > 0 and m["bf16"] is False and m["gradient_checkpointing"] is False
    before, after = weights(tiny_model_dir), weights(out)
    assert set(before) <= set(after) | {"lm_head.weight"}
    assert any(not torch.equal(before[k], after[k]) for k in after)
    man = json.loads((out / "training_manifest.json").read_text())
    roles = {i["role"]: i for i in man["inputs"]}
    assert roles["data"]["sha256"] and roles["data"]["rows"] == 16 and len(roles["base"]["sha256"]) == 64
    assert roles["data"]["dropped"] == {"no_language": 0, "other_language": 0, "outside_clusters": 0}
    assert roles["data"]["eval_overlap"]["overlapping"] == 0 and "m_arenahard" in roles["data"]["eval_overlap"][
        "checked_sets"]
    assert "16 rows read; 0 without a language" in summary and "eval overlap: 0 prompts" in summary
    assert man["stage"] == "sft" and man["config"]["max_steps"] == 6 and "trl" in man["versions"]
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template and model(**tok("Hola", return_tensors="pt")).logits.isfinite().all()
    assert not (out / "training_args.bin").exists() and not list(tmp_path.glob(".*"))


def test_lora_merged_into_the_output(tiny_model_dir, sft_file, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "lora"
    cfg = write_config(tmp_path / "sft.yaml", **tiny_cfg(tiny_model_dir, sft_file, lora={"r": 4, "alpha": 8},
                                                          merge_lora=True, learning_rate=1e-2))
    assert "LoRA, merged" in run_stage(cfg, out)
    assert not (out / "adapter_config.json").exists()
    before, after = weights(tiny_model_dir), weights(out)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all(("proj" in k) for k in changed), changed  # only the LoRA targets moved
    m = json.loads((out / "metrics.json").read_text())
    assert m["lora_merged"] and m["trainable_parameters"] < sum(t.numel() for t in before.values()) / 10
    AutoModelForCausalLM.from_pretrained(out)


def test_packing_and_a_local_dataset_directory_as_hub_source(tiny_model_dir, tmp_path):
    """``data: {hub: DIR}`` goes through datasets.load_dataset (a local stand-in for a hub id)."""
    hub = tmp_path / "hubdata"
    hub.mkdir()
    write_jsonl([{"language": r["language"], "messages": r["messages"]} for r in alpaca_rows(8)], hub / "train.jsonl")
    cfg = write_config(tmp_path / "sft.yaml", model=f"hf:{tiny_model_dir}", data={"hub": str(hub)}, max_steps=2,
                       packing=True, max_length=64, batch_size=2)
    run_stage(cfg, tmp_path / "out")
    man = json.loads((tmp_path / "out" / "training_manifest.json").read_text())
    assert [i["rows"] for i in man["inputs"] if i["role"] == "data"] == [8]
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["tokens"] == 2 * 2 * 64


def test_to_dataset_shapes():
    rows = [{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}]
    assert to_dataset(rows, "prompt_completion")[0] == {"prompt": [{"role": "user", "content": "a"}],
                                                       "completion": [{"role": "assistant", "content": "b"}]}


BAD = [
    ({"modle": "embedded"}, "unknown key 'modle' (did you mean 'model'?)"),
    ({"loss": "prompt"}, "loss must be assistant or all"),
    ({"max_steps": 0}, "max_steps must be positive"),
    ({"eval_fraction": 1.5}, "eval_fraction must be in [0, 1)"),
    ({"merge_lora": True}, "merge_lora is true but there is no lora block"),
    ({"lora": {"rank": 4}}, "unknown key 'rank'"),
    ({"clusters": {"cjk": ["zh"]}, "lora": {"r": 2}}, "clusters with lora need merge_lora: true"),
    ({"shared": ["en"]}, "shared/merge need a clusters block"),
    ({"clusters": {"a": ["en"]}, "merge": {"weights": {"b": 1}}}, "weights name 'b', which is not a cluster"),
    ({"data": {"file": "missing.jsonl"}}, "data file missing.jsonl does not exist"),
    ({"chat_template": "nope.jinja"}, "neither a file nor a Jinja template"),
    ({"clusters": {"cjk": ["ko"]}}, "cluster 'cjk' (ko) has no data rows"),
    ({"model": "hf:/no/such/dir"}, "no such directory"),
    ({"lr_scheduler": "cosin"}, "lr_scheduler 'cosin' is not a transformers schedule (did you mean 'cosine'?)"),
    ({"clusters": {"a": ["en"]}, "merge": {"method": "linaer"}},
     "method 'linaer' is not a training.merge method (did you mean 'linear'?)"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_config_is_one_line_exit_2(tiny_model_dir, sft_file, tmp_path, capsys, change, message):
    raw = {**tiny_cfg(tiny_model_dir, sft_file), **change}
    if "modle" in change:
        del raw["model"]
    cfg = write_config(tmp_path / "bad.yaml", **raw)
    code = main(["train", "sft", str(cfg), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("glotbench: error:") and message in err, err
    assert not (tmp_path / "out").exists()


def test_bad_data_rows_name_the_line(tmp_path):
    rows = alpaca_rows(2)
    rows[1]["messages"] = rows[1]["messages"][:1]  # ends with the user's turn
    f = write_sft(tmp_path / "sft.jsonl", rows)
    with pytest.raises(GlotbenchError, match=r"sft.jsonl:2: the conversation must hold a user turn and end"):
        load_rows(parse_config({"model": "embedded", "data": {"file": str(f)}}).data)


def test_existing_output_is_refused_before_training(tiny_model_dir, sft_file, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    cfg = write_config(tmp_path / "sft.yaml", **tiny_cfg(tiny_model_dir, sft_file))
    assert main(["train", "sft", str(cfg), "-o", str(tmp_path / "out")]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("extra, bf16, ckpt", [({}, False, False),
                                               ({"bf16": True, "gradient_checkpointing": True}, True, True)])
def test_on_cpu_bf16_and_checkpointing_are_off_unless_the_config_sets_them(tiny_model_dir, sft_file, tmp_path,
                                                                           extra, bf16, ckpt):
    from glotbench.training.sft.config import load_config
    from glotbench.training.sft.data import load_rows
    from glotbench.training.sft.trainer import build_trainer

    cfg = load_config(write_config(tmp_path / "sft.yaml", **tiny_cfg(tiny_model_dir, sft_file, **extra)))
    rows, _ = load_rows(cfg.data)
    trainer, _ = build_trainer(cfg, tiny_model_dir, rows, tmp_path / "work", progress=False)
    assert trainer.args.bf16 is bf16 and bool(trainer.args.gradient_checkpointing) is ckpt
