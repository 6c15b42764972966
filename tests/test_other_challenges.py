"""Challenges beyond Aff-Wild2, end to end on drawn faces: a Kaggle image challenge (class folders, a flat test
folder, the organisers' sample submission), FER2013's digit folders named with --classes, an EmotiW-style clip set.
"""

import pandas as pd
import pytest
from helpers import run_here

from ensemble.cli.demo_images import ImageDemoConfig, run_image_demo
from ensemble.contract import read_table
from members.synthetic.images import FER_NAMES, KAGGLE_CLASSES, make_image_dataset

MARGIN = 0.1
"""Test accuracy of the submitted fusion must beat the majority-class rate of the hidden truth by this much (ten
points: with 16 drawn faces per class and 8 epochs of timm's tiny test backbones it scored 0.31 against 0.16)."""


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory):
    out = tmp_path_factory.mktemp("kaggle")
    cfg = ImageDemoConfig(("test_resnet", "test_efficientnet"), per_class=16, test=45, size=24, epochs=8)
    return out, run_image_demo(out, cfg)


def test_kaggle_submission_has_the_sample_rows_in_order_with_class_names(kaggle):
    out, result = kaggle
    sample = pd.read_csv(out / "data" / "sample_submission.csv")
    submitted = pd.read_csv(result["submission"])
    assert list(submitted.columns) == ["image_path", "emotion"]
    assert submitted["image_path"].tolist() == sample["image_path"].tolist()  # the sample's rows, in its order
    assert set(submitted["emotion"]) <= set(KAGGLE_CLASSES)
    names = {p.stem.removesuffix("_val") for p in (out / "predictions").glob("*_val.parquet")}
    assert names == {"cnn_test_resnet", "cnn_test_efficientnet", "committee"}  # two members and their committee
    assert {p.name for p in (out / "fused").iterdir()} == {"vote_test.parquet", "average_test.parquet"}


def test_kaggle_submission_beats_the_majority_class_on_the_hidden_truth(kaggle):
    out, result = kaggle
    truth = pd.read_csv(out / "data" / "test_truth.csv").set_index("image_path")["emotion"]
    submitted = pd.read_csv(result["submission"]).set_index("image_path")["emotion"]
    accuracy = (submitted == truth.loc[submitted.index]).mean()
    majority = truth.value_counts(normalize=True).iloc[0]
    assert accuracy > majority + MARGIN, (accuracy, majority)


def test_kaggle_submission_validates_and_a_reordered_one_does_not(kaggle, tmp_path):
    out, result = kaggle
    sample = out / "data" / "sample_submission.csv"
    ok = run_here("validate-submission", result["submission"], "--sample", sample, "--data", out / "data")
    assert ok.returncode == 0, ok.stderr
    rows = pd.read_csv(result["submission"])
    rows.iloc[::-1].to_csv(tmp_path / "reversed.csv", index=False)
    bad = run_here("validate-submission", tmp_path / "reversed.csv", "--sample", sample, "--data", out / "data")
    assert bad.returncode == 2 and "rows differ from the sample" in bad.stdout


def test_submit_and_evaluate_on_the_kaggle_tables(kaggle, tmp_path):
    out, _ = kaggle
    sample = out / "data" / "sample_submission.csv"
    done = run_here("submit", out / "fused" / "vote_test.parquet", "--sample", sample, "--out", tmp_path / "s.csv")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "image_path,emotion"
    tables = sorted((out / "predictions").glob("*_val.parquet"))
    scores = run_here("evaluate", *tables, "--labels", out / "data")
    assert scores.returncode == 0, scores.stderr
    assert "EXPR F1" in scores.stdout and "EXPR acc" in scores.stdout and "confusion of committee" in scores.stdout
    lead = ("--method", "vote", "--tie-break", "lead", "--lead", "committee")
    for method in (lead, ("--method", "average"), ("--method", "stack", "--folds", "3")):
        fused = run_here("fuse", *tables, "--labels", out / "data", *method, "--out", tmp_path / f"{method[1]}.parquet")
        assert fused.returncode == 0, fused.stderr
        assert fused.stderr.count("temporal smoothing does not apply") == 1  # said once, not an error
        assert read_table(tmp_path / f"{method[1]}.parquet").edition.expr_classes == KAGGLE_CLASSES


