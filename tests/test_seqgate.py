"""``glotbench gate --sequential``: the candidate model is evaluated on the baseline run's
items in seeded random-order batches through the runner, and stops when the anytime-valid
tests settle. Real runs of the embedded model (XWinograd en, XCOPA et: log-likelihood, a few
seconds); a planted regression is a baseline whose per-example scores were raised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glotbench.harness.cli.main import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq")
    out = root / "base"
    assert main(["run", "--tasks", "xwinograd,xcopa", "--langs", "en,et", "--limit", "120", "--output", str(out),
                 "--no-progress"]) == 0
    return out


def policy(tmp_path: Path, **kw) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(json.dumps(kw))  # JSON is YAML
    return p


def gate(tmp_path, baseline, *extra):
    out = tmp_path / "result.json"
    code = main(["gate", "--baseline", str(baseline), "--sequential", "--model", "embedded", "--batch", "20",
                 "--json", str(out), "--no-progress", *extra])
    return code, json.loads(out.read_text())


def test_the_same_model_passes_before_the_suite_ends(baseline, tmp_path, capsys):
    code, result = gate(tmp_path, baseline, "--policy", str(policy(tmp_path, margins={"xwinograd": 0.2, "xcopa": 0.2})))
    assert code == 0 and result["verdict"] == "pass"
    assert set(result["streams"]) == {"xwinograd/en", "xcopa/et"}
    for s in result["streams"].values():
        assert s["verdict"] == "pass" and s["fallback"] is None and s["mean_delta"] == 0
    assert result["fraction_used"] < 1 and result["n_total"] == 240
    assert result["requests"]["computed"] == 0  # every answer came from the baseline's cache
    assert result["notes"] == [] and result["environment"] == []  # same machine, same libraries
    out = capsys.readouterr().out
    assert "glotbench gate (sequential): PASS" in out and "Note:" not in out


def copy_run(src: Path, dst: Path) -> Path:
    for f in src.rglob("*"):
        if f.is_file():
            (dst / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (dst / f.relative_to(src)).write_bytes(f.read_bytes())
    return dst


def test_a_planted_regression_is_caught_early(baseline, tmp_path):
    # The baseline "answered" every XWinograd item right: the real model is far below it.
    rigged = copy_run(baseline, tmp_path / "rigged")
    samples = rigged / "samples" / "xwinograd" / "en.jsonl"
    recs = [json.loads(x) for x in samples.read_text().splitlines()]
    samples.write_text("".join(json.dumps({**r, "acc": 1.0}) + "\n" for r in recs))
    code, result = gate(tmp_path, rigged, "--policy", str(policy(tmp_path, margins={"xwinograd": 0.05, "xcopa": 0.2})))
    assert code == 1 and result["verdict"] == "regression"
    s = result["streams"]["xwinograd/en"]
    assert s["verdict"] == "regression" and s["fallback"] is None and s["n_used"] < 120
    assert s["mean_delta"] < -0.2


def test_exhausted_streams_fall_back_to_the_fixed_test(baseline, tmp_path):
    code, result = gate(tmp_path, baseline, "--policy", str(policy(tmp_path, margins={"xwinograd": 0.001,
                                                                                      "xcopa": 0.001})))
    for s in result["streams"].values():
        assert s["n_used"] == 120 and s["fallback"] is not None
        assert s["fallback"]["alpha"] == pytest.approx(0.025)
    assert code == 0


def test_a_baseline_from_another_machine_gets_a_note(baseline, tmp_path, capsys):
    moved = copy_run(baseline, tmp_path / "moved")
    run = json.loads((baseline / "run.json").read_text())
    run["provenance"]["host"]["platform"] = "Darwin-24.1-arm64"
    run["provenance"]["versions"]["transformers"] = "4.0.0"
    (moved / "run.json").write_text(json.dumps(run))
    code, result = gate(tmp_path, moved, "--policy", str(policy(tmp_path, margins={"xwinograd": 0.2, "xcopa": 0.2})))
    assert code == 0 and result["verdict"] == "pass"  # a note, not an error
    assert [d["key"] for d in result["environment"]] == ["transformers", "platform"]
    assert result["environment"][0]["baseline"] == "4.0.0"
    [note] = result["notes"]
    assert note.startswith("the baseline run and this evaluation of the candidate were made in different "
                           "environments (transformers 4.0.0 vs ")
    assert f"Note: {note}" in capsys.readouterr().out


def test_a_baseline_on_other_data_is_refused(baseline, tmp_path, capsys):
    bad = copy_run(baseline, tmp_path / "bad")
    run = json.loads((baseline / "run.json").read_text())
    run["provenance"]["tasks"]["xcopa"]["languages"]["et"]["data_sha256"] = "0" * 64
    (bad / "run.json").write_text(json.dumps(run))
    assert main(["gate", "--baseline", str(bad), "--sequential", "--model", "embedded"]) == 2
    err = capsys.readouterr().err
    assert "xcopa/et: the data differs from the baseline's" in err and "\n" not in err.strip()
    assert main(["gate", "--baseline", str(baseline), "--sequential"]) == 2
    assert "pass --model SPEC" in capsys.readouterr().err
