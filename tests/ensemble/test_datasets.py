"""Image, clip and list datasets read by layout; other challenges' label sets; their submission CSVs."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ensemble.contract import PredictionTable, TableMeta, read_table, write_table
from ensemble.datasets import AFF_WILD2, CLASS_FOLDERS, CLIPS, CSV_LIST, detect_dataset, hold_out, read_dataset
from ensemble.errors import AffectEnsError, DataError, LabelsError, SubmissionError
from ensemble.labels import read_labels
from ensemble.tasks import get_edition, label_set, score_columns
from submissions.classes import check_class_submission, read_sample, write_class_submission


def _image(path, shade=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade, shade, shade)).save(path)


def _class_folders(root, counts, split="train", suffix=".jpg"):
    for name, n in counts.items():
        for i in range(n):
            _image(root / split / name / f"{name}{i}{suffix}")
    return root


def test_class_folders_hold_out_a_seeded_stratified_share_of_train(tmp_path):
    root = _class_folders(tmp_path, {"b": 10, "a": 5})
    for name in ("x.jpg", "y.png"):
        _image(root / "test_kaggle" / name)
    data = read_dataset(root)
    assert detect_dataset(root) == CLASS_FOLDERS and data.classes == ("a", "b")  # sorted folder names
    val = data.labels("val")
    assert sorted(val["expr"].tolist()) == [0, 1, 1]  # 20 % of each class: 1 of 5, 2 of 10
    assert set(val["video"]) == set(read_dataset(root).labels("val")["video"])  # the same draw every time
    assert not set(val["video"]) & set(data.frames("train")["video"])
    assert data.holdout["share"] == 0.2 and data.holdout["seed"] == 0 and "held out" in data.describe()
    test = data.frames("test")
    assert test["video"].tolist() == ["test_kaggle/x.jpg", "test_kaggle/y.png"] and (test["expr"] == -1).all()
    with pytest.raises(LabelsError, match="has no labels"):
        data.labels("test")


def test_class_folders_with_val_and_labelled_test(tmp_path):
    root = _class_folders(tmp_path, {"0": 2, "1": 2})
    _class_folders(root, {"0": 1, "1": 2}, "val")
    _class_folders(root, {"1": 1}, "test")
    data = read_dataset(root)
    assert not data.holdout and len(data.labels("val")) == 3
    assert data.labels("test")[["video", "frame", "expr"]].values.tolist() == [["test/1/10.jpg", 1, 1]]


def test_hold_out_keeps_a_single_sample_class_in_train():
    train = pd.DataFrame({"video": list("abc"), "frame": 1, "path": list("abc"), "expr": [0, 0, 1]})
    kept, held = hold_out(train)
    assert "c" in set(kept["video"]) and len(held) == 1


def test_clip_dataset_labels_one_row_per_clip(tmp_path):
    for split, clips in (("train", {"Angry": 2, "Happy": 1}), ("test", {"Happy": 1})):
        for name, n in clips.items():
            for c in range(n):
                for f in range(3):
                    _image(tmp_path / split / name / f"clip{c}" / f"{f:03d}.jpg")
    data = read_dataset(tmp_path)
    assert detect_dataset(tmp_path) == CLIPS and data.classes == ("Angry", "Happy")
    assert data.frames("test")["frame"].tolist() == [1, 2, 3]  # the frames of the clip, in order
    assert data.labels("test").values.tolist() == [["test/Happy/clip0", 1, 1]]


def test_csv_list_classes_come_from_its_labels(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        _image(tmp_path / "img" / name)
    pd.DataFrame({"image_path": ["img/a.jpg", "img/b.jpg", "img/c.jpg"], "label": ["sad", "happy", "sad"]}).to_csv(
        tmp_path / "train.csv", index=False
    )
    pd.DataFrame({"image_path": ["img/d.jpg"]}).to_csv(tmp_path / "test.csv", index=False)
    data = read_dataset(tmp_path)
    assert detect_dataset(tmp_path) == CSV_LIST and data.classes == ("happy", "sad")
    assert data.frames("test")["expr"].tolist() == [-1]
    pd.DataFrame({"image_path": ["img/d.jpg"], "label": ["angry"]}).to_csv(tmp_path / "val.csv", index=False)
    with pytest.raises(DataError, match=r"val\.csv: line 2: label 'angry' is not one of the classes: happy, sad"):
        read_dataset(tmp_path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda r: (r / "train" / "b" / "b0.jpg").unlink(), "train/b: empty class folder"),
        (lambda r: _image(r / "val" / "c" / "x.jpg"), "val/c: label 'c' is not one of the classes: a, b"),
        (lambda r: (r / "test" / "a").mkdir(parents=True), "test/a: empty class folder"),
    ],
)
def test_bad_class_folders_are_one_line_errors_naming_the_folder(tmp_path, make, message):
    root = _class_folders(tmp_path, {"a": 2, "b": 1})
    make(root)
    with pytest.raises(DataError, match=message):
        read_dataset(root)


def test_aff_wild2_roots_are_not_taken_for_other_datasets(tmp_path):
    (tmp_path / "cropped_aligned").mkdir()
    assert detect_dataset(tmp_path) == AFF_WILD2


def _table(classes, keys, winners):
    edition = label_set(classes)
    probs = np.full((len(keys), len(classes)), 0.1 / (len(classes) - 1), np.float32)
    probs[np.arange(len(keys)), winners] = 0.9
    data = pd.DataFrame(probs, columns=edition.output_columns("expr"))
    data.insert(0, "frame", 1)
    data.insert(0, "video", keys)
    return PredictionTable(data, TableMeta.of(("expr",), edition, member="m"))


def test_label_set_travels_with_the_table_and_scores_by_accuracy_with_f1(tmp_path):
    table = _table(("cat", "dog", "owl"), ["test/a.jpg", "test/b.jpg"], [2, 0])
    write_table(table, tmp_path / "t.parquet")
    back = read_table(tmp_path / "t.parquet")
    assert back.edition.expr_classes == ("cat", "dog", "owl") and back.edition.name.startswith("3 classes")
    assert get_edition(back.meta.edition) is back.edition
    assert score_columns(back.edition, ("expr",)) == [("expr_f1", "EXPR F1"), ("expr_score", "EXPR acc")]
    assert [h for _, h in score_columns(get_edition("abaw8"), ("expr",))] == ["EXPR F1"]  # ABAW unchanged
    assert back.meta.edition.startswith("classes-")  # its key, from the names
    with pytest.raises(AffectEnsError, match="unknown ABAW edition"):
        get_edition("classes-00000000")  # a label set never met is no edition


def test_labels_of_a_dataset_must_be_named_by_the_label_set(tmp_path):
    root = _class_folders(tmp_path, {"a": 2, "b": 3})
    assert read_labels(root, "expr", "val", label_set(("a", "b")))["expr"].tolist() == [0, 1]
    with pytest.raises(LabelsError, match="classes x, y do not label"):
        read_labels(root, "expr", "val", label_set(("x", "y")))
    with pytest.raises(LabelsError, match="expression labels only"):
        read_labels(root, "va", "val", label_set(("a", "b")))


def test_kaggle_submission_takes_the_sample_rows_order_and_columns(tmp_path):
    keys = ["test_kaggle/b.jpg", "test_kaggle/a.jpg", "test_kaggle/c.jpg"]
    table = _table(("anger", "happy"), keys, [1, 0, 1])
    (tmp_path / "sample.csv").write_text("image_path,emotion\nc.jpg,anger\na.jpg,anger\nb.jpg,anger\n")
    sample = read_sample(tmp_path / "sample.csv")
    assert write_class_submission(table, tmp_path / "submission.csv", sample) == 3
    assert (tmp_path / "submission.csv").read_text() == "image_path,emotion\nc.jpg,happy\na.jpg,anger\nb.jpg,happy\n"
    (tmp_path / "bad.csv").write_text("image_path,label\na.jpg,anger\nc.jpg,joy\nb.jpg,happy\n")
    problems = check_class_submission(tmp_path / "bad.csv", ("anger", "happy"), sample)
    assert len(problems) == 3 and "header" in problems[0] and "line 2" in problems[1] and "'joy'" in problems[2]
    (tmp_path / "short.csv").write_text("image_path,emotion\nc.jpg,anger\n")
    with pytest.raises(SubmissionError, match=r"no prediction for 1 sample row\(s\), first 'd.jpg'"):
        write_class_submission(table, tmp_path / "s2.csv", read_sample(_short(tmp_path)))


def _short(tmp_path):
    (tmp_path / "sample2.csv").write_text("image_path,emotion\nd.jpg,anger\na.jpg,anger\n")
    return tmp_path / "sample2.csv"


def test_clip_submission_without_a_sample_is_clip_label_in_key_order(tmp_path):
    table = _table(("Angry", "Happy"), ["test/Happy/c2", "test/Angry/c1"], [1, 0])
    write_class_submission(table, tmp_path / "clips.csv", None)
    assert (tmp_path / "clips.csv").read_text() == "clip,label\ntest/Angry/c1,Angry\ntest/Happy/c2,Happy\n"
    assert not check_class_submission(
        tmp_path / "clips.csv", ("Angry", "Happy"), None, ["test/Angry/c1", "test/Happy/c2"]
    )
