"""The HTML report: self-contained, escaped, and, opened in headless Chromium, rendered with no
console errors, its tables matching the frames it was built from and sortable by click.

Chromium comes from Debian (chromium, chromium-driver); the session fixture installs them when
missing and fails, naming why, when it cannot. Set GLOTBENCH_SCREENSHOTS to a folder to keep
screenshots of the rendered page.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_figures import A_0613, A_35, example_judge, multilingual_judge
from test_tables import ALPHA, BETA, GAMMA

from glotbench.harness.cli.main import main
from glotbench.harness.report.figures import MISSING
from glotbench.harness.report.html import build_report, format_value, write_report
from glotbench.harness.report.tables import summary_frame
from glotbench.harness.store.schema import JudgeRecord, RunRecord

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROME_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run", "--window-size=1280,1600"]
EVIL = 'zeta <script>alert("x")</script> & co'
"""A model name that must reach the page as text, never as markup."""
MODELS = ["aya-expanse-8b", "gemma-2-9b", EVIL]
SHA = "39b106ad810fa7edd91a1b0c4645bc2f2bb4e20a509dcad76fcb835a3da5b22a"


def leaderboard() -> pd.DataFrame:
    frame = pd.DataFrame({
        "average": [61.25, 58.5, np.nan],
        "xcopa": [71.4, np.nan, 64.0],
        "mgsm": [12.5, 40.0, 0.0],  # a real 0 must stay "0.0", sorting above a missing value
        "languages": [3, 2, 3],
    }, index=pd.Index(MODELS, name="model"))
    return frame


def per_language() -> dict[str, pd.DataFrame]:
    return {
        "xcopa": pd.DataFrame({"et": [70.2, np.nan, 61.0], "ht": [72.6, np.nan, 67.0]}, index=MODELS),
        "flores": pd.DataFrame({"deu_Latn-eng_Latn": [38.1, 40.2, np.nan]}, index=MODELS),
    }


def run(name: str, sha: str | None, directory: str | None = None) -> RunRecord:
    """A run as the report reads it: run.json (trimmed) behind :class:`RunRecord`."""
    cell = {"acc": 0.7, "n": 500, "stderr": 0.02, "ci95": [0.66, 0.74]}
    return RunRecord(Path("results") / (directory or name), {
        "format": "glotbench-run/1", "created": "2026-11-23T15:20:00+00:00",
        "config": {"tasks": ["xcopa", "flores"], "model": name, "seed": 1234,
                   "base_url": "https://api.example.com/v1"},
        "results": {"xcopa": {"et": cell, "ht": cell}}, "averages": {},
        "provenance": {
            "glotbench_version": "0.1.0", "seed": 1234, "device": "cpu",
            "model": {"backend": "hf", "name": name, "dtype": "float32", "weights_sha256": sha},
            "tasks": {"xcopa": {"version": "1.0", "metrics": ["acc"], "languages": {
                "et": {"data_source": "bundled:xcopa/et/test.et.jsonl", "data_sha256": "0397204d",
                       "prompt_sha256": "57e0a4f7", "n_available": 500},
                "ht": {"data_source": "hub:cambridgeltl/xcopa@ht", "data_sha256": "9f1c2e77",
                       "prompt_sha256": "11aa22bb", "n_available": 500}}}},
        },
    })


def runs() -> list[RunRecord]:
    # the third model's name is markup; its directory name is plain (a "/" cannot be in one)
    return [run(MODELS[0], SHA), run(MODELS[1], None), run(MODELS[2], "ab" * 32, directory="zeta")]


def judges() -> list[JudgeRecord]:
    return [JudgeRecord(Path("results/judge-3"), multilingual_judge())]


def report() -> str:
    return build_report(leaderboard(), per_language(), runs(), judges(), title="glotbench <test> report")


def test_report_is_self_contained_and_escaped():
    page = report()
    assert page == report()  # deterministic: same store, same bytes
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert "<link" not in page.lower() and not re.search(r"<script[^>]*\bsrc", page, re.I)
    assert "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page  # the CSP that turns any fetch into a console error
    assert "<script>alert" not in page and "zeta &lt;script&gt;alert(&quot;x&quot;)" in page
    assert "glotbench &lt;test&gt; report" in page
    # Only http(s) text is escaped provenance, such as a judge's base URL.
    assert "https://api.example.com/v1" in page and "http://127.0.0.1:8124/v1" in page
    assert page.count("<img ") == 5  # 2 heatmaps, 1 win/tie/loss, 2 per-language win-rates


def test_report_without_judges_or_scores():
    page = build_report(pd.DataFrame(), {}, [], [])
    assert "No runs." in page and "No judge files." in page and "<img" not in page


def test_write_report_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "out" / "report.html"
    write_report("<p>one</p>", path)
    write_report("<p>two</p>", path)
    assert path.read_text() == "<p>two</p>"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_report("<p>three</p>", path)
    assert path.read_text() == "<p>two</p>"
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # no temporary left


def store_report(tmp_path: Path, paths: list[Path]) -> str:
    out = tmp_path / "report.html"
    assert main(["report", *map(str, paths), "-o", str(out)]) == 0
    return out.read_text(encoding="utf-8")


def test_partial_means_and_table_notes_are_on_the_page(tmp_path):
    """Beta's Discriminative is a two-task mean: shown with its mark, sorted by its value;
    the languages an average leaves out and the runs' differences are listed as notes."""
    page = store_report(tmp_path, [ALPHA, BETA, GAMMA])
    assert ('<td class="num" data-value="65.83333333333333">65.8 <span class="mark">(2/3: no XStoryCloze)'
            "</span></td>") in page
    notes = page.split('<ul class="notes" id="leaderboard-notes">', 1)[1].split("</ul>", 1)[0]
    assert "<li>Note: xcopa qu: missing from the Discriminative average of alpha, gamma (scored by beta).</li>" in notes
    assert "<li>Note: xcopa et: the runs scored different data (data_sha256 differs).</li>" in notes
    assert "Discriminative of beta: the mean over 2 of the 3 tasks (no xstorycloze)" in notes
    # the drill-down carries its own table's differences
    assert '<ul class="notes" id="lang-0-notes"><li>Note: xcopa et: the runs scored different data' in page


