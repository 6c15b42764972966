"""The writer's refusals and its all-or-nothing output."""

from pathlib import Path

import pytest
from helpers import COUNTS, ROWS_12, table_for

from ensemble.contract import PredictionTable, TableMeta
from ensemble.errors import AffectEnsError, OutputExistsError, SubmissionError
from ensemble.frames import MANIFEST, from_counts, read_frame_source
from ensemble.outputs import UnsafePathError
from submissions import write_submission


@pytest.mark.parametrize("video", ["../../x", "/abs", "a\x00b", ".."])
def test_video_ids_never_become_paths_outside_the_output(tmp_path, video):
    table = table_for(2025, [(video, 1, 4, 0.5, -0.25, [1] + [0] * 11)])
    source = from_counts(MANIFEST, Path("frames"), {video: 1})
    with pytest.raises(UnsafePathError, match="video id .* cannot be used as a file name"):
        write_submission(table, "va", 2022, source, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_refusals_write_nothing(tmp_path):
    table = table_for(2025, ROWS_12)
    va_only = PredictionTable(table.data[["video", "frame", "valence", "arousal"]], TableMeta(("va",), 2025))
    with pytest.raises(SubmissionError, match="the au track needs au outputs; the table has va"):
        write_submission(va_only, "au", 2025, COUNTS, tmp_path / "a")
    (tmp_path / "list.txt").write_text("image\nv1/00001.jpg\nv1/00003.jpg\nv2/00001.jpg\n")
    with pytest.raises(
        SubmissionError, match=r"per-video files need every frame 1..n .* image list lists otherwise for video 'v1'"
    ):
        write_submission(table, "va", 2022, read_frame_source(tmp_path / "list.txt"), tmp_path / "a")
    with pytest.raises(SubmissionError, match=r"unknown track 'ccc'; choose one of: expr, va, au, mtl"):
        write_submission(table, "ccc", 2025, COUNTS, tmp_path / "a")
    with pytest.raises(
        AffectEnsError,
        match=r"expr label set of edition 2025 \(ABAW8 CVPR, ABAW9 ICCV\) \(8 outputs\) does not match edition ABAW1 \(FG 2020\)",
    ):
        write_submission(table, "expr", 2020, COUNTS, tmp_path / "a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["list.txt"]


def test_replaces_only_its_own_output(tmp_path):
    table = table_for(2025, ROWS_12)
    report = write_submission(table, "va", 2025, COUNTS, tmp_path / "a")
    assert report.zip_path == tmp_path / "a" / "submission.zip" and report.zip_path.is_file()
    with pytest.raises(OutputExistsError, match="output exists; pass --force"):
        write_submission(table, "va", 2025, COUNTS, tmp_path / "a")
    write_submission(table, "expr", 2025, COUNTS, tmp_path / "a", force=True)
    assert (tmp_path / "a" / "predictions" / "predictions.txt").read_text().startswith("image_location,Neutral")
    (tmp_path / "mine").mkdir()
    with pytest.raises(UnsafePathError, match="was not written by affect-ens"):
        write_submission(table, "va", 2025, COUNTS, tmp_path / "mine", force=True)


def test_table_videos_the_source_does_not_list_are_left_out_and_counted(tmp_path):
    report = write_submission(table_for(2025, ROWS_12), "va", 2025, {"v2": 2}, tmp_path / "a")
    assert report.dropped == 1 and report.rows == 2
    assert (tmp_path / "a" / "predictions" / "predictions.txt").read_text().count("v1/") == 0


def test_a_killed_write_leaves_nothing(tmp_path, monkeypatch):
    import submissions.writer as writer

    def boom(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "_zip", boom)
    with pytest.raises(KeyboardInterrupt):
        write_submission(table_for(2025, ROWS_12), "va", 2025, COUNTS, tmp_path / "sub")
    assert list(tmp_path.iterdir()) == []


def test_an_example_file_of_another_track_is_refused(tmp_path):
    (tmp_path / "va_example.txt").write_text(
        "image_location,valence,arousal\nv1/00001.jpg,\nv1/00002.jpg,\nv1/00003.jpg,\n"
    )
    source = read_frame_source(tmp_path / "va_example.txt")
    table = table_for(2025, ROWS_12)
    with pytest.raises(
        SubmissionError, match=r"va_example.txt: this example file is for another track or edition .*expr track of 2025"
    ):
        write_submission(table, "expr", 2025, source, tmp_path / "a")
    with pytest.raises(
        SubmissionError, match=r"mtl track of 2024 \(ABAW6 CVPR, ABAW7 ECCV\): it takes the organisers' image list"
    ):
        write_submission(table, "mtl", 2024, source, tmp_path / "a")
    report = write_submission(table, " VA ", "ABAW8", source, tmp_path / "a")  # a tired user's spelling
    assert report.track == "va" and report.rows == 3 and report.dropped == 1
