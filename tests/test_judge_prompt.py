"""Judge prompt files: golden rendered text, pinned file hashes, verdict parsing as data,
strict loading with one-line errors."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from glotbench.harness.core.errors import GlotbenchError
from glotbench.harness.core.records import ChatMessage
from glotbench.harness.judge.prompt import (
    DEFAULT_PROMPT,
    PROMPTS_DIR,
    Verdict,
    load_prompt,
    prompt_names,
)

# Editing a prompt file changes its hash: update it here deliberately, with a version bump.
SHA256 = {
    "aya101_pairwise": "f729b7ea5f2a6c703f23ef117496cd080ea3ff383922ef4a54dede1aac49458b",
    "arena_hard_v0.1": "6aebc98efc4749a3e400f396e5cc6f8bcb5aef0a1ab2dc150faeef2a9b19a8e9",
}
FIXTURE = dict(instruction="Write a haiku about rain.", answer_a="Rain taps the window {soft}",
               answer_b="Clouds weep", language="English")

AYA_SYSTEM = "You are a helpful following assistant whose goal is to select the preferred (least wrong) output for a given instruction in English."
AYA_USER = """\
Which of the following answers is the best one for given instruction in English. A good answer should follow these rules:
1) It should be in English
2) It should answer the request in the instruction
3) It should be factually and semantically comprehensible
4) It should be grammatically correct and fluent.
Instruction: Write a haiku about rain.
Answer (A): Rain taps the window {soft}
Answer (B): Clouds weep
FIRST provide a one-sentence comparison of the two answers, explaining which you prefer and why. SECOND, on a new line, state only 'Answer (A)' or 'Answer (B)' to indicate your choice. If the both answers are equally good or bad, state 'TIE'. Your response should use the format:
Comparison: <one-sentence comparison and explanation>
Preferred: <'Answer (A)' or 'Answer (B)' or 'TIE'>"""

ARENA_SYSTEM = """\
Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the user prompt displayed below. You will be given assistant A's answer and assistant B's answer. Your job is to evaluate which assistant's answer is better.

Begin your evaluation by generating your own answer to the prompt. You must provide your answers before judging any answers.

When evaluating the assistants' answers, compare both assistants' answers with your answer. You must identify and correct any mistakes or inaccurate information.

Then consider if the assistant's answers are helpful, relevant, and concise. Helpful means the answer correctly responds to the prompt or follows the instructions. Note when user prompt has any ambiguity or more than one interpretation, it is more helpful and appropriate to ask for clarifications or more information from the user than providing an answer based on assumptions. Relevant means all parts of the response closely connect or are appropriate to what is being asked. Concise means the response is clear and not verbose or excessive.

Then consider the creativity and novelty of the assistant's answers when needed. Finally, identify any missing important information in the assistants' answers that would be beneficial to include when responding to the user prompt.

After providing your explanation, you must output only one of the following choices as your final verdict with a label:

1. Assistant A is significantly better: [[A>>B]]
2. Assistant A is slightly better: [[A>B]]
3. Tie, relatively the same: [[A=B]]
4. Assistant B is slightly better: [[B>A]]
5. Assistant B is significantly better: [[B>>A]]

Example output: "My final verdict is tie: [[A=B]]"."""
ARENA_USER = """\
<|User Prompt|>
Write a haiku about rain.

<|The Start of Assistant A's Answer|>
Rain taps the window {soft}
<|The End of Assistant A's Answer|>

<|The Start of Assistant B's Answer|>
Clouds weep
<|The End of Assistant B's Answer|>"""


def test_every_bundled_prompt_is_pinned():
    assert prompt_names() == sorted(SHA256)
    assert DEFAULT_PROMPT in prompt_names()


@pytest.mark.parametrize("name, system, user", [("aya101_pairwise", AYA_SYSTEM, AYA_USER),
                                                ("arena_hard_v0.1", ARENA_SYSTEM, ARENA_USER)])
def test_golden_render_and_pinned_hash(name, system, user):
    prompt = load_prompt(name)
    assert prompt.render(**FIXTURE) == (ChatMessage("system", system), ChatMessage("user", user))
    assert prompt.sha256 == SHA256[name]
    assert (prompt.name, prompt.version) == (name, 1)


