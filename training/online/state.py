"""The online-DPO output directory: what is done, so a killed loop resumes where it stopped.

```
DIR/run.json                 what this directory computes: config hash, starting weights, prompts
DIR/requests.sqlite          the request cache of every policy's generations (resume mid-generation)
DIR/iter-0/                  the initial policy measured on the held-out prompts (eval.jsonl)
DIR/iter-<n>/steps.json      the steps finished, with their counts and wall time
            samples.jsonl    K scored samples per training prompt
            pairs.jsonl      best vs worst per prompt (the DPO data)
            dpo-seed-<s>/    one DPO checkpoint per seed (when merging), else checkpoint/ directly
            checkpoint/      the iteration's policy (the next iteration's start and reference)
            eval.jsonl       its held-out completions: score, tokens, log-probs under it and π₀
            metrics.json     the iteration's numbers (training/online/metrics.py)
            training_manifest.json   its lineage; written last: the iteration is complete
DIR/metrics.json, metrics.png, training_manifest.json   the run, when every iteration is done
```

Every file is written whole (temporary name, then rename) and a step is marked done in
``steps.json`` only after its output exists, so a kill at any point leaves either the step's
output or nothing; a rerun redoes only unfinished steps. Checkpoints are written by the DPO
stage and the merge, both atomic. A directory computed from another config, starting policy
or prompt set is refused rather than mixed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import write_json_atomic, write_text_atomic
from glotbench.training.core.stage import MANIFEST

RUN = "run.json"
STEPS = "steps.json"


class RunDir:
    """An online-DPO output directory opened for a given identity."""

    def __init__(self, root: Path, identity: dict):
        self.root = Path(root)
        self.identity = identity

    @classmethod
    def open(cls, root: Path, identity: dict, *, overwrite: bool) -> RunDir:
        """Create ``root``, or reopen it to resume when it holds the same computation."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise GlotbenchError(f"output {root} exists and is not a directory", "choose another -o")
        if root.exists() and any(root.iterdir()) and not (root / RUN).is_file():
            raise GlotbenchError(f"output {root} exists and is not an online-DPO directory (no {RUN})",
                                 "choose another -o (--overwrite replaces only an online-DPO directory)")
        if root.exists() and overwrite:
            shutil.rmtree(root)
        if root.exists() and any(root.iterdir()):
            try:
                found = json.loads((root / RUN).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                raise GlotbenchError(f"output {root}: {RUN} is unreadable",
                                     "choose another -o, or pass --overwrite to start again") from None
            if found != identity:
                diff = sorted(k for k in set(found) | set(identity) if found.get(k) != identity.get(k))
                raise GlotbenchError(f"output {root} holds an online-DPO run of another {', '.join(diff)} "
                                     "(config, starting policy, prompts or scorer changed)",
                                     "choose another -o, or pass --overwrite to start again")
            return cls(root, identity)
        if not root.parent.is_dir():
            raise GlotbenchError(f"the parent of {root} does not exist", f"create {root.parent} first")
        root.mkdir(exist_ok=True)
        write_json_atomic(root / RUN, identity, indent=2)
        return cls(root, identity)

    @property
    def finished(self) -> bool:
        return (self.root / MANIFEST).is_file()

    def iteration(self, n: int) -> Path:
        path = self.root / f"iter-{n}"
        path.mkdir(exist_ok=True)
        return path

    def steps(self, n: int) -> dict:
        path = self.root / f"iter-{n}" / STEPS
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def done(self, n: int, step: str) -> dict | None:
        """The record of ``step`` of iteration ``n`` when it finished, else None."""
        return self.steps(n).get(step)

    def mark(self, n: int, step: str, record: dict) -> None:
        steps = self.steps(n)
        steps[step] = record
        write_json_atomic(self.iteration(n) / STEPS, steps, indent=2)


def write_jsonl_atomic(path: Path, rows: list[dict]) -> None:
    """JSON lines written whole (sorted keys are the caller's: rows keep their order)."""
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line]
