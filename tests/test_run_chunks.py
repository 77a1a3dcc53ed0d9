"""How a run hands requests to its backend: chunks of the batch size, at least a backend's
``min_chunk`` (a continuous-batching engine on a GPU), and a backend handed to ``execute`` is
the caller's (benchmarks time a run on an engine they loaded)."""

from __future__ import annotations

import json

from glotbench.harness.core.records import GenerationResult
from glotbench.harness.models.protocol import ModelIdentity
from glotbench.harness.run.config import RunConfig
from glotbench.harness.run.execute import GEN_CHUNK_BATCHES, execute
from glotbench.harness.run.plan import plan


class Recording:
    """A backend that answers every MGSM prompt with the same number and records its calls."""

    chat_template = None

    def __init__(self, batch_size: int, min_chunk: int | None = None):
        self.identity = ModelIdentity(backend="fake", name="fake", weights_sha256="0" * 64, dtype="float32",
                                      device="cpu")
        self.batch_size = batch_size
        if min_chunk is not None:
            self.min_chunk = min_chunk
        self.calls: list[int] = []
        self.released = False

    def generate(self, requests):
        self.calls.append(len(requests))
        return [GenerationResult("The answer is 18.", 5, "stop") for _ in requests]

    def loglikelihood(self, requests):
        raise AssertionError("MGSM asks for no log-likelihoods")

    def apply_chat_template(self, messages):
        raise AssertionError("plain text")

    def release(self):
        self.released = True


def run(tmp_path, backend, name: str, limit: int = 20) -> dict:
    cfg = RunConfig(tasks=("mgsm",), langs=("en", "de"), limit=limit, data="bundled", chat="off",
                    batch_size=backend.batch_size, output=str(tmp_path / name),
                    cache_path=str(tmp_path / f"{name}.sqlite"))
    path = execute(cfg, plan(cfg), progress=False, backend=backend)
    return json.loads((path / "run.json").read_text())


def test_chunks_follow_the_batch_size(tmp_path):
    backend = Recording(batch_size=2)
    out = run(tmp_path, backend, "plain")
    assert sum(backend.calls) == 40
    assert backend.calls == [2 * GEN_CHUNK_BATCHES] * 5
    assert out["provenance"]["requests"] == {"total": 40, "from_cache": 0, "computed": 40}


def test_chunks_are_at_least_the_backends_min_chunk(tmp_path):
    backend = Recording(batch_size=2, min_chunk=25)
    out = run(tmp_path, backend, "floor")
    assert backend.calls == [25, 15]
    # the same answers as smaller chunks: only the calls differ
    small = run(tmp_path, Recording(batch_size=2), "small")
    assert out["results"] == small["results"]


def test_a_backend_handed_in_stays_the_callers(tmp_path):
    backend = Recording(batch_size=4)
    run(tmp_path, backend, "first")
    assert not backend.released
    run(tmp_path, backend, "second")  # and it answers a second run
    assert backend.calls and not backend.released
