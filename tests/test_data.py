"""Data loading: local directories, provenance strings and hashes, malformed files, the hub loader.

The hub loader is exercised for real, offline: ``datasets.load_dataset`` is pointed at a
temporary directory laid out like a hub dataset repository (a README with ``configs``
front matter plus the data files), which is what a hub id resolves to after download.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import pytest

from glotbench.harness.core.errors import DataError, GlotbenchError
from glotbench.harness.taskapi.data import BUNDLED_DIR, available, load, local_file, read_hub
from glotbench.harness.taskapi.registry import get_task

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="module")
def xcopa():
    return get_task("xcopa")


def copy_local(task, langs: list[str], root: Path) -> Path:
    """Copy bundled files into ``root`` in the --data-dir (= ../shared/data) layout."""
    for lang in langs:
        dest = local_file(task, lang, root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local_file(task, lang, BUNDLED_DIR), dest)
    return root


def rows(loaded) -> list[dict]:
    return [dict(s.fields) for s in loaded.samples]


# --- local data directories -------------------------------------------------------------


def test_local_dir_in_shared_data_layout(xcopa, tmp_path):
    root = copy_local(xcopa, ["et", "ht"], tmp_path)
    assert (root / "xcopa" / "et" / "test.et.jsonl").is_file()

    et = load(xcopa, "et", "local", data_dir=root)
    assert et.source == f"local:{root / 'xcopa' / 'et' / 'test.et.jsonl'}"
    assert len(et.samples) == 500
    assert [s.doc_id for s in et.samples] == list(range(500))
    assert {s.lang for s in et.samples} == {"et"}

    bundled = load(xcopa, "et", "bundled")
    assert bundled.source == "bundled:xcopa/et/test.et.jsonl"
    assert rows(et) == rows(bundled)
    assert et.sha256 == bundled.sha256  # same rows, same hash, wherever they were read from

    ht = load(xcopa, "ht", "local", data_dir=root)
    assert ht.sha256 != et.sha256
    # "auto" with a data directory reads it
    assert load(xcopa, "ht", data_dir=root).source == ht.source


def test_sha256_is_stable_and_sensitive(xcopa, tmp_path):
    root = copy_local(xcopa, ["et"], tmp_path)
    path = local_file(xcopa, "et", root)
    first = load(xcopa, "et", "local", data_dir=root).sha256
    assert len(first) == 64
    assert load(xcopa, "et", "local", data_dir=root).sha256 == first

    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    row = json.loads(lines[123])
    row["premise"] = row["premise"].replace("a", "ä", 1)  # one character in one row
    assert json.loads(lines[123])["premise"] != row["premise"]
    edited = lines[:123] + [json.dumps(row, ensure_ascii=False) + "\n"] + lines[124:]
    path.write_text("".join(edited), encoding="utf-8")
    assert load(xcopa, "et", "local", data_dir=root).sha256 != first


def test_sha256_hashes_rows_not_bytes(xcopa, tmp_path):
    # The hash is of the parsed rows, so a hub copy and a JSON-lines copy of the same data
    # agree; re-serialising a file (key order, escapes, spacing) must not change it.
    root = copy_local(xcopa, ["et"], tmp_path)
    path = local_file(xcopa, "et", root)
    first = load(xcopa, "et", "local", data_dir=root).sha256
    reserialised = [json.dumps(dict(reversed(json.loads(line).items())), indent=None)
                    for line in path.read_text(encoding="utf-8").splitlines()]
    path.write_text("\n".join(reserialised) + "\n", encoding="utf-8")
    assert load(xcopa, "et", "local", data_dir=root).sha256 == first


@pytest.mark.skipif(not (SHARED_DATA / "xcopa" / "et" / "test.et.jsonl").is_file(),
                    reason="no ../shared/data on this machine")
def test_real_shared_data_dir_matches_bundled(xcopa):
    shared = load(xcopa, "et", "local", data_dir=SHARED_DATA)
    assert shared.sha256 == load(xcopa, "et", "bundled").sha256


# --- malformed and missing data ----------------------------------------------------------


def write_lines(task, root: Path, lang: str, lines: list[str]) -> Path:
    path = local_file(task, lang, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


GOOD = json.dumps({"premise": "Mees avas kraani.", "choice1": "Tualett täitus veega.",
                   "choice2": "Kraanist voolas vett.", "question": "effect", "label": 1})


def test_malformed_json_names_file_and_line(xcopa, tmp_path):
    # line 3 is blank (skipped, but still counted), line 4 is broken
    path = write_lines(xcopa, tmp_path, "et", [GOOD, GOOD, "", '{"premise": "Mees avas kraani.",'])
    with pytest.raises(DataError) as exc:
        load(xcopa, "et", "local", data_dir=tmp_path)
    msg = str(exc.value)
    assert str(path) in msg
    assert "line 4" in msg
    assert "\n" not in msg


def test_row_missing_field_is_named(xcopa, tmp_path):
    row = json.loads(GOOD)
    del row["choice2"]
    path = write_lines(xcopa, tmp_path, "et", [GOOD, json.dumps(row)])
    with pytest.raises(DataError) as exc:
        load(xcopa, "et", "local", data_dir=tmp_path)
    msg = str(exc.value)
    assert "choice2" in msg and "choice1," not in exc.value.problem
    assert f"{path} line 2" in msg


def test_row_that_is_not_an_object(xcopa, tmp_path):
    write_lines(xcopa, tmp_path, "et", [GOOD, "[1, 2]"])
    with pytest.raises(DataError, match="line 2 is not a JSON object"):
        load(xcopa, "et", "local", data_dir=tmp_path)


def test_empty_file(xcopa, tmp_path):
    write_lines(xcopa, tmp_path, "et", ["", "  "])
    with pytest.raises(DataError, match="has no rows"):
        load(xcopa, "et", "local", data_dir=tmp_path)


def test_missing_file(xcopa, tmp_path):
    with pytest.raises(DataError) as exc:
        load(xcopa, "et", "local", data_dir=tmp_path)
    assert str(local_file(xcopa, "et", tmp_path)) in str(exc.value)
    assert "does not exist" in str(exc.value)


def test_local_without_data_dir(xcopa):
    with pytest.raises(DataError, match="--data-dir"):
        load(xcopa, "et", "local")


def test_no_bundled_copy():
    with pytest.raises(DataError) as exc:
        load(get_task("xstorycloze"), "en", "bundled")
    assert "no bundled data for xstorycloze/en" in str(exc.value)
    assert "juletxara/xstory_cloze" in str(exc.value)


def test_unknown_source(xcopa):
    with pytest.raises(GlotbenchError) as exc:
        load(xcopa, "et", "nowhere")  # type: ignore[arg-type]
    assert "'nowhere'" in str(exc.value)
    assert "bundled" in str(exc.value) and "hub" in str(exc.value)


# --- the hub loader ----------------------------------------------------------------------


@pytest.fixture()
def datasets_offline(tmp_path, monkeypatch):
    """Offline ``datasets`` with a private cache.

    ``datasets`` and ``huggingface_hub`` read HF_HUB_OFFLINE / HF_DATASETS_OFFLINE once, at
    import; setting the variables afterwards changes nothing (a real hub id then retries
    the network for ~20 s before failing). So the module-level flags are patched as well.
    """
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets-cache")
    return datasets


def make_hub_repo(task, langs: list[str], root: Path) -> Path:
    """A directory shaped like a hub dataset repo: README front matter with one config per
    language, each with one ``test`` split file."""
    front = ["---", "configs:"]
    for lang in langs:
        dest = root / lang / "test.jsonl"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local_file(task, lang, BUNDLED_DIR), dest)
        front += [f"- config_name: {lang}", "  data_files:", "  - split: test",
                  f"    path: {lang}/test.jsonl"]
    front += ["---", "", "A local stand-in for a hub dataset repository (test data).", ""]
    (root / "README.md").write_text("\n".join(front), encoding="utf-8")
    return root


def test_hub_loader_on_local_repo(xcopa, tmp_path, datasets_offline):
    repo = make_hub_repo(xcopa, ["et", "ht"], tmp_path / "fake-hub-repo")
    task = dataclasses.replace(xcopa, data=dataclasses.replace(xcopa.data, hub_id=str(repo)))

    hub = load(task, "et", "hub")
    local = load(xcopa, "et", "local", data_dir=copy_local(xcopa, ["et"], tmp_path / "local"))
    assert hub.source == f"hub:{repo}/et/test"
    assert rows(hub) == rows(local)
    assert hub.sha256 == local.sha256
    assert [s.doc_id for s in hub.samples] == list(range(len(local.samples)))

    # configs are distinct, and read_hub is the same loader without the Sample wrapping
    assert read_hub(task, "ht", task.data.split, task.data.fields) == rows(load(xcopa, "ht", "bundled"))


def test_hub_loader_checks_fields(xcopa, tmp_path, datasets_offline):
    repo = make_hub_repo(xcopa, ["et"], tmp_path / "fake-hub-repo")
    source = dataclasses.replace(xcopa.data, hub_id=str(repo), fields=(*xcopa.data.fields, "hint"))
    task = dataclasses.replace(xcopa, data=source)
    with pytest.raises(DataError, match="row 0 lacks field\\(s\\) hint"):
        load(task, "et", "hub")


def test_hub_offline_fails_fast_with_one_line(xcopa, datasets_offline, monkeypatch):
    """Offline, the hub loader fails at once and never touches the network. What this guards
    (retrying the network) is checked directly, not by the clock: every name lookup and
    connection is recorded and refused (with offline mode off, the loader makes 8 attempts
    and backs off 1+2+4+8+8 s: measured 23 s). The time bound is only a backstop, generous
    for a loaded 2-core machine (offline it takes well under a second)."""
    import socket

    attempts: list[object] = []

    def refuse(*args):
        attempts.append(args[1] if isinstance(args[0], socket.socket) else args[0])
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)  # name lookup comes first
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    start = time.monotonic()
    with pytest.raises(DataError) as exc:
        load(xcopa, "et", "hub")
    elapsed = time.monotonic() - start
    assert attempts == [], "offline: the loader tried the network"
    assert elapsed < 60, f"offline: fail at once, never retry the network ({elapsed:.1f} s)"
    msg = str(exc.value)
    assert "\n" not in msg
    assert "cambridgeltl/xcopa" in msg and "hub" in msg
    assert "offline mode is on" in msg
    assert "--data-dir" in msg and "xcopa/et/test.et.jsonl" in msg


@pytest.mark.parametrize("error", [ConnectionError("connection reset"), FileNotFoundError("no such config"),
                                   ValueError("BuilderConfig 'xx' not found")])
def test_a_hub_failure_is_one_line(xcopa, monkeypatch, error):
    import datasets

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(datasets, "load_dataset", fail)
    with pytest.raises(DataError, match=f"cannot load cambridgeltl/xcopa .*{type(error).__name__}"):
        load(xcopa, "et", "hub")


@pytest.mark.parametrize("bug", [TypeError("unexpected keyword"), KeyError("features"),
                                 AttributeError("no attribute 'split'")])
def test_a_bug_during_a_hub_load_is_not_reported_as_a_hub_failure(xcopa, monkeypatch, bug):
    """Only what says the data cannot be had is a hub failure; a programming error keeps its
    type and traceback (the CLI prints it as an internal error, --debug shows it)."""
    import datasets

    def fail(*args, **kwargs):
        raise bug

    monkeypatch.setattr(datasets, "load_dataset", fail)
    with pytest.raises(type(bug)) as exc:
        load(xcopa, "et", "hub")
    assert not isinstance(exc.value, GlotbenchError)


# --- availability ------------------------------------------------------------------------


def test_available():
    xcopa, xstorycloze = get_task("xcopa"), get_task("xstorycloze")
    assert available(xcopa, "et", None) == "bundled"
    assert available(xstorycloze, "en", None) is None
    assert available(xstorycloze, "en", FIXTURES) == "local"
    assert available(xstorycloze, "en", Path("/nonexistent")) is None


def test_available_agrees_with_auto_load():
    # Whatever available() promises, load(source="auto") with the same data dir delivers.
    for name in ("xcopa", "xstorycloze"):
        task = get_task(name)
        for lang in task.languages:
            where = available(task, lang, FIXTURES)
            if where is not None:
                assert load(task, lang, "auto", data_dir=FIXTURES).source.startswith(f"{where}:")
