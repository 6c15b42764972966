"""The trust promises, one regression test per case of the trust issue (numbered as there).

Kills and concurrent runs are in test_faults.py; the malformed-input sweep is test_robustness.py.
"""

import json
import os
import stat

import numpy as np
import pandas as pd
import pytest
from helpers import run_here, tree_state, write_simulated_dataset

from ensemble.contract import read_table, validate_table
from ensemble.errors import ContractError
from ensemble.outputs import MARKER


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("trust")
    _, paths = write_simulated_dataset(root, videos=4, frames=30)
    pd.DataFrame({"video": [f"v{i:04d}" for i in range(4)], "frames": 30}).to_csv(root / "frames.csv", index=False)
    return root, paths


def _renamed_videos(sim, tmp_path, new_ids):
    """The first member's table with its videos renamed, and a manifest of the new names."""
    data = read_table(sim[1][0]).data
    data["video"] = data["video"].map(dict(zip(sorted(data["video"].unique()), new_ids)))
    data.to_csv(tmp_path / "t.csv", index=False)
    pd.DataFrame({"video": new_ids, "frames": 30}).to_csv(tmp_path / "m.csv", index=False)
    return tmp_path / "t.csv", tmp_path / "m.csv"


@pytest.mark.parametrize("evil", ["../../x", "/tmp/affect_ens_abs_x", "..", "a\\..\\b"])
def test_01_submit_refuses_video_ids_that_leave_the_output_folder(sim, tmp_path, evil):
    table, manifest = _renamed_videos(sim, tmp_path, ["v0", "v1", "v2", evil])
    before = tree_state(tmp_path)
    result = run_here(
        "submit", table, "--track", "va", "--edition", "2022", "--frames", manifest, "--out", tmp_path / "s"
    )
    assert result.returncode == 2 and "cannot be used as a file name" in result.stderr, result.stderr
    assert tree_state(tmp_path) == before and not os.path.exists("/tmp/affect_ens_abs_x.txt")


def test_02_a_checkpoint_that_would_run_code_is_refused(tmp_path, tiny_dataset):
    import torch

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    run = tmp_path / "run"
    run.mkdir()
    (run / MARKER).write_text("{}")
    (run / "config.json").write_text(json.dumps({"member": "CnnMember", "backbone": "test_resnet", "tasks": ["expr"]}))
    torch.save({"model": {}, "extra": Payload()}, run / "best.pt")
    result = run_here("predict-member", run, "--split", "val", "--data", tiny_dataset[0], "--out", tmp_path / "p.parquet")
    assert result.returncode == 2 and "refused (loading it could run code)" in result.stderr
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "p.parquet").exists()


def test_03_report_never_overwrites_a_file_it_did_not_write(tmp_path):
    (tmp_path / "notes.txt").write_text("my notes")
    (tmp_path / "page.html").write_text("<html>my page</html>")
    (tmp_path / "scores.json").write_text("{}")
    before = tree_state(tmp_path)
    assert "name it <name>.html" in run_here("report", tmp_path, "--out", tmp_path / "notes.txt").stderr
    assert "output exists" in run_here("report", tmp_path, "--out", tmp_path / "page.html").stderr
    assert "not written by affect-ens" in run_here("report", tmp_path, "--out", tmp_path / "page.html", "--force").stderr
    assert tree_state(tmp_path) == before


def test_04_an_output_equal_to_an_input_or_to_another_output_is_an_error(sim, tmp_path):
    root, paths = sim
    before = tree_state(root, tmp_path)
    same = run_here("fuse", *paths, "--labels", root, "--out", tmp_path / "x.json", "--save-fusion", tmp_path / "x.json")
    onto_input = run_here("fuse", *paths, "--labels", root, "--out", paths[2], "--force")
    fusion_onto_input = run_here(
        "fuse", *paths, "--labels", root, "--out", tmp_path / "o.parquet", "--save-fusion", root / "frames.csv"
    )
    assert "tables are written as Parquet" in same.stderr
    assert "is also an input of this command" in onto_input.stderr
    assert "a fusion is saved as JSON" in fusion_onto_input.stderr
    assert tree_state(root, tmp_path) == before


