"""One regression test per numbered harm of the second trust sweep (issue "Trust on every surface"), numbered
as there: each failed before the fix. Unit cases of the rules are in tests/ensemble/test_outputs.py; the
malformed-input sweep is tests/test_robustness.py."""

import json

import pandas as pd
import pytest
from helpers import run_here, tree_state, write_simulated_dataset

from ensemble.outputs import MARKER


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("harms")
    _, paths = write_simulated_dataset(root, videos=4, frames=30)
    pd.DataFrame({"video": [f"v{i:04d}" for i in range(4)], "frames": 30}).to_csv(root / "frames.csv", index=False)
    return root, paths


def data_args(out, *extra):
    sizes = ["--train-videos", 1, "--val-videos", 1, "--test-videos", 1, "--min-frames", 10, "--max-frames", 10]
    return ["make-demo-data", out, *sizes, "--size", 24, *extra]


def _one_line_error(result, message):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


# --- data loss ---------------------------------------------------------------------------------------------


def test_01_save_fusion_never_replaces_a_runs_config(sim, tmp_path):
    """fuse --save-fusion RUN/config.json --force replaced a (Keras import) run's config: the stamp was enough."""
    run = tmp_path / "run"
    run.mkdir()
    (run / MARKER).write_text(json.dumps({"generator": "affect-ens"}))  # a run of the previous version
    config = {"generator": "affect-ens", "member": "KerasMember", "classes": ["a", "b"], "model_config": {}}
    (run / "config.json").write_text(json.dumps(config))
    before = tree_state(tmp_path)
    result = run_here(
        "fuse",
        *sim[1],
        "--labels",
        sim[0],
        "--out",
        tmp_path / "f.parquet",
        "--save-fusion",
        run / "config.json",
        "--force",
        "--no-smooth",
    )
    _one_line_error(result, "was not written by affect-ens")
    assert tree_state(tmp_path) == before


def test_02_force_refuses_a_folder_holding_a_deep_training_run_or_an_added_file(tmp_path):
    """make-demo-data ds --force deleted ds/exp/runs/r1/last.pt (three levels down) and ds/notes.txt."""
    ds = tmp_path / "ds"
    assert run_here(*data_args(ds)).returncode == 0
    (ds / "notes.txt").write_text("my notes")
    before = tree_state(tmp_path)
    _one_line_error(run_here(*data_args(ds, "--force")), "holds 'notes.txt', which affect-ens did not write")
    assert tree_state(tmp_path) == before
    (ds / "notes.txt").unlink()
    (ds / "exp" / "runs" / "r1").mkdir(parents=True)
    (ds / "exp" / "runs" / "r1" / "last.pt").write_bytes(b"hours of training")
    before = tree_state(tmp_path)
    _one_line_error(run_here(*data_args(ds, "--force")), "holds a training run (exp/runs/r1/last.pt)")
    assert tree_state(tmp_path) == before


def test_02_force_replaces_an_unchanged_output_of_the_same_command(tmp_path):
    ds = tmp_path / "ds"
    assert run_here(*data_args(ds)).returncode == 0
    result = run_here(*data_args(ds, "--seed", 3, "--force"))
    assert result.returncode == 0, result.stderr
    marker = json.loads((ds / MARKER).read_text())
    assert (marker["command"], marker["kind"], marker["format"]) == ("make-demo-data", "dataset", 2)
    assert set(marker["files"]) == {str(p.relative_to(ds)) for p in ds.rglob("*") if p.is_file()} - {MARKER}


def test_03_a_faked_or_copied_marker_does_not_make_a_folder_ours(sim, tmp_path):
    """touch mine/.affect-ens let make-demo-data, submit and crop-faces --force delete mine/thesis.tex."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("months of work")
    (mine / MARKER).touch()
    before = tree_state(mine)
    _one_line_error(run_here(*data_args(mine, "--force")), "was not written by affect-ens")
    assert tree_state(mine) == before
    ds = tmp_path / "ds"
    assert run_here(*data_args(ds)).returncode == 0
    (mine / MARKER).write_bytes((ds / MARKER).read_bytes())  # a marker copied from a folder the tool made
    _one_line_error(run_here(*data_args(mine, "--force")), "which affect-ens did not write")
    assert (mine / "thesis.tex").read_text() == "months of work"


def test_03_submit_force_never_replaces_a_dataset(sim, tmp_path):
    ds = tmp_path / "ds"
    assert run_here(*data_args(ds)).returncode == 0
    before = tree_state(tmp_path)
    frames = sim[0] / "frames.csv"
    result = run_here(
        "submit", sim[1][0], "--track", "va", "--edition", "2022", "--frames", frames, "--out", ds, "--force"
    )
    _one_line_error(result, "is a dataset made by affect-ens make-demo-data; --force replaces only a submission")
    assert tree_state(tmp_path) == before


# --- crashes and unbounded work from a file ----------------------------------------------------------------


def _labels_with(sim, tmp_path, video: str, kind: str):
    """A copy of the annotation folders with ``video``'s va file a FIFO or a sparse 1 GiB file."""
    import os
    import shutil

    labels = tmp_path / "labels"
    shutil.copytree(sim[0], labels, ignore=shutil.ignore_patterns("*.parquet", "*.csv"))
    bad = labels / "VA_Estimation_Challenge" / "Validation_Set" / f"{video}.txt"
    bad.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(bad)
    else:
        with open(bad, "wb") as file:
            file.write(b"valence,arousal\n")
            file.truncate(1 << 30)  # a hole: no disk, but 1 GiB if read
    return labels


