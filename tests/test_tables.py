"""Tables 2 and 3 from the synthetic store in tests/fixtures/store: hand-computed values,
golden Markdown / LaTeX / CSV outputs, best markers, missing cells, provenance, errors."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from glotbench.harness.cli.main import main
from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.report.tables import (
    COLUMNS,
    LanguageTable,
    language_frame,
    render,
    summary_frame,
    table_text,
)

STORE = Path(__file__).resolve().parent / "fixtures" / "store"
ALPHA, BETA, GAMMA, IMPORTED = (STORE / n for n in ("alpha", "beta", "gamma", "imported"))
RUNS = [ALPHA, BETA, GAMMA]

# The default summary: beta lacks XStoryCloze, so its Discriminative value is the mean of
# XCOPA and XWinograd, marked, and not compared with alpha's and gamma's three-task means.
SUMMARY_MD = """\
| Model | Discriminative | Global-MMLU | MGSM | Translation chrF++ | Translation xCOMET |
|:---|---:|---:|---:|---:|---:|
| alpha | **68.3** | 53.0 | 30.0 | 52.5 | 75.0 |
| beta | 65.8 (2/3: no XStoryCloze) | 56.0 | **40.0** | **53.0** | – |
| gamma | 66.3 | **58.0** | – | **53.0** | **78.0** |
"""

SUMMARY_LATEX = r"""\begin{tabular}{lrrrrr}
\toprule
Model & Discriminative & Global-MMLU & MGSM & Translation chrF++ & Translation xCOMET \\
\midrule
alpha & \textbf{68.3} & 53.0 & 30.0 & 52.5 & 75.0 \\
beta & 65.8 (2/3: no XStoryCloze) & 56.0 & \textbf{40.0} & \textbf{53.0} & -- \\
gamma & 66.3 & \textbf{58.0} & -- & \textbf{53.0} & \textbf{78.0} \\
\bottomrule
\end{tabular}
"""

SUMMARY_CSV = """\
model,Discriminative,Discriminative tasks,Global-MMLU,MGSM,Translation chrF++,Translation xCOMET
alpha,68.333333,xcopa+xstorycloze+xwinograd,53.0,30.0,52.5,75.0
beta,65.833333,xcopa+xwinograd,56.0,40.0,53.0,
gamma,66.333333,xcopa+xstorycloze+xwinograd,58.0,,53.0,78.0
"""

# --strict: the three-task mean only (the tables before partial means, plus the tasks column).
STRICT_MD = """\
| Model | Discriminative | Global-MMLU | MGSM | Translation chrF++ | Translation xCOMET |
|:---|---:|---:|---:|---:|---:|
| alpha | **68.3** | 53.0 | 30.0 | 52.5 | 75.0 |
| beta | – | 56.0 | **40.0** | **53.0** | – |
| gamma | 66.3 | **58.0** | – | **53.0** | **78.0** |
"""

STRICT_LATEX = r"""\begin{tabular}{lrrrrr}
\toprule
Model & Discriminative & Global-MMLU & MGSM & Translation chrF++ & Translation xCOMET \\
\midrule
alpha & \textbf{68.3} & 53.0 & 30.0 & 52.5 & 75.0 \\
beta & -- & 56.0 & \textbf{40.0} & \textbf{53.0} & -- \\
gamma & 66.3 & \textbf{58.0} & -- & \textbf{53.0} & \textbf{78.0} \\
\bottomrule
\end{tabular}
"""

STRICT_CSV = """\
model,Discriminative,Discriminative tasks,Global-MMLU,MGSM,Translation chrF++,Translation xCOMET
alpha,68.333333,xcopa+xstorycloze+xwinograd,53.0,30.0,52.5,75.0
beta,,,56.0,40.0,53.0,
gamma,66.333333,xcopa+xstorycloze+xwinograd,58.0,,53.0,78.0
"""

XCOPA_MD = """\
| Model | et | sw | qu |
|:---|---:|---:|---:|
| alpha | 62.0 [57.0, 67.0] | 58.0 [53.0, 63.0] | – |
| beta | **66.0** [61.0, 71.0] | **60.0** [55.0, 65.0] | 50.0 [45.0, 55.0] |
| gamma | 55.0 [50.0, 60.0] | 57.0 [52.0, 62.0] | – |
"""

XCOPA_CSV = """\
model,task,metric,language,value,ci_lo,ci_hi,n
alpha,xcopa,acc,et,62.0,57.0,67.0,100
alpha,xcopa,acc,sw,58.0,53.0,63.0,100
alpha,xcopa,acc,qu,,,,
beta,xcopa,acc,et,66.0,61.0,71.0,100
beta,xcopa,acc,sw,60.0,55.0,65.0,100
beta,xcopa,acc,qu,50.0,45.0,55.0,100
gamma,xcopa,acc,et,55.0,50.0,60.0,50
gamma,xcopa,acc,sw,57.0,52.0,62.0,50
gamma,xcopa,acc,qu,,,,
"""

FLORES_LATEX = r"""\begin{tabular}{lrr}
\toprule
Model & deu\_Latn-eng\_Latn & eng\_Latn-deu\_Latn \\
\midrule
alpha & 55.0 [53.5, 56.5] & 50.0 [48.5, 51.5] \\
beta & \textbf{57.0} [55.5, 58.5] & 49.0 [47.5, 50.5] \\
gamma & 54.0 [52.5, 55.5] & \textbf{52.0} [50.5, 53.5] \\
\bottomrule
\end{tabular}
"""

TEXT_MD = """\
### Summary

