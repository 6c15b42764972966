"""Prediction tables and feature caches from a trained run, covering every frame of every video."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from ensemble.contract import PredictionTable, TableMeta, write_table
from ensemble.errors import DataError
from ensemble.frames import fill_missing_frames, read_manifest
from ensemble.io import atomic_path
from ensemble.labels import annotation_frame_counts, track_dir
from ensemble.tasks import get_edition
from members.data import ImageListDataset
from members.heads import probabilities
from members.registry import MEMBERS
from members.train import pick_device

Progress = Callable[[int, int], None]


def load_config(run_dir: Path):
    """(member class, config) of a finished run."""
    config_file, best = run_dir / "config.json", run_dir / "best.pt"
    if not config_file.is_file() or not best.is_file():
        raise DataError(f"{run_dir}: not a finished run (needs config.json and best.pt)")
    raw = json.loads(config_file.read_text())
    raw.pop("generator", None)  # the tool's stamp, not a config field
    class_name = raw.pop("member")
    member_cls = next(MEMBERS.get(n) for n in MEMBERS.names() if MEMBERS.get(n).__name__ == class_name)
    return member_cls, member_cls.config_class(**{**raw, "tasks": tuple(raw["tasks"])})


def load_run(run_dir: Path):
    """(member class, config, network with the best weights) of a finished image-member run."""
    member_cls, cfg = load_config(run_dir)
    best = run_dir / "best.pt"
    model = member_cls.network(cfg, get_edition(cfg.edition))
    try:
        model.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["model"])
    except RuntimeError as exc:  # a best.pt from another config or version of the member
        detail = " ".join(str(exc).split())[:160]
        raise DataError(f"{best}: the weights do not fit the run's config.json ({detail})") from None
    return member_cls, cfg, model.eval()


def split_frame_counts(
    data_root: Path, split: str, tasks: tuple[str, ...], edition_year: int, frames: Path | None
) -> dict[str, int]:
    """Frames per video of ``split``: a manifest if given (or ``<split>_frames.csv`` in the data root),
    else the line counts of the annotation files."""
    manifest = frames or data_root / f"{split}_frames.csv"
    if manifest.is_file():
        return read_manifest(manifest)
    if split == "test":
        raise DataError(f"{data_root}: the test split needs a frame manifest (--frames video,frames CSV)")
    edition = get_edition(edition_year)
    return annotation_frame_counts(track_dir(data_root, tasks[0], split, edition), tasks[0], edition)


@torch.no_grad()
def run_images(model, data_root: Path, videos: list[str], size: int, batch_size: int, fn, progress: Progress | None):
    """Keys of every face image of ``videos`` and ``fn(model, images)`` stacked per output name."""
    dataset = ImageListDataset(data_root, videos, size)
    device = pick_device()
    model = model.to(device)
    parts: dict[str, list[np.ndarray]] = {}
    done = 0
    for images, _ in DataLoader(dataset, batch_size=batch_size):
        for name, value in fn(model, images.to(device)).items():
            parts.setdefault(name, []).append(value.float().cpu().numpy())
        done += len(images)
        if progress:
            progress(done, len(dataset))
    return dataset.keys, {k: np.concatenate(v) for k, v in parts.items()}


def run_split(run_dir: Path, data_root: Path, split: str, frames: Path | None, batch_size: int, fn, progress):
    """A finished image run's config, the split's frame counts, and ``fn(model, images)`` on every face image."""
    _, cfg, model = load_run(run_dir)
    counts = split_frame_counts(data_root, split, tuple(cfg.tasks), cfg.edition, frames)
    keys, outs = run_images(model, data_root, list(counts), cfg.image_size, batch_size, fn, progress)
    return cfg, counts, keys, outs


def predict_member(
    run_dir: Path,
    data_root: Path,
    split: str,
    out: Path,
    *,
    frames: Path | None = None,
    batch_size: int = 128,
    progress: Progress | None = None,
    member_outs: dict[str, Path] | None = None,
) -> tuple[PredictionTable, int]:
    """Write the run's prediction table for every frame of ``split``; returns it and the filled count.
    A committee also writes each member's table where ``member_outs`` names a path for it."""
    member_cls, cfg = load_config(run_dir)
    if hasattr(member_cls, "predict"):
        return member_cls.predict(cfg, run_dir, data_root, split, out, frames, progress, member_outs)
    if getattr(member_cls, "on_features", False):
        from members.temporal_train import predict_temporal

        return predict_temporal(member_cls, cfg, run_dir, split, out)
    cfg, counts, keys, outs = run_split(
        run_dir, data_root, split, frames, batch_size, lambda m, x: probabilities(m(x)), progress
    )
    edition = get_edition(cfg.edition)
    columns = {c: outs[t][:, j] for t in cfg.tasks for j, c in enumerate(edition.output_columns(t))}
    data = pd.concat([keys, pd.DataFrame(columns)], axis=1)
    meta = TableMeta(
        tuple(cfg.tasks),
        cfg.edition,
        member=run_dir.name,
        split=split,
        extra={"config": json.loads((run_dir / "config.json").read_text())},
    )
    table, filled = fill_missing_frames(PredictionTable(data, meta), counts, str(out))
    write_table(table, out)
    return table, filled


def extract_features(
    run_dir: Path,
    data_root: Path,
    split: str,
    out: Path,
    *,
    frames: Path | None = None,
    batch_size: int = 128,
    progress: Progress | None = None,
) -> int:
    """Cache the CNN's per-frame embeddings of every face image of ``split`` as ``.npz``
    (``video``, ``frame``, ``features``, plus the frame counts); returns the number of frames."""
    _, counts, keys, outs = run_split(
        run_dir, data_root, split, frames, batch_size, lambda m, x: {"features": m.features(x)}, progress
    )
    with atomic_path(out) as tmp, open(tmp, "wb") as file:  # a file object: savez adds no '.npz' to it
        np.savez(
            file,
            video=keys["video"].to_numpy(str),
            frame=keys["frame"].to_numpy(np.int64),
            features=outs["features"].astype(np.float32),
            count_videos=np.array(list(counts), dtype=str),
            count_frames=np.array(list(counts.values()), dtype=np.int64),
            split=split,
            run=str(run_dir),
        )
    return len(keys)
