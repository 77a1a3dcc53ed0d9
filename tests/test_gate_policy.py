"""The gate's policy file: the default matches the dataclass, every broken rule is one line,
values reach the gate."""

from __future__ import annotations

from dataclasses import replace

import pytest
import test_gate

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.gate.fixed import gate
from glotbench.harness.gate.policy import POLICY_FILE, Policy, load_policy

pair = test_gate.pair  # the two-run fixture of the gate tests


def test_default_policy_file_matches_the_dataclass():
    assert replace(load_policy(), source="default") == Policy()
    assert load_policy().source == "default" and POLICY_FILE.is_file()


@pytest.mark.parametrize("text, message", [
    ("alpah: 0.05\n", r"unknown policy key 'alpah' \(did you mean 'alpha'\?\) — allowed keys: alpha,"),
    ("alpha: 0.7\n", r"alpha must be a number in \(0, 0.5\), got 0.7"),
    ("alpha: true\n", "alpha must be a number"),
    ("power: 1\n", "power must be a number"),
    ("margins:\n  xcopa: -0.01\n", "margins.xcopa must be a positive number, got -0.01"),
    ("margins:\n  flores: {chrf++: 0}\n", r"margins.flores.chrf\+\+ must be a positive number"),
    ("margins: [1, 2]\n", "margins must be a mapping"),
    ("metrics:\n  mgsm: []\n", "metrics.mgsm must be a metric name or a list"),
    ("on_inconclusive: maybe\n", "on_inconclusive must be 'pass' or 'fail'"),
    ("require_all: 1\n", "require_all must be true or false"),
    ("resamples: 10\n", r"resamples 10 cannot reach p < alpha 0.05 — use resamples >= 20"),
    ("[1, 2]\n", "must hold a mapping of keys"),
    ("alpha: [\n", r"not valid YAML \(line"),
])
def test_policy_validation(tmp_path, text, message):
    file = tmp_path / "gate.yaml"
    file.write_text(text)
    with pytest.raises(GlotbenchError, match=message) as err:
        load_policy(file)
    assert "\n" not in str(err.value)


def test_policy_file_values(tmp_path, pair):
    file = tmp_path / "gate.yaml"
    file.write_text("alpha: 0.01\nmargins:\n  flores: {chrf++: 1.5, xcomet: 0.01}\n  xcopa: 0.02\n"
                    "metrics:\n  mgsm: [strict_match, flexible_extract]\nseed: 7\n")
    policy = load_policy(file)
    assert policy.alpha == 0.01 and policy.seed == 7 and policy.resamples == 1000
    assert policy.margins == {"flores": {"chrf++": 1.5, "xcomet": 0.01}, "xcopa": 0.02}
    assert policy.metrics == {"mgsm": ("strict_match", "flexible_extract")} and policy.source == str(file)
    with pytest.raises(GlotbenchError, match="cannot read policy file"):
        load_policy(tmp_path / "missing.yaml")
    b, c = pair()
    bad = replace(Policy(), margins={"xcopa": {"accuracy": 0.02}})
    with pytest.raises(GlotbenchError, match="margins for xcopa name accuracy, not gated"):
        gate(b, c, bad)
    with pytest.raises(GlotbenchError, match="metric 'f1' is not in both runs"):
        gate(b, c, replace(Policy(), metrics={"xcopa": ("f1",)}))