def test_a_drill_down_that_cannot_be_built_is_a_note(tmp_path):
    broken = tmp_path / "alpha"
    shutil.copytree(ALPHA, broken)
    data = json.loads((broken / "run.json").read_text())
    data["provenance"]["tasks"]["mgsm"]["metrics"] = []  # an edited or damaged provenance
    (broken / "run.json").write_text(json.dumps(data))
    page = store_report(tmp_path, [broken])
    notes = page.split('<ul class="notes" id="language-notes">', 1)[1].split("</ul>", 1)[0]
    assert notes == ("<li>Note: no per-language table for mgsm: the runs list no metric for task &#x27;mgsm&#x27; "
                     "in their provenance.</li>")
    assert 'id="task-0-xcopa-acc"' in page and "mgsm ·" not in page


def test_a_failed_bradley_terry_fit_is_shown(tmp_path):
    judge = multilingual_judge()
    judge["bradley_terry"]["m_arenahard"] = {"error": "no valid judgment of gpt-4-0314 (model A, the anchor)"}
    page = build_report(pd.DataFrame(), {}, [], [JudgeRecord(tmp_path, judge)])
    assert ('<p class="warning" id="bt-0-m_arenahard">Bradley–Terry (m_arenahard): no strengths — no valid '
            "judgment of gpt-4-0314 (model A, the anchor)</p>") in page
    judge["bradley_terry"]["m_arenahard"] = {}
    assert "no strengths — the judge file records no fit and no reason" in build_report(
        pd.DataFrame(), {}, [], [JudgeRecord(tmp_path, judge)])
    ranked = example_judge()
    ranked["bradley_terry"]["m_arenahard"]["not_ranked"] = {"gpt-5": "no valid judgment"}
    assert "<li>gpt-5: not ranked — no valid judgment</li>" in build_report(
        pd.DataFrame(), {}, [], [JudgeRecord(tmp_path, ranked)])


