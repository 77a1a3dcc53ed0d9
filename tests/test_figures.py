"""Figures: the numbers drawn are the judge file's, missing cells are never 0, output is
byte-for-byte reproducible, PNG sizes follow the figure size at 150 dpi."""

from __future__ import annotations

import base64
import copy
import struct

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from glotbench.harness.report.figures import (
    MISSING,
    PNG_DPI,
    language_win_rates,
    save,
    score_heatmap,
    to_data_uri,
    win_tie_loss_bars,
)

A_35, A_0613 = "gpt-4-0314 vs gpt-3.5-turbo-0125", "gpt-4-0314 vs gpt-4-0613"


def _summary(wins, ties, losses, invalid, ci, half_ci, flip) -> dict:
    n = wins + ties + losses
    return {"wins": wins, "ties": ties, "losses": losses, "invalid": invalid, "n": n,
            "n_judgments": n + invalid, "win_rate": wins / n if n else None,
            "win_rate_ci95": ci, "win_rate_ties_half": (wins + ties / 2) / n if n else None,
            "win_rate_ties_half_ci95": half_ci, "order_flip_rate": flip}


def example_judge() -> dict:
    """The shape and numbers of a real 3-model ``glotbench judge`` run (m-ArenaHard en, 40
    prompts × 2 orders, scripted judge), trimmed to the fields the figures and report read."""
    results = {}
    for pair, args in ((A_35, (30, 31, 19, 0, [0.275, 0.475], [0.48734375, 0.65640625], 0.65)),
                       (A_0613, (27, 27, 26, 0, [0.2375, 0.45], [0.40625, 0.60625], 0.6))):
        en = _summary(*args)
        macro = {k: en[k] for k in ("win_rate", "win_rate_ci95", "win_rate_ties_half",
                                    "win_rate_ties_half_ci95")}
        results[pair] = {"m_arenahard": {"languages": {"en": en}, "macro": macro, "pooled": dict(en)}}
    return {
        "format": "glotbench-judge/1", "created": "2026-11-23T15:21:07+00:00",
        "config": {"judge": "openai:scripted-judge", "base_url": "http://127.0.0.1:8124/v1", "seed": 1234},
        "results": results,
        "bradley_terry": {"m_arenahard": {
            "models": ["gpt-3.5-turbo-0125", "gpt-4-0314", "gpt-4-0613"], "anchor": "gpt-4-0314",
            "scores": {"gpt-3.5-turbo-0125": -48.0769, "gpt-4-0314": 0.0, "gpt-4-0613": -4.3432},
            "ci95": {"gpt-3.5-turbo-0125": [-117.29, 8.91], "gpt-4-0314": [0.0, 0.0],
                     "gpt-4-0613": [-65.92, 61.43]}}},
        "counts": {"judgments": 160, "identical": 0, "invalid": 0, "api_errors": 0, "reasked": 0},
        "provenance": {"glotbench_version": "0.1.0",
                       "judge": {"spec": "openai:scripted-judge", "base_url": "http://127.0.0.1:8124/v1"},
                       "prompt": {"name": "aya101_pairwise", "version": 1, "sha256": "f729b7ea"}},
    }


def multilingual_judge() -> dict:
    """Three languages, one with invalid verdicts and one with no valid verdict at all."""
    judge = copy.deepcopy(example_judge())
    s = judge["results"][A_0613]["m_arenahard"]
    s["languages"]["sw"] = _summary(14, 2, 4, 0, [0.5, 0.9], [0.55, 0.9], 0.2)
    s["languages"]["yo"] = _summary(0, 0, 0, 6, None, None, None)
    s["macro"] = {"win_rate": 0.52, "win_rate_ci95": [0.45, 0.6], "win_rate_ties_half": 0.6,
                  "win_rate_ties_half_ci95": [0.5, 0.7]}
    s["pooled"] = _summary(41, 29, 30, 6, [0.3, 0.5], [0.45, 0.6], 0.5)
    return judge


def texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_win_tie_loss_bars_shows_the_reported_percentages():
    fig = win_tie_loss_bars(example_judge(), "m_arenahard")
    assert isinstance(fig, Figure)
    # 30/31/19 of 80 and 27/27/26 of 80, as the report states them (over valid verdicts).
    assert texts(fig) == ["37.5%", "33.8%", "38.8%", "33.8%", "23.8%", "32.5%"]
    ticks = {t.get_text(): t.get_position()[1] for t in fig.axes[0].get_yticklabels()}
    assert ticks[A_35] > ticks[A_0613]  # the first pair of judge.json on top
    widths = [p.get_width() for p in fig.axes[0].patches]
    assert widths == pytest.approx([37.5, 33.75, 38.75, 33.75, 23.75, 32.5])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["win", "tie", "loss"]


