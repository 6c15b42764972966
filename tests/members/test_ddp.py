"""train-member, predict-member and extract-features under torchrun: two processes (Gloo, CPU) against one.

The model is the cnn member on timm's ``test_convnext``, which has no BatchNorm (LayerNorm only), with
``--dropout 0``, trained on EXPR and AU of a synthetic set where every frame is labelled: each process's
loss is then a mean over the same number of samples, so two processes of 8 average to the gradient of one
process of 16. torchrun starts slowly (seconds), so the module launches it once, running train-member,
predict-member and extract-features one after another in the same two processes (``torchrun_commands.py``
runs each exactly as ``torchrun ... -m ensemble.cli ARGS`` does).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ensemble.cli.common import load_stack, load_truths
from ensemble.contract import read_table
from ensemble.frames import video_folders
from ensemble.pipeline import member_rows
from members.cnn import CnnConfig, CnnMember
from members.synthetic.dataset import SyntheticConfig, make_dataset
from members.training.loop import train_member
from members.training.prediction import extract_features, predict_member, write_prediction
from members.training.runs import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MODEL = ["--backbone", "test_convnext", "--dropout", "0", "--task", "expr,au", "--image-size", "32"]
SCHEDULE = ["--epochs", "1", "--seed", "2", "--lr", "3e-3"]
CONFIG = CnnConfig(
    backbone="test_convnext", dropout=0.0, tasks=("expr", "au"), image_size=32, epochs=1, seed=2, lr=3e-3
)
"""The config of ``MODEL`` and ``SCHEDULE``, for runs in this process."""

AUDIT = """
import os, sys
UNDER, LOG = os.environ.get("AUDIT_UNDER"), os.environ.get("AUDIT_LOG")
if UNDER and LOG and "RANK" in os.environ:
    FD = os.open(f"{LOG}.{os.environ['RANK']}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def hook(event, args):
        if event == "open":
            mode, flags = args[1], args[2]
            if not ((isinstance(mode, str) and any(c in mode for c in "wax+")) or flags & WRITES):
                return
        elif event not in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree"):
            return
        if str(args[0]).startswith(UNDER):
            target = f" {args[1]}" if event == "os.rename" else ""
            os.write(FD, f"{event} {args[0]}{target}\\n".encode())

    sys.addaudithook(hook)
"""
"""A sitecustomize for the torchrun processes: each rank logs every write, rename, mkdir or delete it makes
under AUDIT_UNDER (torch.save writes through a temporary file opened with os.open, so it shows too)."""


def torchrun(tmp: Path, *target: str, audit_under: Path | None = None) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node 2 TARGET`` with this interpreter, importing the repo under test."""
    (tmp / "site").mkdir(exist_ok=True)
    (tmp / "site" / "sitecustomize.py").write_text(AUDIT)
    path = os.pathsep.join([str(tmp / "site"), str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "AUDIT_LOG": str(tmp / "audit"), "AUDIT_UNDER": str(audit_under or "")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *target]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Every frame labelled and with a face, except some test frames whose face image is removed."""
    root = tmp_path_factory.mktemp("ddp_data")
    cfg = SyntheticConfig(seed=5, train_videos=2, val_videos=2, test_videos=2, min_frames=30, max_frames=40, size=32)
    summary = make_dataset(root, SyntheticConfig(**{**cfg.__dict__, "unannotated": 0.0, "missing_faces": 0.0}))
    for video in summary["frames"]["test"]:
        for image in sorted(video_folders(root)[video].glob("*.jpg"))[3::7]:
            image.unlink()
    return root


@pytest.fixture(scope="module")
def ddp(data, tmp_path_factory) -> dict:
    """Under one torchrun launch of two processes: a one-epoch run trained with batch 8 per process, then its
    test predictions and training features. Paths, the launch's result and the audit logs' prefix."""
    tmp = tmp_path_factory.mktemp("ddp")
    run, pred, feats = tmp / "run", tmp / "test.parquet", tmp / "train.npz"
    commands = [
        ["train-member", "cnn", "--data", str(data), "--out", str(run), *MODEL, *SCHEDULE, "--batch-size", "8"],
        ["predict-member", str(run), "--split", "test", "--data", str(data), "--out", str(pred)],
        ["extract-features", str(run), "--split", "train", "--data", str(data), "--out", str(feats)],
    ]
    result = torchrun(tmp, str(HERE / "torchrun_commands.py"), json.dumps(commands), audit_under=run)
    assert result.returncode == 0, result.stderr[:3000]
    return {"run": run, "pred": pred, "feats": feats, "result": result, "audit": tmp / "audit"}


def test_two_processes_train_and_rank_0_alone_writes_and_prints(ddp):
    run, result, audit = ddp["run"], ddp["result"], ddp["audit"]
    assert result.stdout.count("epoch 1: loss") == 1 and result.stdout.count("wrote ") == 2
    config = json.loads((run / "config.json").read_text())
    assert config["batch_size"] == 8 and config["launch"]["world_size"] == 2
    assert config["launch"]["global_batch_size"] == 16
    written = Path(f"{audit}.0").read_text()
    for name in ("config.json", "last.pt", "best.pt", "history.json"):
        assert f" {run / name}\n" in written, name  # renamed into place by rank 0
    assert Path(f"{audit}.1").read_text() == ""  # rank 1 wrote nothing under the run


def test_two_processes_of_8_reach_the_weights_of_one_process_of_16(data, ddp, tmp_path):
    run = ddp["run"]
    history = train_member(CnnMember, CnnConfig(**{**CONFIG.__dict__, "batch_size": 16}), data, tmp_path / "one")
    one = load_checkpoint(tmp_path / "one" / "last.pt")["model"]
    two = load_checkpoint(run / "last.pt")["model"]
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-5)
    assert json.loads((run / "history.json").read_text())[0]["loss"] == pytest.approx(history[0]["loss"], abs=1e-5)


def test_the_validation_score_is_evaluate_on_the_saved_weights_in_one_process(data, ddp, tmp_path):
    """Scores over every validation frame gathered from both processes, not averages of per-process scores."""
    run = ddp["run"]
    write_prediction(predict_member(run, data, "val"), tmp_path / "val.parquet")
    stack = load_stack([tmp_path / "val.parquet"], 2025, "strict")
    row = member_rows(stack, load_truths(data, "val", stack))[0]
    trained = json.loads((run / "history.json").read_text())[0]
    for key in ("expr_f1", "au_f1", "au_accuracy"):
        assert trained[key] == pytest.approx(row[key], abs=1e-9), key


def test_one_process_resumes_and_extends_the_run(data, ddp, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(ddp["run"], run)
    history = train_member(CnnMember, CnnConfig(**{**CONFIG.__dict__, "batch_size": 8, "epochs": 2}), data, run)
    config = json.loads((run / "config.json").read_text())
    assert config["batch_size"] == 16 and config["launch"]["world_size"] == 1  # the run's global batch of 16
    assert [row["epoch"] for row in history] == [1, 2]


def test_prediction_and_features_under_torchrun_equal_one_process(data, ddp, tmp_path):
    done = predict_member(ddp["run"], data, "test")
    write_prediction(done, tmp_path / "one.parquet")
    two, one = read_table(ddp["pred"]), read_table(tmp_path / "one.parquet")
    pd.testing.assert_frame_equal(two.data, one.data, check_exact=True)
    assert two.meta.extra["filled_frames"] == done.filled > 0
    extract_features(ddp["run"], data, "train", tmp_path / "one.npz")
    with np.load(ddp["feats"]) as a, np.load(tmp_path / "one.npz") as b:
        for key in ("video", "frame", "features", "count_videos", "count_frames"):
            np.testing.assert_array_equal(a[key], b[key])


def test_python_m_ensemble_cli_is_the_command_line():
    result = subprocess.run(
        [sys.executable, "-m", "ensemble.cli", "train-member", "cnn", "--help"], capture_output=True
    )
    assert result.returncode == 0 and b"--precision" in result.stdout