def install_chromium() -> float | None:
    """Install Debian's chromium and chromium-driver when missing; the seconds it took."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return None
    if shutil.which("apt-get") is None:
        pytest.fail(f"{CHROMIUM} is missing and there is no apt-get to install chromium", pytrace=False)
    if os.geteuid() != 0:
        pytest.fail(f"{CHROMIUM} is missing; install chromium chromium-driver as root", pytrace=False)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    start = time.monotonic()
    for cmd in (["apt-get", "update"],
                ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
        if done.returncode:
            last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            pytest.fail(f"{' '.join(cmd)} failed ({done.returncode}): {last}", pytrace=False)
    return time.monotonic() - start


@pytest.fixture(scope="session")
def chromium(request) -> Path:
    took = install_chromium()
    if took is not None:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"installed chromium + chromium-driver with apt-get in {took:.0f} s")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    """One headless Chromium session on the written report, shared by the browser tests."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    folder = tmp_path_factory.mktemp("report")
    path = folder / "report.html"
    write_report(report(), path)
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for arg in CHROME_ARGS + [f"--user-data-dir={folder / 'profile'}"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        driver.get(path.as_uri())
        yield driver
    finally:
        driver.quit()


def severe(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def cells(driver, table: str) -> list[list[str]]:
    from selenium.webdriver.common.by import By

    return [[c.get_attribute("textContent") for c in row.find_elements(By.CSS_SELECTOR, "th, td")]
            for row in driver.find_elements(By.CSS_SELECTOR, f"{table} tbody tr")]


def header(driver, table: str, name: str):
    from selenium.webdriver.common.by import By

    heads = driver.find_elements(By.CSS_SELECTOR, f"{table} thead th")
    return next(h for h in heads if h.text.strip(" ▲▼") == name)


def test_page_renders_with_no_console_errors(browser):
    assert browser.title == "glotbench <test> report"
    assert severe(browser) == []
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]);")
    assert len(images) == 5
    assert all(complete and w > 0 and h > 0 for complete, w, h in images), images


def test_leaderboard_cells_match_the_frame(browser):
    frame = leaderboard()
    heads = [h.get_attribute("textContent") for h in browser.find_elements("css selector", "#leaderboard thead th")]
    assert heads == ["model", *frame.columns]
    # Cell by cell: a row Series would upcast the integer column to float.
    expected = [[model, *(format_value(frame.at[model, c]) for c in frame.columns)] for model in frame.index]
    assert cells(browser, "#leaderboard") == expected
    assert expected[2][1] == MISSING and expected[2][3] == "0.0" and expected[0][4] == "3"
    raw = browser.find_elements("css selector", "#leaderboard tbody tr:first-child td")
    assert [c.get_attribute("data-value") for c in raw] == ["61.25", "71.4", "12.5", "3"]


def test_clicking_a_header_sorts_with_missing_values_last(browser):
    frame = leaderboard()
    order = lambda: [row[0] for row in cells(browser, "#leaderboard")]  # noqa: E731
    xcopa = header(browser, "#leaderboard", "xcopa")
    xcopa.click()  # numbers sort high to low first
    assert xcopa.get_attribute("aria-sort") == "descending"
    assert order() == [MODELS[0], EVIL, MODELS[1]]
    xcopa.click()
    assert xcopa.get_attribute("aria-sort") == "ascending"
    assert order() == [EVIL, MODELS[0], MODELS[1]]  # the missing one stays last
    mgsm = header(browser, "#leaderboard", "mgsm")
    mgsm.click()
    assert xcopa.get_attribute("aria-sort") == "none"
    assert order() == list(frame["mgsm"].sort_values(ascending=False).index)
    model = header(browser, "#leaderboard", "model")
    model.click()  # text sorts A to Z first
    assert order() == sorted(MODELS, key=str.casefold)


