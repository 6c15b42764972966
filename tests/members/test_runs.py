"""A training run's folder through train-member: re-runs that differ change nothing, a larger --epochs
extends a finished run, checkpoints never unpickle code, failed runs leave nothing half-made, and a run
killed with SIGKILL at any point resumes to the weights of an uninterrupted run."""

import contextlib
import hashlib
import json
import os
import shutil
import signal
import time

import pytest
import torch
from faults import start_served
from helpers import run_here

from ensemble.errors import DataError
from members.cnn import CnnConfig, CnnMember
from members.temporal import CnnRnnMember, TemporalConfig
from members.training.loop import one_cycle, train_member
from members.training.runs import load_checkpoint
from members.training.temporal import train_temporal

TINY = ["--backbone", "test_resnet", "--image-size", "32", "--batch-size", "8", "--seed", "1", "--lr", "3e-3"]


def train_args(root, run, *extra):
    return ["train-member", "cnn", "--data", root, "--out", run, *TINY, *extra]


def tiny_config(**kw) -> CnnConfig:
    """The config train-member builds from ``TINY``."""
    return CnnConfig(**{**dict(backbone="test_resnet", image_size=32, batch_size=8, seed=1, lr=3e-3), **kw})


def checksums(folder) -> dict:
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def one_error_line(result, alone: bool = True) -> str:
    """The one ``error:`` line of a failed command (``alone``: nothing else on stderr, not even progress)."""
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.startswith("error: ") or alone]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


RUN_ARGS = ["--epochs", "2", "--checkpoint-every", "1"]


@pytest.fixture(scope="module")
def finished(tiny_dataset, tmp_path_factory):
    """A finished two-epoch cnn run trained through the CLI (also the uninterrupted run of the SIGKILL test)."""
    run = tmp_path_factory.mktemp("runs") / "cnn"
    result = run_here(*train_args(tiny_dataset[0], run, *RUN_ARGS))
    assert result.returncode == 0, result.stderr
    return run


def test_a_rerun_with_other_options_is_refused_and_changes_nothing(tiny_dataset, finished):
    before = checksums(finished)
    result = run_here(*train_args(tiny_dataset[0], finished, *RUN_ARGS, "--lr", "0.01", "--task", "va"))
    line = one_error_line(result)
    assert "exists with other options: --task va (the run's: expr), --lr 0.01 (the run's: 0.003);" in line
    with pytest.raises(DataError, match="exists with other options: --epochs 1 \\(the run's: 2\\)"):
        train_member(CnnMember, tiny_config(epochs=1, checkpoint_every=1), tiny_dataset[0], finished)
    with pytest.raises(DataError, match="is a cnn run, not cnn_rnn"):
        train_temporal(CnnRnnMember, TemporalConfig(), tiny_dataset[0], finished)
    assert checksums(finished) == before


def test_train_member_reads_and_checks_the_runs_config_once(tiny_dataset, finished, tmp_path, monkeypatch):
    """Issue 24: a re-run of train-member read config.json three times (the run's options, the re-run check and
    the library's train_member) and checked its member three times; the command opens one TrainingRun and the
    member trains in it."""
    import members.training.runs as runs

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    reads, checks = [], []
    real_read, real_check = runs.read_json_object, runs.check_member
    monkeypatch.setattr(runs, "read_json_object", lambda path, what: reads.append(path) or real_read(path, what))
    monkeypatch.setattr(runs, "check_member", lambda *args: checks.append(args[0]) or real_check(*args))
    result = run_here(*train_args(tiny_dataset[0], run, *RUN_ARGS))
    assert result.returncode == 0, result.stderr
    assert [p for p in reads if p.name == "config.json"] == [run / "config.json"] and checks == [run]


