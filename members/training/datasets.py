"""Class-folder, clip and list datasets (``ensemble.datasets``) for members: a run's config takes the dataset's
classes as its label set (``with_dataset``), and ``ListedImages`` yields its images as ``FrameDataset`` yields
faces (a clip's frames each carry the clip's label); the loop trains on them (``loop.listed_fit``) and prediction
writes one row per image, or per clip with the frames' probabilities averaged (``prediction.predict_listed``).
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from ensemble.datasets import AFF_WILD2, Dataset, detect_dataset, read_dataset
from ensemble.errors import AffectEnsError, DataError
from ensemble.tasks import Edition
from members.training.data import LabelArrays, image_transform, load_image, transformed


def is_listed(data_root: Path) -> bool:
    """Whether ``data_root`` is a class-folder, clip or list dataset (not Aff-Wild2)."""
    return detect_dataset(data_root) != AFF_WILD2


def label_names(cfg, dataset: Dataset) -> tuple[str, ...]:
    """The run's class names: ``--classes`` (one per folder, in folder order) where the member takes them as
    the dataset's names, else the folder names."""
    given = cfg.classes if getattr(type(cfg), "names_dataset", True) else ()
    if given and len(given) != len(dataset.classes):
        raise AffectEnsError(
            f"--classes names {len(given)} classes; {dataset.root} has {len(dataset.classes)} "
            f"({', '.join(dataset.classes)})"
        )
    return tuple(given) or dataset.classes


def with_dataset(cfg, data_root: Path):
    """``cfg`` for the dataset at ``data_root``: unchanged for Aff-Wild2; else the expression task over the
    dataset's classes (its label set), with the dataset's kind and hold-out recorded (saved in config.json)."""
    if not is_listed(data_root):
        return cfg
    dataset = read_dataset(data_root)
    default_tasks = next(f.default for f in fields(cfg) if f.name == "tasks")
    if tuple(cfg.tasks) not in (("expr",), tuple(default_tasks)):
        raise AffectEnsError(f"{data_root}: a classification dataset has expression labels only; use --task expr")
    record = {"kind": dataset.kind, "classes": list(dataset.classes), "holdout": dataset.holdout}
    return replace(cfg, tasks=("expr",), label_set=label_names(cfg, dataset), dataset=record)


class ListedImages(TorchDataset):
    """A split's images (or clip frames) with their labels: (image, expr, va, au, mask) as ``FrameDataset``."""

    tasks = ("expr",)

    def __init__(self, dataset: Dataset, split: str, edition: Edition, size: int, train: bool, seed: int = 0):
        self.root, self.edition = dataset.root, edition
        self.frames = dataset.frames(split)
        if len(self.frames) == 0:
            raise DataError(f"{dataset.root}: no images in split {split!r}")
        self.train, self.seed, self.epoch = train, seed, 0
        self.transform = image_transform(size, train)
        n = len(self.frames)
        expr = self.frames["expr"].to_numpy(np.float64)
        self.labels = LabelArrays(np.where(expr < 0, np.nan, expr), np.full((n, 2), np.nan), np.full((n, 1), np.nan))

    def __len__(self) -> int:
        return len(self.frames)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def image(self, i: int) -> torch.Tensor:
        return transformed(self, load_image(self.root / self.frames["path"].iloc[i]), i)

    def __getitem__(self, i: int):
        label = self.labels.expr[i]
        mask = torch.tensor([not np.isnan(label), False, False])
        expr = torch.tensor(0 if np.isnan(label) else int(label))
        return self.image(i), expr, torch.zeros(2), torch.zeros(1), mask


@torch.no_grad()
def listed_outputs(model, dataset: ListedImages, batch_size: int, fn, progress, launch) -> dict[str, np.ndarray]:
    """``fn(model, images)`` on every image of ``dataset``, stacked per output name (one process)."""
    model = model.to(launch.device)
    parts: dict[str, list[np.ndarray]] = {}
    for done, (images, *_) in enumerate(DataLoader(dataset, batch_size=batch_size, num_workers=launch.workers)):
        for name, value in fn(model, images.to(launch.device)).items():
            parts.setdefault(name, []).append(value.float().cpu().numpy())
        if progress:
            progress(min((done + 1) * batch_size, len(dataset)), len(dataset))
    return {k: np.concatenate(v) for k, v in parts.items()}


def pooled(keys: pd.DataFrame, values: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per image or clip (``frame`` 1): the mean of its frames' rows (a clip's probabilities averaged)."""
    codes, videos = pd.factorize(keys["video"], sort=True)
    sums = np.zeros((len(videos), values.shape[1]), np.float64)
    np.add.at(sums, codes, values)
    mean = sums / np.bincount(codes, minlength=len(videos))[:, None]
    return pd.DataFrame({"video": np.asarray(videos, dtype=object), "frame": np.int64(1)}), mean.astype(np.float32)
