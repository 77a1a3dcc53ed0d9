"""The README is a front page: its quick start and .ci/run must not drift apart, and it
stays short enough to read in five minutes (reference material lives in docs/)."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAX_LINES = 250


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


def section(text: str, title: str) -> str:
    assert f"\n## {title}\n" in text, f"the README has no '## {title}' section"
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def ci_lines() -> list[str]:
    return [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]


def test_quick_start_has_two_setup_commands_and_ci_runs_them():
    readme = (REPO / "README.md").read_text()
    setup = bash_blocks(section(readme, "Quick start"))[0]
    assert len(setup) == 2 and setup[1] == "glotbench run"
    assert setup[0] in ci_lines(), "the install command of the README must be the one .ci/run runs"


def test_the_test_command_is_the_one_ci_runs():
    readme = (REPO / "README.md").read_text()
    tests = bash_blocks(section(readme, "Tests"))[0]
    assert tests == ["python -m pytest -q"] and tests[0] in ci_lines()


def test_the_readme_is_a_front_page():
    n = len((REPO / "README.md").read_text().splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines (at most {MAX_LINES}): move reference material to docs/"
