"""The live editions as a team submits to them: ``submit --edition abaw10`` (EXPR, VA, AU) and ``--edition abaw9``
(VA) from the organisers' kind of example file and video-name list write exactly the text below, written by hand
from the formats in participants' code (Byeooon/cvpr_abaw_10th txt.py, byeongjin1/abaw10th_imlab-va-
inference_test.py, leeyubin10/9th-ABAW generate_result.py): header ``image_location,`` + the track's names, then
``video/00001.jpg,<values>`` for each listed image, videos in the list's order."""

import pandas as pd
import pytest
from helpers import run_here

from ensemble.contract import PredictionTable, TableMeta, write_table
from ensemble.tasks import EXPR_8

CLASSES = {("v1", 1): 7, ("v1", 2): 0, ("v1", 3): 4, ("v2", 1): 1, ("v2", 2): 6}
VA = {("v1", 1): (0.25, -0.5), ("v1", 2): (0.125, 0.75), ("v1", 3): (-1.0, 1.0), ("v2", 1): (0.5, 0.5)}
VA[("v2", 2)] = (0.0, -0.25)
AUS = {(video, frame): [(i + frame + len(video)) % 3 == 0 for i in range(12)] for video, frame in CLASSES}
HEADERS = {
    "expr": "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other",
    "va": "image_location,valence,arousal",
    "au": "image_location,AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26",
}
LISTED = [("v2", 1), ("v2", 2), ("v1", 1), ("v1", 2), ("v1", 3), ("v1", 4)]  # v1/00004.jpg: no face, no row


def _expected(track: str) -> str:
    """The file, by hand: the listed images in list order; v1/00004.jpg repeats v1/00003.jpg (fill previous)."""
    rows = []
    for video, frame in LISTED:
        key = (video, min(frame, 3))
        if track == "expr":
            value = str(CLASSES[key])
        elif track == "va":
            value = ",".join(f"{x:.6f}" for x in VA[key])
        else:
            value = ",".join("1" if bit else "0" for bit in AUS[key])
        rows.append(f"{video}/{frame:05d}.jpg,{value}")
    return "\n".join([HEADERS[track], *rows]) + "\n"


def _table(edition="abaw10") -> PredictionTable:
    keys = sorted(CLASSES)
    data = pd.DataFrame(keys, columns=["video", "frame"])
    for j, name in enumerate(EXPR_8):
        data[f"expr_{name.lower()}"] = [0.65 if CLASSES[k] == j else 0.05 for k in keys]
    data["valence"], data["arousal"] = [VA[k][0] for k in keys], [VA[k][1] for k in keys]
    for j, au in enumerate(HEADERS["au"].split(",")[1:]):
        data[au.lower()] = [0.9 if AUS[k][j] else 0.2 for k in keys]
    return PredictionTable(data, TableMeta(("expr", "va", "au"), edition, "fused", "test"))


def _release(folder, example: str, names: str, header: str):
    """The organisers' example file (a row per listed image, values empty) and video-name list."""
    (folder / "names").mkdir(parents=True, exist_ok=True)
    (folder / "names" / names).write_text("v2\nv1\n")
    (folder / example).write_text(header + "\n" + "".join(f"{v}/{f:05d}.jpg,\n" for v, f in LISTED))
    return folder / example, folder / "names" / names


@pytest.fixture
def fused(tmp_path):
    return write_table(_table(), tmp_path / "fused_test.parquet")


@pytest.mark.parametrize(
    "track, example, names",
    [
        ("expr", "ABAW_Expr_test_set_sample.txt", "Expression_Recognition_Challenge_test_set_release.txt"),
        ("va", "ABAW_VA_test_set_sample.txt", "Valence_Arousal_Estimation_Challenge_test_set_release.txt"),
        ("au", "ABAW_AU_test_set_sample.txt", "Action_Unit_Detection_Challenge_test_set_release.txt"),
    ],
)
def test_abaw10_submissions_equal_the_expected_text(fused, tmp_path, track, example, names):
    frames, videos = _release(tmp_path / "release", example, names, HEADERS[track])
    out = tmp_path / "sub"
    args = ["--edition", "abaw10", "--track", track, "--frames", frames, "--videos", videos, "--out", out]
    result = run_here("submit", fused, *args)
    assert result.returncode == 0, result.stderr
    assert "edition ABAW10 (CVPR 2026) (given)" in result.stderr
    assert (out / "predictions" / "predictions.txt").read_text() == _expected(track)
    valid = run_here(
        "validate-submission",
        out / "submission.zip",
        "--edition",
        "abaw10",
        "--track",
        track,
        "--frames",
        frames,
        "--videos",
        videos,
    )
    assert valid.returncode == 0, valid.stdout


def test_abaw9_va_equals_the_expected_text_and_its_expr_is_refused(fused, tmp_path):
    example, names = "ICCV_9th_ABAW_VA_test_set_sample.txt", "Valence_Arousal_Estimation_Challenge_test_set_release.txt"
    frames, videos = _release(tmp_path / "release", example, names, HEADERS["va"])
    out = tmp_path / "sub"
    args = ["--track", "va", "--frames", frames, "--videos", videos, "--out", out]
    result = run_here("submit", fused, "--edition", "abaw9", *args)
    assert result.returncode == 0, result.stderr
    assert "edition ABAW9 (ICCV 2025) (given; the tables name ABAW10 (CVPR 2026))" in result.stderr
    assert (out / "predictions" / "predictions.txt").read_text() == _expected("va")
    refused = run_here(
        "submit", fused, "--edition", "abaw9", "--track", "expr", "--frames", frames, "--out", tmp_path / "x"
    )
    errors = [ln for ln in refused.stderr.splitlines() if ln.startswith("error: ")]
    assert refused.returncode == 2 and len(errors) == 1 and "Traceback" not in refused.stderr
    assert errors[0].startswith("error: no expr track in edition ABAW9 (ICCV 2025); it ran in: ABAW1 (FG 2020), ")
    assert "ABAW8 (CVPR 2025), ABAW10 (CVPR 2026) (tracks of ABAW9 (ICCV 2025): va)" in errors[0]
    assert not (tmp_path / "x").exists()


def test_a_csv_without_metadata_is_submitted_as_abaw10_and_the_note_says_so(tmp_path):
    csv = tmp_path / "fused_test.csv"
    _table().data.to_csv(csv, index=False)
    frames, videos = _release(
        tmp_path / "release",
        "ABAW_Expr_test_set_sample.txt",
        "Expression_Recognition_Challenge_test_set_release.txt",
        HEADERS["expr"],
    )
    out = tmp_path / "sub"
    result = run_here("submit", csv, "--track", "expr", "--frames", frames, "--videos", videos, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "edition ABAW10 (CVPR 2026) (the default: the tables name no edition)" in result.stderr
    assert (out / "predictions" / "predictions.txt").read_text() == _expected("expr")
