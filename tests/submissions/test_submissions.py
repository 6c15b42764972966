"""Golden files per edition and track, round trips, and the validator's messages."""

import zipfile

import numpy as np
import pandas as pd
import pytest
from helpers import COUNTS, ROWS_8, ROWS_12, table_for

from ensemble.contract import PredictionTable, TableMeta
from ensemble.errors import ContractError, OutputExistsError, SubmissionError
from ensemble.labels import read_label_folder
from ensemble.tasks import EDITIONS, get_edition
from submissions import FORMATS, validate_submission, write_submission

# Hand-written expected files. v1 frame 2 has no prediction: interpolated between frames 1 and 3
# (probabilities and values averaged, then decided: classes 4 and 0 tie and the lower index wins, as
# with np.argmax), v2 frame 2 copies frame 1 (nearest at the end).
GOLDEN = {
    ("expr", 2025): {
        "v1.txt": "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n4\n0\n0\n",
        "v2.txt": "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n7\n7\n",
    },
    ("expr", 2020): {
        "v1.txt": "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise\n4\n0\n0\n",
        "v2.txt": "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise\n6\n6\n",
    },
    ("va", 2025): {
        "v1.txt": "valence,arousal\n0.500000,-0.250000\n0.200000,0.025000\n-0.100000,0.300000\n",
        "v2.txt": "valence,arousal\n1.000000,-1.000000\n1.000000,-1.000000\n",
    },
    ("au", 2025): {
        "v1.txt": "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26\n"
        "1,0,0,0,0,0,0,0,0,0,0,0\n1,0,0,0,0,0,0,0,0,0,0,1\n0,0,0,0,0,0,0,0,0,0,0,1\n",
        "v2.txt": "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26\n"
        "0,1,0,1,0,1,0,1,0,1,0,1\n0,1,0,1,0,1,0,1,0,1,0,1\n",
    },
    ("au", 2020): {
        "v1.txt": "AU1,AU2,AU4,AU6,AU12,AU15,AU20,AU25\n1,0,0,0,0,0,0,0\n1,0,0,0,0,0,0,1\n0,0,0,0,0,0,0,1\n",
        "v2.txt": "AU1,AU2,AU4,AU6,AU12,AU15,AU20,AU25\n0,1,0,1,0,1,0,1\n0,1,0,1,0,1,0,1\n",
    },
    ("mtl", 2022): {
        "predictions.txt": "image,valence,arousal,expression,aus\n"
        "v1/00001.jpg,0.500000,-0.250000,4,1,0,0,0,0,0,0,0,0,0,0,0\n"
        "v1/00002.jpg,0.200000,0.025000,0,1,0,0,0,0,0,0,0,0,0,0,1\n"
        "v1/00003.jpg,-0.100000,0.300000,0,0,0,0,0,0,0,0,0,0,0,0,1\n"
        "v2/00001.jpg,1.000000,-1.000000,7,0,1,0,1,0,1,0,1,0,1,0,1\n"
        "v2/00002.jpg,1.000000,-1.000000,7,0,1,0,1,0,1,0,1,0,1,0,1\n"
    },
}


@pytest.mark.parametrize("track, edition", list(GOLDEN))
def test_golden_files(tmp_path, track, edition):
    rows = ROWS_8 if edition == 2020 else ROWS_12
    report = write_submission(table_for(edition, rows), track, edition, COUNTS, tmp_path / "sub")
    files = {p.name: p.read_text() for p in (tmp_path / "sub" / "predictions").iterdir()}
    assert files == GOLDEN[(track, edition)]
    assert report.filled == 2 and report.lines == 5
    with zipfile.ZipFile(report.zip_path) as zf:
        assert sorted(zf.namelist()) == sorted(files)


def test_every_edition_and_track_has_a_format():
    assert {(t, y) for t in ("expr", "va", "au") for y in EDITIONS} <= set(FORMATS)
    assert ("mtl", 2022) in FORMATS and ("mtl", 2020) not in FORMATS
    assert FORMATS[("va", 2021)].header == "valence,arousal"


@pytest.mark.parametrize("task", ["expr", "va", "au"])
def test_round_trip_labels_to_submission_and_back(tiny_dataset, tmp_path, task):
    """Labels table -> one-hot prediction table -> submission files -> read as annotations: same values."""
    root, summary = tiny_dataset
    ed = get_edition(2025)
    labels = read_label_folder(root / "test_labels" / ed.folders[task] / "Test_Set", task, ed)
    counts = summary["frames"]["test"]
    full = (
        labels.set_index(["video", "frame"])
        .reindex(
            pd.MultiIndex.from_tuples(
                [(v, f) for v, n in counts.items() for f in range(1, n + 1)], names=["video", "frame"]
            )
        )
        .ffill()
        .bfill()
        .reset_index()
    )
    if task == "expr":
        outputs = pd.DataFrame(np.eye(8)[full["expr"].astype(int)], columns=ed.output_columns("expr"))
    else:
        outputs = full[ed.label_columns(task)].astype(np.float32)
    table = PredictionTable(pd.concat([full[["video", "frame"]], outputs], axis=1), TableMeta((task,), 2025))
    write_submission(table, task, 2025, counts, tmp_path / "sub")
    back = read_label_folder(tmp_path / "sub" / "predictions", task, ed)
    merged = back.merge(labels, on=["video", "frame"], suffixes=("_sub", ""))
    assert len(merged) == len(labels)
    for col in ed.label_columns(task):
        np.testing.assert_allclose(merged[f"{col}_sub"], merged[col], atol=1e-6)


