"""Preference pairs: the real AlpacaEval annotations (preference semantics, draws counted,
the leaderboard's counts reproduced), jsonl and hub stand-in formats, the split by instruction,
pairwise accuracy with its bootstrap over instructions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from glotbench.harness.core.errors import DataError
from glotbench.training.reward.data import (
    BASELINE,
    alpaca_eval_pairs,
    hub_pairs,
    jsonl_pairs,
    split_pairs,
)
from glotbench.training.reward.evaluate import outcomes, pairwise_accuracy

ALPACA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_eval_2"
ANNOTATIONS = ALPACA / "annotations"
OTHERS = ("Mixtral-8x7B-Instruct-v0.1_concise", "alpaca-7b", "claude-2", "falcon-7b-instruct", "gpt-3.5-turbo-1106")


def test_every_file_reproduces_the_leaderboards_wins_and_draws():
    board = {r[""]: r for r in csv.DictReader((ALPACA / "leaderboard.csv").open())}
    for name in OTHERS:
        got = alpaca_eval_pairs(ANNOTATIONS, (name,)).counts
        row = board[name]
        assert got["chosen_other"] == int(row["n_wins"]) and got["chosen_baseline"] == int(row["n_wins_base"])
        assert got.get("draw", 0) == int(row["n_draws"]) and got["records"] == 805
        assert got["pairs"] + got.get("draw", 0) == 805


def test_default_teachers_leave_out_the_baseline_against_itself_and_counts_add_up():
    every = alpaca_eval_pairs(ANNOTATIONS)
    assert every.source.endswith(",".join(sorted(OTHERS)))
    c = every.counts
    assert c == {"records": 4025, "pairs": 4015, "chosen_baseline": 3682, "chosen_other": 333, "draw": 10}
    own = alpaca_eval_pairs(ANNOTATIONS, (BASELINE,)).counts
    assert own == {"records": 805, "draw": 805}
    reserved = alpaca_eval_pairs(ANNOTATIONS, min_instruction=50).counts
    assert reserved["excluded_instruction"] == 250 and sum(v for k, v in reserved.items() if k in (
        "pairs", "draw", "excluded_instruction")) == 4025


def test_the_chosen_side_follows_the_preference():
    rows = json.loads((ANNOTATIONS / "claude-2.json").read_text())
    pairs = {p.pair_id: p for p in alpaca_eval_pairs(ANNOTATIONS, ("claude-2",)).pairs}
    won = next(i for i, r in enumerate(rows) if r["preference"] > 1.5)
    lost = next(i for i, r in enumerate(rows) if r["preference"] < 1.5)
    assert pairs[f"alpaca-{won}/claude-2"].chosen == rows[won]["output_2"]
    assert pairs[f"alpaca-{won}/claude-2"].chosen_by == "claude-2"
    assert pairs[f"alpaca-{lost}/claude-2"].chosen == rows[lost]["output_1"]
    assert pairs[f"alpaca-{lost}/claude-2"].rejected_by == "claude-2"
    assert pairs[f"alpaca-{won}/claude-2"].messages[0].content == rows[won]["instruction"]
    narrow = alpaca_eval_pairs(ANNOTATIONS, ("claude-2",), min_margin=0.4).counts
    assert narrow["below_margin"] > 0 and narrow["pairs"] + narrow["below_margin"] + narrow["draw"] == 805


def test_split_is_by_instruction_seeded_and_never_touches_the_reserved_ones():
    pairs = alpaca_eval_pairs(ANNOTATIONS, min_instruction=50).pairs
    train, held = split_pairs(pairs, 0.2, seed=0)
    assert not {p.group for p in train} & {p.group for p in held}
    assert len(train) + len(held) == len(pairs)
    assert min(p.index for p in train + held) >= 50
    assert round(len({p.group for p in held}) / len({p.group for p in pairs}), 2) == 0.2
    again, _ = split_pairs(pairs, 0.2, seed=0)
    other, _ = split_pairs(pairs, 0.2, seed=1)
    assert [p.pair_id for p in again] == [p.pair_id for p in train] and {p.group for p in other} != {
        p.group for p in train}
    small, few = split_pairs(pairs, 0.2, seed=0, train_cap=30, eval_cap=10)
    assert len(small) == 30 and len(few) == 10 and {p.pair_id for p in small} <= {p.pair_id for p in train}


def test_jsonl_pairs_take_prompt_or_messages_and_trl_conversational_answers(tmp_path):
    f = tmp_path / "pairs.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in [
        {"prompt_id": "q1", "language": "de", "prompt": "Hallo?", "chosen": "Hallo!", "rejected": "Nein.",
         "chosen_score": 1.0},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
         "chosen": [{"role": "assistant", "content": "Hi!"}], "rejected": "Go away."},
        {"prompt_id": "alpaca-3", "language": "en", "prompt": [{"role": "user", "content": "Why?"}],
         "chosen": [{"role": "assistant", "content": "Because."}],
         "rejected": [{"role": "assistant", "content": "No."}], "chosen_teacher": "claude-2"},
    ]) + "\n\n")
    pairs = jsonl_pairs(f)
    assert [p.group for p in pairs.pairs][0] == "q1" and pairs.pairs[1].chosen == "Hi!"
    assert [m.role for m in pairs.pairs[1].messages] == ["system", "user"] and pairs.counts["pairs"] == 3
    arb = pairs.pairs[2]
    assert (arb.group, arb.messages[0].content, arb.chosen, arb.rejected, arb.chosen_by) == (
        "alpaca-3", "Why?", "Because.", "No.", "claude-2")
    for line, message in [('{"prompt": "x", "chosen": "a"}', "rejected is missing"),
                          ('{"chosen": "a", "rejected": "b"}', "exactly one of prompt or messages"),
                          ("not json", "is not valid JSON")]:
        f.write_text(line + "\n")
        with pytest.raises(DataError, match=message) as err:
            jsonl_pairs(f)
        assert f"{f}:1" in str(err.value) and "\n" not in str(err.value)


def test_translations_in_a_pairs_file_share_one_group_and_one_side_of_the_split(tmp_path):
    """arbitrage's pairs.jsonl names prompts ``<source>/<language>``: the split unit is the
    source id, so no prompt is trained on in one language and held out in another."""
    f = tmp_path / "pairs.jsonl"
    f.write_text("".join(json.dumps({"prompt_id": f"alpaca-{i}/{lang}", "language": lang, "prompt": f"Q{i} {lang}",
                                     "chosen": "good", "rejected": "bad"}) + "\n"
                         for i in range(10) for lang in ("en", "de", "zh")))
    pairs = jsonl_pairs(f).pairs
    assert {p.group for p in pairs} == {f"alpaca-{i}" for i in range(10)}
    assert pairs[1].pair_id == "alpaca-0/de/2"  # the id still names the language and the line
    for seed in range(5):
        train, held = split_pairs(pairs, 0.3, seed)
        assert len(held) == 9 and not {p.group for p in train} & {p.group for p in held}


def test_a_hub_dataset_reads_through_a_local_stand_in(tmp_path):
    repo = tmp_path / "org__prefs"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "train.jsonl").write_text("\n".join(json.dumps(
        {"question": f"Q{i}?", "good": f"A{i}.", "bad": "No."}) for i in range(4)) + "\n")
    got = hub_pairs(str(repo), None, "train", {"prompt": "question", "chosen": "good", "rejected": "bad"})
    assert len(got.pairs) == 4 and got.pairs[2].chosen == "A2." and got.pairs[2].messages[0].content == "Q2?"
    assert got.source.startswith("hub:")


def test_accuracy_counts_ties_as_half_and_bootstraps_instructions():
    vals = outcomes([2.0, 1.0, 0.5, None, 3.0], [1.0, 1.0, 0.7, 0.0, 2.0])
    assert vals == [1.0, 0.5, 0.0, 0.5, 1.0]
    acc = pairwise_accuracy(vals, ["a", "a", "b", "c", "c"], seed=0)
    assert acc["accuracy"] == pytest.approx(0.6) and (acc["wins"], acc["ties"], acc["losses"]) == (2, 2, 1)
    assert acc["n_instructions"] == 3 and acc["ci95"][0] <= 0.6 <= acc["ci95"][1]
    assert pairwise_accuracy(vals, ["a", "a", "b", "c", "c"], seed=0) == acc
    # One instruction per resample unit: a group of identical outcomes cannot shrink the CI below it.
    grouped = pairwise_accuracy([1.0] * 10 + [0.0] * 10, ["x"] * 10 + ["y"] * 10, seed=0)
    single = pairwise_accuracy([1.0] * 10 + [0.0] * 10, [str(i) for i in range(20)], seed=0)
    assert grouped["ci95"][1] - grouped["ci95"][0] > single["ci95"][1] - single["ci95"][0]
