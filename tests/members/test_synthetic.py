import hashlib
import json

import numpy as np
import pandas as pd

from ensemble.frames import video_folders
from ensemble.labels import read_labels
from ensemble.tasks import get_edition
from members.synthetic.dataset import SyntheticConfig, make_dataset


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_dataset_other_seed_differs(tmp_path):
    cfg = SyntheticConfig(seed=7, train_videos=1, val_videos=1, test_videos=1, min_frames=12, max_frames=15, size=24)
    make_dataset(tmp_path / "a", cfg)
    make_dataset(tmp_path / "b", cfg)
    cfg.seed = 8
    make_dataset(tmp_path / "c", cfg)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")


def test_layout_manifests_and_gaps(tiny_dataset):
    root, summary = tiny_dataset
    for split in ("train", "val", "test"):
        manifest = pd.read_csv(root / f"{split}_frames.csv")
        assert dict(zip(manifest["video"], manifest["frames"])) == summary["frames"][split]
    faces = {v: len(list(video_folders(root)[v].glob("*.jpg"))) for s in summary["frames"].values() for v in s}
    total = sum(n for s in summary["frames"].values() for n in s.values())
    assert 0 < total - sum(faces.values()) < 0.15 * total  # some frames have no face image
    assert json.loads((root / "dataset.json").read_text())["config"]["seed"] == 3
    assert read_labels(root / "test_labels", "va", "test", get_edition(2025))["video"].nunique() == 2


def test_labels_are_smooth_in_time_and_cover_the_classes(tiny_dataset):
    root, _ = tiny_dataset
    va = read_labels(root, "va", "train", get_edition(2025))
    adjacent = va.groupby("video")["frame"].diff() == 1
    steps = va.groupby("video")["valence"].diff().abs()[adjacent]
    assert steps.median() < 0.05 < 0.2 < va["valence"].std()  # small steps from frame to frame, large range
    expr = read_labels(root, "expr", "train", get_edition(2025))
    changes = (expr.groupby("video")["expr"].diff().fillna(0) != 0).mean()
    assert changes < 0.1 and expr["expr"].nunique() >= 2


def test_2020_edition_writes_its_label_sets(tmp_path):
    cfg = SyntheticConfig(
        train_videos=1, val_videos=1, test_videos=1, min_frames=12, max_frames=12, size=24, edition=2020
    )
    make_dataset(tmp_path, cfg)
    au = read_labels(tmp_path, "au", "train", get_edition(2020))
    assert au.shape[1] == 2 + 8 and (tmp_path / "EXPR_Set" / "Train_Set").is_dir()
    assert np.isin(au.iloc[:, 2:].to_numpy(), [0, 1]).all()
