"""``glotbench recipe report DIR -o report.html`` (training/recipe/report.py, lineage.py) on the
evaluated two-stage recipe of tests/test_recipe_eval.py (SFT → DPO on a tiny Llama, a tiny reward
model judging): one Figure-3 point per checkpoint stage with figure3.json's numbers, the suite per
stage, the gate verdicts, and a lineage whose hashes are the manifests'; a recipe run without an
eval block still gets its lineage and says why Figure 3 is absent; a directory that is not a
recipe run is one line, exit 2; a merge manifest's per-file hashes become edges too."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import test_recipe_eval

from glotbench.harness.cli.main import main
from glotbench.training.recipe.lineage import lineage, lineage_svg

evaluated = test_recipe_eval.evaluated  # its module-scoped evaluated two-stage run, as a fixture here


class Blobs(HTMLParser):
    """The page's JSON blobs (script type application/json) by id, and table cells by table id."""

    def __init__(self):
        super().__init__()
        self.blobs: dict[str, object] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self._blob = self._table = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("type") == "application/json":
            self._blob = a["id"]
        elif tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._blob:
            self.blobs[self._blob] = json.loads(data)
            self._blob = None
        elif self._cell is not None:
            self._cell.append(data)


def parse(path: Path) -> Blobs:
    page = Blobs()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_the_report_holds_figure3_the_suite_the_gates_and_the_lineage_of_the_manifests(evaluated, tmp_path,
                                                                                       capsys):
    _, _, out, _ = evaluated
    report = tmp_path / "report.html"
    assert main(["recipe", "report", str(out), "-o", str(report)]) == 0
    assert "2 Figure-3 point(s), 2 stage(s)" in capsys.readouterr().out
    text = report.read_text(encoding="utf-8")
    assert "data:image/svg+xml;base64," in text and not re.search(r"(src|href)=\"https?:", text)
    page = parse(report)
    fig = json.loads((out / "figure3.json").read_text())
    assert page.blobs["figure3-data"] == fig["points"] and [p["stage"] for p in fig["points"]] == ["sft", "dpo"]
    rows = page.tables["figure3-table"][1:]
    assert [r[0] for r in rows] == ["sft", "dpo"]
    for row, point in zip(rows, fig["points"]):
        lo, hi = point["win_rate_ci95"]
        assert row[2] == f"{100 * point['win_rate']:.1f}" and row[3] == f"{100 * lo:.1f}–{100 * hi:.1f}"
        assert row[6] == str(point["n"]) and row[-1] == point["gate"]
    record = json.loads((out / "recipe.json").read_text())
    gates = {r[0]: r for r in page.tables["gate-table"][1:]}
    for name in ("sft", "dpo"):
        decision = record["stages"][name]["eval"]["gate"]
        assert gates[name][2] == decision["verdict"] and gates[name][1] == (decision["baseline"] or "–")
        assert all(line in text for line in decision["lines"][:2])
    assert [r[0] for r in page.tables["leaderboard"][1:]] == ["sft", "dpo"], "the suite is not per stage"

    graph = page.blobs["lineage-data"]
    nodes = {n["id"]: n for n in graph["nodes"]}
    for name in ("sft", "dpo"):
        entry = record["stages"][name]
        manifest = json.loads((Path(entry["output"]) / "training_manifest.json").read_text())
        assert nodes[name]["sha256"] == entry["sha256"] and nodes[name]["config_sha256"] == manifest["config_sha256"]
        edges = [(e["role"], e["sha256"]) for e in graph["edges"] if e["to"] == name]
        assert edges == [(i["role"], i["sha256"]) for i in manifest["inputs"]]
        assert all(sha in text for _, sha in edges)
    parents = {(e["from"], e["role"]) for e in graph["edges"] if e["to"] == "dpo"}
    assert {("sft", "base"), ("sft", "reference")} <= parents, "DPO's policy is not drawn as SFT's checkpoint"
    sft_weights = {e["sha256"] for e in graph["edges"] if e["from"] == "sft"}
    assert len(sft_weights) == 1, "DPO's policy and reference are the same SFT weights"
    assert nodes["sft"]["read_as"] == list(sft_weights) and nodes["dpo"]["read_as"] == []
    assert [(r[0], r[1], r[4]) for r in page.tables["lineage-edges"][1:]] == \
        [(e["to"], e["role"], e["sha256"]) for e in graph["edges"]]
    assert [(r[0], r[3]) for r in page.tables["lineage-stages"][1:]] == [(n, record["stages"][n]["sha256"])
                                                                         for n in ("sft", "dpo")]
    drawn = {(e["from"], e["to"]) for e in graph["edges"]}
    assert text.count('<g class="node"') == len(graph["nodes"]) and text.count('<g class="edge"') == len(drawn)
    again = tmp_path / "again.html"
    assert main(["recipe", "report", str(out), "-o", str(again)]) == 0
    assert again.read_bytes() == report.read_bytes(), "the report is not reproducible byte for byte"