def test_05_force_never_empties_the_current_folder(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m0.parquet").write_bytes(sim[1][0].read_bytes())
    before = tree_state(tmp_path)
    for command in (
        ["submit", "m0.parquet", "--track", "va", "--frames", sim[0] / "frames.csv", "--out", ".", "--force"],
        ["make-demo-data", ".", "--force"],
        ["demo", "--out", ".", "--small"],
    ):
        result = run_here(*command)
        assert result.returncode == 2 and "root, home or the current folder" in result.stderr, result.stderr
    assert tree_state(tmp_path) == before


def test_10_a_blank_line_inside_an_annotation_file_is_an_error_not_a_shift(sim, tmp_path):
    from ensemble.labels import read_annotation_file
    from ensemble.tasks import get_edition

    source = next((sim[0] / "VA_Estimation_Challenge" / "Validation_Set").glob("*.txt"))
    lines = source.read_text().splitlines()
    (tmp_path / "v.txt").write_text("\n".join(lines[:5] + [""] + lines[5:]) + "\n")
    (tmp_path / "end.txt").write_text("\n".join(lines) + "\n\n\n")  # blank lines after the last frame shift nothing
    with pytest.raises(Exception, match="blank line inside the file: 1 line"):
        read_annotation_file(tmp_path / "v.txt", "va", get_edition(2025))
    assert read_annotation_file(tmp_path / "end.txt", "va", get_edition(2025))[1] == len(lines) - 1


def test_11_a_mistyped_frames_manifest_is_an_error(tmp_path, tiny_dataset):
    from members.training.prediction import split_frame_counts

    with pytest.raises(Exception, match="val_frame.csv: frame manifest not found"):
        split_frame_counts(tiny_dataset[0], "val", ("expr",), 2025, tmp_path / "val_frame.csv")


def test_12_missing_video_ids_fail_validation(sim):
    table = read_table(sim[1][0])
    data = table.data.astype({"video": object})
    data.loc[3, "video"] = None
    with pytest.raises(ContractError, match="missing video ids: 1 row"):
        validate_table(data, table.meta, "t")


def test_13_a_table_is_never_written_with_another_format_s_name(sim, tmp_path):
    result = run_here("fuse", *sim[1], "--labels", sim[0], "--out", tmp_path / "x.csv")
    assert result.returncode == 2 and "tables are written as Parquet" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_14_row_sums_are_checked_symmetrically_and_rounded_csv_members_fit_and_apply(sim, tmp_path):
    table = read_table(sim[1][0])
    cols = [c for c in table.data.columns if c.startswith("expr_")]
    for total, ok in ((0.995, True), (1.005, True), (0.985, False), (1.015, False)):
        data = table.data.copy()
        data.loc[0, cols] = data.loc[0, cols] * total
        if ok:
            back = validate_table(data, table.meta, "t").data
            assert abs(float(back.loc[0, cols].sum()) - 1.0) < 1e-6  # rescaled to sum to 1
        else:
            with pytest.raises(ContractError, match="do not sum to 1"):
                validate_table(data, table.meta, "t")
    for split in ("val", "test"):
        rounded = read_table(sim[1][0]).data.round(3)
        rounded.to_csv(tmp_path / f"m_{split}.csv", index=False)
        read_table(sim[1][1]).data.round(3).to_csv(tmp_path / f"n_{split}.csv", index=False)
    val, test = [tmp_path / "m_val.csv", tmp_path / "n_val.csv"], [tmp_path / "m_test.csv", tmp_path / "n_test.csv"]
    result = run_here(
        *["fuse", *val, "--labels", sim[0], "--apply", test[0], "--apply", test[1]],
        *["--out", tmp_path / "f.parquet", "--no-smooth"],
    )
    assert result.returncode == 0, result.stderr
    assert read_table(tmp_path / "f.parquet").meta.extra["members"] == ["m", "n"]


def test_16_outputs_follow_the_users_umask(sim, tmp_path):
    old = os.umask(0o002)
    try:
        assert (
            run_here("fuse", *sim[1], "--labels", sim[0], "--out", tmp_path / "f.parquet", "--no-smooth").returncode == 0
        )
        args = ["make-demo-data", tmp_path / "d", "--train-videos", 1, "--val-videos", 1, "--test-videos", 1]
        assert run_here(*args, "--min-frames", 10, "--max-frames", 10, "--size", 24).returncode == 0
    finally:
        os.umask(old)
    modes = {
        p.name: stat.S_IMODE(p.stat().st_mode)
        for p in [tmp_path / "f.parquet", tmp_path / "d", tmp_path / "d" / "train_frames.csv"]
    }
    assert modes == {"f.parquet": 0o664, "d": 0o775, "train_frames.csv": 0o664}
    assert np.all([stat.S_IMODE(p.stat().st_mode) in (0o664, 0o775) for p in (tmp_path / "d").rglob("*")])
