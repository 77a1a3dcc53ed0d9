"""The judge spends money only when asked: the estimate printed before the first request, consent
for a paid endpoint (``--yes``, ``--max-cost``, or a "y" at a terminal), the ``--max-cost`` stop
and its resume — against the scripted OpenAI-protocol server (tests/openai_server.py) standing in
for the OpenAI API itself."""

from __future__ import annotations

import io
import sys

import pytest
import test_judge
from openai_server import OpenAIServer
from test_judge import fault_free_results, judge_args, one_line_error, read

from glotbench.harness.cli.main import main
from glotbench.harness.judge.config import JudgeConfig
from glotbench.harness.judge.pairing import plan
from glotbench.harness.models import openai_client
from glotbench.harness.models.openai_client import estimate_prompt_tokens

# The judge tests' fixtures, shared: runs A and B (one answer the same: 28 judge requests for
# 30 judgments) and a request cache of their own, with no API key in the environment.
runs = test_judge.runs
isolated_cache = test_judge.isolated_cache


class Terminal(io.StringIO):
    """stdin as a terminal on which the user types the given text."""

    def isatty(self) -> bool:
        return True


@pytest.fixture()
def paid(monkeypatch):
    """Make the scripted server stand in for the OpenAI API itself (the paid endpoint)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal, as under CI or a pipe
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")

    def use(server: OpenAIServer) -> None:
        monkeypatch.setattr(openai_client, "OPENAI_URL", server.base_url)
    return use


def paid_args(a, b, out, *extra):
    """A judging of the paid endpoint (no --judge-base-url), at a price of $2.5 / $10 per M tokens."""
    return ["judge", "--a", str(a), "--b", str(b), "--judge", "openai:scripted-judge", "--judge-price", "2.5,10",
            "--output", str(out), "--no-progress", *extra]


def request_costs(a, b) -> list[float]:
    """The engine's estimate of each request, in plan order: input chars / 4, output 1024 tokens."""
    _, items, _ = plan(JudgeConfig(run_a=str(a), runs_b=(str(b),)))
    return [(estimate_prompt_tokens(i.messages) * 2.5 + 1024 * 10) / 1e6 for i in items if i.messages]


def test_a_paid_judge_needs_consent_when_stdin_is_not_a_terminal(runs, tmp_path, capsys, paid):
    a, b = runs
    total = sum(request_costs(a, b))
    with OpenAIServer() as server:
        paid(server)
        err = one_line_error(capsys, paid_args(a, b, tmp_path / "j"))
        assert "is a paid API (28 requests" in err and f"est. cost at most ${total:.2f}" in err
        assert "nothing was sent — pass --yes to accept the cost, or --max-cost USD to cap it" in err
        unpriced = [x for x in paid_args(a, b, tmp_path / "j") if x not in ("--judge-price", "2.5,10")]
        err = one_line_error(capsys, unpriced)
        assert "its price is unknown" in err and "pass --yes" in err  # scripted-judge has no list price
        err = one_line_error(capsys, [*unpriced, "--max-cost", "1"])
        assert "--max-cost needs the price of openai:scripted-judge" in err
        assert server.stats()["requests"] == 0
    assert not (tmp_path / "j").exists()


def test_with_yes_a_paid_judge_prints_its_estimate_and_proceeds(runs, tmp_path, capsys, paid):
    a, b = runs
    total = sum(request_costs(a, b))
    with OpenAIServer() as server:
        paid(server)
        assert main(paid_args(a, b, tmp_path / "j", "--yes")) == 0
        assert server.stats()["requests"] == 28
        out = capsys.readouterr().out
        assert out.startswith(f"judge openai:scripted-judge at {server.base_url}: 28 requests to send "
                              "(0 replies cached)")
        assert f"est. cost at most ${total:.2f} ($2.5 / $10 per million tokens)" in out
        server.reset_stats()
        assert main(paid_args(a, b, tmp_path / "again")) == 0  # all cached: nothing to pay, no consent asked
        assert server.stats()["requests"] == 0
        assert "0 requests to send (28 replies cached)" in capsys.readouterr().out
    est = read(tmp_path / "j")["usage"]["estimate"]
    assert est["requests"] == 28 and est["cost_usd"] == pytest.approx(total, abs=1e-6)
    assert est["completion_tokens"] == 28 * 1024
    assert fault_free_results(a, b, tmp_path) == read(tmp_path / "j")["results"]


