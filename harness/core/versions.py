"""The versions glotbench's numbers depend on: its own scoring code and the libraries below it.

Two uses, one source:

- the request cache key (:class:`glotbench.harness.models.protocol.ModelIdentity`) holds
  :data:`SCORING_VERSION` and the versions of :data:`ANSWER_LIBRARIES`, so a cached
  log-likelihood or generation is never reused after the code that computed it changed;
- every run records :func:`library_versions` (:data:`RECORDED_LIBRARIES`) in
  ``provenance.versions``, so two runs made with different libraries say so (the gate
  names such a difference in a note).

See docs/reproducibility.md.
"""

from __future__ import annotations

from importlib import metadata

SCORING_VERSION = 4
"""Version of what a cached answer means. Bump it whenever a change can alter a
log-likelihood or a generation for the same request and model: tokenisation, shared-prefix
packing, masks, positions, the log-softmax and its summation, generation settings and stop
handling, the fields of the request/response records, or the request key. A bump makes every
cached answer a miss (recomputed once). tests/test_cache_identity.py pins a hash of the
modules that decide answers per version and fails when they change without a bump."""

ANSWER_LIBRARIES = ("torch", "transformers", "tokenizers")
"""Libraries that compute a backend's answers: kernels (torch), model code and generation
(transformers), tokenisation (tokenizers). Their versions are part of the cache key."""

RECORDED_LIBRARIES = ("transformers", "tokenizers", "torch", "numpy", "safetensors", "sacrebleu")
"""Libraries whose version can move a reported number: the answer libraries, numpy (metric
and bootstrap arithmetic), safetensors (weight loading), sacrebleu (chrF++). Recorded in
every run's ``provenance.versions``."""


def library_version(name: str) -> str | None:
    """The installed version of distribution ``name`` as its metadata states it (a local
    label such as ``+cpu`` or ``+cu128`` included: CPU and CUDA builds run different
    kernels); None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def library_versions(names: tuple[str, ...] = RECORDED_LIBRARIES) -> dict[str, str | None]:
    """``{name: version}`` for ``names``, in that order (None: not installed)."""
    return {name: library_version(name) for name in names}
