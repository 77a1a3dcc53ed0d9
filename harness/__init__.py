"""glotbench harness: the evaluation engine (types, backends, cache, runner, store, CLI).

Contains no benchmark-specific code; benchmarks live in ``tasks/``.
"""

__version__ = "0.1.0"
