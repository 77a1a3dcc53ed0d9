"""``glotbench judge --judge rm:<dir>``: a tiny random reward model judging real run
directories (built with import-answers). Each distinct completion is scored once, the
verdicts equal the score comparison recomputed with transformers alone, the tie margin
holds, one judgment per prompt feeds the ordinary win-rate statistics, the judge directory
reads back (JudgeRecord, report, gate), a rerun computes nothing, and broken reward models
or options are one line, exit 2."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import torch

from glotbench.harness.cli.main import main
from glotbench.harness.core.hashing import dir_sha256
from glotbench.harness.judge.winrate import Judgment, per_language
from glotbench.harness.models.reward import RM_FILES
from glotbench.harness.store.importers import import_answers
from glotbench.harness.store.schema import JudgeRecord
from glotbench.harness.taskapi.data import load
from glotbench.harness.taskapi.registry import get_task

REPO = Path(__file__).resolve().parent.parent
N = 8  # prompts per run


def make_rm(out: Path, tokenizer_dir: Path, *, labels: int = 1, nan: bool = False) -> Path:
    """A 2-layer random Llama sequence classifier with the embedded tokenizer; the score head
    scaled up so that different answers get clearly different rewards (or NaN: a broken head)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      num_labels=labels, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id)
    torch.manual_seed(3)
    model = LlamaForSequenceClassification(cfg)
    with torch.no_grad():
        model.score.weight.mul_(50)
        if nan:
            model.score.weight.fill_(float("nan"))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def rm(tmp_path_factory, embedded_dir) -> Path:
    return make_rm(tmp_path_factory.mktemp("rm") / "rm", embedded_dir)


def make_run(tmp: Path, name: str, answer) -> Path:
    samples = load(get_task("m_arenahard"), "en", "auto", REPO / "tests" / "fixtures").samples[:N]
    file = tmp / f"{name}.jsonl"
    file.write_text("".join(json.dumps({"prompt_id": s.fields["question_id"], "response": answer(i)}) + "\n"
                            for i, s in enumerate(samples)), encoding="utf-8")
    return import_answers(file, "m_arenahard", "en", tmp / name, limit=N)


@pytest.fixture()
def runs(tmp_path, monkeypatch) -> tuple[Path, Path, Path]:
    monkeypatch.setenv("GLOTBENCH_REQUEST_CACHE", str(tmp_path / "cache.sqlite"))
    a = make_run(tmp_path, "model-a", lambda i: f"Answer number {i} from model A, with some detail.")
    b = make_run(tmp_path, "model-b", lambda i: "Answer number 3 from model A, with some detail." if i == 3
                 else f"Model B says {i * 7}.")
    c = make_run(tmp_path, "model-c", lambda i: f"C: {'very ' * i}short.")
    return a, b, c


@pytest.fixture()
def forward_rows(monkeypatch) -> list[int]:
    """Rows the reward model's forward pass sees (every real score computation)."""
    from transformers import LlamaForSequenceClassification

    rows: list[int] = []
    original = LlamaForSequenceClassification.forward

    def counted(self, input_ids=None, **kwargs):
        rows.append(int(input_ids.shape[0]))
        return original(self, input_ids=input_ids, **kwargs)

    monkeypatch.setattr(LlamaForSequenceClassification, "forward", counted)
    return rows


