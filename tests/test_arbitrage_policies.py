"""Arbitrage through the engine with every teacher kind and routing policy: an OpenAI-protocol
teacher on a loopback server (with faults: retried, cached), fixed routing per language on
parallel prompts, and the learned router deciding who generates."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from conftest import SHARED_DATA

from glotbench.harness.core.errors import GlotbenchError
from glotbench.training.arbitrage.engine import run_stage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from openai_faults import Faults  # noqa: E402
from openai_server import OpenAIServer  # noqa: E402

ANNOTATIONS = SHARED_DATA / "alpaca_eval_2" / "annotations"
SCORER = "def length(prompt, completion):\n    return float(len(completion)) / 100\n"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOTBENCH_REQUEST_CACHE", str(tmp_path / "cache.sqlite"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (tmp_path / "lenscore.py").write_text(SCORER)


def published(name: str, file: str | None = None, **extra) -> dict:
    return {"name": name, "published": str(ANNOTATIONS / f"{file or name}.json"), "generator": name, **extra}


def config(tmp_path: Path, teachers: list[dict], languages=("en",), first=8, routing=None) -> Path:
    cfg = {"prompts": {"alpaca_eval_multilingual": str(SHARED_DATA / "alpaca_eval_multilingual"),
                       "languages": list(languages), "first": first},
           "teachers": teachers, "scorer": {"callable": "lenscore:length"}, "routing": routing or {"policy": "reward"}}
    path = tmp_path / "arb.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_an_openai_protocol_teacher_is_retried_cached_and_scored(tmp_path):
    def answer(request: dict) -> str:
        return f"Served answer (seed {request.get('seed')}): " + request["messages"][-1]["content"][:40]

    faults = Faults(rate_500=0.9, max_per_request=1)
    with OpenAIServer(responder=answer, faults=faults, model="teacher-model") as server:
        teachers = [{"name": "served", "model": "openai:teacher-model", "base_url": server.base_url, "samples": 2,
                     "temperature": 0.7, "max_new_tokens": 64, "concurrency": 4},
                    published("claude-2")]
        run_stage(config(tmp_path, teachers), tmp_path / "a")
        first = server.stats()
        run_stage(config(tmp_path, teachers), tmp_path / "b")
        assert server.stats()["requests"] == first["requests"], "the rerun must come from the cache"
    assert first["status"].get("500", 0) > 0 and first["served"] == 16  # 8 prompts × 2 samples, 500s retried
    served = [c for c in lines(tmp_path / "a" / "candidates.jsonl") if c["teacher"] == "served"]
    assert len(served) == 16 and {c["sample"] for c in served} == {0, 1}
    assert all(c["completion"].startswith(f"Served answer (seed {c['sample']}): ") and c["finish"] == "stop"
               for c in served), "sample k is sent with seed + k"
    man = json.loads((tmp_path / "a" / "training_manifest.json").read_text())
    ident = next(i for i in man["inputs"] if i.get("name") == "served")
    assert ident["kind"] == "openai" and ident["base_url"] == server.base_url and ident["api_errors"] == []
    assert (tmp_path / "a" / "sft.jsonl").read_bytes() == (tmp_path / "b" / "sft.jsonl").read_bytes()


def test_fixed_routing_asks_only_each_languages_teacher(tmp_path):
    teachers = [published("claude-2", match="parallel"), published("alpaca-7b", match="parallel")]
    cfg = config(tmp_path, teachers, languages=("en", "de"), routing={"policy": "fixed",
                                                                       "fixed": {"en": "claude-2", "de": "alpaca-7b"}})
    run_stage(cfg, tmp_path / "out")
    cands = lines(tmp_path / "out" / "candidates.jsonl")
    assert len(cands) == 16
    assert {(c["language"], c["teacher"]) for c in cands} == {("en", "claude-2"), ("de", "alpaca-7b")}
    sft = lines(tmp_path / "out" / "sft.jsonl")
    assert {r["prompt_id"].split("/")[1]: r["teacher"] for r in sft} == {"en": "claude-2", "de": "alpaca-7b"}
    # A German prompt answered in English: the parallel match offers the source prompt's answer.
    source = json.loads((ANNOTATIONS / "alpaca-7b.json").read_text())[0]["output_2"]
    assert next(r for r in sft if r["prompt_id"] == "alpaca-0/de")["messages"][-1]["content"] == source


def test_fixed_routing_to_a_teacher_that_does_not_serve_the_language_is_refused(tmp_path):
    teachers = [published("claude-2", languages=["en"]), published("alpaca-7b")]
    cfg = config(tmp_path, teachers, routing={"policy": "fixed", "fixed": {"en": "alpaca-7b"}})
    run_stage(cfg, tmp_path / "ok")
    cfg = config(tmp_path, teachers, languages=("en", "de"), routing={"policy": "fixed",
                                                                       "fixed": {"en": "claude-2", "de": "claude-2"}})
    with pytest.raises(GlotbenchError, match="whose languages exclude de"):
        run_stage(cfg, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_the_learned_router_decides_who_generates_for_the_routed_share(tmp_path):
    names = ["gpt-3.5-turbo-1106", "claude-2", "alpaca-7b", "falcon-7b-instruct"]
    teachers = [published(n) for n in names]
    run_stage(config(tmp_path, teachers, first=80, routing={"policy": "learned", "fit": 0.5, "holdout": 0.25}),
              tmp_path / "out")
    routing = json.loads((tmp_path / "out" / "routing.json").read_text())
    learned = routing["learned"]
    assert learned["split"] == {"fit": 40, "holdout": 20, "routed": 20}
    per_prompt = defaultdict(set)
    for c in lines(tmp_path / "out" / "candidates.jsonl"):
        per_prompt[c["prompt_id"]].add(c["teacher"])
    sizes = sorted(len(t) for t in per_prompt.values())
    assert sizes == [1] * 20 + [4] * 60  # the routed share: one teacher each, chosen before "generating"
    ev = learned["evaluation"]
    assert json.dumps(ev)  # the held-out evaluation is recorded
    assert len(lines(tmp_path / "out" / "sft.jsonl")) == 80


def test_the_router_never_picks_a_teacher_that_does_not_serve_the_language():
    from glotbench.harness.core.records import ChatMessage
    from glotbench.training.arbitrage.config import TeacherConfig
    from glotbench.training.arbitrage.engine import _pick
    from glotbench.training.core.records import Prompt

    class Pooled:  # a language the fit share did not hold: pooled values over every teacher
        def predict(self, prompt):
            return {"en-only": 2.0, "any": 1.0}

    teachers = {"en-only": TeacherConfig(name="en-only", model="embedded", languages=("en",)),
                "any": TeacherConfig(name="any", model="embedded")}
    sw = Prompt("p/sw", "sw", (ChatMessage("user", "Habari?"),))
    assert _pick(Pooled(), sw, teachers) == "any"
    assert _pick(Pooled(), Prompt("p/en", "en", (ChatMessage("user", "Hi?"),)), teachers) == "en-only"


def test_the_summary_names_the_overlap_check_and_missing_answers(tmp_path, capsys):
    from glotbench.harness.cli.main import main

    teachers = [published("claude-2"), published("alpaca-7b", languages=["en"])]
    assert main(["train", "arbitrage", str(config(tmp_path, teachers, first=4)), "-o", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "eval overlap: 0 prompts (checked" in out and "not checked:" in out
    assert "arbitrage: 4 prompts, 8 candidates from 2 teachers" in out
