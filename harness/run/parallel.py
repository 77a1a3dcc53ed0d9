"""Data-parallel runs: ``glotbench run --data-parallel N [--ray-address ADDR]``.

N Ray actors each hold one backend replica, loaded with the same ``load_backend`` call and
options as a single-process run (one GPU each on a GPU cluster, ``--tensor-parallel-size``
GPUs for a vLLM replica; a slice of the CPU cores otherwise). The driver keeps the request
cache and the results store: it plans the run's chunks exactly as a single process does
(:func:`~glotbench.harness.run.execute.pending_chunks`), hands whole chunks to whichever
replica is free and commits each chunk to the cache as it arrives. A replica thus answers
the very batches a single process would, so the run directory is the same (predictions and
scores), and a killed run resumes from the cache as a single-process one does.

Every replica's :attr:`ModelIdentity.cache_key` must be the same (one cache key per run);
replicas on unlike hardware or libraries are refused. Ray is imported only here, and only
for ``--data-parallel`` > 1.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.records import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)
from glotbench.harness.models.protocol import ModelIdentity
from glotbench.harness.run.cache import RequestCache
from glotbench.harness.run.config import RunConfig
from glotbench.harness.run.execute import commit, pending_chunks
from glotbench.harness.run.plan import Unit

INSTALL = "pip install 'glotbench[ray]'"
# Chunks queued per replica: the next one is on its way while one computes.
IN_FLIGHT = 2
# Environment a replica on an existing cluster needs from the driver (a local cluster inherits it).
FORWARDED_ENV = ("GLOTBENCH_", "HF_", "TRANSFORMERS_", "VLLM_")


def import_ray():
    try:
        import ray
    except ImportError:
        raise GlotbenchError("--data-parallel needs Ray, which is not installed",
                             f"{INSTALL} (or run with --data-parallel 1)") from None
    return ray


class Replica:
    """One backend in a Ray actor (made remote by :meth:`ReplicaPool.start`)."""

    def __init__(self, threads: int | None):
        if threads:  # a CPU slice: torch would otherwise start a thread per core of the node
            import torch

            torch.set_num_threads(threads)
        self.backend = None

    def load(self, spec: str, options: dict) -> tuple[ModelIdentity, dict]:
        import ray
        import torch

        from glotbench.harness.models.loader import load_backend

        self.backend = load_backend(spec, **options)
        where = {"host": socket.gethostname(), "node_ip": ray.util.get_node_ip_address(), "pid": os.getpid(),
                 "torch_threads": torch.get_num_threads(),
                 "gpus": [str(g) for g in ray.get_runtime_context().get_accelerator_ids().get("GPU", [])],
                 "min_chunk": getattr(self.backend, "min_chunk", 0)}
        return self.backend.identity, where

    def loglikelihood(self, batch: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        return self.backend.loglikelihood(batch)

    def generate(self, batch: list[GenerationRequest]) -> list[GenerationResult]:
        return self.backend.generate(batch)

    def chat_template(self) -> str | None:
        return self.backend.chat_template

    def apply_chat_template(self, messages: Sequence[ChatMessage]) -> str:
        return self.backend.apply_chat_template(messages)

    def expect_loglikelihood(self, tasks: Sequence[str]) -> None:
        if hasattr(self.backend, "expect_loglikelihood"):
            self.backend.expect_loglikelihood(tasks)

    def release(self) -> None:
        if hasattr(self.backend, "release"):
            self.backend.release()


class ReplicaPool:
    """The backend of a data-parallel run as the driver sees it: the replicas' one identity,
    the chat template, and :meth:`answerer` for :func:`~glotbench.harness.run.execute.answer_and_score`."""

    def __init__(self, ray, actors: list, identity: ModelIdentity, where: list[dict], cfg: RunConfig,
                 resources: dict, local_dir: str | None):
        self.ray, self.actors, self.identity, self.where = ray, actors, identity, where
        self.batch_size = cfg.batch_size
        self.replicas = len(actors)
        self.min_chunk = max(w.get("min_chunk", 0) for w in where)  # the replicas' (vLLM on GPUs)
        self.cfg, self.resources, self.local_dir = cfg, resources, local_dir
        self.chat_template = ray.get(actors[0].chat_template.remote())
        self.released = False
        self.turn = 0
        self.chunks = [0] * len(actors)  # chunks each replica answered (provenance)

    @classmethod
    def start(cls, cfg: RunConfig) -> ReplicaPool:
        """Connect to the cluster (or start a local one), start and load the replicas."""
        ray = import_ray()
        local_dir = None
        if cfg.ray_address:
            check_reachable(cfg.ray_address)
            try:
                ray.init(address=cfg.ray_address, logging_level=logging.ERROR, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise GlotbenchError(f"cannot connect to the Ray cluster at {cfg.ray_address}: "
                                     f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                                     "start it with `ray start --head` (workers: `ray start --address "
                                     "HEAD:6379`) and pass the head's address") from None
        else:
            # A short temp dir: Ray's socket paths must fit in 107 bytes.
            local_dir = tempfile.mkdtemp(prefix="glotbench-ray-")
            ray.init(num_cpus=len(os.sched_getaffinity(0)), include_dashboard=False, _temp_dir=local_dir,
                     logging_level=logging.ERROR, log_to_driver=False)
        try:
            return cls._load(ray, cfg, local_dir)
        except BaseException:
            shutdown(ray, local_dir)
            raise

    @classmethod
    def _load(cls, ray, cfg: RunConfig, local_dir: str | None) -> ReplicaPool:
        n = cfg.data_parallel
        resources, threads = replica_resources(ray, cfg)
        options = dict(resources)
        if cfg.ray_address:
            env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}
            options["runtime_env"] = {"env_vars": env}
        remote = ray.remote(**options)(Replica)
        actors = [remote.remote(threads) for _ in range(n)]
        loaded = gather(ray, [a.load.remote(cfg.model, cfg.backend_options()) for a in actors])
        return cls(ray, actors, same_identity(loaded), [w for _, w in loaded], cfg, resources, local_dir)

    # --- the Backend protocol (the driver renders prompts; answers come from answerer) ---

    def apply_chat_template(self, messages: Sequence[ChatMessage]) -> str:
        return self.ray.get(self.actors[0].apply_chat_template.remote(messages))

    def expect_loglikelihood(self, tasks: Sequence[str]) -> None:
        gather(self.ray, [a.expect_loglikelihood.remote(tasks) for a in self.actors])

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        return gather(self.ray, [self._next().loglikelihood.remote(list(requests))])[0]

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return gather(self.ray, [self._next().generate.remote(list(requests))])[0]

    def _next(self):
        self.turn = (self.turn + 1) % len(self.actors)
        return self.actors[self.turn]

    def answerer(self, units: list[Unit], cache: RequestCache, bar, counts: dict) -> Callable[..., dict]:
        """Answer every unit's cache misses now, over all replicas, and return the function
        ``answer_and_score`` calls in place of its own (same arguments, same dict)."""
        # The groups answer_and_score asks for: each log-likelihood unit alone, every
        # generative unit pooled; planned as it would plan them, so the chunks are the same.
        generative = [u for u in units if u.task.output_type == "generate"]
        groups = [[u] for u in units if u.task.output_type != "generate"] + ([generative] if generative else [])
        model_key = self.identity.cache_key
        answers: dict[tuple[int, ...], dict] = {}
        queue: list[tuple[list[str], dict, dict, list[str]]] = []
        for group in groups:
            found, chunks, requests, keys = pending_chunks(group, self, cache, model_key, bar, counts)
            answers[tuple(id(u) for u in group)] = found
            queue += [(chunk, found, requests, keys) for chunk in chunks]
        queue.reverse()  # pop() from the end: chunks go out in plan order
        running: dict = {}
        idle = [a for _ in range(IN_FLIGHT) for a in self.actors]
        while queue or running:
            while queue and idle:
                actor = idle.pop(0)
                chunk, found, requests, keys = queue.pop()
                batch = [requests[k] for k in chunk]
                call = actor.generate if isinstance(batch[0], GenerationRequest) else actor.loglikelihood
                running[call.remote(batch)] = (actor, chunk, found, keys)
            [done], _ = self.ray.wait(list(running), num_returns=1)
            actor, chunk, found, keys = running.pop(done)
            commit(chunk, gather(self.ray, [done])[0], cache, model_key, found, keys, bar, counts)
            self.chunks[self.actors.index(actor)] += 1
            idle.append(actor)

        def answer(group: list[Unit], *_) -> dict:
            return answers[tuple(id(u) for u in group)]

        return answer

    def provenance(self) -> dict:
        """``provenance.data_parallel`` of run.json: where the replicas ran (not compared
        between runs: predictions and scores do not depend on it)."""
        return {"replicas": len(self.actors), "ray_address": self.cfg.ray_address or "local",
                "ray_version": self.ray.__version__, "resources_per_replica": self.resources,
                "replica_cache_key": self.identity.cache_key,
                "hosts": [{**w, "chunks": n} for w, n in zip(self.where, self.chunks)]}

    def release(self) -> None:
        """End the replicas (and the local cluster); safe to call twice."""
        if self.released:
            return
        self.released = True
        try:
            self.ray.get([a.release.remote() for a in self.actors], timeout=60)
        except Exception:  # noqa: BLE001 - a dead replica has nothing left to release
            pass
        for actor in self.actors:
            self.ray.kill(actor)
        shutdown(self.ray, self.local_dir)


def same_identity(loaded: list[tuple[ModelIdentity, dict]]) -> ModelIdentity:
    """The replicas' one identity: answers are cached under one key, so replicas that would
    compute differently (another GPU, library version, dtype, ...) are refused."""
    identity, first = loaded[0]
    for i, (other, where) in enumerate(loaded[1:], start=1):
        if other.cache_key != identity.cache_key:
            a, b = asdict(identity), asdict(other)
            fields = ", ".join(f"{k} {a[k]!r} vs {b[k]!r}" for k in a if k != "name" and a[k] != b[k])
            raise GlotbenchError(f"replica {i} on {where['host']} computes differently from replica 0 on "
                                 f"{first['host']} ({fields}): their answers cannot share one cache key",
                                 "run the replicas on like nodes (same hardware, libraries and options)")
    return identity


def replica_resources(ray, cfg: RunConfig) -> tuple[dict, int | None]:
    """Ray resources of one replica, and its torch thread count on CPU. GPUs when the device
    is cuda, or auto on a cluster that has them; else the largest CPU slice that places
    ``data_parallel`` replicas on the nodes (a replica never spans nodes)."""
    n = cfg.data_parallel
    total = ray.cluster_resources()
    if cfg.device == "cuda" or (cfg.device == "auto" and total.get("GPU", 0) >= 1):
        per = cfg.tensor_parallel_size if cfg.model.startswith("vllm:") else 1
        if total.get("GPU", 0) < n * per:
            raise GlotbenchError(f"--data-parallel {n} needs {n * per} GPUs ({per} per replica); the Ray "
                                 f"cluster has {int(total.get('GPU', 0))}",
                                 "lower --data-parallel (or --tensor-parallel-size), or add GPU nodes")
        return {"num_gpus": per, "num_cpus": 1}, None
    nodes = [node["Resources"].get("CPU", 0) for node in ray.nodes() if node.get("Alive")]
    per_cpu = next((c for c in range(int(max(nodes, default=0)), 0, -1)
                    if sum(int(x // c) for x in nodes) >= n), None)
    if per_cpu is None:  # more replicas than cores: they share them
        return {"num_cpus": round(sum(nodes) / n, 3)}, 1
    return {"num_cpus": per_cpu}, per_cpu


def gather(ray, refs: list) -> list:
    """``ray.get`` whose failures read as glotbench's: a replica's GlotbenchError is raised
    as it is; a replica that died is one line that says how to go on."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, GlotbenchError):
            raise exc.cause from None
        raise
    except ray.exceptions.RayActorError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GlotbenchError(f"a data-parallel replica died: {first}",
                             "run the same command again: it resumes from the request cache") from None


def check_reachable(address: str) -> None:
    """An unreachable ``host:port`` fails in seconds, not after Ray's long connect timeout."""
    if address == "auto" or address.startswith("ray://"):
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise GlotbenchError(f"--ray-address {address!r} is not host:port",
                             "pass the head node's address, e.g. --ray-address 10.0.0.1:6379 (or auto)")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as exc:
        raise GlotbenchError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}",
                             "start it with `ray start --head` on that node, or check the address "
                             "(the head's port is 6379 by default)") from None


def shutdown(ray, local_dir: str | None) -> None:
    ray.shutdown()
    if local_dir:
        # Ray's session files; a moment for its processes to close them first.
        for _ in range(3):
            shutil.rmtree(local_dir, ignore_errors=True)
            if not os.path.exists(local_dir):
                break
            time.sleep(0.5)
