"""The output module: names from data, ownership, --force, collisions, locks, umask, all-or-nothing."""

import os
import stat
from pathlib import Path

import pytest

from ensemble.errors import OutputExistsError
from ensemble.outputs import (
    MARKER,
    OutputBusyError,
    Outputs,
    UnsafePathError,
    atomic_file,
    is_ours,
    recover_folder,
    replace_folder,
    safe_join,
    write_marker,
)


@pytest.mark.parametrize(
    "name", ["../x", "../../etc/cron.d/x", "/abs/path", "a/b", "a\\b", "..", ".", "", "a\x00b", "a\nb"]
)
def test_unsafe_names_are_refused(tmp_path, name):
    with pytest.raises(UnsafePathError, match="cannot be used as a file name"):
        safe_join(tmp_path, name, ".txt", what="video id")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["10-60-1280x720_right", "video10-1", "a b", "ü-ñ", "...x"])
def test_plain_names_stay_inside(tmp_path, name):
    assert safe_join(tmp_path, name, ".txt").parent == tmp_path


def test_symlinked_name_leading_outside_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "v1.txt").symlink_to(tmp_path / "elsewhere.txt")
    with pytest.raises(UnsafePathError, match="leads outside"):
        safe_join(tmp_path / "out", "v1", ".txt")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_failed_command_leaves_nothing_and_keeps_what_it_found(tmp_path):
    with Outputs() as outs:
        (outs.folder(tmp_path / "old", kind="dataset") / "a.txt").write_text("old")
    before = _files(tmp_path)
    with pytest.raises(RuntimeError), Outputs(force=True) as outs:
        (outs.folder(tmp_path / "old", kind="dataset") / "a.txt").write_text("new")
        outs.file(tmp_path / "new" / "deep" / "t.json").write_text("{}")
        raise RuntimeError("the command failed half way")
    assert _files(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]  # no temporary, lock or created folder


