"""``glotbench import-answers``: another tool's completions as a glotbench run directory, so
that ``glotbench judge`` can compare a model with published answers (Arena-Hard's
gpt-4-0314 baseline, for one) without regenerating them.

Accepted JSON-lines formats, one completion per line:

- arena-hard-auto ``model_answer``: ``{"uid", "model", "messages": [{"role": "user",
  "content": prompt}, {"role": "assistant", "content": {"answer": text}}]}``
  (older files: ``question_id`` and ``choices[0].turns[0].content``);
- plain: ``{"prompt_id", "response"}``.

Each completion is matched to the task's own data by prompt id (the bundled, ``--data-dir``
or hub copy, as ``glotbench run`` reads it); a prompt text that differs from the data, a
duplicate or an unknown id is an error, and every prompt of the data must be answered
(or ``--limit`` the first N). The run's provenance names the imported file and its sha256.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from glotbench import harness
from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.hashing import json_sha256
from glotbench.harness.store.rundir import RunWriter, check_new
from glotbench.harness.taskapi import data as data_mod
from glotbench.harness.taskapi.languages import task_codes
from glotbench.harness.taskapi.registry import get_task


def _answer(row: dict, where: str) -> tuple[str, str, str | None]:
    """(prompt id, response, prompt text or None) of one line in either format."""
    if "prompt_id" in row and "response" in row:
        return str(row["prompt_id"]), str(row["response"]), row.get("instruction")
    pid = row.get("uid", row.get("question_id"))
    try:
        if "messages" in row:
            msgs = row["messages"]
            user = next(m["content"] for m in msgs if m["role"] == "user")
            content = msgs[-1]["content"]
            text = content["answer"] if isinstance(content, dict) else content
            return str(pid), str(text), user
        return str(pid), str(row["choices"][0]["turns"][0]["content"]), None
    except (KeyError, IndexError, TypeError, StopIteration):
        raise GlotbenchError(f"{where} is neither an arena-hard answer nor {{prompt_id, response}}",
                             "see glotbench import-answers --help for the accepted formats") from None


def read_answers(file: Path) -> tuple[dict[str, tuple[str, str | None]], set[str | None], bytes]:
    """The completions of a JSON-lines answer file in either format: ``{prompt id: (response,
    prompt text or None)}``, the model names the lines state, and the file's bytes (for its
    hash). Not UTF-8, not JSON, neither format, or a second answer to one prompt: one-line errors."""
    if not Path(file).is_file():
        raise GlotbenchError(f"answer file {file} does not exist", "pass a JSON-lines file of completions")
    raw = Path(file).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise GlotbenchError(f"{file} is not UTF-8 text (line {line}, byte {exc.start}: {raw[exc.start:exc.start + 1]!r})",
                             "convert it to UTF-8 JSON lines (e.g. iconv -t UTF-8)") from None
    answers: dict[str, tuple[str, str | None]] = {}
    names: set[str | None] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{file} line {lineno}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise GlotbenchError(f"{where} is not valid JSON ({exc})", "fix or replace the file") from None
        if not isinstance(row, dict):
            raise GlotbenchError(f"{where} is not a JSON object", "fix or replace the file")
        pid, response, prompt = _answer(row, where)
        if pid in answers:
            raise GlotbenchError(f"{where}: a second answer to prompt {pid}", "keep one answer per prompt")
        answers[pid] = (response, prompt)
        names.add(row.get("model"))
    return answers, names, raw


def task_lang(task, lang: str) -> str:
    """The task's own code for ``--lang`` (any code of the language table: ``fr`` is Dolly's ``fra``)."""
    own = task_codes(task, lang)
    if len(own) == 1:
        return own[0]
    if not own:
        task.check_langs([lang])  # raises, naming the task's languages and a close match
    raise GlotbenchError(f"--lang {lang} is several languages of {task.name}: {', '.join(own)}",
                         "pass one of them")


def import_answers(file: Path, task_name: str, lang: str, output: Path, *, model: str | None = None,
                   data: str = "auto", data_dir: Path | None = None, limit: int | None = None) -> Path:
    task = get_task(task_name)
    if not task.judged:
        raise GlotbenchError(f"task {task_name!r} is not open-ended", "import answers for m_arenahard or dolly")
    lang = task_lang(task, lang)
    check_new(Path(output))
    answers, names, raw = read_answers(Path(file))
    loaded = data_mod.load(task, lang, data, data_dir)
    samples = loaded.samples[:limit] if limit else loaded.samples
    records = []
    for sample in samples:
        pid = str(sample.fields[task.id_field])
        if pid not in answers:
            raise GlotbenchError(f"{file} has no answer to {task_name}/{lang} prompt {pid}",
                                 "answer every prompt, or import the first N with --limit N")
        text, prompt_text = answers.pop(pid)
        instruction = task.prompt(sample).question
        if prompt_text is not None and prompt_text.strip() != instruction.strip():
            raise GlotbenchError(f"{file}: the prompt of {pid} differs from {task_name}/{lang} in {loaded.source}",
                                 "import answers to the same prompts (and language) as the task's data")
        records.append({"doc_id": sample.doc_id, "prompt_id": pid, "instruction": instruction,
                        "response": text, "finish": None, "n_tokens": None, "parsed": bool(text.strip())})
    if answers and not limit:
        extra = next(iter(answers))
        raise GlotbenchError(f"{file} answers {len(answers)} prompts that are not in {task_name}/{lang} "
                             f"(e.g. {extra})", "check --task and --lang")
    model = model or (names.pop() if len(names) == 1 and None not in names else Path(file).stem)
    writer = RunWriter(Path(output))
    try:
        writer.write_samples(task_name, lang, records)
        unparsed = sum(not r["parsed"] for r in records)
        run = {
            "format": "glotbench-run/1",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": {"imported": str(file), "tasks": [task_name], "langs": [lang], "limit": limit},
            "results": {task_name: {lang: {"n": len(records), "unparsed": unparsed}}},
            "averages": {},
            "provenance": {
                "glotbench_version": harness.__version__,
                "model": {"backend": "imported", "name": model},
                "imported": {"file": str(file), "sha256": hashlib.sha256(raw).hexdigest()},
                "tasks": {task_name: {"version": task.version, "metrics": [], "prompting": {"imported": True},
                                      "languages": {lang: {"data_source": loaded.source,
                                                           "data_sha256": loaded.sha256,
                                                           "n_available": len(loaded.samples),
                                                           "prompt_sha256": json_sha256([r["instruction"] for r in records])}}}},
            },
        }
        return writer.finish(run)
    except BaseException:
        writer.abort()
        raise
