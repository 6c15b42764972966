"""Resumable outputs (``Outputs.resumable_folder``, ``WorkFolder``): items committed whole, what a killed
command left half-made removed, a foreign folder never taken, a failed command keeps finished work only, and
what a user put in a work folder never deleted."""

from pathlib import Path

import pytest
from helpers import tree_state

from ensemble import outputs
from ensemble.errors import OutputExistsError
from ensemble.outputs import ITEMS, MARKER, Outputs, UnsafePathError, WorkFolder, partial_path


def _item(work: WorkFolder, name: str, text: str) -> None:
    staged = work.stage(name)
    (staged / "parts" / name).mkdir(parents=True)
    (staged / "parts" / name / "a.txt").write_text(text)
    work.commit(name, staged, {"text": text})


def test_items_committed_whole_become_the_output(tmp_path):
    out = tmp_path / "out"
    with Outputs(command="crop-faces") as outs:
        work = outs.resumable_folder(out, kind="faces", settings={"--size": 1})
        work.prepare(lambda item, record: True)
        _item(work, "v1", "one")
        _item(work, "v2", "two")
        assert work.done() == {
            "v1": {"text": "one", "entries": ["parts/v1"]},
            "v2": {"text": "two", "entries": ["parts/v2"]},
        }
        assert work.done_names() == {"v1", "v2"}  # what rank 0 waits on under torchrun
        assert not out.exists()
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "parts"]
    assert (out / "parts" / "v2" / "a.txt").read_text() == "two"
    assert not partial_path(out).exists()


def test_a_second_item_claiming_an_entry_is_refused(tmp_path):
    work = WorkFolder(tmp_path)
    work.begin()
    _item(work, "v1", "one")
    staged = work.stage("v2")
    (staged / "parts" / "v1").mkdir(parents=True)
    (staged / "parts" / "v1" / "b.txt").write_text("other")
    with pytest.raises(UnsafePathError, match=r"parts/v1: made by two items \('v2' and another\)"):
        work.commit("v2", staged, {})
    assert sorted(p.name for p in (tmp_path / "parts" / "v1").iterdir()) == ["a.txt"]


_SAFE_JOIN = outputs.safe_join


def _killed_before_the_record(root, name, suffix="", what="name"):
    if Path(root).name == ITEMS:
        raise RuntimeError("stopped after the entries moved, before the item's record")
    return _SAFE_JOIN(root, name, suffix, what)


def _failed_after_one_item(out) -> None:
    """A crop-faces (``--size 1``) that finishes item v1, half-makes v2 (its entry moved into place, no record
    written) and fails."""
    with pytest.raises(RuntimeError), Outputs(command="crop-faces") as outs:
        work = outs.resumable_folder(out, kind="faces", settings={"--size": 1})
        work.prepare(lambda item, record: True)
        _item(work, "v1", "one")
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(outputs, "safe_join", _killed_before_the_record)
            _item(work, "v2", "two")
    work = WorkFolder(partial_path(out))
    assert (work.root / "parts" / "v2" / "a.txt").is_file() and list(work.done()) == ["v1"]


def test_a_failed_command_keeps_finished_work_and_the_next_resumes_it(tmp_path):
    out = tmp_path / "out"
    _failed_after_one_item(out)
    assert partial_path(out).is_dir() and not out.exists()
    with Outputs(command="crop-faces") as outs:
        work = outs.resumable_folder(out, kind="faces", settings={"--size": 1})
        assert list(work.prepare(lambda item, record: record["text"] == "one")) == ["v1"]
        assert sorted(p.name for p in (work.root / "parts").iterdir()) == ["v1"]
    with pytest.raises(RuntimeError), Outputs(command="crop-faces") as outs:
        outs.resumable_folder(tmp_path / "other", kind="faces", settings={})
        raise RuntimeError("stopped before any item")
    assert not partial_path(tmp_path / "other").exists()


def test_other_settings_and_foreign_folders_are_refused(tmp_path):
    out = tmp_path / "out"
    _failed_after_one_item(out)
    with pytest.raises(OutputExistsError, match=r"other options \(--size 1\).*pass --force to start over"):
        with Outputs(command="crop-faces") as outs:
            outs.resumable_folder(out, kind="faces", settings={"--size": 2})
    with Outputs(command="crop-faces", force=True) as outs:
        work = outs.resumable_folder(out, kind="faces", settings={"--size": 2})
        assert work.prepare(lambda item, record: True) == {}  # started over
    foreign = partial_path(tmp_path / "mine")
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    for force in (False, True):
        with pytest.raises(UnsafePathError, match="is not the work folder of affect-ens crop-faces"):
            with Outputs(command="crop-faces", force=force) as outs:
                outs.resumable_folder(tmp_path / "mine", kind="faces", settings={})
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("where", ["parts/notes.txt", "notes.txt", "parts/mine"])
def test_what_a_user_put_in_a_work_folder_is_never_deleted(tmp_path, where):
    """Resuming, --force with other options and a failure before any item each leave it, and everything else
    in the work folder, as they were: a one-line error, or the work folder kept."""
    out = tmp_path / "out"
    _failed_after_one_item(out)
    work = partial_path(out)
    (work / where).parent.mkdir(exist_ok=True)
    (work / where).mkdir() if where.endswith("mine") else (work / where).write_text("mine")
    before = tree_state(tmp_path)
    message = rf"{where}: in the work folder of a killed run but not written by affect-ens; move it out to resume"
    with pytest.raises(UnsafePathError, match=message), Outputs(command="crop-faces") as outs:
        outs.resumable_folder(out, kind="faces", settings={"--size": 1}).prepare(lambda item, record: True)
    with pytest.raises(UnsafePathError, match=message), Outputs(command="crop-faces", force=True) as outs:
        outs.resumable_folder(out, kind="faces", settings={"--size": 2})
    assert tree_state(tmp_path) == before
    (work / ITEMS / "v1.json").unlink()  # no finished item: a failed command would remove the work folder
    before = tree_state(tmp_path)
    with pytest.raises(RuntimeError), Outputs(command="crop-faces") as outs:
        outs.resumable_folder(out, kind="faces", settings={"--size": 1})
        raise RuntimeError("stopped before prepare")
    assert tree_state(tmp_path) == before


def test_a_resume_stopped_in_its_clean_up_resumes_again(tmp_path, monkeypatch):
    """prepare removes the half-moved entries before the lists naming them: stopped in between, the next
    prepare still knows them as the tool's."""
    out = tmp_path / "out"
    _failed_after_one_item(out)
    real = outputs._remove

    def stopped(path):
        if Path(path).name in (".pending", ".stage"):
            raise RuntimeError("stopped in prepare")
        real(path)

    monkeypatch.setattr(outputs, "_remove", stopped)
    with pytest.raises(RuntimeError, match="stopped in prepare"), Outputs(command="crop-faces") as outs:
        outs.resumable_folder(out, kind="faces", settings={"--size": 1}).prepare(lambda item, record: True)
    assert (partial_path(out) / ".pending" / "v2.json").is_file() and not (partial_path(out) / "parts" / "v2").exists()
    monkeypatch.setattr(outputs, "_remove", real)
    with Outputs(command="crop-faces") as outs:
        work = outs.resumable_folder(out, kind="faces", settings={"--size": 1})
        assert list(work.prepare(lambda item, record: True)) == ["v1"]
        assert sorted(p.name for p in (work.root / "parts").iterdir()) == ["v1"]
