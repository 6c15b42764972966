"""cnn member speed on this machine: training images/s, prediction frames/s, and one training epoch
end-to-end (images through the CNN) vs on cached features (the two-stage design of the temporal members).

    python benchmarks/bench_cnn.py [--backbone resnet18] [--image-size 112] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ensemble.tasks import get_edition
from members.cnn import CnnConfig, CnnMember
from members.heads import TaskHeads, masked_loss
from members.synthetic.dataset import SyntheticConfig, make_dataset
from members.training.loop import train_member
from members.training.prediction import extract_features, predict_member

DATA = Path(__file__).parent / "_data" / "synthetic"


def cached_epoch(features: np.ndarray, cfg: CnnConfig) -> float:
    """Seconds for one epoch of training task heads on cached feature vectors."""
    heads = TaskHeads(features.shape[1], cfg.tasks, get_edition(cfg.edition))
    opt = torch.optim.AdamW(heads.parameters(), lr=cfg.lr)
    x = torch.from_numpy(features)
    n = len(x)
    start = time.perf_counter()
    for i in range(0, n - cfg.batch_size + 1, cfg.batch_size):
        batch = x[i : i + cfg.batch_size]
        expr = torch.randint(0, 8, (len(batch),))
        mask = torch.ones(len(batch), 3, dtype=torch.bool)
        loss = masked_loss(heads(batch), expr, torch.zeros(len(batch), 2), torch.zeros(len(batch), 12), mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def main(backbone: str, image_size: int, batch_size: int) -> None:
    if not (DATA / "dataset.json").exists():
        make_dataset(DATA, SyntheticConfig())
    cfg = CnnConfig(backbone=backbone, image_size=image_size, batch_size=batch_size, epochs=1, tasks=("expr",))
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        start = time.perf_counter()
        train_member(CnnMember, cfg, DATA, run)
        t_epoch = time.perf_counter() - start
        n_train = _train_images(cfg)
        start = time.perf_counter()
        table = predict_member(run, DATA, "val").table
        t_pred = time.perf_counter() - start
        n_feat = extract_features(run, DATA, "train", Path(tmp) / "f.npz")
        feats = np.load(Path(tmp) / "f.npz")["features"]
    t_cached = cached_epoch(feats, cfg)
    print(f"{backbone} at {image_size}px, batch {batch_size}, {torch.get_num_threads()} threads")
    print(
        f"training: one epoch of {n_train} images (validation included) in {t_epoch:.1f} s = {n_train / t_epoch:.0f} images/s"
    )
    print(
        f"prediction: {len(table.data)} frames (val, gap-filled) in {t_pred:.1f} s = {len(table.data) / t_pred:.0f} frames/s"
    )
    print(
        f"one epoch on {n_feat} cached {feats.shape[1]}-d features: {t_cached:.3f} s "
        f"({t_epoch / t_cached:.0f}x faster than end-to-end)"
    )


def _train_images(cfg: CnnConfig) -> int:
    from members.training.data import labelled_frames

    return len(labelled_frames(DATA, "train", cfg.tasks, get_edition(cfg.edition)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    main(args.backbone, args.image_size, args.batch_size)
