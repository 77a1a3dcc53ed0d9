"""The README's quick start and .ci/run must not drift apart."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def bash_blocks(text: str) -> list[list[str]]:
    blocks, inside = [], False
    for line in text.splitlines():
        if line.startswith("```bash"):
            blocks.append([])
            inside = True
        elif line.startswith("```"):
            inside = False
        elif inside:
            blocks[-1].append(line.strip())
    return blocks


def test_quick_start_has_two_setup_commands_and_ci_runs_them():
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    setup, tests = bash_blocks(quick)[:2]
    assert len(setup) == 2 and setup[1] == "glotbench run"
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert setup[0] in ci, "the install command of the README must be the one .ci/run runs"
    assert tests == ["python -m pytest -q"] and tests[0] in ci
