"""Load a task's rows for one language from the hub, a data directory or the bundled copy.

Every loader returns the same thing: samples in source order plus a description of where
they came from and a content hash (recorded in provenance, so two runs on different data
are never compared as if they were the same).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from glotbench import tasks as catalogue
from glotbench.harness.core.errors import DataError
from glotbench.harness.core.hashing import json_sha256
from glotbench.harness.core.paths import hub_failures, hub_offline
from glotbench.harness.core.records import Sample
from glotbench.harness.taskapi.spec import FewShotSource, Task

Source = Literal["auto", "bundled", "local", "hub"]
SOURCES: tuple[str, ...] = ("auto", "bundled", "local", "hub")
BUNDLED_DIR = Path(catalogue.__file__).resolve().parent / "data"


@dataclass(frozen=True)
class LoadedData:
    samples: tuple[Sample, ...]
    source: str
    """``bundled:<path>``, ``local:<path>`` or ``hub:<id>/<config>/<split>``."""
    sha256: str
    """Hash of all rows of the language (before any --limit), few-shot pool included."""
    fewshot: tuple[Sample, ...] = ()
    """The language's few-shot pool (few-shot tasks only)."""


def local_file(task: Task, lang: str, root: Path) -> Path:
    return Path(root) / task.data.local.format(lang=lang)


def local_files(task: Task, lang: str, root: Path) -> list[Path]:
    """Every file the language needs below ``root`` (one per side of parallel text)."""
    if task.data.parallel is None:
        return [local_file(task, lang, root)]
    return [local_file(task, code, root) for code in task.data.parallel(lang).values()]


def available(task: Task, lang: str, data_dir: Path | None) -> str | None:
    """Where the language's data would be read from without the network, if anywhere."""
    if data_dir is not None and all(f.is_file() for f in local_files(task, lang, data_dir)):
        return "local"
    if all(f.is_file() for f in local_files(task, lang, BUNDLED_DIR)):
        return "bundled"
    return None


def load(task: Task, lang: str, source: Source = "auto", data_dir: Path | None = None) -> LoadedData:
    if source == "auto":
        source = available(task, lang, data_dir) or "hub"
    if source not in ("local", "bundled", "hub"):
        raise DataError(f"unknown data source {source!r}", f"use one of {', '.join(SOURCES)}")
    if source == "local" and data_dir is None:
        raise DataError("--data local needs a data directory", "pass --data-dir DIR")
    root = Path(data_dir) if source == "local" else BUNDLED_DIR
    read = _parallel_rows if task.data.parallel is not None else _rows
    rows, shots, where = read(task, lang, source, root)
    samples = tuple(Sample(i, lang, MappingProxyType(row)) for i, row in enumerate(rows))
    pool = tuple(Sample(i, lang, MappingProxyType(row)) for i, row in enumerate(shots))
    digest = json_sha256([rows, shots]) if task.data.fewshot is not None else json_sha256(rows)
    return LoadedData(samples, where, digest, pool)


def _rows(task: Task, lang: str, source: str, root: Path) -> tuple[list[dict], list[dict], str]:
    """A language's rows, few-shot pool and a description of where they came from."""
    fs = task.data.fewshot
    if source == "hub":
        config = task.data.hub_config or task.data.hub_configs.get(lang, lang)
        rows = read_hub(task, config, task.data.split, task.data.fields, lang)
        shots = read_hub(task, config, fs.split, fs.fields, lang) if fs is not None else []
        if task.data.hub_select is not None:
            rows = task.data.hub_select(rows, lang)
            shots = task.data.hub_select(shots, lang) if shots else shots
            return rows, shots, f"hub:{task.data.hub_id}/{config}/{task.data.split}/{lang}"
        return rows, shots, f"hub:{task.data.hub_id}/{config}/{task.data.split}"
    path = local_file(task, lang, root)
    if source == "bundled" and not path.is_file():
        raise DataError(f"no bundled data for {task.name}/{lang}",
                        f"load it from the hub (--data hub, id {task.data.hub_id}) "
                        f"or a local copy (--data-dir DIR with {task.data.local.format(lang=lang)})")
    rows = read_rows(path, task, task.data.fields, task.data.columns)
    shots = read_fewshot(root / fs.local.format(lang=lang), task, fs, lang) if fs is not None else []
    return rows, shots, f"{source}:{path if source == 'local' else path.relative_to(BUNDLED_DIR)}"


def _parallel_rows(task: Task, lang: str, source: str, root: Path) -> tuple[list[dict], list[dict], str]:
    """Parallel text: one row per aligned segment, a field per side (e.g. source, target)."""
    sides = task.data.parallel(lang)
    fs = task.data.fewshot
    if source == "hub":
        config = task.data.hub_configs.get(lang, lang)
        rows = _hub_parallel(task, config, task.data.split, sides)
        shots = _hub_parallel(task, config, fs.split, sides) if fs is not None else []
        return rows, shots, f"hub:{task.data.hub_id}/{config}/{task.data.split}"
    rows = read_parallel(root, task.data.local, sides, task, lang)
    shots = read_parallel(root, fs.local, sides, task, lang) if fs is not None else []
    files = "+".join(sorted({task.data.local.format(lang=c) for c in sides.values()}))
    return rows, shots, f"{source}:{root / files if source == 'local' else files}"