def _good(tmp_path):
    write_submission(table_for(2025, ROWS_12), "va", 2025, COUNTS, tmp_path / "sub")
    return tmp_path / "sub" / "predictions"


BROKEN = {
    "missing video": (lambda d: (d / "v2.txt").unlink(), "missing videos: 1 (v2.txt)"),
    "extra video": (lambda d: (d / "v9.txt").write_text("valence,arousal\n0,0\n"), "extra videos: 1 (v9.txt)"),
    "header": (
        lambda d: (d / "v1.txt").write_text("Valence,Arousal\n0,0\n0,0\n0,0\n"),
        "v1.txt: wrong header: expected 'valence,arousal', got 'Valence,Arousal'",
    ),
    "line count": (
        lambda d: (d / "v1.txt").write_text("valence,arousal\n0,0\n0,0\n"),
        "v1.txt: wrong line count: 2 frame line(s), the video has 3",
    ),
    "unparsable": (
        lambda d: (d / "v1.txt").write_text("valence,arousal\n0,0\nhigh,0\n0,0\n"),
        "v1.txt: unparsable values",
    ),
    "empty value": (
        lambda d: (d / "v1.txt").write_text("valence,arousal\n0,0\n0,\n0,0\n"),
        "v1.txt: unparsable or empty value on line 3",
    ),
    "width": (
        lambda d: (d / "v1.txt").write_text("valence,arousal\n0,0,1\n0,0,1\n0,0,1\n"),
        "expected 2 value(s) per line",
    ),
    "range": (
        lambda d: (d / "v1.txt").write_text("valence,arousal\n0,0\n1.5,0\n0,0\n"),
        "v1.txt: values outside [-1, 1]: 1 line(s), first line 3",
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_validator_names_each_problem(tmp_path, case):
    folder = _good(tmp_path)
    assert validate_submission(folder, "va", 2025, COUNTS) == []
    BROKEN[case][0](folder)
    problems = validate_submission(folder, "va", 2025, COUNTS)
    assert any(BROKEN[case][1] in p for p in problems), problems


def test_validator_lists_all_problems_and_reads_zips(tmp_path):
    folder = _good(tmp_path)
    (folder / "v2.txt").unlink()
    (folder / "v1.txt").write_text("valence,arousal\n0,0\n")
    assert len(validate_submission(folder, "va", 2025, COUNTS)) == 2
    assert validate_submission(tmp_path / "sub" / "submission.zip", "va", 2025, COUNTS) == []
    bad_ranges = {
        "expr": (
            "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n8\n1\n0\n",
            "class indices outside 0..7",
        ),
        "au": (get_edition(2025).header("au") + "\n" + "2," * 11 + "0\n", "AU values other than 0/1"),
    }
    for track, (text, message) in bad_ranges.items():
        (folder / "v1.txt").write_text(text)
        assert any(message in p for p in validate_submission(folder, track, 2025, {"v1": text.count("\n") - 1}))


def test_writer_refuses_bad_inputs_and_writes_nothing(tmp_path):
    table = table_for(2025, ROWS_12)
    with pytest.raises(ContractError, match="manifest misses 1 video.s. of the table, first 'v2'"):
        write_submission(table, "va", 2025, {"v1": 3}, tmp_path / "a")
    with pytest.raises(ContractError, match="frames past the video's length in 1 video.s., first 'v1' .frame 3 of 2."):
        write_submission(table, "va", 2025, {"v1": 2, "v2": 2}, tmp_path / "a")
    with pytest.raises(ContractError, match="no predictions for 1 manifest video.s., first 'v3'"):
        write_submission(table, "va", 2025, {**COUNTS, "v3": 4}, tmp_path / "a")
    with pytest.raises(SubmissionError, match="no multi-task track in edition 2025"):
        write_submission(table, "mtl", 2025, COUNTS, tmp_path / "a")
    with pytest.raises(SubmissionError, match="unknown track 'ccc'; choose one of: expr, va, au, mtl"):
        write_submission(table, "ccc", 2025, COUNTS, tmp_path / "a")
    va_only = PredictionTable(table.data[["video", "frame", "valence", "arousal"]], TableMeta(("va",), 2025))
    with pytest.raises(SubmissionError, match="the au track needs au outputs; the table has va"):
        write_submission(va_only, "au", 2025, COUNTS, tmp_path / "a")
    assert not (tmp_path / "a").exists() and list(tmp_path.iterdir()) == []
    write_submission(table, "va", 2025, COUNTS, tmp_path / "a")
    with pytest.raises(OutputExistsError, match="output exists; pass --force"):
        write_submission(table, "va", 2025, COUNTS, tmp_path / "a")
    write_submission(table, "expr", 2025, COUNTS, tmp_path / "a", force=True)
    assert (tmp_path / "a" / "predictions" / "v1.txt").read_text().startswith("Neutral")


def test_killed_write_leaves_no_output(tmp_path, monkeypatch):
    import submissions.writer as writer

    def boom(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "_zip", boom)
    with pytest.raises(KeyboardInterrupt):
        write_submission(table_for(2025, ROWS_12), "va", 2025, COUNTS, tmp_path / "sub")
    assert list(tmp_path.iterdir()) == []
