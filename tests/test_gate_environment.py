"""The gate's environment note: library versions, host, device and dtype that differ between the
baseline and the candidate are named (float32 results move with them), never an error."""

from __future__ import annotations

from test_gate import acc_records, baseline_correct, make_run

from glotbench.harness.gate.fixed import exit_code, gate
from glotbench.harness.gate.markdown import format_markdown
from glotbench.harness.gate.policy import Policy

HOST = {"python": "3.11.7", "platform": "Linux-6.18-x86_64", "torch": "2.13.0+cpu", "torch_threads": 2, "cpus": 2}
VERSIONS = {"transformers": "4.57.1", "tokenizers": "0.22.1", "torch": "2.13.0+cpu", "numpy": "2.3.4",
            "safetensors": "0.6.2", "sacrebleu": "2.5.1"}


def test_same_environment_has_no_note(tmp_path):
    env = {"host": HOST, "versions": VERSIONS, "device": "cpu"}
    recs = {"xcopa": {"et": acc_records(baseline_correct(seed=1))}}
    result = gate(make_run(tmp_path, "b", recs, provenance=env), make_run(tmp_path, "c", recs, provenance=env),
                  Policy())
    assert result["notes"] == [] and result["environment"] == [] and "Note:" not in format_markdown(result)


def test_version_and_host_differences_are_a_note_not_an_error(tmp_path):
    correct = baseline_correct(seed=1)
    b = make_run(tmp_path, "base", {"xcopa": {"et": acc_records(correct)}},
                 provenance={"host": HOST, "versions": VERSIONS, "device": "cpu"})
    other = {"host": {**HOST, "platform": "Darwin-24.1-arm64", "cpus": 10, "torch": "2.13.0"},
             "versions": {**VERSIONS, "transformers": "5.24.0", "torch": "2.13.0"}, "device": "mps"}
    c = make_run(tmp_path, "cand", {"xcopa": {"et": acc_records(correct)}}, provenance=other)
    result = gate(b, c, Policy())
    assert result["verdict"] == "pass" and exit_code(result) == 0 and result["warnings"] == []
    assert result["environment"] == [
        {"key": "torch", "baseline": "2.13.0+cpu", "candidate": "2.13.0"},
        {"key": "transformers", "baseline": "4.57.1", "candidate": "5.24.0"},
        {"key": "device", "baseline": "cpu", "candidate": "mps"},
        {"key": "platform", "baseline": "Linux-6.18-x86_64", "candidate": "Darwin-24.1-arm64"},
        {"key": "cpus", "baseline": 2, "candidate": 10}]
    [note] = result["notes"]
    assert note.startswith("the baseline and the candidate run were made in different environments (torch "
                           "2.13.0+cpu vs 2.13.0; transformers 4.57.1 vs 5.24.0; device cpu vs mps; platform")
    assert "margins sized for real regressions" in note and "docs/gate.md" in note
    md = format_markdown(result)
    assert f"\nNote: {note}\n" in md and md.index("Note:") < md.index("### xcopa")


def test_an_older_run_without_versions_is_noted(tmp_path):
    correct = baseline_correct(seed=1)
    b = make_run(tmp_path, "base", {"xcopa": {"et": acc_records(correct)}}, provenance={"host": HOST})
    c = make_run(tmp_path, "cand", {"xcopa": {"et": acc_records(correct)}},
                 provenance={"host": HOST, "versions": VERSIONS})
    [note] = gate(b, c, Policy())["notes"]
    assert "numpy not recorded vs 2.3.4" in note and "transformers not recorded vs 4.57.1" in note
    assert "torch" not in note  # the older run's torch comes from its host record