def test_win_tie_loss_bars_gives_invalid_verdicts_their_own_segment():
    fig = win_tie_loss_bars(multilingual_judge())  # task=None: every judged task
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["win", "tie", "loss", "invalid"]
    # With invalid verdicts every share is over all 106 judgments, so a bar still sums to 100.
    widths = np.array([p.get_width() for p in fig.axes[0].patches]).reshape(4, 2)
    assert widths[:, 1] == pytest.approx(np.array([41, 29, 30, 6]) / 106 * 100)
    assert widths.sum(axis=0) == pytest.approx([100, 100])
    assert "5.7%" in texts(fig) and fig.axes[0].get_xlabel() == "% of judgments"


def test_win_tie_loss_bars_rejects_an_unjudged_task():
    with pytest.raises(ValueError, match="task 'mgsm'.*judged tasks: m_arenahard"):
        win_tie_loss_bars(example_judge(), "mgsm")


def test_language_win_rates_bars_ci_and_reference_line():
    fig = language_win_rates(multilingual_judge(), A_0613, "m_arenahard")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["sw", "en", "yo", "macro"]
    bars = [p for p in ax.patches]
    assert [b.get_height() for b in bars] == pytest.approx([70, 33.75, 52])
    assert texts(fig) == ["n/a"]  # yo: no valid verdict, so no bar rather than a 0 % bar
    caps = sorted(ln.get_ydata()[0] for ln in ax.lines if ln.get_marker() == "_")
    assert caps == pytest.approx([23.75, 45, 45, 50, 60, 90])  # CI caps of en, macro, sw
    assert any(list(ln.get_ydata()) == [50, 50] for ln in ax.lines)  # the even line

    half = language_win_rates(multilingual_judge(), A_0613, "m_arenahard", ties="half")
    assert [p.get_height() for p in half.axes[0].patches] == pytest.approx([75, 50.625, 60])
    assert half.axes[0].get_ylabel().endswith("ties ½")


def test_language_win_rates_rejects_unknown_inputs():
    with pytest.raises(ValueError, match=f"pair 'x vs y'.*{A_35}"):
        language_win_rates(example_judge(), "x vs y", "m_arenahard")
    with pytest.raises(ValueError, match="task 'mgsm' was not judged"):
        language_win_rates(example_judge(), A_35, "mgsm")
    with pytest.raises(ValueError, match="ties='both'"):
        language_win_rates(example_judge(), A_35, "m_arenahard", ties="both")


def test_score_heatmap_never_draws_missing_as_zero():
    frame = pd.DataFrame({"en": [71.25, np.nan, 0.0], "sw": [np.nan, 48.0, 33.3]},
                         index=["aya-expanse-8b", "gemma-2-9b", "llama-3.1-8b"])
    fig = score_heatmap(frame, "xcopa accuracy")
    # Row-major: a real 0 is "0.0", a missing cell is "–".
    assert texts(fig) == ["71.2", MISSING, MISSING, "48.0", "0.0", "33.3"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(frame.index)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["en", "sw"]
    image = fig.axes[0].images[0].get_array()
    assert image.mask.tolist() == [[False, True], [True, False], [False, False]]
    assert texts(score_heatmap(frame, "t", fmt="{:.2f}"))[0] == "71.25"


def test_score_heatmap_all_missing_and_bad_input():
    fig = score_heatmap(pd.DataFrame({"en": [np.nan]}, index=["m"]), "nothing yet")
    assert texts(fig) == [MISSING]
    with pytest.raises(ValueError, match="empty frame"):
        score_heatmap(pd.DataFrame(), "empty")
    with pytest.raises(ValueError, match="numbers or NaN"):
        score_heatmap(pd.DataFrame({"en": ["high"]}), "words")


def test_save_is_reproducible_and_sized(tmp_path):
    def build():
        return score_heatmap(pd.DataFrame({"en": [1.0, np.nan]}, index=["a", "b"]), "t")

    first = save(build(), tmp_path / "one" / "heatmap")
    second = save(build(), tmp_path / "two" / "heatmap")
    assert [p.name for p in first] == ["heatmap.png", "heatmap.svg"]
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name
    svg = first[1].read_text()
    assert "<dc:date>" not in svg and "matplotlib.org" not in svg.split("<svg", 1)[0]
    width, height = build().get_size_inches()
    assert png_size(first[0].read_bytes()) == (round(width * PNG_DPI), round(height * PNG_DPI))


def test_data_uris_embed_the_same_bytes(tmp_path):
    fig = win_tie_loss_bars(example_judge())
    png, svg = save(fig, tmp_path / "wtl")
    uri = to_data_uri(fig, "png")
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == png.read_bytes()
    uri = to_data_uri(fig)
    assert uri.startswith("data:image/svg+xml;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == svg.read_bytes()
    with pytest.raises(ValueError, match="fmt='pdf'"):
        to_data_uri(fig, "pdf")
