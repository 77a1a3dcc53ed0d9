"""The docs cannot drift from the code.

- Every ``glotbench …`` command line in README.md and docs/*.md is parsed by the real
  argument parser (``build_parser()``): a flag, verb or choice that does not exist fails.
  Command lines in code blocks must be complete (required arguments present); commands
  quoted inline in prose may be fragments (``glotbench judge``), but their flags must exist.
- The file map in docs/architecture.md equals the tree: every path listed exists, every
  module of harness/, tasks/ and training/ is listed.
- Relative links between the docs resolve, anchors included; docs/README.md indexes every
  page. Whatever docs/*.md exist are covered, so a new page is checked from the start.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import re
import shlex
from pathlib import Path

import pytest

from glotbench.harness.cli.main import build_parser

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
MAPPED = ("harness", "tasks", "training")

FENCE = re.compile(r"^\s*(```|~~~)")
PLACEHOLDER = re.compile(r"<[^<>\s][^<>]*>")  # <dir>, <model directory or hub id>, <verb>
WRAPPERS = {"time", "env", "nohup"}


def ids(paths):
    return [str(p.relative_to(REPO)) for p in paths]


# ---------------------------------------------------------------- command lines

def split_markdown(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(code lines, prose lines) as (line number, text); code = inside fenced blocks."""
    code, prose, inside = [], [], False
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            inside = not inside
        elif inside:
            code.append((n, line))
        else:
            prose.append((n, line))
    return code, prose