def test_drill_down_judges_and_provenance(browser):
    from selenium.webdriver.common.by import By

    details = browser.find_element(By.CSS_SELECTOR, "details.task")
    table = details.find_element(By.CSS_SELECTOR, "table")
    assert table.text == ""  # closed until clicked
    details.find_element(By.TAG_NAME, "summary").click()
    assert details.get_attribute("open") is not None
    xcopa = per_language()["xcopa"]
    assert cells(browser, f"#{table.get_attribute('id')}") == [
        [m, *(format_value(xcopa.at[m, c]) for c in xcopa.columns)] for m in xcopa.index]
    assert table.find_element(By.CSS_SELECTOR, "tbody tr:nth-child(2) td").text == MISSING

    pairs = cells(browser, "#judge-0-m_arenahard")
    assert [row[0] for row in pairs] == [A_35, A_0613]
    assert pairs[0][1:6] == ["30", "31", "19", "0", "37.5"] and pairs[1][4] == "6"
    text = browser.find_element(By.ID, "judges").get_attribute("textContent")
    assert "Bradley–Terry" in text and "-48" in text and example_judge()["created"] in text

    prov = browser.find_element(By.ID, "provenance").get_attribute("textContent")
    assert SHA in prov and "hub:cambridgeltl/xcopa@ht" in prov and "2026-11-23T15:20:00+00:00" in prov
    assert len(browser.find_elements(By.CSS_SELECTOR, "details.run")) == 3
    assert EVIL in browser.find_element(By.ID, "run-2").text


