"""FLORES-200 translation: bundled data, directions, post-processing, chrF++ against the
sacrebleu CLI on real model outputs, paired significance, hub loader, the runner."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from glotbench.harness.core.errors import DataError, GlotbenchError
from glotbench.harness.core.records import GenerationResult
from glotbench.harness.metrics import chrf as mt_metrics
from glotbench.harness.run.config import RunConfig
from glotbench.harness.run.execute import execute
from glotbench.harness.run.plan import plan
from glotbench.harness.store.rundir import read_run, read_samples
from glotbench.harness.taskapi.data import BUNDLED_DIR, available, load
from glotbench.harness.taskapi.registry import get_task
from glotbench.tasks import flores
from glotbench.tasks.flores_codes import AYA23, FLORES200
from tests.test_data_hub_fewshot import datasets_offline, fake_hub, on_hub  # noqa: F401

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OUTPUTS = FIXTURES / "flores_outputs"


def sacrebleu_cli() -> list[str]:
    """The sacrebleu command of the Python running the tests, never whatever PATH finds: the
    console script next to ``sys.executable`` (a venv's bin/, not resolved through its
    symlink), else in this interpreter's scripts folder, else ``python -m sacrebleu`` (the
    same entry point; sacrebleu is a dependency, so one of them always exists)."""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        for name in ("sacrebleu", "sacrebleu.exe"):
            if (folder / name).is_file():
                return [str(folder / name)]
    return [sys.executable, "-m", "sacrebleu"]


SACREBLEU = sacrebleu_cli()


def test_default_directions_are_the_reports():
    task = get_task("flores")
    assert len(AYA23) == 23 and len(task.languages) == 46
    assert {flores.group(d) for d in task.languages} == {"X→en", "en→X"}
    for code in AYA23:
        assert f"{code}-eng_Latn" in task.languages and f"eng_Latn-{code}" in task.languages
    assert len(FLORES200) == 204 and set(AYA23) < set(FLORES200)


@pytest.mark.parametrize("direction", get_task("flores").languages)
def test_every_default_direction_is_bundled(direction):
    task = get_task("flores")
    loaded = load(task, direction, "bundled")
    src, tgt = flores.sides(direction)
    assert len(loaded.samples) == 1012
    lines = {c: (BUNDLED_DIR / f"flores200/devtest/{c}.devtest").read_text(encoding="utf-8").splitlines()
             for c in (src, tgt)}
    for i in (0, 511, 1011):
        assert loaded.samples[i].fields == {"source": lines[src][i], "target": lines[tgt][i]}
    assert loaded.source == f"bundled:{'+'.join(sorted(f'flores200/devtest/{c}.devtest' for c in (src, tgt)))}"


def test_any_flores_pair_is_selectable():
    task = get_task("flores")
    assert task.supports("deu_Latn-fra_Latn") and task.supports("ace_Latn-eng_Latn")
    assert not task.supports("deu_Latn-deu_Latn") and not task.supports("xx_Latn-eng_Latn")
    assert available(task, "deu_Latn-fra_Latn", None) == "bundled"  # both sides are bundled
    assert available(task, "ace_Latn-eng_Latn", None) is None  # hub or --data-dir
    assert flores.group("deu_Latn-fra_Latn") == "X→Y"
    with pytest.raises(GlotbenchError, match="has no language 'deu_Latn-eng_latn'"):
        task.check_langs(["deu_Latn-eng_latn"])
    with pytest.raises(DataError, match="'xx_Latn' in 'xx_Latn-eng_Latn' is not a FLORES-200 code"):
        flores.sides("xx_Latn-eng_Latn")


def test_fewshot_variant_uses_the_first_dev_pairs():
    task = get_task("flores_5shot")
    loaded = load(task, "deu_Latn-eng_Latn", "bundled")
    assert len(loaded.fewshot) == 997
    prompt = task.prompt(loaded.samples[0], loaded.fewshot)
    assert [s.answer for s in prompt.shots] == [s.fields["target"] for s in loaded.fewshot[:5]]
    assert prompt.shots[0].question.endswith("German: " + loaded.fewshot[0].fields["source"] + "\nEnglish:")


def test_prompt_layouts():
    task = get_task("flores")
    sample = load(task, "eng_Latn-zho_Hans", "bundled").samples[0]
    prompt = task.prompt(sample)
    text = ("Translate the following sentence from English to Chinese (Simplified). Reply with the "
            "translation only.\nEnglish: " + sample.fields["source"] + "\nChinese (Simplified):")
    assert prompt.plain() == text
    assert [(m.role, m.content) for m in prompt.messages("multiturn")] == [("user", text)]
    assert prompt.stop == ("\n",) and prompt.target == sample.fields["target"]


@pytest.mark.parametrize(("response", "hypothesis"), [
    ("Das ist gut.", "Das ist gut."),
    ("  Das ist gut.  ", "Das ist gut."),
    ("\n\nDas ist gut.\nGerman: noch etwas", "Das ist gut."),
    ("Das ist gut.\n", "Das ist gut."),
    ("", ""),
    ("  \n \n", ""),
])
def test_post_processing(response, hypothesis):
    assert flores.hypothesis(response) == hypothesis
    prompt = get_task("flores").prompt(load(get_task("flores"), "deu_Latn-eng_Latn", "bundled").samples[0])
    scored = flores.score(prompt, GenerationResult(response, 3, "stop"), "deu_Latn-eng_Latn")
    assert scored["pred"] == hypothesis and scored["parsed"] is bool(hypothesis)
    if not hypothesis:
        assert scored["chrf++"] == 0.0


def test_translation_contract():
    task = get_task("flores")
    loaded = load(task, "fra_Latn-eng_Latn", "bundled")
    prompt = task.prompt(loaded.samples[0])
    right = task.score(prompt, GenerationResult(task.answer_as_text(prompt.target, ""), 9, "stop"), "")
    assert right["chrf++"] == 100.0 and right["parsed"] is True
    other = loaded.samples[1].fields["target"]
    wrong = task.score(prompt, GenerationResult(other, 9, "stop"), "")
    assert 0 < wrong["chrf++"] < 50 and wrong["parsed"] is True
    assert len(right["chrf_stats"]) == 24 and all(isinstance(x, int) for x in right["chrf_stats"])


def test_parallel_files_must_be_aligned(tmp_path):
    task = get_task("flores")
    root = tmp_path / "flores200" / "devtest"
    root.mkdir(parents=True)
    (root / "deu_Latn.devtest").write_text("a\nb\nc\n", encoding="utf-8")
    (root / "eng_Latn.devtest").write_text("x\ny\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"not aligned \(deu_Latn 3 lines, eng_Latn 2 lines\)"):
        load(task, "deu_Latn-eng_Latn", "local", tmp_path)
    (root / "eng_Latn.devtest").write_text("x\n\nz\n", encoding="utf-8")  # an empty segment is kept
    rows = [dict(s.fields) for s in load(task, "deu_Latn-eng_Latn", "local", tmp_path).samples]
    assert rows[1] == {"source": "b", "target": ""}
    with pytest.raises(DataError, match="fra_Latn.devtest does not exist"):
        load(task, "deu_Latn-fra_Latn", "local", tmp_path)


def test_hub_loader_reads_the_facebook_flores_schema(tmp_path, datasets_offline):  # noqa: F811
    task = get_task("flores_5shot")
    local = load(task, "deu_Latn-eng_Latn", "bundled")

    def rows(samples):
        return [{"id": i + 1, "sentence_deu_Latn": s.fields["source"], "sentence_eng_Latn": s.fields["target"],
                 "URL": "u", "domain": "d"} for i, s in enumerate(samples)]

    repo = fake_hub(tmp_path / "flores", {"deu_Latn-eng_Latn": {
        "devtest": rows(local.samples[:20]), "dev": rows(local.fewshot[:8])}})
    hub = load(on_hub(task, repo), "deu_Latn-eng_Latn", "hub")
    assert hub.source == f"hub:{repo}/deu_Latn-eng_Latn/devtest"
    assert [dict(s.fields) for s in hub.samples] == [dict(s.fields) for s in local.samples[:20]]
    assert [dict(s.fields) for s in hub.fewshot] == [dict(s.fields) for s in local.fewshot[:8]]


# --- chrF++ --------------------------------------------------------------------------------


def output_sets() -> list[tuple[str, list[str], list[str]]]:
    """Real outputs of the embedded model (see fixtures/flores_outputs/README.md)."""
    out = []
    for hyp in sorted(OUTPUTS.glob("*.hyp")):
        refs = (OUTPUTS / (hyp.stem + ".ref")).read_text(encoding="utf-8").splitlines()
        out.append((hyp.stem, hyp.read_text(encoding="utf-8").splitlines(), refs))
    return out


def test_the_sacrebleu_cli_is_found_without_path():
    """The CLI cross-checks below never skip: the command comes from this interpreter."""
    assert SACREBLEU[0] == sys.executable or Path(SACREBLEU[0]).parent in (
        Path(sys.executable).parent, Path(sysconfig.get_path("scripts")))
    import sacrebleu

    out = subprocess.run([*SACREBLEU, "--version"], capture_output=True, text=True, env={"PATH": ""}, check=True)
    assert sacrebleu.__version__ in out.stdout + out.stderr


def test_fixture_outputs_exist():
    sets = output_sets()
    assert len(sets) >= 2 and all(len(h) == len(r) == 50 for _, h, r in sets)


@pytest.mark.parametrize(("name", "hyps", "refs"), output_sets(), ids=[s[0] for s in output_sets()])
def test_chrf_equals_the_sacrebleu_cli(name, hyps, refs):
    cli = subprocess.run([*SACREBLEU, str(OUTPUTS / f"{name}.ref"), "-i", str(OUTPUTS / f"{name}.hyp"),
                          "-m", "chrf", "--chrf-word-order", "2", "-b", "-w", "4"],
                         capture_output=True, text=True, check=True).stdout.strip()
    stats = [mt_metrics.chrf_segment(h, r)[0] for h, r in zip(hyps, refs)]
    assert f"{mt_metrics.chrf_from_stats(stats):.4f}" == cli
    assert f"{mt_metrics.corpus_chrf(hyps, refs):.4f}" == cli
    summary = mt_metrics.chrf_summary(stats, seed=7)
    assert f"{summary['value']:.4f}" == cli and summary["n"] == 50
    assert summary["ci95"][0] < summary["value"] < summary["ci95"][1]
    assert summary == mt_metrics.chrf_summary(stats, seed=7)  # seeded
    # lm-eval's "chrf" is plain chrF (word order 0): a different number
    plain = subprocess.run([*SACREBLEU, str(OUTPUTS / f"{name}.ref"), "-i", str(OUTPUTS / f"{name}.hyp"),
                            "-m", "chrf", "-b", "-w", "4"], capture_output=True, text=True).stdout.strip()
    assert plain != cli


@pytest.mark.parametrize("method", ["bs", "ar"])
def test_paired_test_equals_the_sacrebleu_cli(tmp_path, method):
    name, hyps, refs = output_sets()[0]
    # a "baseline" that differs: every third hypothesis replaced by the first word only
    base = [h.split(" ")[0] if i % 3 == 0 else h for i, h in enumerate(hyps)]
    (tmp_path / "base.txt").write_text("\n".join(base) + "\n", encoding="utf-8")
    ours = mt_metrics.paired_test(base, hyps, refs, method=method, seed=12345)
    fmt = ["-f", "json"] if method == "ar" else ["-f", "text"]
    cli = subprocess.run([*SACREBLEU, str(OUTPUTS / f"{name}.ref"), "-i", str(tmp_path / "base.txt"),
                          str(OUTPUTS / f"{name}.hyp"), "-m", "chrf", "--chrf-word-order", "2",
                          f"--paired-{method}", *fmt], capture_output=True, text=True,
                         env={"SACREBLEU_SEED": "12345", "PATH": "/usr/bin:/bin"}, check=True).stdout
    if method == "ar":
        table = json.loads(cli)
        assert ours["p_value"] == pytest.approx(table[1]["chrF2++"]["p_value"], abs=1e-12)
        assert ours["system"] == pytest.approx(table[1]["chrF2++"]["score"], abs=1e-9)
    else:
        p = float(re.search(r"\(p = ([0-9.]+)\)", cli).group(1))
        assert f"{ours['p_value']:.4f}" == f"{p:.4f}"
    assert ours["delta"] == pytest.approx(ours["system"] - ours["baseline"])
    assert ours["samples"] == (1000 if method == "bs" else 10000)
    json.dumps(ours)  # plain JSON values


# --- the runner ----------------------------------------------------------------------------


def test_run_reports_corpus_chrf_and_direction_groups(tiny_model_dir, tmp_path, isolated_cache):
    langs = ("deu_Latn-eng_Latn", "eng_Latn-deu_Latn", "jpn_Jpan-eng_Latn")
    cfg = RunConfig(tasks=("flores",), langs=langs, limit=3, model=f"hf:{tiny_model_dir}", max_new_tokens=8,
                    data="bundled", output=str(tmp_path / "run"))
    path = execute(cfg, plan(cfg), progress=False)
    run = read_run(path)
    for lang in langs:
        recs = read_samples(path, "flores", lang)
        cell = run["results"]["flores"][lang]
        assert cell["n"] == 3 and cell["unparsed"] == sum(not r["parsed"] for r in recs)
        corpus = mt_metrics.corpus_chrf([r["pred"] for r in recs], [r["target"] for r in recs])
        assert cell["chrf++"] == pytest.approx(corpus, abs=1e-9)
        assert all(len(r["chrf_stats"]) == 24 and "chrf++" in r for r in recs)
    avg = run["averages"]["flores"]
    assert set(avg["groups"]) == {"X→en", "en→X"}
    assert avg["groups"]["X→en"]["languages"] == 2 and avg["groups"]["en→X"]["languages"] == 1
    cells = run["results"]["flores"]
    assert avg["groups"]["en→X"]["macro"] == pytest.approx(cells["eng_Latn-deu_Latn"]["chrf++"])
    assert avg["macro"] == pytest.approx(sum(c["chrf++"] for c in cells.values()) / 3)
    prov = run["provenance"]["tasks"]["flores"]
    assert prov["metrics"] == ["chrf++"] and prov["prompting"]["chat_template"] is True


# --- paired significance between two runs ----------------------------------------------------


@pytest.fixture()
def two_runs(tiny_model_dir, tmp_path, isolated_cache):
    def make(name: str, max_new_tokens: int, limit: int = 6):
        cfg = RunConfig(tasks=("flores",), langs=("deu_Latn-eng_Latn", "eng_Latn-fra_Latn"), limit=limit,
                        model=f"hf:{tiny_model_dir}", max_new_tokens=max_new_tokens, data="bundled",
                        output=str(tmp_path / name))
        return execute(cfg, plan(cfg), progress=False)
    return make


def test_compare_two_runs(two_runs, capsys):
    from glotbench.harness.cli.main import main

    a, b = two_runs("a", 4), two_runs("b", 9)
    assert main(["compare", str(a), str(b), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["results"]["flores"]) == {"deu_Latn-eng_Latn", "eng_Latn-fra_Latn"}
    for lang, r in result["results"]["flores"].items():
        base, sys_ = read_samples(a, "flores", lang), read_samples(b, "flores", lang)
        refs = [x["target"] for x in base]
        assert r["baseline"] == pytest.approx(mt_metrics.corpus_chrf([x["pred"] for x in base], refs))
        assert r["system"] == pytest.approx(mt_metrics.corpus_chrf([x["pred"] for x in sys_], refs))
        assert r["n"] == 6 and r["method"] == "bs" and 0 <= r["p_value"] <= 1
    assert main(["compare", str(a), str(b), "--method", "ar", "--langs", "eng_Latn-fra_Latn"]) == 0
    table = capsys.readouterr().out
    assert "eng_Latn-fra_Latn" in table and "deu_Latn-eng_Latn" not in table
    assert "approximate randomisation, 10000 samples, seed 12345" in table


def test_compare_refuses_different_segments(two_runs, capsys, tmp_path):
    from glotbench.harness.cli.main import main

    a, c = two_runs("a", 4), two_runs("c", 4, limit=5)
    assert main(["compare", str(a), str(c)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "scored different segments" in err[0] and "--limit" in err[0]
    assert main(["compare", str(a), str(tmp_path / "missing")]) == 2
    assert "is not a finished glotbench run" in capsys.readouterr().err