@pytest.mark.parametrize(
    "video, kind, message",
    [
        ("v0001", "fifo", "v0001.txt: not a regular file"),
        ("v0001", "huge", "over the annotation file cap"),
        ("v9999", "fifo", "predictions miss 1 video(s) with va annotations, first 'v9999'"),
        ("v9999", "huge", "predictions miss 1 video(s) with va annotations, first 'v9999'"),
    ],
)
def test_05_an_annotation_fifo_or_bomb_is_one_line_and_another_videos_file_is_never_read(
    sim, tmp_path, video, kind, message
):
    """A FIFO named *.txt in an annotation folder hung evaluate forever; every *.txt was read whole, even files
    no table names (a 2 GB sparse file took 4.4 GB). Run as the console script runs it, in a new interpreter."""
    from faults import spawn

    result = spawn("evaluate", sim[1][0], "--labels", _labels_with(sim, tmp_path, video, kind), timeout=120)
    assert result.peak < 512 << 20, f"peak memory {result.peak:,} bytes"  # reading the 1 GiB file: 2 GiB or more
    _one_line_error(result, message)


@pytest.fixture(scope="module")
def stack_fusion(sim, tmp_path_factory):
    folder = tmp_path_factory.mktemp("stack")
    args = ["fuse", *sim[1], "--labels", sim[0], "--out", folder / "f.parquet", "--method", "stack"]
    result = run_here(*args, "--rounds", 5, "--folds", 2, "--save-fusion", folder / "stack.json", "--no-smooth")
    assert result.returncode == 0, result.stderr
    return json.loads((folder / "stack.json").read_text())


def _edited_tree(text: str, edit: str) -> str:
    if edit == "no tree_sizes":
        return "\n".join(line for line in text.split("\n") if not line.startswith("tree_sizes="))
    if edit == "child out of range":
        return text.replace("left_child=", "left_child=99999 ", 1)
    if edit == "cycle":
        return text.replace("left_child=", "left_child=0 ", 1)
    return text.replace("split_feature=", "split_feature=77777 ", 1)


@pytest.mark.parametrize("edit", ["no tree_sizes", "child out of range", "cycle", "feature out of range"])
def test_04_a_crafted_lightgbm_tree_is_one_line_never_a_native_crash(sim, stack_fusion, tmp_path, edit):
    """A stack fusion with a LightGBM tree edited killed the process in native code (exit 139 / 134)."""
    from faults import spawn

    doc = json.loads(json.dumps(stack_fusion))
    models = doc["fuser"]["learned"]["models_"]
    models["va"][0] = _edited_tree(models["va"][0], edit)
    (tmp_path / "crafted.json").write_text(json.dumps(doc))
    before = tree_state(tmp_path)
    args = ["fuse", *sim[1], "--load-fusion", tmp_path / "crafted.json", "--out", tmp_path / "o.parquet"]
    result = spawn(*args, timeout=300)  # a child: a native crash kills it, not the tests (a fork could hang)
    assert result.returncode == 2, (result.returncode, result.stderr[-500:])
    _one_line_error(result, "stack: saved va model 0")
    assert tree_state(tmp_path) == before


MAX_DEPTH = 4
"""The deepest nesting of committees (README, Safety; members.committee.MAX_DEPTH): a literal here, so the test
also runs on code from before the limit."""


def _leaf_run(folder):
    import dataclasses

    from members.cnn import CnnConfig

    folder.mkdir()
    cfg = dataclasses.asdict(CnnConfig(backbone="test_resnet", image_size=32, tasks=("expr",)))
    (folder / "config.json").write_text(json.dumps({"generator": "affect-ens", "member": "cnn", **cfg}))
    (folder / "best.pt").write_bytes(b"weights")
    return folder


def test_06_a_committee_that_contains_itself_is_refused_when_assembled_and_when_predicted(tmp_path):
    """committee --out A --force over a member's member was accepted; predict-member then recursed for 276 s."""
    a, b, d, e = (_leaf_run(tmp_path / n) for n in "abde")
    assert run_here("committee", a, b, "--out", tmp_path / "c1").returncode == 0
    assert run_here("committee", tmp_path / "c1", d, "--out", tmp_path / "c2").returncode == 0
    before = tree_state(tmp_path)
    result = run_here("committee", tmp_path / "c2", e, "--out", tmp_path / "c1", "--force")
    _one_line_error(result, "contains itself (c1 -> c2 -> c1)")
    assert tree_state(tmp_path) == before
    config = json.loads((tmp_path / "c1" / "config.json").read_text())
    config["runs"] = [str(tmp_path / "c2"), str(e)]  # the cycle made by hand
    (tmp_path / "c1" / "config.json").write_text(json.dumps(config))
    result = run_here(
        "predict-member", tmp_path / "c2", "--split", "val", "--data", tmp_path, "--out", tmp_path / "p.parquet"
    )
    _one_line_error(result, "contains itself (c2 -> c1 -> c2)")
    assert not (tmp_path / "p.parquet").exists()