def test_a_larger_epochs_extends_a_finished_run_with_a_new_cycle(tiny_dataset, finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    steps = load_checkpoint(run / "last.pt")["sched"]["total_steps"] // 2
    result = run_here("train-member", "cnn", "--data", tiny_dataset[0], "--out", run, "--epochs", "3")
    assert result.returncode == 0, result.stderr
    assert "epoch 3: loss" in result.stdout
    state = load_checkpoint(run / "last.pt")
    assert state["progress"]["cycle"] == (2, 3) and state["sched"]["total_steps"] == steps
    assert state["opt"]["param_groups"][0]["initial_lr"] == pytest.approx(3e-3 / 25)  # warmed up again from lr/25
    assert [row["epoch"] for row in json.loads((run / "history.json").read_text())] == [1, 2, 3]
    assert json.loads((run / "config.json").read_text())["epochs"] == 3


class Code:
    """Unpickling this creates a file: what a malicious checkpoint would do, harmlessly."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_checkpoint_holding_code_is_refused(tiny_dataset, finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    marker = tmp_path / "code_ran"
    state = load_checkpoint(run / "best.pt")
    torch.save({**state, "metrics": Code(marker)}, run / "best.pt")
    out = tmp_path / "val.parquet"
    result = run_here("predict-member", run, "--split", "val", "--data", tiny_dataset[0], "--out", out)
    line = one_error_line(result, alone=False)  # after the progress bar's first line
    assert "best.pt: holds a Python object (io.open) or other data than weights and plain values; refused" in line
    assert not marker.exists() and not out.exists()
    torch.save({**load_checkpoint(run / "last.pt"), "progress": Code(marker)}, run / "last.pt")
    with pytest.raises(DataError, match="last.pt: holds a Python object .* refused"):
        train_member(CnnMember, tiny_config(epochs=2, checkpoint_every=1), tiny_dataset[0], run)
    assert not marker.exists()


def test_a_failed_new_run_keeps_its_folder_once_it_has_a_checkpoint(tiny_dataset, tmp_path):
    """(One that fails before its first checkpoint leaves no folder: 'corrupt jpeg' in test_robustness.py.)"""
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset[0], data)
    for video in tiny_dataset[1]["frames"]["val"]:
        for image in (data / "cropped_aligned" / video).glob("*.jpg"):
            image.write_bytes(b"\xff\xd8 not a jpeg")
    run = tmp_path / "run"
    result = run_here(*train_args(data, run, "--epochs", "1", "--checkpoint-every", "1"))
    assert "unreadable image" in one_error_line(result, alone=False)  # in validation, after the checkpoints
    assert (run / "last.pt").is_file() and not (run / "best.pt").exists()


def wait_then_kill(args, ready, timeout=180.0) -> bool:
    """Start train-member, SIGKILL it as soon as ``ready()``; True if it was killed (not finished first). The
    command runs in a child of the fork server (tests/faults.py): a process of its own, without a new
    interpreter's seconds of imports."""
    child = start_served(*args)
    end = time.monotonic() + timeout
    while not child.poll() and not ready() and time.monotonic() < end:
        time.sleep(0.005)
    if not child.poll():
        with contextlib.suppress(ProcessLookupError):  # it may end between the poll and the kill
            os.kill(child.pid, signal.SIGKILL)
    return child.wait().returncode == -signal.SIGKILL


def assert_whole(run) -> None:
    """Every file of the run is complete: JSON parses, checkpoints load."""
    for name in ("config.json", "history.json"):
        if (run / name).exists():
            json.loads((run / name).read_text())
    for name in ("last.pt", "best.pt"):
        if (run / name).exists():
            load_checkpoint(run / name)


def mtime(path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


def test_sigkill_at_several_points_then_resume_gives_the_uninterrupted_weights(tiny_dataset, finished, tmp_path):
    run = tmp_path / "killed"
    args = train_args(tiny_dataset[0], run, *RUN_ARGS)

    def next_checkpoint():  # made when the process starts: fires once it has written a checkpoint of its own
        before = mtime(run / "last.pt")
        return lambda: mtime(run / "last.pt") not in (None, before)

    points = (
        lambda: lambda: (run / "config.json").exists(),  # data read, training about to start
        next_checkpoint,
        lambda: lambda: (run / "history.json").exists(),  # the first epoch has ended
    )
    killed = 0
    for point in points:
        killed += wait_then_kill(args, point())
        assert_whole(run)
    assert killed >= 2  # at least two kills landed before the run could finish on its own
    result = run_here(*args)
    assert result.returncode == 0, result.stderr
    assert not [p for p in run.iterdir() if "-tmp-" in p.name]  # no temporary file left behind
    a, b = load_checkpoint(finished / "last.pt")["model"], load_checkpoint(run / "last.pt")["model"]
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0)
    uninterrupted = json.loads((finished / "history.json").read_text())
    assert json.loads((run / "history.json").read_text()) == [pytest.approx(row) for row in uninterrupted]


@pytest.mark.parametrize("steps", range(1, 12))
def test_the_one_cycle_schedule_takes_any_number_of_steps(steps):
    """Five steps in all (default 5 epochs of one batch) made torch's OneCycleLR divide by zero."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = one_cycle(opt, CnnConfig(epochs=1), steps, (0, 1))
    for _ in range(steps):
        opt.step()
        sched.step()
    assert max(g["lr"] for g in opt.param_groups) < 1e-3