| Model | Discriminative | Global-MMLU | MGSM | Translation chrF++ | Translation xCOMET |
|:---|---:|---:|---:|---:|---:|
| alpha | **68.3** | 53.0 | 30.0 | 52.5 | 75.0 |
| gamma | 66.3 | **58.0** | – | **53.0** | **78.0** |

Discriminative = mean of the XCOPA, XStoryCloze and XWinograd macro accuracies; a mean over fewer \
is marked with what it lacks and never marked best against a full one (--strict leaves it out); Global-MMLU = CS/CA-balanced accuracy where available; accuracy and xCOMET ×100, \
chrF++ 0–100; – = missing; best per column in bold.

Note: Global-MMLU mixes global_mmlu (CS/CA balanced); global_mmlu_lite (CS/CA balanced): its rows \
are not directly comparable.
Note: xcopa et, sw: the runs scored different numbers of examples (n differs).
"""


# ---- golden outputs ---------------------------------------------------------------------

@pytest.mark.parametrize("fmt, expected", [("md", SUMMARY_MD), ("latex", SUMMARY_LATEX), ("csv", SUMMARY_CSV)])
def test_summary_golden(fmt, expected):
    assert render(summary_frame(RUNS), fmt) == expected


@pytest.mark.parametrize("fmt, expected", [("md", STRICT_MD), ("latex", STRICT_LATEX), ("csv", STRICT_CSV)])
def test_strict_summary_golden(fmt, expected):
    assert render(summary_frame(RUNS, strict=True), fmt) == expected


def test_language_table_golden_md_and_csv():
    table = language_frame(RUNS, "xcopa")
    assert render(table, "md") == XCOPA_MD
    assert render(table, "csv") == XCOPA_CSV


def test_language_table_golden_latex_escapes_underscores():
    assert render(language_frame(RUNS, "flores"), "latex") == FLORES_LATEX


def test_table_text_golden_md():
    assert table_text([ALPHA, GAMMA], "md") == TEXT_MD


# ---- values -----------------------------------------------------------------------------

def test_summary_values_are_the_hand_computed_ones():
    df = summary_frame(RUNS)
    assert list(df.columns) == list(COLUMNS)
    assert list(df.index) == ["alpha", "beta", "gamma"] and df.index.name == "model"
    assert all(pd.api.types.is_float_dtype(d) for d in df.dtypes)
    # mean of the three macro accuracies: XCOPA (62+58)/2, XStoryCloze (80+70)/2, XWinograd (72+68)/2
    assert df.at["alpha", "Discriminative"] == pytest.approx((60 + 75 + 70) / 3)
    assert df.at["gamma", "Discriminative"] == pytest.approx((56 + 75 + 68) / 3)
    # no XStoryCloze: the mean of XCOPA (66+60+50)/3 and XWinograd (75+71)/2, marked; strict: none
    assert df.at["beta", "Discriminative"] == pytest.approx(((66 + 60 + 50) / 3 + 73) / 2)
    assert df.attrs["marks"] == {"Discriminative": {"beta": "2/3: no XStoryCloze"}}
    assert df.attrs["tasks"]["Discriminative"]["beta"] == ["xcopa", "xwinograd"]
    assert math.isnan(summary_frame(RUNS, strict=True).at["beta", "Discriminative"])
    assert df.at["alpha", "Global-MMLU"] == pytest.approx((57 + 49) / 2)  # CS/CA-balanced values
    assert df.at["beta", "Global-MMLU"] == pytest.approx((60 + 52) / 2)  # en has none: plain acc
    assert df.at["gamma", "Global-MMLU"] == pytest.approx(58.0)  # Global-MMLU-Lite, balanced
    assert df["MGSM"].tolist()[:2] == pytest.approx([30.0, 40.0]) and math.isnan(df.at["gamma", "MGSM"])
    assert df["Translation chrF++"].tolist() == pytest.approx([52.5, 53.0, 53.0])  # already 0–100
    assert df.at["alpha", "Translation xCOMET"] == pytest.approx(75.0)  # 0–1 → ×100
    assert math.isnan(df.at["beta", "Translation xCOMET"])


def test_translation_groups_on_request():
    df = summary_frame(RUNS, groups=True)
    assert list(df.columns[:5]) == list(COLUMNS)
    assert df.loc["alpha", ["Translation chrF++ X→en", "Translation chrF++ en→X"]].tolist() == [55.0, 50.0]
    assert df.loc["gamma", ["Translation xCOMET X→en", "Translation xCOMET en→X"]].tolist() == pytest.approx([82, 74])
    assert math.isnan(df.at["beta", "Translation xCOMET X→en"])
    assert "Translation chrF++ X→en" not in summary_frame(RUNS).columns


def test_provenance_attrs():
    attrs = summary_frame(RUNS).attrs
    assert attrs["runs"] == {"alpha": str(ALPHA), "beta": str(BETA), "gamma": str(GAMMA)}
    assert attrs["models"]["gamma"] == "synthetic/gamma-32b"
    sha = json.loads((ALPHA / "run.json").read_text())["provenance"]["model"]["weights_sha256"]
    assert attrs["weights_sha256"]["alpha"] == sha
    assert attrs["n"]["Discriminative"] == {"alpha": 600, "beta": 500, "gamma": 500}  # beta: XCOPA + XWinograd
    assert attrs["n"]["Global-MMLU"] == {"alpha": 800, "beta": 800, "gamma": 400}
    assert attrs["languages"]["Discriminative"]["gamma"][:2] == ["xcopa/et", "xcopa/sw"]
    assert attrs["languages"]["Translation xCOMET"] == {"alpha": ["deu_Latn-eng_Latn", "eng_Latn-deu_Latn"],
                                                        "gamma": ["deu_Latn-eng_Latn", "eng_Latn-deu_Latn"]}
    assert attrs["sources"]["Global-MMLU"] == {"alpha": "global_mmlu (CS/CA balanced)",
                                               "beta": "global_mmlu (acc)",
                                               "gamma": "global_mmlu_lite (CS/CA balanced)"}
    assert "beta" not in summary_frame(RUNS, strict=True).attrs["n"]["Discriminative"]


def test_comparability_warnings():
    warnings = summary_frame(RUNS).attrs["warnings"]
    assert "xcopa et: the runs scored different data (data_sha256 differs)" in warnings
    assert "xcopa et, sw: the runs scored different numbers of examples (n differs)" in warnings
    assert ("Discriminative of beta: the mean over 2 of the 3 tasks (no xstorycloze), not comparable "
            "with a three-task mean (--strict leaves it out)") in warnings
    assert "Discriminative is missing for beta: no xstorycloze" in summary_frame(RUNS, strict=True).attrs["warnings"]
    assert any(w.startswith("Global-MMLU mixes") for w in warnings)
    text = table_text(RUNS, "md")
    assert "Note: xcopa et: the runs scored different data (data_sha256 differs)." in text
    assert summary_frame([ALPHA]).attrs["warnings"] == []
    assert language_frame([ALPHA, BETA], "xcopa").warnings == (
        "xcopa et: the runs scored different data (data_sha256 differs)",)


def test_language_frame_stats_and_missing():
    table = language_frame(RUNS, "xcopa")
    assert isinstance(table, LanguageTable) and (table.task, table.metric) == ("xcopa", "acc")
    assert list(table.value.columns) == ["et", "sw", "qu"]  # the runs' order, union
    for frame in (table.value, table.ci_lo, table.ci_hi, table.n):
        assert list(frame.index) == ["alpha", "beta", "gamma"] and all(pd.api.types.is_float_dtype(d) for d in frame.dtypes)
    assert table.value.at["alpha", "et"] == pytest.approx(62.0)
    assert (table.ci_lo.at["alpha", "et"], table.ci_hi.at["alpha", "et"]) == pytest.approx((57.0, 67.0))
    assert table.n.at["gamma", "sw"] == 50
    assert math.isnan(table.value.at["alpha", "qu"]) and math.isnan(table.n.at["gamma", "qu"])


def test_language_frame_metric_choice_and_rows():
    assert language_frame(RUNS, "mgsm").metric == "strict_match"  # the headline metric
    flex = language_frame(RUNS, "mgsm", "flexible_extract")
    assert flex.value.loc["beta"].tolist() == pytest.approx([55.0, 35.0])
    assert list(flex.value.index) == ["alpha", "beta"]  # gamma has no MGSM: no row
    xcomet = language_frame(RUNS, "flores", "xcomet")
    assert list(xcomet.value.index) == ["alpha", "gamma"]  # beta was not scored with xCOMET
    assert language_frame(RUNS, "flores").value.at["beta", "deu_Latn-eng_Latn"] == 57.0  # chrF++ not rescaled


# ---- rendering rules --------------------------------------------------------------------

def test_ties_all_marked_and_single_values_not_marked():
    md = render(summary_frame([ALPHA, BETA]), "md")
    alpha, beta = ([c.strip() for c in line.split("|")[1:-1]] for line in md.splitlines()[2:4])
    # Discriminative and xCOMET: one value in the column, nothing to compare with
    # (beta's Discriminative is a two-task mean: not compared with alpha's three-task one)
    assert (alpha[1], alpha[5], beta[1], beta[5]) == ("68.3", "75.0", "65.8 (2/3: no XStoryCloze)", "–")
    assert (alpha[2:5], beta[2:5]) == (["53.0", "30.0", "52.5"], ["**56.0**", "**40.0**", "**53.0**"])
    both = render(summary_frame(RUNS), "md")
    assert both.count("**53.0**") == 2  # beta and gamma tie on chrF++


def test_best_min_and_none():
    df = summary_frame(RUNS)
    low = render(df, "md", best="min")
    assert "**66.3**" in low and "**30.0**" in low and "**52.5**" in low
    assert "**" not in render(df, "md", best=None)
    assert "\\textbf" not in render(df, "latex", best=None)


def test_ties_are_judged_at_the_printed_precision():
    df = pd.DataFrame({"x": [61.23, 61.18, 50.0]}, index=pd.Index(["a", "b", "c"], name="model"))
    md = render(df, "md")
    assert md.count("**61.2**") == 2


def test_missing_is_never_zero():
    df = summary_frame(RUNS)
    md, latex, text = render(df, "md"), render(df, "latex"), render(df, "csv")
    beta = [c.strip() for c in md.splitlines()[3].split("|")[1:-1]]
    assert beta[5] == "–"
    assert latex.splitlines()[5].split(" & ")[5] == "-- \\\\"
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[1]["Translation xCOMET"] == "" and rows[2]["MGSM"] == ""
    strict = list(csv.DictReader(io.StringIO(render(summary_frame(RUNS, strict=True), "csv"))))
    assert strict[1]["Discriminative"] == strict[1]["Discriminative tasks"] == ""
    assert "**" not in text and "[" not in text


def test_ci_can_be_left_out():
    md = render(language_frame(RUNS, "xcopa"), "md", ci=False)
    assert "[" not in md and "| **66.0** | **60.0** | 50.0 |" in md


def test_latex_escapes_labels_and_arrows(tmp_path):
    run = tmp_path / "my_run%1"
    shutil.copytree(ALPHA, run)
    latex = render(summary_frame([run, BETA], groups=True), "latex")
    assert "my\\_run\\%1 &" in latex
    assert "Translation chrF++ X$\\rightarrow$en" in latex


def test_table_text_by_language():
    text = table_text(RUNS, "md", by_language=True)
    headings = [line for line in text.splitlines() if line.startswith("### ")]
    assert headings == ["### Summary", "### xcopa · acc (value [95% CI])", "### xstorycloze · acc (value [95% CI])",
                        "### xwinograd · acc (value [95% CI])", "### global_mmlu · acc (value [95% CI])",
                        "### mgsm · strict_match (value [95% CI])", "### mgsm · flexible_extract (value [95% CI])",
                        "### flores · chrf++ (value [95% CI])", "### flores · xcomet (value [95% CI])",
                        "### global_mmlu_lite · acc (value [95% CI])"]
    assert "m_arenahard" not in text and "new_tokens" not in text
    assert XCOPA_MD in text
    latex = table_text(RUNS, "latex", by_language=True)
    assert latex.count("\\begin{tabular}") == 10 and "% Note: xcopa et" in latex


def test_table_text_csv_is_two_plain_tables():
    text = table_text(RUNS, "csv", by_language=True)
    summary, long = text.split("\n\n")
    assert summary + "\n" == SUMMARY_CSV
    assert table_text(RUNS, "csv", strict=True) == STRICT_CSV
    rows = list(csv.DictReader(io.StringIO(long)))
    assert long.count("model,task,metric") == 1
    assert {(r["task"], r["metric"]) for r in rows} >= {("xcopa", "acc"), ("flores", "xcomet"), ("mgsm", "flexible_extract")}
    assert {"model": "gamma", "task": "xcopa", "metric": "acc", "language": "sw", "value": "57.0",
            "ci_lo": "52.0", "ci_hi": "62.0", "n": "50"} in rows
    assert "Note" not in text


def test_duplicate_directory_names_are_disambiguated(tmp_path):
    for parent in ("base", "merged"):
        shutil.copytree(ALPHA, tmp_path / parent / "model")
    df = summary_frame([tmp_path / "base" / "model", tmp_path / "merged" / "model"])
    assert list(df.index) == ["base/model", "merged/model"]


def test_an_open_ended_only_run_is_refused_by_name_not_dropped():
    with pytest.raises(GlotbenchError) as err:
        summary_frame([ALPHA, IMPORTED])
    assert "imported has no task a table can show" in str(err.value) and "glotbench judge" in str(err.value)


def test_fixture_store_is_what_build_py_writes(tmp_path):
    spec = importlib.util.spec_from_file_location("build_store", STORE / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    for run in ("alpha", "beta", "gamma", "imported"):
        assert (tmp_path / run / "run.json").read_text() == (STORE / run / "run.json").read_text(), run


# ---- errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda tmp: summary_frame([ALPHA, tmp]), "is not a finished glotbench run (no run.json)"),
    (lambda tmp: summary_frame([IMPORTED]), "has no task a table can show"),
    (lambda tmp: summary_frame([]), "no run given"),
    (lambda tmp: summary_frame([ALPHA, STORE / "alpha" / ".." / "alpha"]), "is given twice"),
    (lambda tmp: render(summary_frame([ALPHA]), "html"), "unknown table format 'html'"),
    (lambda tmp: render(summary_frame([ALPHA]), "md", best="top"), "unknown best='top'"),
    (lambda tmp: table_text([ALPHA], "rst"), "unknown table format 'rst'"),
    (lambda tmp: language_frame(RUNS, "include"), "no run has task 'include'"),
    (lambda tmp: language_frame(RUNS, "mgsm", "acc"), "task 'mgsm' has no metric 'acc'"),
])
def test_errors_are_one_line(tmp_path, call, message):
    with pytest.raises(GlotbenchError) as err:
        call(tmp_path)
    assert message in str(err.value)
    assert "\n" not in str(err.value) and err.value.fix


def test_not_a_glotbench_run(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"format": "other/1"}))
    with pytest.raises(GlotbenchError, match="is not a glotbench run"):
        summary_frame([tmp_path])


# ---- partial means, missing languages, differences ----------------------------------------

def edited(tmp_path: Path, run: Path, name: str, change) -> Path:
    """A copy of a fixture run under ``name`` with ``change(run.json data)`` applied."""
    out = tmp_path / name
    shutil.copytree(run, out)
    data = json.loads((out / "run.json").read_text())
    change(data)
    (out / "run.json").write_text(json.dumps(data))
    return out


def drop(task: str, lang: str | None = None):
    """A change that removes a task, or one of its languages, from results and provenance."""
    def change(data: dict) -> None:
        if lang is None:
            del data["results"][task], data["provenance"]["tasks"][task]
        else:
            del data["results"][task][lang], data["provenance"]["tasks"][task]["languages"][lang]
    return change


def test_partial_means_compete_only_with_means_over_the_same_tasks(tmp_path):
    def better(data):
        data["results"]["xcopa"]["et"]["acc"] = 0.9
    # offline, every run lacks XStoryCloze: the partial means are comparable, best is marked
    offline = render(summary_frame([BETA, edited(tmp_path, BETA, "beta2", better)]), "md")
    assert "| beta2 | **69.8** (2/3: no XStoryCloze) |" in offline and "| beta | 65.8 (2/3: no XStoryCloze) |" in offline
    # two runs over two tasks each, but not the same two: nothing to compare
    mixed = summary_frame([BETA, edited(tmp_path, ALPHA, "no-xwinograd", drop("xwinograd"))])
    assert mixed.attrs["marks"]["Discriminative"] == {"beta": "2/3: no XStoryCloze", "no-xwinograd": "2/3: no XWinograd"}
    assert "**" not in render(mixed[["Discriminative"]], "md")
    # one task of three
    one = summary_frame([edited(tmp_path, BETA, "xcopa-only", drop("xwinograd"))])
    assert one.attrs["marks"]["Discriminative"] == {"xcopa-only": "1/3: no XStoryCloze, XWinograd"}
    assert one.at["xcopa-only", "Discriminative"] == pytest.approx((66 + 60 + 50) / 3)
    assert render(one, "csv").splitlines()[1].startswith("xcopa-only,58.666667,xcopa,")
    # none of the three: missing, and no note about a partial mean
    none = summary_frame([edited(tmp_path, edited(tmp_path, BETA, "x", drop("xwinograd")), "none", drop("xcopa"))])
    assert math.isnan(none.at["none", "Discriminative"]) and not none.attrs["marks"]["Discriminative"]
    assert not any("Discriminative" in w for w in none.attrs["warnings"])


def test_languages_left_out_of_an_average_are_named(tmp_path):
    def no_value(data):
        data["results"]["xcopa"]["sw"]["acc"] = None

    fewer = edited(tmp_path, GAMMA, "fewer", drop("flores", "eng_Latn-deu_Latn"))
    valueless = edited(tmp_path, ALPHA, "valueless", no_value)
    warnings = summary_frame([ALPHA, fewer, valueless]).attrs["warnings"]
    # one note for both translation columns, which average the same directions
    assert ("flores eng_Latn-deu_Latn: missing from the Translation chrF++, Translation xCOMET average of fewer "
            "(scored by alpha, valueless)") in warnings
    assert "xcopa sw: valueless has no acc value, left out of its Discriminative average" in warnings
    assert not any(w.startswith("xcopa sw: missing") for w in warnings)  # the precise note only
    assert summary_frame([valueless]).at["valueless", "Discriminative"] == pytest.approx((62 + 75 + 70) / 3)
    text = table_text([ALPHA, fewer], "md")
    assert "Note: flores eng_Latn-deu_Latn: missing from the Translation chrF++, Translation xCOMET average" in text
    assert "Note" not in table_text([ALPHA, fewer], "csv")


def test_prompt_and_version_differences_are_noted(tmp_path):
    def changed(data):
        data["provenance"]["tasks"]["mgsm"]["version"] = "2.0"
        data["provenance"]["tasks"]["mgsm"]["languages"]["sw"]["prompt_sha256"] = "d" * 64
    warnings = summary_frame([ALPHA, edited(tmp_path, ALPHA, "other", changed)]).attrs["warnings"]
    assert warnings == ["mgsm: the runs used different task versions (1.0, 2.0)",
                        "mgsm sw: the runs used different prompts (prompt_sha256 differs)"]


def test_a_language_table_that_cannot_be_built_is_a_note(tmp_path):
    def no_metrics(data):
        data["provenance"]["tasks"]["mgsm"]["metrics"] = []
    text = table_text([edited(tmp_path, ALPHA, "damaged", no_metrics)], "md", by_language=True)
    assert "### mgsm" not in text and "### xcopa · acc" in text
    assert "Note: no per-language table for mgsm: the runs list no metric for task 'mgsm' in their provenance." in text


def test_cli_table_strict(capsys):
    assert main(["table", str(ALPHA), str(BETA), str(GAMMA)]) == 0
    default = capsys.readouterr().out
    assert "| beta | 65.8 (2/3: no XStoryCloze) |" in default and "--strict leaves it out" in default
    assert main(["table", str(ALPHA), str(BETA), str(GAMMA), "--strict"]) == 0
    strict = capsys.readouterr().out
    assert STRICT_MD in strict and "Note: Discriminative is missing for beta: no xstorycloze." in strict
    assert main(["table", str(ALPHA), str(BETA), "--strict", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[2] == "beta,,,56.0,40.0,53.0,"