def test_block_scalars_round_trip_without_trailing_newline():
    for name in prompt_names():
        p = load_prompt(name)
        for text in (p.system, p.template):
            assert not text.endswith("\n") and text == text.strip()
    # The Aya slip of the transcription is fixed: Answer (B) shows the second completion.
    aya = load_prompt("aya101_pairwise")
    assert "Answer (A): {answer_a}\nAnswer (B): {answer_b}\n" in aya.template
    assert aya.template.count("{language}") == 2 and aya.system.count("{language}") == 1
    arena = load_prompt("arena_hard_v0.1")
    assert "{language}" not in arena.system + arena.template


def test_answers_are_inserted_verbatim():
    prompt = load_prompt("aya101_pairwise")
    _, user = prompt.render("Say {language} {0} {}", "literal {answer_b} and {instruction}",
                            "x}{y", "Français")
    assert "Instruction: Say {language} {0} {}\n" in user.content
    assert "Answer (A): literal {answer_b} and {instruction}\n" in user.content
    assert "Answer (B): x}{y\n" in user.content
    assert user.content.startswith("Which of the following answers is the best one for given "
                                   "instruction in Français.")


def test_empty_language_is_rejected_only_where_used():
    with pytest.raises(GlotbenchError, match="needs a language"):
        load_prompt("aya101_pairwise").render("q", "a", "b", " ")
    assert load_prompt("arena_hard_v0.1").render("q", "a", "b", "")[1].content.count("\n") == 9


A, B, TIE = "A", "B", "tie"
AYA_CASES = [
    ("Comparison: A rhymes.\nPreferred: Answer (A)", Verdict(A, "Answer (A)")),
    ("Comparison: x\nPreferred: Answer (B)", Verdict(B, "Answer (B)")),
    ("Preferred: TIE", Verdict(TIE, "TIE")),
    ("Preferred: tie", Verdict(TIE, "TIE")),
    ("preferred: answer (b)", Verdict(B, "Answer (B)")),
    ("Preferred: \u2018Answer (A)\u2019", Verdict(A, "Answer (A)")),
    ("Preferred: \u201cAnswer (B)\u201d", Verdict(B, "Answer (B)")),
    ("Preferred: 'TIE'", Verdict(TIE, "TIE")),
    ('Preferred: "Answer (A)"', Verdict(A, "Answer (A)")),
    ("**Preferred:** Answer (B)", Verdict(B, "Answer (B)")),
    ("Preferred**: **Answer (A)**", Verdict(A, "Answer (A)")),
    ("**Preferred: Answer (B)**", Verdict(B, "Answer (B)")),
    ("Preferred: `Answer (A)`", Verdict(A, "Answer (A)")),
    ("Preferred: Answer (A).", Verdict(A, "Answer (A)")),
    ("Preferred: 'Answer (B)'.", Verdict(B, "Answer (B)")),
    ("  - Preferred: TIE  ", Verdict(TIE, "TIE")),
    ("Preferred: Answer (A)\nOn reflection:\nPreferred: Answer (B)", Verdict(B, "Answer (B)")),
    ("Preferred: Answer (A)\nPreferred: Answer (C)", None),  # the last line decides
    ("Comparison: both fine.", None),
    ("", None),
    ("Preferred: Answer (C)", None),
    ("Preferred: A", None),
    ("Preferred: (A)", None),
    ("Preferred: Answer (A) because it rhymes", None),
    ("Preferred:", None),
    ("I Preferred: Answer (A)", None),
    ("Comparison: A is better. Answer (A)", None),
]
ARENA_CASES = [
    ("My final verdict is: [[A>>B]]", Verdict(A, "A>>B")),
    ("[[A>B]]", Verdict(A, "A>B")),
    ("My final verdict is tie: [[A=B]].", Verdict(TIE, "A=B")),
    ("**[[B>A]]**", Verdict(B, "B>A")),
    ("[[B>>A]]", Verdict(B, "B>>A")),
    ("Clearly [[B>A]] ... so my final verdict is [[B>A]]", Verdict(B, "B>A")),
    ("[[A>B]] at first, but finally [[B>A]]", None),
    ("[[A>>B]] or maybe [[A>B]]", None),  # strong and weak disagree: ambiguous, as arena-hard
    ("no label here", None),
    ("[[a>b]]", None),
    ("[[A<B]]", None),  # matches the regex but is not a label
    ("[A>B]", None),
    ("Preferred: Answer (A)", None),
]


@pytest.mark.parametrize("text, expected", AYA_CASES)
def test_parse_preferred_line(text, expected):
    assert load_prompt("aya101_pairwise").parse(text) == expected


@pytest.mark.parametrize("text, expected", ARENA_CASES)
def test_parse_bracket_labels(text, expected):
    assert load_prompt("arena_hard_v0.1").parse(text) == expected