def direct_scores(rm: Path, run: Path) -> dict[str, float]:
    """prompt_id → score of the run's completion, unbatched, with transformers alone."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(rm)
    model = AutoModelForSequenceClassification.from_pretrained(rm).eval()
    out = {}
    for line in (run / "samples" / "m_arenahard" / "en.jsonl").read_text().splitlines():
        rec = json.loads(line)
        conv = [{"role": "user", "content": rec["instruction"]},
                {"role": "assistant", "content": rec["response"].strip()}]
        ids = tok.apply_chat_template(conv, tokenize=True, return_dict=True)["input_ids"]
        with torch.no_grad():
            out[rec["prompt_id"]] = float(model(input_ids=torch.tensor([ids])).logits[0, 0])
    return out


def judge(a: Path, b: list[Path], rm: Path, out: Path, *extra: str) -> dict:
    argv = ["judge", "--a", str(a), "--b", *map(str, b), "--judge", f"rm:{rm}", "--output", str(out),
            "--no-progress", "--device", "cpu", *extra]
    assert main(argv) == 0
    return json.loads((out / "judge.json").read_text())


def judgments(out: Path, pair: str) -> list[dict]:
    file = out / "judgments" / pair / "m_arenahard" / "en.jsonl"
    return [json.loads(x) for x in file.read_text().splitlines()]


def expected(sa: float, sb: float, margin: float) -> str:
    return "tie" if abs(sa - sb) <= margin else ("a" if sa > sb else "b")


def test_each_completion_is_scored_once_and_verdicts_equal_the_direct_scores(runs, rm, tmp_path, forward_rows,
                                                                            capsys):
    a, b, c = runs
    out = judge(a, [b, c], rm, tmp_path / "j")
    # 8 of A + 7 of B (its answer 3 is A's) + 8 of C distinct completions, each through the model once
    assert sum(forward_rows) == 23
    assert out["usage"]["reward_model"]["computed"] == 23 and out["usage"]["reward_model"]["cached"] == 0
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        assert db.execute("SELECT count(*) FROM responses WHERE model LIKE 'rm|%'").fetchone()[0] == 23
    scores = {p: direct_scores(rm, p) for p in (a, b, c)}
    for other in (b, c):
        recs = judgments(tmp_path / "j", f"model-a__vs__{other.name}")
        assert len(recs) == N and {r["order"] for r in recs} == {"ab"}  # one judgment per prompt
        for r in recs:
            sa, sb = scores[a][r["prompt_id"]], scores[other][r["prompt_id"]]
            if r["verdict"] == "identical":
                assert other == b and r["outcome"] == "tie" and r["scores"] is None
                continue
            assert r["scores"]["a"] == pytest.approx(sa, abs=1e-4)
            assert r["scores"]["b"] == pytest.approx(sb, abs=1e-4)
            assert abs(sa - sb) > 1e-3 and r["outcome"] == expected(sa, sb, 0.0)
    assert sum(r["verdict"] == "identical" for r in judgments(tmp_path / "j", "model-a__vs__model-b")) == 1
    # the ordinary statistics on one verdict per prompt: n counts prompts, no position fields
    summary = out["results"]["model-a vs model-c"]["m_arenahard"]
    recs = judgments(tmp_path / "j", "model-a__vs__model-c")
    again = per_language([Judgment(r["prompt_id"], "en", r["order"], r["outcome"]) for r in recs], 1234)
    en = summary["languages"]["en"]
    assert en == again["languages"]["en"] and en["n"] == en["n_judgments"] == N
    assert en["win_rate_ci95"] is not None and en["order_flip_rate"] is None and en["n_paired_prompts"] == 0
    assert out["counts"] == {"judgments": 2 * N, "identical": 1, "invalid": 0, "api_errors": 0, "reasked": 0}
    judge_prov = out["provenance"]["judge"]
    assert judge_prov["kind"] == "reward_model" and judge_prov["weights_sha256"] == dir_sha256(rm, RM_FILES)
    assert (judge_prov["tie_margin"], judge_prov["max_length"], judge_prov["dtype"], judge_prov["device"]) == \
        (0.0, None, "float32", "cpu")
    assert out["provenance"]["prompt"] is None and "bradley_terry" in out
    printed = capsys.readouterr().out
    assert "reward model: 23 distinct completions, 23 scored now" in printed


def test_a_rerun_computes_nothing_and_the_margin_makes_ties(runs, rm, tmp_path, forward_rows):
    a, _, c = runs
    judge(a, [c], rm, tmp_path / "first")
    assert sum(forward_rows) == 16
    sa, sc = direct_scores(rm, a), direct_scores(rm, c)
    gaps = sorted(abs(sa[p] - sc[p]) for p in sa)
    margin = (gaps[3] + gaps[4]) / 2  # between two gaps: half the prompts tie
    forward_rows.clear()  # the direct scores above ran the model too
    out = judge(a, [c], rm, tmp_path / "second", "--rm-tie-margin", str(margin))
    assert forward_rows == [], "the rerun scored something again"
    assert out["usage"]["reward_model"] == {"completions": 16, "cached": 16, "computed": 0, "unscorable": 0,
                                            "truncated": 0, "non_finite": 0}
    recs = judgments(tmp_path / "second", "model-a__vs__model-c")
    assert [r["outcome"] for r in recs] == [expected(sa[r["prompt_id"]], sc[r["prompt_id"]], margin) for r in recs]
    assert sum(r["outcome"] == "tie" for r in recs) == 4
    assert {r["verdict"] for r in recs if r["outcome"] == "tie"} == {"within_margin"}
    assert out["config"]["rm_tie_margin"] == margin == out["provenance"]["judge"]["tie_margin"]
    en = out["results"]["model-a vs model-c"]["m_arenahard"]["languages"]["en"]
    assert en["ties"] == 4 and en["n"] == N


def test_the_judge_directory_reads_back_for_report_and_gate(runs, rm, tmp_path, capsys):
    a, b, _ = runs
    judge(a, [b], rm, tmp_path / "j")
    record = JudgeRecord.read(tmp_path / "j")
    assert record.judge_spec == f"rm:{rm}" and record.counts["judgments"] == N
    assert [(p, t) for p, t, _ in record.pairs()] == [("model-a vs model-b", "m_arenahard")]
    assert main(["report", str(a), str(b), str(tmp_path / "j"), "-o", str(tmp_path / "r.html")]) == 0
    assert f"rm:{rm}" in (tmp_path / "r.html").read_text()
    capsys.readouterr()
    code = main(["gate", "--baseline", str(a), "--candidate", str(b), "--judgments", str(tmp_path / "j")])
    assert code in (0, 1), capsys.readouterr().err  # a decision (pass or fail), not a refusal
    assert "| en | 8 |" in capsys.readouterr().out  # the gate's n: prompts, one verdict each


def test_non_finite_scores_are_invalid_verdicts_counted(runs, embedded_dir, tmp_path):
    a, b, _ = runs
    broken = make_rm(tmp_path / "nan-rm", embedded_dir, nan=True)
    out = judge(a, [b], broken, tmp_path / "j")
    recs = judgments(tmp_path / "j", "model-a__vs__model-b")
    scored = [r for r in recs if r["verdict"] != "identical"]
    assert len(scored) == N - 1 and all(r["outcome"] == "invalid" and "nan" in r["why"] for r in scored)
    assert out["counts"]["invalid"] == N - 1
    en = out["results"]["model-a vs model-b"]["m_arenahard"]["languages"]["en"]
    assert (en["invalid"], en["n"], en["ties"]) == (N - 1, 1, 1)  # only the identical answers are valid
    assert out["usage"]["reward_model"]["non_finite"] == 2 * (N - 1)


def one_line_error(capsys, argv: list[str]) -> str:
    capsys.readouterr()  # what came before (a checkpoint's save progress bar) is not the error
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("glotbench: error:"), err
    return err


def test_broken_reward_models_and_options_are_one_line(runs, rm, embedded_dir, tmp_path, capsys):
    a, b, _ = runs

    def argv(spec: str, *extra: str) -> list[str]:
        return ["judge", "--a", str(a), "--b", str(b), "--judge", spec, "--output", str(tmp_path / "out"),
                "--no-progress", "--device", "cpu", *extra]

    assert "not a checkpoint directory" in one_line_error(capsys, argv(f"rm:{tmp_path / 'missing'}"))
    assert "names no reward model" in one_line_error(capsys, argv("rm:"))
    two = make_rm(tmp_path / "two-labels", embedded_dir, labels=2)
    assert "has 2 labels, not 1" in one_line_error(capsys, argv(f"rm:{two}"))
    bare = make_rm(tmp_path / "no-template", embedded_dir)
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    conf = json.loads((bare / "tokenizer_config.json").read_text())
    conf.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(conf))
    assert "has no chat template" in one_line_error(capsys, argv(f"rm:{bare}"))
    corrupt = make_rm(tmp_path / "corrupt", embedded_dir)
    (corrupt / "config.json").write_text("{not json")
    assert "cannot read reward model" in one_line_error(capsys, argv(f"rm:{corrupt}"))
    assert "--rm-tie-margin must be" in one_line_error(capsys, argv(f"rm:{rm}", "--rm-tie-margin", "-1"))
    assert "--rm-tie-margin must be" in one_line_error(capsys, argv(f"rm:{rm}", "--rm-tie-margin", "nan"))
    assert "is for rm:<dir> judges" in one_line_error(capsys, argv("embedded", "--rm-tie-margin", "0.5"))
    assert "reads no judge prompt" in one_line_error(capsys, argv(f"rm:{rm}", "--judge-prompt", "arena_hard_v0.1"))
    assert not (tmp_path / "out").exists()


def test_answers_the_length_limit_leaves_no_room_for_are_invalid_also_from_the_cache(runs, rm, tmp_path):
    a, _, c = runs
    for out in (tmp_path / "first", tmp_path / "rerun"):
        result = judge(a, [c], rm, out, "--rm-max-length", "4")  # every prompt is longer than 4 tokens
        recs = judgments(out, "model-a__vs__model-c")
        assert all(r["outcome"] == "invalid" and "fill max_length 4" in r["why"] for r in recs)
        assert result["counts"]["invalid"] == N and result["usage"]["reward_model"]["unscorable"] == 2 * N
        assert result["provenance"]["judge"]["max_length"] == 4
    assert result["usage"]["reward_model"]["computed"] == 0
