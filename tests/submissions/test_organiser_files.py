"""``make-demo-data`` writes the organisers' files of its test split, and a submission written through them
from the demo data carries exactly the labels, row for row, in the organisers' order."""

import pandas as pd
import pytest
from helpers import one_hot_table

from ensemble.frames import read_frame_source, video_folders
from ensemble.labels import read_label_folder
from ensemble.tasks import get_edition
from members.synthetic.dataset import SyntheticConfig, make_dataset, organiser_files
from submissions import write_submission


def test_default_edition_gets_a_name_list_and_an_example_file_per_track(tiny_dataset):
    root, summary = tiny_dataset
    videos = list(summary["frames"]["test"])
    files = organiser_files(root, get_edition("abaw10"))
    names = {track: f.name for track, (f, _) in files.items()}
    assert names == {
        "expr": "ABAW_Expr_test_set_sample.txt",  # ora942878/ABAW_10_EXPR configs/paths.py
        "va": "ABAW_VA_test_set_sample.txt",
        "au": "ABAW_AU_test_set_sample.txt",
    }
    assert files["va"][1].name == "Valence_Arousal_Estimation_Challenge_test_set_release.txt"
    assert files["va"][1].read_text() == "".join(f"{v}\n" for v in videos[::-1])  # each track its own order
    lines = files["au"][0].read_text().splitlines()
    assert lines[0] == "image_location,AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"
    order = files["au"][1].read_text().split()
    assert lines[1:] == [f"{v}/{f:05d}.jpg," for v in order for f in range(1, summary["frames"]["test"][v] + 1)]


def test_2022_gets_name_lists_and_the_multi_task_image_list(tmp_path):
    cfg = SyntheticConfig(
        train_videos=1, val_videos=1, test_videos=2, min_frames=12, max_frames=14, size=24, edition=2022
    )
    make_dataset(tmp_path, cfg)
    files = organiser_files(tmp_path, get_edition(2022))
    assert files["expr"] == (
        tmp_path / "test_frames.csv",
        tmp_path
        / "test_set"
        / "names_of_videos_in_each_test_set"
        / "Expression_Classification_Challenge_test_set_release.txt",
    )
    assert files["mtl"] == (tmp_path / "test_set" / "MTL_Challenge_test_set_release.txt", None)
    lines = files["mtl"][0].read_text().splitlines()
    faces = {f"{p.parent.name}/{p.name}" for folder in video_folders(tmp_path).values() for p in folder.glob("*.jpg")}
    assert lines[0] == "image" and set(lines[1:]) <= faces and all(int(x[-9:-4]) % 3 == 1 for x in lines[1:])


@pytest.mark.parametrize("track", ["expr", "va", "au"])
def test_a_submission_from_demo_data_carries_the_labels_in_the_organisers_order(tiny_dataset, tmp_path, track):
    root, summary = tiny_dataset
    ed = get_edition("abaw10")
    frames, videos = organiser_files(root, ed)[track]
    write_submission(
        one_hot_table(root, summary, drop=False), track, "abaw10", read_frame_source(frames, videos), tmp_path / "s"
    )
    text = (tmp_path / "s" / "predictions" / "predictions.txt").read_text()
    header, *rows = text.splitlines()
    assert header == frames.read_text().splitlines()[0]
    assert [r.split(",")[0] for r in rows] == [ln.split(",")[0] for ln in frames.read_text().splitlines()[1:]]
    got = pd.DataFrame([r.split(",") for r in rows])
    got.insert(0, "frame", got[0].str[-9:-4].astype(int))
    got.insert(0, "video", got[0].str.split("/").str[0])
    labels = read_label_folder(root / "test_labels" / ed.folders[track] / "Test_Set", track, ed)
    merged = labels.merge(got.drop(columns=[0]), on=["video", "frame"])
    assert len(merged) == len(labels)
    for j, column in enumerate(ed.label_columns(track), start=1):
        assert (merged[j].astype(float) - merged[column]).abs().max() < 1e-6