def test_strong_and_weak_labels_share_a_position_but_keep_their_label():
    arena = load_prompt("arena_hard_v0.1")
    strong, weak = arena.parse("[[A>>B]]"), arena.parse("[[A>B]]")
    assert strong.position == weak.position == "A" and (strong.label, weak.label) == ("A>>B", "A>B")
    assert dict(arena.labels) == {"A>>B": "A", "A>B": "A", "A=B": "tie", "B>A": "B", "B>>A": "B"}


def test_load_by_path_hashes_the_raw_bytes(tmp_path):
    src = PROMPTS_DIR / "aya101_pairwise.yaml"
    copy = tmp_path / "my_judge.yaml"
    shutil.copyfile(src, copy)
    loaded = load_prompt(str(copy))
    assert loaded.sha256 == hashlib.sha256(copy.read_bytes()).hexdigest() == SHA256["aya101_pairwise"]
    assert loaded.path == str(copy)
    assert loaded.render(**FIXTURE) == load_prompt("aya101_pairwise").render(**FIXTURE)


def _write(tmp_path: Path, edit) -> str:
    data = yaml.safe_load((PROMPTS_DIR / "aya101_pairwise.yaml").read_text(encoding="utf-8"))
    edit(data)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return str(path)


def _one_line_error(target: str, *fragments: str) -> str:
    with pytest.raises(GlotbenchError) as info:
        load_prompt(target)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_unknown_name_lists_names_and_a_close_match():
    _one_line_error("aya101_pairwse", "unknown judge prompt 'aya101_pairwse'",
                    "did you mean 'aya101_pairwise'?", "arena_hard_v0.1, aya101_pairwise")


def test_path_that_is_not_a_file(tmp_path):
    _one_line_error(str(tmp_path), "is not a file")
    _one_line_error(str(tmp_path / "absent.yaml"), "absent.yaml", "is not a file")


def test_unknown_key_names_key_and_file(tmp_path):
    path = _write(tmp_path, lambda d: d.update(temperature=0))
    _one_line_error(path, "unknown key 'temperature'", "edited.yaml")


@pytest.mark.parametrize("edit, fragments", [
    (lambda d: d["template"].replace("{answer_b}", "[B]"), ("lacks placeholder(s) {answer_b}",)),
    (lambda d: d["template"].replace("{instruction}", "{question_1}"), ("unknown placeholder {question_1}",)),
])
def test_placeholder_errors(tmp_path, edit, fragments):
    path = _write(tmp_path, lambda d: d.update(template=edit(d)))
    _one_line_error(path, "edited.yaml", *fragments)


@pytest.mark.parametrize("edit, fragment", [
    (lambda d: d.pop("labels"), "missing key(s) labels"),
    (lambda d: d.update(version="1"), "version must be an integer"),
    (lambda d: d.update(version=True), "version must be an integer"),
    (lambda d: d.update(parser="preferred"), "unknown parser 'preferred' (did you mean 'preferred_line'?)"),
    (lambda d: d.update(labels={"Answer (A)": "first"}), "maps to 'first'"),
    (lambda d: d.update(labels={}), "labels must be a non-empty mapping"),
    (lambda d: d.update(system="Judge {instruction}"), "system has unknown placeholder {instruction}"),
    (lambda d: d.update(template=""), "template must be a non-empty string"),
    (lambda d: d.update(parser="bracket_labels", labels={"A>>B": "A", "Answer (A)": "A"}),
     "can never match"),
    (lambda d: d.update(labels={"TIE": "tie", "tie": "tie"}), "differ only by case"),
])
def test_schema_errors(tmp_path, edit, fragment):
    _one_line_error(_write(tmp_path, edit), "edited.yaml", fragment)


@pytest.mark.parametrize("text, fragment", [
    ("name: [unclosed\n", "invalid YAML"),
    ("- a list\n", "expected a mapping"),
    ("name: a\nname: b\n", "duplicate key 'name'"),
])
def test_malformed_files(tmp_path, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    _one_line_error(str(path), "bad.yaml", fragment)


def test_bundled_name_must_match_file_stem(tmp_path, monkeypatch):
    from glotbench.harness.judge import prompt as jp

    shutil.copyfile(PROMPTS_DIR / "aya101_pairwise.yaml", tmp_path / "renamed.yaml")
    monkeypatch.setattr(jp, "PROMPTS_DIR", tmp_path)
    _one_line_error("renamed", "differs from the file name 'renamed'")
