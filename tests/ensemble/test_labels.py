import numpy as np
import pytest

from ensemble.errors import LabelsError
from ensemble.labels import annotation_frame_counts, read_annotation_file, read_labels, track_dir
from ensemble.tasks import SENTINELS, get_edition

ED = get_edition("abaw10")


def _lines(path):
    return path.read_text().splitlines()[1:]


@pytest.mark.parametrize("task", ["expr", "va", "au"])
@pytest.mark.parametrize("split", ["train", "val"])
def test_labels_tables_match_the_annotation_files(tiny_dataset, task, split):
    root, summary = tiny_dataset
    labels = read_labels(root, task, split, ED)
    folder = track_dir(root, task, split, ED)
    sentinel = str(SENTINELS[task])
    for video, frames in summary["frames"][split].items():
        lines = _lines(folder / f"{video}.txt")
        assert len(lines) == frames
        annotated = [i + 1 for i, ln in enumerate(lines) if sentinel not in ln.split(",")]
        assert labels.loc[labels["video"] == video, "frame"].tolist() == annotated
    assert list(labels.columns) == ["video", "frame"] + ED.label_columns(task)


def test_values_are_read_per_frame(tmp_path):
    path = tmp_path / "v1.txt"
    path.write_text("valence,arousal\n0.5,-0.25\n-5,-5\n-0.1,0.9\n")
    data, n = read_annotation_file(path, "va", ED)
    assert n == 3 and data["frame"].tolist() == [1, 3]
    np.testing.assert_allclose(data[["valence", "arousal"]].to_numpy(), [[0.5, -0.25], [-0.1, 0.9]])
    assert annotation_frame_counts(tmp_path, "va", ED) == {"v1": 3}


def test_au_row_with_any_sentinel_is_unannotated(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text(ED.header("au") + "\n" + ",".join(["1"] * 12) + "\n" + ",".join(["-1"] + ["0"] * 11) + "\n")
    data, _ = read_annotation_file(path, "au", ED)
    assert data["frame"].tolist() == [1] and data["au1"].tolist() == [1]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise\n1\n",
            "header does not match edition ABAW10 \\(CVPR 2026\\) expr",
        ),
        ("", "header does not match edition ABAW10 \\(CVPR 2026\\) expr: expected .*got '\\(empty file\\)'"),
        ("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n1\nhappy\n", "unparsable value on line 3"),
        ("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n1\n9\n", "invalid expr values: 1 line.*line 3"),
        ("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n1,2\n", "expected 1 value"),
    ],
)
def test_malformed_annotation_files(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(LabelsError, match=message):
        read_annotation_file(path, "expr", ED)


def test_missing_track_folder_is_named(tmp_path):
    with pytest.raises(
        LabelsError, match="no au annotations for split 'val': looked for AU_Detection_Challenge/Validation_Set"
    ):
        read_labels(tmp_path, "au", "val", ED)


def test_2020_folder_names_and_label_sets(tmp_path):
    ed = get_edition(2020)
    folder = tmp_path / "AU_Set" / "Validation_Set"
    folder.mkdir(parents=True)
    (folder / "v.txt").write_text(ed.header("au") + "\n" + ",".join(["0", "1"] * 4) + "\n")
    labels = read_labels(tmp_path, "au", "val", ed)
    assert labels.shape == (1, 2 + 8) and labels["au2"].tolist() == [1]
    with pytest.raises(LabelsError, match="header does not match edition ABAW10 \\(CVPR 2026\\) au"):
        read_labels(tmp_path, "au", "val", ED)


def test_a_track_folder_of_another_name_is_found_by_its_files_header(tmp_path):
    folder = tmp_path / "ABAW Annotations" / "Expression_Set_renamed" / "Validation_Set"
    folder.mkdir(parents=True)
    (folder / "v.txt").write_text(ED.header("expr") + "\n3\n-1\n7\n")
    other = tmp_path / "ABAW Annotations" / "Valence" / "Validation_Set"
    other.mkdir(parents=True)
    (other / "v.txt").write_text("valence,arousal\n0.1,0.2\n")
    assert track_dir(tmp_path, "expr", "val", ED) == folder
    labels = read_labels(tmp_path, "expr", "val", ED)
    assert labels["frame"].tolist() == [1, 3] and labels["expr"].tolist() == [3, 7]
    twice = tmp_path / "copy" / "Validation_Set"
    twice.mkdir(parents=True)
    (twice / "v.txt").write_text(ED.header("expr") + "\n3\n")
    with pytest.raises(
        LabelsError,
        match=r"two folders hold expr annotations for Validation_Set: .*Expression_Set_renamed.* and .*copy",
    ):
        read_labels(tmp_path, "expr", "val", ED)


def _va_folder(tmp_path, videos=("v1", "v2")):
    folder = tmp_path / "VA_Estimation_Challenge" / "Validation_Set"
    folder.mkdir(parents=True)
    for video in videos:
        (folder / f"{video}.txt").write_text("valence,arousal\n0.5,-0.25\n-0.1,0.9\n")
    return folder


@pytest.mark.parametrize("kind", ["fifo", "huge", "unreadable"])
def test_only_the_annotation_files_of_the_videos_named_are_opened(tmp_path, monkeypatch, kind):
    """Issue 27, harm 5: every *.txt of the folder was read, even files no table names; now another video's
    file is never opened: its name alone says the predictions miss an annotated video."""
    import os

    import ensemble.labels as labels
    from ensemble.errors import ContractError, DataError

    folder = _va_folder(tmp_path)
    opened = []
    real = labels.read_bounded
    monkeypatch.setattr(labels, "read_bounded", lambda path, *a, **k: opened.append(path.name) or real(path, *a, **k))
    assert len(labels.read_label_folder(folder, "va", ED, videos=["v1", "v2", "v4"])) == 4  # v4: none, not scored
    assert opened == ["v1.txt", "v2.txt"]
    other = folder / "v3.txt"
    if kind == "fifo":
        os.mkfifo(other)
    elif kind == "huge":
        with open(other, "wb") as file:
            file.truncate(2 << 30)  # a sparse 2 GB file: no disk, no memory unless read
    else:
        other.write_text("valence,arousal\n0.5,0.5\n")
        other.chmod(0)
    with pytest.raises(ContractError, match=r"predictions miss 1 video\(s\) with va annotations, first 'v3'"):
        labels.read_labels(tmp_path, "va", "val", ED, videos={"v1", "v2"})
    assert "v3.txt" not in opened
    if kind != "unreadable" or os.geteuid() != 0:  # root reads a file of mode 000
        with pytest.raises(DataError, match="v3.txt"):  # the file of a video named is still read, and refused
            labels.read_labels(tmp_path, "va", "val", ED, videos={"v1", "v2", "v3"})
