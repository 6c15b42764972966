"""The malformed-input sweep for image, clip and list datasets and their submissions (as ``test_robustness``):
exit code 2, one ``error: ...`` line naming the file, nothing written, deleted or changed."""

import numpy as np
import pandas as pd
import pytest
from helpers import run_here, tree_state
from PIL import Image

from ensemble.contract import PredictionTable, TableMeta, write_table
from ensemble.tasks import get_edition, label_set

TRAIN = ["--backbone", "test_resnet", "--image-size", "24", "--epochs", "1"]


def _image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 24), (90, 120, 150)).save(path)


def _folders(root, classes=("a", "b"), n=2):
    for c in classes:
        for i in range(n):
            _image(root / "train" / c / f"{c}{i}.jpg")
    return root


def _list(root, labels=("a", "b", "a", "b"), val=None):
    for i in range(len(labels)):
        _image(root / "img" / f"{i}.jpg")
    pd.DataFrame({"image_path": [f"img/{i}.jpg" for i in range(len(labels))], "label": labels}).to_csv(
        root / "train.csv", index=False
    )
    if val is not None:
        pd.DataFrame({"image_path": [r[0] for r in val], "label": [r[1] for r in val]}).to_csv(
            root / "val.csv", index=False
        )
    return root


def _train(make):
    def case(tmp):
        return ["train-member", "cnn", "--data", make(tmp / "d"), "--out", tmp / "run", *TRAIN]

    return case


def _empty_class(root):
    _folders(root)
    (root / "train" / "c").mkdir()
    return root


def _unreadable(root):
    _folders(root)
    (root / "train" / "a" / "a0.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


def _stray_val(root):
    _folders(root)
    _image(root / "val" / "z" / "z0.jpg")
    return root


def _empty_clip(root):
    for c in ("Angry", "Happy"):
        _image(root / "train" / c / "clip0" / "001.jpg")
    (root / "train" / "Happy" / "clip1").mkdir()
    return root


def _class_table(tmp, name="t.parquet"):
    edition = label_set(("a", "b"))
    data = pd.DataFrame({"video": ["test/x.jpg", "test/y.jpg"], "frame": 1, "expr_a": [0.8, 0.3], "expr_b": [0.2, 0.7]})
    return write_table(PredictionTable(data, TableMeta.of(("expr",), edition, member="m")), tmp / name)


def _abaw_table(tmp):
    edition = get_edition(2025)
    probs = np.full((1, 8), 1 / 8, np.float32)
    data = pd.DataFrame(probs, columns=edition.output_columns("expr")).assign(video="v", frame=1)
    return write_table(PredictionTable(data, TableMeta.of(("expr",), edition)), tmp / "abaw.parquet")


def _submit(sample_text):
    def case(tmp):
        (tmp / "sample.csv").write_text(sample_text)
        return ["submit", _class_table(tmp), "--sample", tmp / "sample.csv", "--out", tmp / "submission.csv"]

    return case


CASES = {
    "empty class folder": (_train(_empty_class), "train/c: empty class folder"),
    "unreadable image": (_train(_unreadable), "a0.jpg: unreadable image"),
    "val class outside the train classes": (_train(_stray_val), "val/z: label 'z' is not one of the classes: a, b"),
    "clip folder without frames": (_train(_empty_clip), "clip1: clip folder without frames"),
    "list label outside the set": (
        _train(lambda r: _list(r, val=[("img/0.jpg", "c")])),
        "val.csv: line 2: label 'c' is not one of the classes: a, b",
    ),
    "list image missing": (
        _train(lambda r: _list(r, val=[("img/nope.jpg", "a")])),
        "val.csv: line 2: image 'img/nope.jpg' not found",
    ),
    "list with one class": (_train(lambda r: _list(r, labels=("a", "a"))), "two or more classes"),
    "--classes of another count": (
        lambda tmp: [*_train(_folders)(tmp), "--classes", "x,y,z"],
        "--classes names 3 classes",
    ),
    "--task va on a classification dataset": (
        lambda tmp: [*_train(_folders)(tmp), "--task", "va"],
        "expression labels only",
    ),
    "sample row the table lacks": (
        _submit("image_path,emotion\nx.jpg,a\nq.jpg,a\n"),
        "no prediction for 1 sample row(s), first 'q.jpg'",
    ),
    "sample with three columns": (_submit("image_path,emotion,extra\nx.jpg,a,1\n"), "expected 2 columns"),
    "sample listing a row twice": (_submit("image_path,emotion\nx.jpg,a\nx.jpg,b\n"), "'x.jpg' listed twice"),
    "submission not a csv": (
        lambda tmp: ["submit", _class_table(tmp), "--out", tmp / "submission.zip"],
        "is a .csv file",
    ),
    "--track with a label-set table": (
        lambda tmp: ["submit", _class_table(tmp), "--track", "expr", "--out", tmp / "s.csv"],
        "takes no --track",
    ),
    "--sample with an ABAW table": (
        lambda tmp: ["submit", _abaw_table(tmp), "--sample", _abaw_table(tmp), "--out", tmp / "s.csv"],
        "--sample is for image and clip challenges",
    ),
    "validate a class submission without classes": (
        lambda tmp: ["validate-submission", _class_table(tmp), "--sample", tmp / "none.csv"],
        "needs --data (or --classes and --sample)",
    ),
    "validate against a missing sample": (
        lambda tmp: ["validate-submission", tmp / "s.csv", "--sample", tmp / "none.csv", "--classes", "a,b"],
        "none.csv: sample submission not found",
    ),
    "evaluate a label-set table on other classes": (
        lambda tmp: [
            "evaluate",
            _class_table(tmp),
            "--labels",
            _folders(tmp / "d", ("p", "q")),
            "--labels-split",
            "val",
        ],
        "classes a, b do not label",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_dataset_or_submission_input_gives_one_line_error_and_changes_nothing(tmp_path, monkeypatch, case):
    build, message = CASES[case]
    args = build(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = tree_state(tmp_path)
    result = run_here(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert tree_state(tmp_path) == before
