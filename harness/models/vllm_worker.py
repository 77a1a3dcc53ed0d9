"""The vLLM engine glotbench talks to: token ids in, log-probabilities and texts out.

Runs either in process (a GPU machine with vllm installed next to glotbench) or as a worker
process in the isolated vLLM environment (``python -I vllm_worker.py``; see vllm_env.py), so
it imports nothing from glotbench: only the standard library and vllm. Tokenisation and chat
templates stay in glotbench (the HF tokenizer, lm-eval's rules), so the vLLM backend scores
exactly the token sequences the HF backend scores.

The pipe protocol: the worker reads one JSON object per line on stdin and answers one JSON
line on its protocol pipe (the original stdout; the worker points fd 1 at stderr, so library
prints cannot corrupt it). The first line it writes is ``{"ok": true, "ready": {...}}`` once
the engine is loaded. Requests:

- ``{"op": "loglikelihood", "seqs": [[ids]], "n_ctx": [n]}`` → ``{"ok": true, "results":
  [[logprob, is_greedy]]}``: the sum of the log-probabilities of ``ids[n:]`` given what comes
  before each, from ``prompt_logprobs``; greedy when each was the top-ranked token;
- ``{"op": "generate", "items": [{"ids", "max_tokens", "temperature", "seed", "stop"}]}`` →
  ``{"ok": true, "results": [{"text", "n_tokens", "finish"}]}`` (finish: eos | stop | length);
- ``{"op": "shutdown"}``.

A failure answers ``{"ok": false, "message": ...}`` and the worker goes on.
"""

from __future__ import annotations

import json
import os
import sys


class Engine:
    """One ``vllm.LLM``: created under ``if __name__ == "__main__"`` when a worker (it spawns
    its engine process)."""

    def __init__(self, model: str, *, dtype: str = "auto", max_model_len: int | None = None,
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                 enforce_eager: bool = False, seed: int = 0):
        import vllm

        kwargs = dict(model=model, tokenizer=model, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                      enable_prefix_caching=True, enforce_eager=enforce_eager, seed=seed,
                      skip_tokenizer_init=False)
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        if _on_gpu():
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        self.llm = vllm.LLM(**kwargs)
        self.vllm = vllm
        config = self.llm.llm_engine.model_config
        self.info = {"vllm": getattr(vllm, "__version__", None), "torch": _version("torch"),
                     "transformers": _version("transformers"), "device": "cuda" if _on_gpu() else "cpu",
                     "dtype": str(config.dtype).removeprefix("torch."), "max_model_len": config.max_model_len,
                     "max_num_seqs": self.llm.llm_engine.vllm_config.scheduler_config.max_num_seqs}

    def _prompts(self, seqs):
        from vllm.inputs import TokensPrompt

        return [TokensPrompt(prompt_token_ids=list(s)) for s in seqs]

    def loglikelihood(self, seqs: list[list[int]], n_ctx: list[int]) -> list[list]:
        params = self.vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False)
        outs = self.llm.generate(self._prompts(seqs), params, use_tqdm=False)
        results = []
        for seq, n, out in zip(seqs, n_ctx, outs):
            total, greedy = 0.0, True
            for pos in range(n, len(seq)):
                entry = out.prompt_logprobs[pos][seq[pos]]
                total += entry.logprob
                greedy = greedy and entry.rank == 1
            results.append([total, greedy])
        return results

    def generate(self, items: list[dict]) -> list[dict]:
        params = []
        for it in items:
            sampled = it["temperature"] > 0
            params.append(self.vllm.SamplingParams(
                max_tokens=it["max_tokens"], temperature=it["temperature"] if sampled else 0.0,
                top_p=1.0, top_k=0 if sampled else -1, seed=it["seed"] if sampled else None,
                stop=list(it["stop"]) or None, include_stop_str_in_output=False, skip_special_tokens=True))
        outs = self.llm.generate(self._prompts([it["ids"] for it in items]), params, use_tqdm=False)
        results = []
        for out in outs:
            c = out.outputs[0]
            finish = "length" if c.finish_reason == "length" else ("stop" if isinstance(c.stop_reason, str) else "eos")
            n_tokens = len(c.token_ids) - (1 if finish == "eos" else 0)  # the HF backend counts no EOS
            results.append({"text": c.text, "n_tokens": n_tokens, "finish": finish})
        return results


def _on_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def serve(args: dict) -> None:
    """The worker loop (see the module docstring)."""
    pipe = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # everything else printed goes to the log
    sys.stdout = sys.stderr

    def reply(obj: dict) -> None:
        pipe.write(json.dumps(obj) + "\n")
        pipe.flush()

    try:
        engine = Engine(**args)
    except Exception as exc:  # noqa: BLE001 — reported to the parent, which raises it in one line
        reply({"ok": False, "message": f"{type(exc).__name__}: {exc}"[:2000]})
        return
    reply({"ok": True, "ready": engine.info})
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["op"] == "shutdown":
                reply({"ok": True})
                return
            if req["op"] == "loglikelihood":
                reply({"ok": True, "results": engine.loglikelihood(req["seqs"], req["n_ctx"])})
            elif req["op"] == "generate":
                reply({"ok": True, "results": engine.generate(req["items"])})
            else:
                reply({"ok": False, "message": f"unknown op {req['op']!r}"})
        except Exception as exc:  # noqa: BLE001 — the parent decides; the engine stays up
            reply({"ok": False, "message": f"{type(exc).__name__}: {exc}"[:2000]})


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