@pytest.mark.parametrize("answer", ["y", "n"])
def test_at_a_terminal_the_user_is_asked(runs, tmp_path, capsys, paid, monkeypatch, answer):
    a, b = runs
    monkeypatch.setattr(sys, "stdin", Terminal(answer + "\n"))
    with OpenAIServer() as server:
        paid(server)
        code = main(paid_args(a, b, tmp_path / "j"))
        sent = server.stats()["requests"]
    err = capsys.readouterr().err
    assert "send 28 requests, est." in err and "to openai:scripted-judge? [y/N]" in err
    if answer == "y":
        assert code == 0 and sent == 28
    else:
        assert code == 2 and sent == 0 and "judging not confirmed; nothing was sent" in err
        assert not (tmp_path / "j").exists()


def test_max_cost_stops_the_judging_and_a_rerun_resumes(runs, tmp_path, capsys, paid):
    a, b = runs
    costs = request_costs(a, b)
    cap = round(0.6 * sum(costs), 4)
    first = max(k for k in range(len(costs) + 1) if sum(costs[:k]) <= cap)  # requests reserved in plan order
    with OpenAIServer() as server:
        paid(server)
        err = one_line_error(capsys, paid_args(a, b, tmp_path / "j", "--max-cost", str(cap)), code=1)
        assert server.stats()["requests"] == first
        assert err.startswith(f"glotbench: error: stopped at --max-cost ${cap:g}")
        assert "of 30 judgments finished, their replies cached — rerun the same command" in err
        assert not (tmp_path / "j").exists()
        server.reset_stats()
        assert main(paid_args(a, b, tmp_path / "j", "--max-cost", str(cap))) == 0
        assert server.stats()["requests"] == 28 - first
        assert f"{28 - first} requests to send ({first} replies cached)" in capsys.readouterr().out
    out = read(tmp_path / "j")
    assert out["usage"]["from_cache"] == first and out["usage"]["max_cost_usd"] == cap
    assert fault_free_results(a, b, tmp_path) == out["results"]


def test_base_url_judges_need_no_consent_and_max_cost_caps_them_too(runs, tmp_path, capsys, monkeypatch):
    a, b = runs
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal, and no --yes
    with OpenAIServer() as server:
        assert main(judge_args(a, b, server, tmp_path / "j")) == 0
        assert server.stats()["requests"] == 28
        out = capsys.readouterr().out
        assert f"at {server.base_url}: 28 requests to send (0 replies cached)" in out and "no price given" in out
        monkeypatch.setenv("GLOTBENCH_REQUEST_CACHE", str(tmp_path / "fresh.sqlite"))
        server.reset_stats()
        err = one_line_error(capsys, judge_args(a, b, server, tmp_path / "capped", "--judge-price", "2.5,10",
                                                "--max-cost", "0.05"), code=1)
        assert err.startswith("glotbench: error: stopped at --max-cost $0.05")
        assert server.stats()["requests"] == max(k for k in range(29) if sum(request_costs(a, b)[:k]) <= 0.05)




def test_an_existing_output_is_refused_before_the_judge_loads(runs, tmp_path, capsys):
    """A taken --output is one line before any judge model loads or a request is estimated,
    and leaves no partial directory or cache behind."""
    a, b = runs
    out = tmp_path / "taken"
    out.mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    err = one_line_error(capsys, ["judge", "--a", str(a), "--b", str(b), "--judge", "hf:/nonexistent/model",
                                  "--output", str(out), "--no-progress"])
    assert "already exists" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
