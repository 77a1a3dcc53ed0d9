"""How a run hands requests to its backend: chunks of the batch size, at least a backend's
``min_chunk`` (a continuous-batching engine on a GPU) but a share for each replica of a pool,
and a backend handed to ``execute`` is the caller's (benchmarks time a run on an engine they
loaded)."""

from __future__ import annotations

import json

import pytest

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.records import GenerationResult
from glotbench.harness.models.protocol import ModelIdentity
from glotbench.harness.models.vllm_backend import chunk_floor
from glotbench.harness.run.config import RunConfig
from glotbench.harness.run.execute import GEN_CHUNK_BATCHES, execute
from glotbench.harness.run.parallel import ReplicaPool
from glotbench.harness.run.plan import plan
from glotbench.harness.store.rundir import read_samples


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
        # an answer that depends on the prompt: results handed back to the wrong items would show
        return [GenerationResult(f"The answer is {len(r.prompt) % 7}.", 5, "stop") for r in requests]

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
    assert [r["response"] for r in read_samples(tmp_path / "floor", "mgsm", "de")] == \
        [r["response"] for r in read_samples(tmp_path / "small", "mgsm", "de")]


def test_a_pool_caps_the_floor_so_every_replica_gets_a_share(tmp_path):
    backend = Recording(batch_size=2, min_chunk=1000)
    backend.replicas = 3
    run(tmp_path, backend, "pool")
    assert backend.calls == [14, 14, 12]  # 40 pending requests: ceil(40 / 3) each


def test_the_vllm_floor_is_four_engine_batches_on_a_gpu_only():
    assert chunk_floor({"device": "cuda", "max_num_seqs": 1024}) == 4 * 1024
    assert chunk_floor({"device": "cpu", "max_num_seqs": 256}) == 0
    assert chunk_floor({"device": "cuda"}) == 0  # an engine that does not say: the batch size rules


def test_a_replica_pool_takes_its_replicas_floor():
    class Ray:
        def get(self, ref):
            return ref

    class Actor:
        class chat_template:  # noqa: N801 — Ray's actor.method.remote() call shape
            @staticmethod
            def remote():
                return None

    where = [{"host": "a", "min_chunk": 4096}, {"host": "b", "min_chunk": 4096}]
    pool = ReplicaPool(Ray(), [Actor(), Actor()], Recording(1).identity, where, RunConfig(tasks=("mgsm",)), {}, None)
    assert (pool.replicas, pool.min_chunk) == (2, 4096)
    pool = ReplicaPool(Ray(), [Actor()], Recording(1).identity, [{"host": "a"}], RunConfig(tasks=("mgsm",)), {}, None)
    assert pool.min_chunk == 0  # an HF replica: none


def test_a_backend_handed_in_stays_the_callers(tmp_path):
    backend = Recording(batch_size=4)
    run(tmp_path, backend, "first")
    assert not backend.released
    run(tmp_path, backend, "second")  # and it answers a second run
    assert backend.calls and not backend.released


def test_a_single_backend_for_a_data_parallel_run_is_refused(tmp_path):
    cfg = RunConfig(tasks=("mgsm",), langs=("en",), limit=2, data="bundled", chat="off", data_parallel=2,
                    output=str(tmp_path / "dp"), cache_path=str(tmp_path / "dp.sqlite"))
    with pytest.raises(GlotbenchError, match="data_parallel=2 with a single backend"):
        execute(cfg, plan(cfg), progress=False, backend=Recording(batch_size=2))
    assert not (tmp_path / "dp").exists()