def test_fer2013_digit_folders_train_and_score_with_class_names(tmp_path):
    data = tmp_path / "fer"
    make_image_dataset(data, "fer", per_class=6, test=14, size=32)
    names = ",".join(FER_NAMES)
    args = ["--backbone", "test_resnet", "--image-size", "32", "--epochs", "1", "--classes", names]
    trained = run_here("train-member", "cnn", "--data", data, "--out", tmp_path / "run", *args)
    assert trained.returncode == 0, trained.stderr
    assert "class folders dataset, 7 classes (0, 1, 2, 3, 4, 5, 6)" in trained.stderr
    out = tmp_path / "test.parquet"
    assert run_here("predict-member", tmp_path / "run", "--data", data, "--split", "test", "--out", out).returncode == 0
    assert read_table(out).edition.expr_classes == FER_NAMES
    scores = run_here("evaluate", out, "--labels", data, "--labels-split", "test")
    assert scores.returncode == 0, scores.stderr
    assert "EXPR F1" in scores.stdout and "EXPR acc" in scores.stdout and "surprise" in scores.stdout


def test_an_abaw_trained_member_maps_onto_fer_names_with_map(tmp_path):
    import dataclasses
    import json

    import torch

    from ensemble.outputs import MARKER
    from members.cnn import CnnConfig, CnnMember

    data, run = tmp_path / "fer", tmp_path / "abaw"
    make_image_dataset(data, "fer", per_class=2, test=7, size=32)
    run.mkdir()
    (run / MARKER).write_text("{}")
    cfg = CnnConfig(backbone="test_resnet", image_size=32, tasks=("expr",))  # ABAW 2025: 8 classes with Other
    (run / "config.json").write_text(json.dumps({"member": "cnn", **dataclasses.asdict(cfg)}))
    torch.save({"model": CnnMember(cfg).build_network({}).state_dict()}, run / "best.pt")
    base = ["predict-member", run, "--data", data, "--split", "test", "--classes", ",".join(FER_NAMES)]
    refused = run_here(*base, "--out", tmp_path / "x.parquet")
    assert refused.returncode == 2 and "class 'Other' maps to no" in refused.stderr and "--map Other=" in refused.stderr
    assert run_here(*base, "--map", "Other=neutral", "--out", tmp_path / "t.parquet").returncode == 0
    table = read_table(tmp_path / "t.parquet")
    assert table.edition.expr_classes == FER_NAMES and len(table.data) == 7
    scores = run_here("evaluate", tmp_path / "t.parquet", "--labels", data, "--labels-split", "test")
    assert scores.returncode == 0 and "EXPR acc" in scores.stdout, scores.stderr


def test_clip_dataset_gives_one_row_per_clip_and_clip_accuracy(tmp_path):
    data = tmp_path / "clips"
    make_image_dataset(data, "clips", per_class=2, test=7, size=32)
    args = ["--backbone", "test_resnet", "--image-size", "32", "--epochs", "1"]
    assert run_here("train-member", "cnn", "--data", data, "--out", tmp_path / "run", *args).returncode == 0
    out = tmp_path / "test.parquet"
    assert run_here("predict-member", tmp_path / "run", "--data", data, "--split", "test", "--out", out).returncode == 0
    table = read_table(out)
    clips = sorted({str(p.parent.relative_to(data)) for p in (data / "test").rglob("*.jpg")})
    assert table.data["video"].tolist() == clips and (table.data["frame"] == 1).all()  # a row per clip
    scores = run_here("evaluate", out, "--labels", data, "--labels-split", "test")
    assert scores.returncode == 0 and "EXPR acc" in scores.stdout, scores.stderr
    for split in ("train", "val", "test"):
        feats = ["--data", data, "--split", split, "--out", tmp_path / "feats" / f"{split}.npz"]
        assert run_here("extract-features", tmp_path / "run", *feats).returncode == 0
    rnn = ["--features", tmp_path / "feats", "--epochs", "2", "--hidden", "8", "--window", "4", "--stride", "2"]
    trained = run_here("train-member", "cnn_rnn", "--data", data, "--out", tmp_path / "rnn", *rnn)
    assert trained.returncode == 0, trained.stderr
    rnn_out = tmp_path / "rnn_test.parquet"
    done = run_here("predict-member", tmp_path / "rnn", "--data", data, "--split", "test", "--out", rnn_out)
    assert done.returncode == 0, done.stderr
    assert read_table(rnn_out).data["video"].tolist() == clips  # the clip-level rows of the temporal member
    both = run_here("evaluate", out, rnn_out, "--labels", data, "--labels-split", "test")
    assert both.returncode == 0 and "rnn" in both.stdout, both.stderr
    done = run_here("submit", out, "--out", tmp_path / "clips.csv")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "clips.csv").read_text().splitlines()[:2] == ["clip,label", f"{clips[0]},{_label(table, 0)}"]
    checked = run_here("validate-submission", tmp_path / "clips.csv", "--data", data)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _label(table, row):
    return table.edition.expr_classes[int(table.outputs("expr")[row].argmax())]
