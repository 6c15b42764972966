"""The cnn member on tiny synthetic data: training per task, exact resume, predictions for every frame."""

import json

import numpy as np
import pytest
import torch

from ensemble.contract import read_table
from ensemble.errors import DataError
from ensemble.frames import video_folders
from ensemble.tasks import get_edition
from members.cnn import CnnConfig, CnnMember, CnnNet
from members.training.loop import train_member
from members.training.prediction import extract_features, predict_member, write_prediction
from members.training.runs import load_checkpoint


def tiny_cfg(**kw):
    base = dict(backbone="test_resnet", image_size=32, epochs=1, batch_size=16, lr=3e-3, seed=1)
    return CnnConfig(**{**base, **kw})


@pytest.mark.parametrize("tasks", [("expr",), ("va",), ("au",), ("expr", "va", "au")])
def test_trains_each_task_and_keeps_the_best(tiny_dataset, tmp_path, tasks):
    root, _ = tiny_dataset
    history = train_member(CnnMember, tiny_cfg(tasks=tasks, epochs=2), root, tmp_path / "run")
    assert [h["epoch"] for h in history] == [1, 2]
    for task in tasks:  # issue 24: "or task == 'va'" made the VA half of this check unable to fail
        assert all(np.isfinite(h[f"{task}_score"]) for h in history)
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["metrics"]["score"] == max(h["score"] for h in history)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["tasks"] == list(tasks)


class Killed(Exception):
    pass


def test_resume_after_a_kill_mid_epoch_reaches_the_same_weights(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    cfg = tiny_cfg(tasks=("expr", "va"), epochs=2, batch_size=8, checkpoint_every=2)
    train_member(CnnMember, cfg, root, tmp_path / "straight")

    steps = []

    def kill_after_five(phase, done, total):
        steps.append(done)
        if len(steps) == 5:  # epoch 1, after the checkpoint at step 4
            raise Killed

    with pytest.raises(Killed):
        train_member(CnnMember, cfg, root, tmp_path / "resumed", kill_after_five)
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["progress"]["step"] == 4
    train_member(CnnMember, cfg, root, tmp_path / "resumed")
    a = load_checkpoint(tmp_path / "straight" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


@pytest.fixture(scope="module")
def trained_run(tiny_dataset, tmp_path_factory):
    root, _ = tiny_dataset
    run = tmp_path_factory.mktemp("runs") / "cnn_mtl"
    train_member(CnnMember, tiny_cfg(tasks=("expr", "va", "au")), root, run)
    return run


@pytest.mark.parametrize("split", ["val", "test"])
def test_predictions_cover_every_frame_and_pass_the_contract(tiny_dataset, trained_run, tmp_path, split):
    root, summary = tiny_dataset
    out = tmp_path / f"{split}.parquet"
    done = predict_member(trained_run, root, split)
    write_prediction(done, out)
    filled = done.filled
    table = read_table(out)
    counts = table.data.groupby("video")["frame"].agg(["count", "max"])
    assert counts["count"].to_dict() == summary["frames"][split] == counts["max"].to_dict()
    faces = sum(len(list(video_folders(root)[v].glob("*.jpg"))) for v in summary["frames"][split])
    assert filled == sum(summary["frames"][split].values()) - faces > 0
    assert table.meta.extra["filled_frames"] == filled and table.meta.split == split
    assert table.meta.tasks == ("expr", "va", "au") and table.meta.member == "cnn_mtl"


def test_feature_cache_holds_every_face_image(tiny_dataset, trained_run, tmp_path):
    root, summary = tiny_dataset
    n = extract_features(trained_run, root, "train", tmp_path / "f.npz")
    cache = np.load(tmp_path / "f.npz")
    assert cache["features"].shape == (n, 96) and len(cache["video"]) == n
    assert dict(zip(cache["count_videos"], cache["count_frames"])) == summary["frames"]["train"]


def test_local_weights_only(tmp_path):
    cfg = tiny_cfg(tasks=("expr",))
    source = CnnNet(cfg, get_edition(2025))
    torch.save(source.backbone.state_dict(), tmp_path / "w.pt")
    loaded = CnnNet(tiny_cfg(tasks=("expr",), weights=str(tmp_path / "w.pt")), get_edition(2025))
    for key, value in source.backbone.state_dict().items():
        torch.testing.assert_close(loaded.backbone.state_dict()[key], value)
    with pytest.raises(DataError, match="missing.pt: weights file not found"):
        CnnNet(tiny_cfg(weights=str(tmp_path / "missing.pt")), get_edition(2025))
    (tmp_path / "junk.pt").write_text("not weights")
    with pytest.raises(DataError, match="junk.pt: not a torch weights file"):
        CnnNet(tiny_cfg(weights=str(tmp_path / "junk.pt")), get_edition(2025))
    with pytest.raises(DataError, match="unknown timm backbone 'no_such_net'"):
        CnnNet(tiny_cfg(backbone="no_such_net"), get_edition(2025))


def test_corrupt_jpeg_is_reported_with_its_path(tiny_dataset, tmp_path):
    import shutil

    root, _ = tiny_dataset
    copy = tmp_path / "data"
    shutil.copytree(root, copy)
    folder = sorted((copy / "cropped_aligned").iterdir())[0]  # every frame of a video: some are surely read
    for victim in folder.glob("*.jpg"):
        victim.write_bytes(victim.read_bytes()[:40])
    with pytest.raises(DataError, match=rf"{folder}/\d+\.jpg: unreadable image"):
        train_member(CnnMember, tiny_cfg(), copy, tmp_path / "run")
