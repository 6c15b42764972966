"""One epoch of the cnn_rnn member on cached CNN features vs one end-to-end epoch of the same CNN-RNN
(images -> CNN -> GRU, gradients through both), over the same training windows.

    python benchmarks/bench_temporal.py [--backbone resnet10t] [--image-size 48]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from ensemble.frames import face_images, video_folders
from ensemble.tasks import DEFAULT_EDITION, get_edition
from members.cnn import CnnConfig, CnnMember, CnnNet
from members.heads import masked_loss
from members.synthetic.dataset import SyntheticConfig, make_dataset
from members.temporal import CnnRnnMember, RnnNet, TemporalConfig
from members.training.data import image_transform, load_image
from members.training.loop import train_member
from members.training.prediction import extract_features
from members.training.sequences import load_sequences, windows
from members.training.temporal import train_temporal

DATA = Path(__file__).parent / "_data" / "synthetic"


def end_to_end_epoch(cnn: CnnNet, rnn: RnnNet, seqs, cfg: TemporalConfig, image_size: int) -> float:
    """Seconds for one epoch over the windows with images through the CNN and the GRU."""
    transform = image_transform(image_size, train=True)
    params = list(cnn.parameters()) + list(rnn.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    cnn.train(), rnn.train()
    folders = video_folders(DATA)
    start = time.perf_counter()
    for seq in seqs:
        images_of = face_images(folders[seq.video])
        faces = sorted(images_of)
        for a, b in windows(len(seq.features), cfg.window, cfg.stride):
            nearest = [min(faces, key=lambda f: abs(f - (i + 1))) for i in range(a, b)]
            images = torch.stack([transform(load_image(images_of[f])) for f in nearest])
            feats = cnn.features(images)[None]
            out, _ = rnn.rnn(rnn.proj(feats))
            heads = rnn.heads(out)
            va = torch.nan_to_num(torch.from_numpy(seq.va[a:b]).float())
            mask = torch.zeros(b - a, 3, dtype=torch.bool)
            mask[:, 1] = True
            loss = masked_loss({"va": heads["va"][0]}, None, va, None, mask)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def main(backbone: str, image_size: int) -> None:
    if not (DATA / "dataset.json").exists():
        make_dataset(DATA, SyntheticConfig())
    edition = get_edition(DEFAULT_EDITION)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cnn_cfg = CnnConfig(backbone=backbone, image_size=image_size, epochs=1, tasks=("va",))
        train_member(CnnMember, cnn_cfg, DATA, tmp / "cnn")
        for split in ("train", "val"):
            extract_features(tmp / "cnn", DATA, split, tmp / "feats" / f"{split}.npz")
        cfg = TemporalConfig(features=str(tmp / "feats"), tasks=("va",), epochs=1, batch_size=1)
        start = time.perf_counter()
        train_temporal(CnnRnnMember, cfg, DATA, tmp / "rnn")
        t_cached = time.perf_counter() - start
        seqs = load_sequences(tmp / "feats" / "train.npz", DATA, "train", ("va",), edition)
        n_windows = sum(len(windows(len(s.features), cfg.window, cfg.stride)) for s in seqs)
        cnn = CnnNet(cnn_cfg, edition)
        rnn = RnnNet(cfg, edition, cnn.backbone.num_features)
        t_e2e = end_to_end_epoch(cnn, rnn, seqs, cfg, image_size)
    print(f"{backbone} at {image_size}px, {n_windows} windows of {cfg.window} frames (stride {cfg.stride}), batch 1")
    print(f"cnn_rnn epoch on cached features (validation included): {t_cached:.1f} s")
    print(f"end-to-end CNN-RNN epoch (images through the CNN and the GRU): {t_e2e:.1f} s")
    print(f"ratio: {t_e2e / t_cached:.0f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet10t")
    parser.add_argument("--image-size", type=int, default=48)
    args = parser.parse_args()
    main(args.backbone, args.image_size)