def logical_lines(code: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Join shell continuations (a trailing backslash) and drop console prompts (``$ ``)."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for n, line in code:
        text = re.sub(r"^\s*\$\s+", "", line) if pending is None else line
        if pending is not None:
            n, text = pending[0], pending[1] + " " + text.strip()
        if text.rstrip().endswith("\\"):
            pending = (n, text.rstrip()[:-1])
        else:
            pending = None
            out.append((n, text))
    if pending is not None:
        out.append(pending)
    return out


def inline_spans(prose: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Inline code spans of the prose (a span may wrap over lines within a paragraph)."""
    spans, para, start = [], [], 0
    for n, line in [*prose, (0, "")]:
        if line.strip():
            start = start or n
            para.append(line)
            continue
        text = "\n".join(para)
        for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", text):
            spans.append((start + text.count("\n", 0, m.start()), " ".join(m.group(1).split())))
        para, start = [], 0
    return spans


def glotbench_args(text: str) -> list[list[str]]:
    """The argument lists of every glotbench invocation in one shell line: comments,
    redirections, pipes, ``&&``, environment assignments and ``<placeholders>`` handled."""
    text = text.replace("\\|", "|")  # a pipe escaped inside a Markdown table
    text = PLACEHOLDER.sub("PLACEHOLDER", text)
    text = re.sub(r"(?<!\S)\d*>&\d+", " ", text)  # 2>&1
    text = re.sub(r"(?<!\S)\d+(?=>)", "", text)  # 2>file → >file
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    segments, current, skip = [], [], False
    for tok in tokens:
        if skip:
            skip = False
        elif tok and all(c in lexer.punctuation_chars for c in tok):
            if "<" in tok or ">" in tok:
                skip = True  # a redirection and its target
            else:
                segments.append(current)
                current = []
        else:
            current.append(tok)
    segments.append(current)
    out = []
    for seg in segments:
        while seg and (re.match(r"^[A-Za-z_]\w*=", seg[0]) or seg[0] in WRAPPERS):
            seg = seg[1:]
        if seg[:1] == ["glotbench"]:
            args = seg[1:]
        elif seg[:3] in (["python", "-m", "glotbench.harness.cli"], ["python3", "-m", "glotbench.harness.cli"]):
            args = seg[3:]
        else:
            continue
        # Optional parts written as [--flag VALUE] and ellipses (RUN …) are documentation.
        args = [a.removeprefix("[").removesuffix("]") for a in args]
        out.append([a for a in args if a and a.strip(".…") != ""])
    return out


def all_parsers(parser: argparse.ArgumentParser):
    yield parser
    # argparse has no public way to list sub-parsers; _actions has been stable since 2.7.
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from all_parsers(sub)


@functools.cache
def parser(complete: bool) -> argparse.ArgumentParser:
    p = build_parser()
    for each in all_parsers(p):
        each.allow_abbrev = False  # an abbreviation works but is not the documented flag
        if not complete:
            for action in each._actions:
                action.required = False
    return p


def parse_error(args: list[str], complete: bool) -> str | None:
    """argparse's complaint about ``glotbench ARGS``, or None when it parses."""
    if args[:1] == ["PLACEHOLDER"]:
        return None  # glotbench <verb> --help
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser(complete).parse_args(args)
        except SystemExit as exc:
            if exc.code not in (0, None):
                return err.getvalue().strip().splitlines()[-1]
    return None


def command_problems(text: str) -> tuple[int, list[str]]:
    """(number of glotbench commands found, problems) for one Markdown text."""
    code, prose = split_markdown(text)
    found, problems = 0, []
    for complete, lines in ((True, logical_lines(code)), (False, inline_spans(prose))):
        for n, line in lines:
            try:
                invocations = glotbench_args(line)
            except ValueError as exc:  # unbalanced quotes: a problem only in a glotbench command
                if re.search(r"(^|[;&|(]\s*)([A-Za-z_]\w*=\S*\s+)*glotbench(\s|$)", line.strip()):
                    problems.append(f"line {n}: cannot split {line!r}: {exc}")
                continue
            for args in invocations:
                found += 1
                if error := parse_error(args, complete):
                    problems.append(f"line {n}: glotbench {' '.join(args)}\n    → {error}")
    return found, problems


@pytest.mark.parametrize("page", PAGES, ids=ids(PAGES))
def test_every_glotbench_command_parses(page):
    found, problems = command_problems(page.read_text(encoding="utf-8"))
    assert not problems, f"{page.relative_to(REPO)}: commands the CLI rejects:\n" + "\n".join(problems)
    if page.name == "README.md" and page.parent == REPO:
        assert found >= 10, "the README's commands were not found: is the extraction broken?"


def test_the_command_check_rejects_what_the_cli_rejects():
    good = "\n".join([
        "```bash",
        "glotbench run --tasks xcopa,xwinograd \\",
        "    --limit 50          # a comment",
        "GLOTBENCH_REQUEST_CACHE=/tmp/c.sqlite glotbench run --model hf:<dir> 2>&1 | tee run.log",
        "glotbench table results/* --format csv > scores.csv && echo done",
        "$ glotbench judge --a RUN_A --b RUN_B [RUN_C …]",
        "```",
        "Inline: `glotbench judge` and `glotbench <verb> --help`, `glotbench gate --sequential`.",
    ])
    assert command_problems(good) == (7, [])
    bad = {
        "```bash\nglotbench run --no-such-flag\n```": "unrecognized arguments: --no-such-flag",
        "```\nglotbench run --tasks x \\\n  --limt 5\n```": "unrecognized arguments: --limt",
        "```bash\nglotbench run --no-prog\n```": "unrecognized arguments: --no-prog",  # no abbreviations
        "```bash\nglotbench judge --b results/b\n```": "required: --a",
        "```bash\nglotbench frobnicate\n```": "invalid choice: 'frobnicate'",
        "Prose `glotbench table RUN --format xml`.": "invalid choice: 'xml'",
        "Prose `glotbench merge cfg.yaml --bogus`.": "unrecognized arguments: --bogus",
    }
    for text, message in bad.items():
        found, problems = command_problems(text)
        assert found == 1 and len(problems) == 1 and message in problems[0], (text, problems)


# Verbs whose every flag this project's reference pages document (the judge, gate, table and
# report pages document their own verbs).
FLAG_PAGES = {"run": "running.md", "tasks": "running.md", "import-answers": "running.md",
              "compare": "tasks.md", "merge": "merging.md"}


def verb_parser(verb: str) -> argparse.ArgumentParser:
    return next(p for p in all_parsers(build_parser()) if p.prog == f"glotbench {verb}")


@pytest.mark.parametrize("verb", sorted(FLAG_PAGES))
def test_every_flag_is_documented(verb):
    page = DOCS / FLAG_PAGES[verb]
    text = page.read_text(encoding="utf-8")
    flags = [opt for action in verb_parser(verb)._actions for opt in action.option_strings
             if opt.startswith("--") and opt != "--help" and (opt != "--debug" or verb == "run")]
    missing = [flag for flag in flags if f"`{flag}" not in text]
    assert not missing, f"docs/{page.name} does not document glotbench {verb} {', '.join(missing)}"


# ---------------------------------------------------------------- the file map

def map_entries(text: str) -> tuple[dict[str, int], list[str]]:
    """Paths of the file map (the first code block under "## File map") → line numbers,
    and problems with its shape (indentation, missing descriptions, duplicates)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "## File map"), None)
    if start is None:
        return {}, ["docs/architecture.md has no '## File map' section"]
    code, inside, first = [], False, None
    for i in range(start + 1, len(lines)):
        if FENCE.match(lines[i]):
            if inside:
                break
            inside = True
        elif inside:
            code.append((i + 1, lines[i]))
    entries: dict[str, int] = {}
    problems, stack = [], []
    for n, line in code:
        if not line.strip():
            continue
        first = first or n
        indent = len(line) - len(line.lstrip(" "))
        name, _, description = line.strip().partition(" ")
        depth = indent // 2
        if indent % 2 or depth > len(stack) or (depth and not stack[depth - 1].endswith("/")):
            problems.append(f"line {n}: {name!r} is not indented two spaces under a directory")
            continue
        if not description.strip():
            problems.append(f"line {n}: {name!r} has no description")
        stack = stack[:depth] + [name]
        path = "".join(stack)
        if path in entries:
            problems.append(f"line {n}: {path} is listed twice")
        entries[path] = n
    return entries, problems


def map_problems(text: str, root: Path) -> list[str]:
    entries, problems = map_entries(text)
    for path, n in entries.items():
        target = root / path
        if not (target.is_dir() if path.endswith("/") else target.is_file()):
            problems.append(f"line {n}: {path} does not exist")
    for top in MAPPED:
        for module in sorted((root / top).rglob("*.py")):
            rel = module.relative_to(root).as_posix()
            if "/data/" in rel:
                continue
            package = rel.rsplit("/", 1)[0] + "/"
            if package not in entries:
                problems.append(f"{package} (package of {rel}) is not in the file map")
            elif module.name != "__init__.py" and rel not in entries:
                problems.append(f"{rel} is not in the file map")
    return problems


def test_the_file_map_matches_the_tree():
    problems = map_problems((DOCS / "architecture.md").read_text(encoding="utf-8"), REPO)
    assert not problems, "docs/architecture.md, file map:\n" + "\n".join(problems)


def test_the_file_map_check_finds_missing_and_stale_entries(tmp_path):
    for rel in ("harness/__init__.py", "harness/core/__init__.py", "harness/core/errors.py",
                "harness/core/new.py", "tasks/__init__.py", "training/__init__.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    text = "\n".join(["## File map", "```", "harness/    engine", "  core/     foundations",
                      "    errors.py   errors", "    gone.py     removed long ago", "tasks/   catalogue",
                      "training/", "```"])
    problems = map_problems(text, tmp_path)
    assert any("harness/core/new.py is not in the file map" in p for p in problems)
    assert any("harness/core/gone.py does not exist" in p for p in problems)
    assert any("'training/' has no description" in p for p in problems)
    assert len(problems) == 3, problems


# ---------------------------------------------------------------- links and the index

def slugs(text: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown text."""
    code_lines = {n for n, _ in split_markdown(text)[0]}
    seen: dict[str, int] = {}
    out = set()
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)
        if not m or n in code_lines:
            continue
        heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def links(text: str) -> list[tuple[int, str]]:
    """(line, target) of every Markdown link and image outside code."""
    out = []
    for n, line in split_markdown(text)[1]:
        line = re.sub(r"`[^`]*`", "", line)
        out += [(n, m.group(1)) for m in re.finditer(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", line)]
    return out


@pytest.mark.parametrize("page", PAGES, ids=ids(PAGES))
def test_links_resolve(page):
    text = page.read_text(encoding="utf-8")
    broken = []
    for n, target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"line {n}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in slugs(dest.read_text(encoding="utf-8")):
            broken.append(f"line {n}: {target} (no heading #{anchor} in {dest.name})")
    assert not broken, f"{page.relative_to(REPO)}: broken links:\n" + "\n".join(broken)


def test_the_docs_index_lists_every_page():
    index = DOCS / "README.md"
    linked = {(DOCS / t.partition("#")[0]).resolve() for _, t in links(index.read_text(encoding="utf-8"))}
    missing = [p.name for p in DOCS.glob("*.md") if p != index and p.resolve() not in linked]
    assert not missing, f"docs/README.md does not link {', '.join(sorted(missing))}"
    readme = {t for _, t in links((REPO / "README.md").read_text(encoding="utf-8"))}
    assert "docs/README.md" in readme, "the README must link the docs index"