def test_no_console_errors_after_interaction(browser):
    shots = os.environ.get("GLOTBENCH_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        browser.execute_script("window.scrollTo(0, 0);")
        browser.save_screenshot(str(Path(shots) / "report-top.png"))
        browser.execute_script("document.querySelectorAll('details').forEach(d => d.open = true);")
        height = browser.execute_script("return document.documentElement.scrollHeight;")
        browser.set_window_size(1280, min(int(height) + 200, 16000))
        browser.save_screenshot(str(Path(shots) / "report-full.png"))
    assert severe(browser) == []


def test_console_check_catches_a_fetch_and_a_script_error(browser, tmp_path):
    """The control for the checks above: the page's CSP turns a network fetch into a console
    error, and an exception in a script is one too."""
    bad = report().replace("</body>", '<img src="https://example.invalid/x.png">'
                                      "<script>undefinedFunction();</script></body>")
    path = tmp_path / "bad.html"
    write_report(bad, path)
    browser.get(path.as_uri())
    errors = "\n".join(severe(browser))
    assert "Content Security Policy" in errors and "example.invalid" in errors, errors
    assert "undefinedFunction" in errors, errors


# ---- end to end: glotbench run → table / report → Chromium ----------------------------------

@pytest.fixture(scope="module")
def real_store(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    """Directories the CLI itself wrote from real bundled data with the tiny random Llama:
    two scored runs (the second on fewer languages), m-ArenaHard completions, two sets of
    imported answers to the same prompts, and a real local judge (the same tiny model,
    whose replies are no verdict) over the three."""
    root = tmp_path_factory.mktemp("store")
    dirs = {name: root / name for name in ("full", "fewer", "generated", "answers-1", "answers-2", "judge")}
    common = ["--model", f"hf:{tiny_model_dir}", "--limit", "3", "--max-new-tokens", "8", "--no-progress",
              "--device", "cpu"]
    scored = ["run", "--tasks", "xcopa,xwinograd,flores", *common]
    assert main([*scored, "--langs", "tr,zh,en", "--output", str(dirs["full"])]) == 0
    assert main([*scored, "--langs", "tr,en", "--output", str(dirs["fewer"])]) == 0
    assert main(["run", "--tasks", "m_arenahard", "--langs", "en", *common, "--output", str(dirs["generated"])]) == 0
    prompts = [r["prompt_id"] for r in RunRecord.read(dirs["generated"]).samples("m_arenahard", "en")]
    for k in (1, 2):  # answers unlike the tiny model's (blank) ones, so none is "identical"
        answers = root / f"answers-{k}.jsonl"
        answers.write_text("".join(json.dumps({"prompt_id": p, "response": f"Answer {k} to prompt {i}."}) + "\n"
                                   for i, p in enumerate(prompts)))
        assert main(["import-answers", str(answers), "--model-name", f"writer-{k}", "--limit", "3",
                     "--output", str(dirs[f"answers-{k}"])]) == 0
    assert main(["judge", "--a", str(dirs["generated"]), "--b", str(dirs["answers-1"]), str(dirs["answers-2"]),
                 "--judge", f"hf:{tiny_model_dir}", "--judge-max-tokens", "8", "--parse-attempts", "1",
                 "--output", str(dirs["judge"]), "--no-progress", "--device", "cpu"]) == 0
    return dirs


def leaderboard_text(frame: pd.DataFrame, label: str, column: str) -> str:
    mark = frame.attrs["marks"].get(column, {}).get(label)
    return format_value(frame.at[label, column]) + (f" ({mark})" if mark else "")


def test_table_on_real_runs(real_store, capsys):
    full, fewer = RunRecord.read(real_store["full"]), RunRecord.read(real_store["fewer"])
    assert full.languages("xcopa") == ["tr", "zh"] and fewer.languages("xcopa") == ["tr"]
    assert main(["table", str(real_store["full"]), str(real_store["fewer"])]) == 0
    text = capsys.readouterr().out
    disc = 100 * (full.averages("xcopa")["macro"] + full.averages("xwinograd")["macro"]) / 2
    row = next(line for line in text.splitlines() if line.startswith("| full |"))
    assert row.split(" | ")[1].strip("*") in (f"{disc:.1f} (2/3: no XStoryCloze)", f"{disc:.1f}** (2/3: no XStoryCloze)")
    assert "Note: xcopa zh: missing from the Discriminative average of fewer (scored by full)." in text
    assert "Note: xwinograd zh: missing from the Discriminative average of fewer (scored by full)." in text
    directions = [d for d in full.languages("flores") if not fewer.has("flores", d)]  # zh ↔ en (--langs zh)
    assert directions and all("zho_" in d for d in directions)
    assert (f"Note: flores {', '.join(directions)}: missing from the Translation chrF++ average of fewer "
            "(scored by full).") in text
    assert main(["table", str(real_store["full"]), str(real_store["fewer"]), "--strict", "--format", "csv",
                 "--by-language"]) == 0
    summary, long = capsys.readouterr().out.rstrip("\n").split("\n\n")
    rows = {r["model"]: r for r in csv.DictReader(io.StringIO(summary))}
    assert rows["full"]["Discriminative"] == rows["full"]["Discriminative tasks"] == ""
    assert float(rows["full"]["Translation chrF++"]) == pytest.approx(full.averages("flores")["macro"])
    assert {(r["task"], r["language"]) for r in csv.DictReader(io.StringIO(long))} >= {("xcopa", "zh"), ("flores", "tur_Latn-eng_Latn")}


def test_report_on_real_runs(real_store, tmp_path):
    judge = JudgeRecord.read(real_store["judge"])
    bt = judge.data["bradley_terry"]["m_arenahard"]
    assert "error" in bt, f"the tiny random judge gave parseable verdicts ({bt}): this test needs a failed fit"
    out, figures = tmp_path / "report.html", tmp_path / "figures"
    assert main(["report", *(str(p) for p in real_store.values()), "-o", str(out), "--figures", str(figures)]) == 0
    page = out.read_text(encoding="utf-8")
    assert len(re.findall(r'<details class="run"', page)) == 5  # every run, the open-ended ones too
    assert f"Bradley–Terry (m_arenahard): no strengths — {html.escape(bt['error'])}" in page
    assert "(2/3: no XStoryCloze)</span>" in page and "xcopa zh: missing from the Discriminative average of fewer" in page
    assert {p.name for p in figures.iterdir()} >= {"heatmap-xcopa-acc.png", "judge0-m_arenahard-bars.svg"}


def test_real_report_in_chromium(real_store, browser, tmp_path):
    from selenium.webdriver.common.by import By

    out = tmp_path / "report.html"
    assert main(["report", *(str(p) for p in real_store.values()), "-o", str(out)]) == 0
    browser.get(out.as_uri())
    assert severe(browser) == []
    images = browser.execute_script("return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0);")
    assert images and all(images)
    frame = summary_frame([real_store["full"], real_store["fewer"]])
    assert cells(browser, "#leaderboard") == [[label, *(leaderboard_text(frame, label, c) for c in frame.columns)]
                                              for label in frame.index]
    notes = browser.find_element(By.ID, "leaderboard-notes").text
    assert "xwinograd zh: missing from the Discriminative average of fewer (scored by full)" in notes
    judges = browser.find_element(By.ID, "judges").text
    assert "Bradley–Terry (m_arenahard): no strengths —" in judges and "generated vs answers-2" in judges
    header(browser, "#leaderboard", "Discriminative").click()
    assert severe(browser) == []
