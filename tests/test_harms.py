"""One regression test per numbered harm of the second trust sweep (issue "Trust on every surface"), numbered
as there: each failed before the fix. Unit cases of the rules are in tests/ensemble/test_outputs.py; the
malformed-input sweep is tests/test_robustness.py."""

import json

import pandas as pd
import pytest
from helpers import invoke, tree_state, write_simulated_dataset

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
    result = invoke(
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
    assert invoke(*data_args(ds)).returncode == 0
    (ds / "notes.txt").write_text("my notes")
    before = tree_state(tmp_path)
    _one_line_error(invoke(*data_args(ds, "--force")), "holds 'notes.txt', which affect-ens did not write")
    assert tree_state(tmp_path) == before
    (ds / "notes.txt").unlink()
    (ds / "exp" / "runs" / "r1").mkdir(parents=True)
    (ds / "exp" / "runs" / "r1" / "last.pt").write_bytes(b"hours of training")
    before = tree_state(tmp_path)
    _one_line_error(invoke(*data_args(ds, "--force")), "holds a training run (exp/runs/r1/last.pt)")
    assert tree_state(tmp_path) == before


def test_02_force_replaces_an_unchanged_output_of_the_same_command(tmp_path):
    ds = tmp_path / "ds"
    assert invoke(*data_args(ds)).returncode == 0
    result = invoke(*data_args(ds, "--seed", 3, "--force"))
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
    _one_line_error(invoke(*data_args(mine, "--force")), "was not written by affect-ens")
    assert tree_state(mine) == before
    ds = tmp_path / "ds"
    assert invoke(*data_args(ds)).returncode == 0
    (mine / MARKER).write_bytes((ds / MARKER).read_bytes())  # a marker copied from a folder the tool made
    _one_line_error(invoke(*data_args(mine, "--force")), "which affect-ens did not write")
    assert (mine / "thesis.tex").read_text() == "months of work"


def test_03_submit_force_never_replaces_a_dataset(sim, tmp_path):
    ds = tmp_path / "ds"
    assert invoke(*data_args(ds)).returncode == 0
    before = tree_state(tmp_path)
    frames = sim[0] / "frames.csv"
    result = invoke(
        "submit", sim[1][0], "--track", "va", "--edition", "2022", "--frames", frames, "--out", ds, "--force"
    )
    _one_line_error(result, "is a dataset made by affect-ens make-demo-data; --force replaces only a submission")
    assert tree_state(tmp_path) == before