def test_without_an_eval_block_the_report_says_why_there_is_no_figure3(evaluated, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(evaluated[2], out, ignore=shutil.ignore_patterns("eval", "figure3.json"))
    record = json.loads((out / "recipe.json").read_text())
    for entry in record["stages"].values():
        entry.pop("eval", None)
    (out / "recipe.json").write_text(json.dumps(record))
    report = tmp_path / "report.html"
    assert main(["recipe", "report", str(out), "-o", str(report)]) == 0
    assert "0 Figure-3 point(s)" in capsys.readouterr().out
    text = report.read_text(encoding="utf-8")
    assert 'id="figure3-absent">No Figure 3: the recipe has no eval: block' in text
    assert "No gate decisions: the recipe has no eval: block" in text
    graph = parse(report).blobs["lineage-data"]
    assert {e["to"] for e in graph["edges"]} == {"sft", "dpo"}, "the lineage needs no evaluation"


@pytest.mark.parametrize("case", ["not-a-recipe-dir", "missing-dir", "corrupt-record"])
def test_a_directory_that_is_not_a_recipe_run_is_one_line_exit_2(case, tmp_path, capsys):
    target = tmp_path / "d"
    if case != "missing-dir":
        target.mkdir()
        (target / "notes.txt").write_text("x")
    if case == "corrupt-record":
        (target / "recipe.json").write_text("{not json")
    assert main(["recipe", "report", str(target), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("glotbench: error:"), err
    assert ("unreadable" if case == "corrupt-record" else "not a recipe directory") in err
    assert not (tmp_path / "r.html").exists()


def test_a_merge_stage_has_one_edge_per_parent_with_per_file_hashes(tmp_path):
    """Hand-written manifests: an SFT stage on an external base and data file, two SFT stages
    sharing that base (one external node), and a merge of both (merge_manifest.json, files)."""
    base, data = str(tmp_path / "base"), str(tmp_path / "sft.jsonl")
    stages = {}
    for name in ("sft_a", "sft_b"):
        out = tmp_path / f"{name}-{'a' * 12}"
        out.mkdir()
        (out / "training_manifest.json").write_text(json.dumps({"config_sha256": f"cfg-{name}", "inputs": [
            {"role": "base", "path": base, "sha256": "b" * 64}, {"role": "data", "path": data, "sha256": "d" * 64}]}))
        stages[name] = {"kind": "sft", "after": [], "sha256": name * 8, "output": str(out), "state": "done"}
    soup = tmp_path / f"soup-{'c' * 12}"
    soup.mkdir()
    files = {n: {"model.safetensors": f"{n}-weights"} for n in ("sft_a", "sft_b")}
    (soup / "merge_manifest.json").write_text(json.dumps({"method": "linear", "config_sha256": "cfg-soup", "inputs": [
        {"model": f"hf:{stages[n]['output']}", "role": "model", "path": stages[n]["output"], "files": files[n]}
        for n in ("sft_a", "sft_b")]}))
    stages["soup"] = {"kind": "merge", "after": ["sft_a", "sft_b"], "sha256": "e" * 64, "output": str(soup),
                      "state": "done"}
    graph = lineage({"order": list(stages), "stages": stages}, tmp_path)
    assert [n["id"] for n in graph["nodes"]] == ["sft_a", "input-1", "input-2", "sft_b", "soup"]
    soup_in = [(e["from"], e["role"], e["files"]) for e in graph["edges"] if e["to"] == "soup"]
    assert soup_in == [("sft_a", "model", files["sft_a"]), ("sft_b", "model", files["sft_b"])]
    assert {e["from"] for e in graph["edges"] if e["to"] == "sft_b"} == {"input-1", "input-2"}, "inputs not shared"
    svg = lineage_svg(graph)
    assert svg.count('<g class="node"') == 5 and svg.count('<g class="edge"') == 6 and "soup (merge)" in svg
    assert "sft_a-weights" in svg, "a merge input's per-file hashes are not in its tooltip"
