"""The merge config schema: valid configs parse, every broken rule is named."""

from __future__ import annotations

import pytest

from glotbench.training.merge.config import MergeConfigError, load_config, parse_config, resolve
from glotbench.training.merge.engine import tensor_params

TIES = {
    "merge_method": "ties", "base_model": "base",
    "models": [{"model": "a", "parameters": {"weight": 0.7, "density": 0.5}},
               {"model": "b", "parameters": {"weight": 0.3}}],
    "parameters": {"density": 0.2, "lambda": 1.5},
}


def test_ties_config_resolves_per_model_then_shared_then_default():
    cfg = parse_config(TIES)
    assert cfg.inputs == ("base", "a", "b")
    p = tensor_params(cfg, "model.layers.0.mlp.up_proj.weight")
    assert p.weights == (0.7, 0.3) and p.densities == (0.5, 0.2)
    assert p.lam == 1.5 and p.normalize is True and p.convention == "paper"


def test_defaults_depend_on_method_and_convention():
    dare = {**TIES, "merge_method": "dare_ties"}
    assert tensor_params(parse_config(dare), "x").normalize is True
    assert tensor_params(parse_config({**dare, "convention": "mergekit"}), "x").normalize is False
    ta = {**TIES, "merge_method": "task_arithmetic",
          "models": [{"model": "a"}, "b"], "parameters": {}}
    p = tensor_params(parse_config(ta), "x")
    assert p.weights == (1.0, 1.0) and p.normalize is False and p.lam == 1.0


def test_filters_first_match_wins_and_catch_all():
    cfg = parse_config({
        "merge_method": "slerp", "base_model": "a", "models": ["a", "b"],
        "parameters": {"t": [{"filter": "self_attn", "value": 0.2}, {"filter": "mlp", "value": 0.8},
                             {"value": 0.5}]}})
    assert tensor_params(cfg, "model.layers.3.self_attn.q_proj.weight").t == 0.2
    assert tensor_params(cfg, "model.layers.3.mlp.down_proj.weight").t == 0.8
    assert tensor_params(cfg, "model.norm.weight").t == 0.5
    assert resolve(cfg.parameters["t"], "lm_head.weight") == 0.5


def test_filter_without_default_fails_for_unmatched_tensor():
    cfg = parse_config({"merge_method": "slerp", "models": ["a", "b"],
                        "parameters": {"t": [{"filter": "mlp", "value": 0.8}]}})
    assert cfg.base_model == "a"  # the first model is t=0
    with pytest.raises(MergeConfigError, match="'t' has no value for tensor model.norm.weight"):
        tensor_params(cfg, "model.norm.weight")


def test_linear_inputs_keep_the_listed_base_first():
    cfg = parse_config({"merge_method": "linear", "base_model": "b",
                        "models": [{"model": "a", "parameters": {"weight": 1}},
                                   {"model": "b", "parameters": {"weight": 3}}]})
    assert cfg.inputs == ("b", "a") and tensor_params(cfg, "x").weights == (3.0, 1.0)


BAD = [
    ({"merge_method": "tie", "models": ["a"]}, "merge_method 'tie' is not one of.*did you mean 'ties'"),
    ({**TIES, "slices": []}, "'slices'.*not supported"),
    ({**TIES, "modles": []}, "unknown key 'modles' \\(did you mean 'models'\\?\\)"),
    ({**TIES, "convention": "arcee"}, "convention 'arcee' must be 'paper' or 'mergekit'"),
    ({**TIES, "dtype": "fp8"}, "dtype 'fp8' is not one of"),
    ({**TIES, "seed": -1}, "seed -1 must be a non-negative integer"),
    ({**TIES, "models": []}, "'models' must be a non-empty list"),
    ({**TIES, "models": [{"path": "a"}]}, "models\\[0\\] must be a mapping with a 'model' path"),
    ({**TIES, "models": ["a", "a"]}, "model 'a' is listed twice"),
    ({**TIES, "base_model": None}, "ties needs base_model"),
    ({**TIES, "models": ["base"]}, "at least one model other than the base"),
    ({**TIES, "parameters": {"density": 1.5}}, "density 1.5 must be in \\(0, 1\\]"),
    ({**TIES, "parameters": {"density": 0}}, "density 0 must be in"),
    ({**TIES, "parameters": {"weight": "high"}}, "'high' must be a finite number"),
    ({**TIES, "parameters": {"normalize": 1}}, "1 must be true or false"),
    ({**TIES, "parameters": {"t": 0.5}}, "parameters.t is not a parameter of ties"),
    ({**TIES, "parameters": {"weight": [0.1, 0.9]}}, "gradients .* are not supported"),
    ({**TIES, "parameters": {"weight": [{"filters": "mlp", "value": 1}]}}, "entry 0 must be \\{filter"),
    ({"merge_method": "slerp", "models": ["a", "b", "c"], "parameters": {"t": 0.5}}, "exactly two models, got 3"),
    ({"merge_method": "slerp", "models": ["a", "b"]}, "slerp needs parameters.t"),
    ({"merge_method": "slerp", "models": ["a", "b"], "parameters": {"t": 1.2}}, "t 1.2 must be in \\[0, 1\\]"),
    ({"merge_method": "slerp", "base_model": "c", "models": ["a", "b"], "parameters": {"t": 0.5}},
     "base_model must be one of its two models"),
    ({"merge_method": "linear", "models": ["a"]}, "linear needs at least two models"),
    ({"merge_method": "linear", "base_model": "z", "models": ["a", "b"]}, "base_model is not one of them"),
    ({"merge_method": "linear", "models": ["a", "b"], "tokenizer_source": "c"}, "tokenizer_source 'c'"),
    ({"merge_method": "linear", "models": [{"model": "a", "parameters": {"density": 0.5}}, "b"]},
     "density is not a parameter of linear"),
    (["merge_method", "linear"], "the top level must be a mapping"),
]


@pytest.mark.parametrize("raw,pattern", BAD, ids=[p[:30] for _, p in BAD])
def test_broken_rules_are_named(raw, pattern):
    with pytest.raises(MergeConfigError, match=pattern):
        parse_config(raw)


def test_load_config_file_errors(tmp_path):
    with pytest.raises(MergeConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("merge_method: [linear\n")
    with pytest.raises(MergeConfigError, match="is not valid YAML"):
        load_config(bad)
    ok = tmp_path / "ok.yaml"
    ok.write_text("merge_method: linear\nmodels:\n  - a\n  - b\nint8_mask: true\n")
    with pytest.raises(MergeConfigError, match="unknown key 'int8_mask'"):
        load_config(ok)
    ok.write_text("merge_method: ties\nbase_model: a\nmodels: [b]\nparameters: {int8_mask: true}\n")
    assert load_config(ok).parameters["int8_mask"] is True