def read_parallel(root: Path, template: str, sides: dict[str, str], task: Task, lang: str) -> list[dict]:
    """Aligned one-segment-per-line files → rows; every line is a segment (none skipped, so
    alignment can never shift), and files of different lengths are refused."""
    columns: dict[str, list[str]] = {}
    for name, code in sides.items():
        path = Path(root) / template.format(lang=code)
        if not path.is_file():
            raise DataError(f"data file {path} does not exist (needed by {task.name}/{lang})",
                            f"provide {template.format(lang='<code>')} for {code} under --data-dir, "
                            f"or use --data hub ({task.data.hub_id})")
        with open(path, encoding="utf-8", newline="") as f:
            columns[name] = [line.rstrip("\r\n") for line in f]
        if not columns[name]:
            raise DataError(f"{path} has no lines", "fix or replace the file")
    counts = {name: len(lines) for name, lines in columns.items()}
    if len(set(counts.values())) > 1:
        raise DataError(f"{task.name}/{lang}: parallel files are not aligned "
                        f"({', '.join(f'{sides[n]} {c} lines' for n, c in counts.items())})",
                        "use files with one segment per line, in the same order, for every language")
    names = list(columns)
    return [dict(zip(names, seg)) for seg in zip(*columns.values())]


def _hub_parallel(task: Task, config: str, split: str, sides: dict[str, str]) -> list[dict]:
    cols = {name: task.data.hub_field.format(lang=code) for name, code in sides.items()}
    rows = read_hub(task, config, split, tuple(cols.values()), "<code>")
    return [{name: row[col] for name, col in cols.items()} for row in rows]


def read_rows(path: Path, task: Task, fields: tuple[str, ...], columns: tuple[str, ...] = ()) -> list[dict]:
    """A JSON-lines file, or a headerless TSV when the task names its ``columns``."""
    if path.suffix == ".tsv" and columns:
        return read_tsv(path, task, columns)
    return read_jsonl(path, task, fields)


def read_tsv(path: Path, task: Task, columns: tuple[str, ...]) -> list[dict]:
    if not path.is_file():
        raise DataError(f"data file {path} does not exist",
                        f"provide {task.data.local.format(lang='<lang>')} under --data-dir, "
                        f"or use --data hub / bundled")
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            cells = line.split("\t")
            if len(cells) != len(columns):
                raise DataError(f"{path} line {lineno} has {len(cells)} tab-separated columns, "
                                f"expected {len(columns)} ({', '.join(columns)})",
                                "fix or replace the file")
            rows.append(dict(zip(columns, cells)))
    if not rows:
        raise DataError(f"{path} has no rows", "fix or replace the file")
    return rows


def read_fewshot(path: Path, task: Task, fs: FewShotSource, lang: str) -> list[dict]:
    if fs.extract is None:
        if not path.is_file():
            raise DataError(f"few-shot file {path} does not exist",
                            f"provide {fs.local.format(lang=lang)} next to the data (the {fs.split} split), "
                            f"or use --data hub")
        return read_jsonl(path, task, fs.fields)
    if not path.is_file():
        raise DataError(f"few-shot file {path} does not exist",
                        f"provide {fs.local} next to the data, or use --data hub")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(f"{path} is not valid JSON ({exc})", "fix or replace the file") from None
    rows = fs.extract(obj, lang)
    if not rows:
        raise DataError(f"{path} has no few-shot examples for {task.name}/{lang}", "fix or replace the file")
    return [check_row(r, task, f"{path} ({lang}) example {i}", fs.fields) for i, r in enumerate(rows)]


def read_jsonl(path: Path, task: Task, fields: tuple[str, ...] | None = None) -> list[dict]:
    if not path.is_file():
        raise DataError(f"data file {path} does not exist",
                        f"provide {task.data.local.format(lang='<lang>')} under --data-dir, "
                        f"or use --data hub / bundled")
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{path} line {lineno} is not valid JSON ({exc.msg})",
                                "fix or replace the file (one JSON object per line)") from None
            rows.append(check_row(row, task, f"{path} line {lineno}", fields))
    if not rows:
        raise DataError(f"{path} has no rows", "fix or replace the file")
    return rows


def check_row(row: object, task: Task, where: str, fields: tuple[str, ...] | None = None) -> dict:
    fields = task.data.fields if fields is None else fields
    if not isinstance(row, dict):
        raise DataError(f"{where} is not a JSON object", "fix or replace the file")
    missing = [f for f in fields if f not in row]
    if missing:
        raise DataError(f"{where} lacks field(s) {', '.join(missing)} required by {task.name}",
                        f"each row needs {', '.join(fields)}")
    return row


def read_hub(task: Task, config: str, split: str, fields: tuple[str, ...], lang: str | None = None) -> list[dict]:
    """Rows of one hub config and split; a failure names the local file that would replace it
    (``lang``: the task language, when the local layout is per language, not per config)."""
    try:
        import datasets
    except ImportError:
        raise DataError("loading from the hub needs the 'datasets' package",
                        "pip install datasets") from None
    # huggingface_hub logs each retry of an unreachable hub as a warning line; the outcome is
    # reported in one line below, and its lines would only bury it.
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(max(level, logging.ERROR))
    try:
        try:
            ds = datasets.load_dataset(task.data.hub_id, config, split=split)
        except RuntimeError as exc:
            # Script-based hub datasets (cambridgeltl/xcopa, juletxara/xstory_cloze) are no
            # longer run by `datasets`; the hub's parquet export of the same data is.
            if "script" not in str(exc).lower():
                raise
            ds = datasets.load_dataset(task.data.hub_id, config, split=split,
                                       revision="refs/convert/parquet")
    except hub_failures() as exc:
        why = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}"
        if hub_offline():
            why = f"offline mode is on ({why})"
        raise DataError(f"cannot load {task.data.hub_id} ({config}, {split}) from the hub: {why}",
                        f"use a local copy: --data-dir DIR with {task.data.local.format(lang=lang or config)}") from None
    finally:
        hub_log.setLevel(level)
    return [check_row(dict(r), task, f"{task.data.hub_id} {split} row {i}", fields) for i, r in enumerate(ds)]