def test_06_committees_nest_at_most_the_stated_depth(tmp_path):
    inner = [_leaf_run(tmp_path / "a"), _leaf_run(tmp_path / "b")]
    for level in range(1, MAX_DEPTH + 1):
        out = tmp_path / f"c{level}"
        assert run_here("committee", *inner, "--out", out).returncode == 0, level
        inner = [out, _leaf_run(tmp_path / f"x{level}")]
    _one_line_error(run_here("committee", *inner, "--out", tmp_path / "deep"), f"nest deeper than {MAX_DEPTH} levels")


def test_07_a_smoothing_window_from_a_file_is_bounded(sim, tmp_path):
    """A smoothing half-width of 2e7 in a fusion file used 12.4 GB on 21 frames."""
    fusion = tmp_path / "f.json"
    args = ["fuse", *sim[1], "--labels", sim[0], "--out", tmp_path / "a.parquet", "--save-fusion", fusion]
    assert run_here(*args, "--method", "average").returncode == 0
    doc = json.loads(fusion.read_text())
    doc["post"]["windows_"]["va"] = [["mean", 20_000_000], ["mean", 0]]
    fusion.write_text(json.dumps(doc))
    before = tree_state(tmp_path)
    result = run_here("fuse", *sim[1], "--load-fusion", fusion, "--out", tmp_path / "b.parquet")
    _one_line_error(result, "a smoothing window is not one fit tries")
    assert tree_state(tmp_path) == before


# --- tracebacks and messages -------------------------------------------------------------------------------


@pytest.mark.parametrize("source, message", [("²", "no such video file"), ("9" * 23, "no such camera index")])
def test_webcam_source_that_is_no_camera_is_one_line(tmp_path, monkeypatch, source, message):
    monkeypatch.chdir(tmp_path)
    _one_line_error(run_here("webcam", "--source", source, "--frames", 1, "--no-window"), message)
    assert list(tmp_path.iterdir()) == []


def test_a_symlink_loop_as_an_output_is_one_line(sim, tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    result = run_here("fuse", *sim[1], "--labels", sim[0], "--out", tmp_path / "loop" / "f.parquet")
    _one_line_error(result, "a symbolic link loop")


def test_an_error_line_is_capped(capsys):
    from ensemble.cli import MAX_MESSAGE, fail

    with pytest.raises(SystemExit):
        fail("member " + "m, " * 10_000_000)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < MAX_MESSAGE + 100 and "characters in all" in err


def test_a_too_long_video_id_names_the_output_not_a_temporary(sim, tmp_path):
    from ensemble.contract import read_table

    data = read_table(sim[1][0]).data
    long_id = "v" * 300
    data["video"] = data["video"].replace({sorted(data["video"].unique())[0]: long_id})
    data.to_csv(tmp_path / "t.csv", index=False)
    videos = sorted(data["video"].unique())
    pd.DataFrame({"video": videos, "frames": 30}).to_csv(tmp_path / "m.csv", index=False)
    out = tmp_path / "sub"
    result = run_here(
        "submit", tmp_path / "t.csv", "--track", "va", "--edition", 2022, "--frames", tmp_path / "m.csv", "--out", out
    )
    _one_line_error(result, f"{out}/")
    assert "affect-ens-tmp" not in result.stderr and not out.exists()


def _zip(path, names):
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        for name in names:
            z.writestr(name, "valence,arousal\n")
    return path


@pytest.mark.parametrize("name", ["../predictions.txt", "/predictions.txt", "a/../../v0000.txt"])
def test_a_zip_entry_that_unzips_elsewhere_is_a_problem(sim, tmp_path, name):
    from submissions.validator import validate_submission
    from submissions.writer import as_source

    report = validate_submission(_zip(tmp_path / "s.zip", [name]), "va", as_source({"v0000": 1}), 2022)
    assert any("absolute path or '..'" in p for p in report.problems), report.problems


def test_zip_entry_names_are_printed_escaped(tmp_path):
    from submissions.validator import validate_submission
    from submissions.writer import as_source

    names = ["v0000\x1b[2J\n.txt", "x\rpwned.txt"]
    report = validate_submission(_zip(tmp_path / "s.zip", names), "va", as_source({"v0000": 1}), 2022)
    said = " ".join(report.problems + report.warnings)
    assert "\x1b" not in said and "\n" not in said and "\r" not in said and "\\x1b" in said, said