def test_success_replaces_whole_outputs(tmp_path):
    with Outputs() as outs:
        (outs.folder(tmp_path / "sub", kind="dataset") / "a.txt").write_text("1")
    with Outputs(force=True) as outs:
        (outs.folder(tmp_path / "sub", kind="dataset") / "b.txt").write_text("2")
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == [MARKER, "b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


def test_existing_output_needs_force(tmp_path):
    (tmp_path / "f.json").write_text('{"generator": "affect-ens", "fuser": {}}')
    with pytest.raises(OutputExistsError, match="pass --force"), Outputs() as outs:
        outs.file(tmp_path / "f.json")
    with Outputs(force=True) as outs:
        outs.file(tmp_path / "f.json").write_text('{"generator": "affect-ens", "v": 2}')
    assert "v" in (tmp_path / "f.json").read_text()


@pytest.mark.parametrize(
    "name, content",
    [("notes.json", '{"mine": true}'), ("report.html", "<html>my page</html>"), ("t.parquet", "not ours")],
)
def test_force_never_replaces_a_file_the_tool_did_not_write(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    with pytest.raises(UnsafePathError, match="not written by affect-ens"), Outputs(force=True) as outs:
        outs.file(tmp_path / name)
    assert (tmp_path / name).read_text() == content


def test_force_never_replaces_a_foreign_folder_the_current_folder_or_home(tmp_path, monkeypatch):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("months of work")
    with pytest.raises(UnsafePathError, match="not written by affect-ens"), Outputs(force=True) as outs:
        outs.folder(tmp_path / "mine", kind="dataset")
    monkeypatch.chdir(tmp_path / "mine")
    for target in (Path("."), Path.home(), Path("/"), tmp_path):
        with pytest.raises(UnsafePathError, match="root, home or the current folder"), Outputs(force=True) as outs:
            outs.folder(target, kind="dataset")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "months of work"


@pytest.mark.parametrize("inside", ["run", "demo/runs/cnn", "ds/exp/runs/r1"])
def test_force_never_replaces_a_training_run_of_ours(tmp_path, inside):
    """submit/make-demo-data/committee --out RUN --force replaced a trained run (or a demo folder) wholesale."""
    top = tmp_path / inside.split("/")[0]
    run = tmp_path / inside
    run.mkdir(parents=True)
    (top / MARKER).write_text('{"generator": "affect-ens"}\n')
    (run / "last.pt").write_bytes(b"hours of training")
    with pytest.raises(UnsafePathError, match="holds a training run"), Outputs(force=True) as outs:
        outs.folder(top, kind="dataset")
    assert (run / "last.pt").read_bytes() == b"hours of training"
    assert sorted(p.name for p in tmp_path.iterdir()) == [top.name]


def test_outputs_equal_to_inputs_or_each_other_or_holding_inputs_are_refused(tmp_path):
    (tmp_path / "in.parquet").write_text("input")
    (tmp_path / "link.parquet").symlink_to(tmp_path / "in.parquet")
    for target in ("in.parquet", "link.parquet"):
        with pytest.raises(UnsafePathError, match="also an input"), Outputs(inputs=[tmp_path / "in.parquet"]) as outs:
            outs.file(tmp_path / target)
    with pytest.raises(UnsafePathError, match="named twice"), Outputs() as outs:
        outs.file(tmp_path / "a.json")
        outs.file(tmp_path / "sub" / ".." / "a.json")
    (tmp_path / "made").mkdir()
    (tmp_path / "made" / MARKER).write_text("{}")
    (tmp_path / "made" / "m0.parquet").write_text("an input living in an old output")
    with pytest.raises(UnsafePathError, match="holds an input"):
        with Outputs(force=True, inputs=[tmp_path / "made" / "m0.parquet"]) as outs:
            outs.folder(tmp_path / "made", kind="dataset")
    assert (tmp_path / "made" / "m0.parquet").exists() and (tmp_path / "in.parquet").read_text() == "input"


def test_second_writer_of_the_same_output_is_told_who_holds_it(tmp_path):
    with Outputs() as first:
        first.file(tmp_path / "x.json").write_text("{}")
        with pytest.raises(
            OutputBusyError, match=rf"being written by another affect-ens command \(pid {os.getpid()}\)"
        ):
            with Outputs() as second:
                second.file(tmp_path / "x.json")
    assert (tmp_path / "x.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]  # the lock file is gone too


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_and_folders_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        with Outputs() as outs:
            folder = outs.folder(tmp_path / "sub", kind="dataset")
            (folder / "inner").mkdir()
            outs.file(tmp_path / "t.json").write_text("{}")
        with atomic_file(tmp_path / "lib.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "t.json") == mode(tmp_path / "lib.txt") == 0o666 & ~umask
    assert mode(tmp_path / "sub") == mode(tmp_path / "sub" / "inner") == 0o777 & ~umask


def test_update_folder_is_marked_kept_on_success_and_removed_when_new_and_failed(tmp_path):
    with Outputs() as outs:
        assert outs.update_folder(tmp_path / "run", kind="run") == tmp_path / "run"
    assert is_ours(tmp_path / "run")
    with pytest.raises(ValueError), Outputs() as outs:
        outs.update_folder(tmp_path / "fresh", kind="run")
        raise ValueError
    with pytest.raises(ValueError), Outputs() as outs:
        (
            outs.update_folder(tmp_path / "ckpt", kind="run", keep=lambda p: (p / "last.pt").exists()) / "last.pt"
        ).write_text("w")
        raise ValueError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "run"]
    (tmp_path / "theirs").mkdir()
    with pytest.raises(UnsafePathError, match="not made by affect-ens"), Outputs() as outs:
        outs.update_folder(tmp_path / "theirs", kind="run")


def test_folder_swap_interrupted_between_steps_is_undone(tmp_path, monkeypatch):
    old, new = tmp_path / "out", tmp_path / "new"
    for folder, text in ((old, "old"), (new, "new")):
        folder.mkdir()
        write_marker(folder, "dataset")
        (folder / "f.txt").write_text(text)
    monkeypatch.setattr("ensemble.outputs._exchange", lambda a, b: False)  # a file system without RENAME_EXCHANGE
    real_replace = os.replace
    calls = []

    def dies_on_second_rename(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed after moving the old folder away
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dies_on_second_rename)
    with pytest.raises(KeyboardInterrupt):
        replace_folder(new, old)
    monkeypatch.setattr(os, "replace", real_replace)
    assert not old.exists()
    recover_folder(old)
    assert (old / "f.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "out"]


def test_previous_version_marker_still_counts_where_its_stamp_says_so(tmp_path):
    """A folder of the previous version (marker ``{"generator": "affect-ens"}``) is still replaced by --force;
    an empty, foreign or ``{}`` marker never made a folder ours."""
    for name, text in (("v1", '{"generator": "affect-ens"}\n'), ("empty", ""), ("bare", "{}"), ("other", "x")):
        (tmp_path / name).mkdir()
        (tmp_path / name / MARKER).write_text(text)
        (tmp_path / name / "a.txt").write_text("old")
    with Outputs(force=True) as outs:
        outs.folder(tmp_path / "v1", kind="dataset")
    assert not (tmp_path / "v1" / "a.txt").exists()
    for name in ("empty", "bare", "other"):
        with pytest.raises(UnsafePathError, match="not written by affect-ens"), Outputs(force=True) as outs:
            outs.folder(tmp_path / name, kind="dataset")
        assert (tmp_path / name / "a.txt").read_text() == "old"


def test_force_replaces_only_the_same_kind_made_by_the_same_command_unchanged(tmp_path):
    with Outputs(command="make-demo-data") as outs:
        (outs.folder(tmp_path / "ds", kind="dataset") / "a.txt").write_text("1")
    for command, kind in (("submit", "dataset"), ("make-demo-data", "submission")):
        with pytest.raises(UnsafePathError, match="is a dataset made by affect-ens make-demo-data"):
            with Outputs(force=True, command=command) as outs:
                outs.folder(tmp_path / "ds", kind=kind)
    (tmp_path / "ds" / "a.txt").write_text("edited")
    with (
        pytest.raises(UnsafePathError, match="'a.txt' changed since"),
        Outputs(force=True, command="make-demo-data") as outs,
    ):
        outs.folder(tmp_path / "ds", kind="dataset")
    (tmp_path / "ds" / "a.txt").unlink()
    with (
        pytest.raises(UnsafePathError, match="'a.txt' was removed"),
        Outputs(force=True, command="make-demo-data") as outs,
    ):
        outs.folder(tmp_path / "ds", kind="dataset")
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == [MARKER]


def test_a_file_output_never_replaces_a_run_config_or_a_file_of_another_output(tmp_path):
    with Outputs() as outs:
        (outs.folder(tmp_path / "sub", kind="submission") / "f.json").write_text(
            '{"generator": "affect-ens", "fuser": {}}'
        )
    (tmp_path / "run").mkdir()
    write_marker(tmp_path / "run", "run")
    (tmp_path / "run" / "config.json").write_text('{"generator": "affect-ens", "member": "KerasMember", "fuser": 1}')
    with pytest.raises(UnsafePathError, match="is part of"), Outputs(force=True) as outs:
        outs.file(tmp_path / "sub" / "f.json")
    with pytest.raises(UnsafePathError, match="not written by affect-ens"), Outputs(force=True) as outs:
        outs.file(tmp_path / "run" / "config.json")


def test_a_symlink_loop_as_an_output_is_one_line(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for make in (lambda o: o.file(tmp_path / "loop" / "x.json"), lambda o: o.folder(tmp_path / "loop", kind="dataset")):
        with pytest.raises(UnsafePathError, match="symbolic link loop"), Outputs(force=True) as outs:
            make(outs)
