"""Frames and labels of an Aff-Wild2 split as a torch dataset.

A sample is one face image with the labels of every trained task and a mask saying which of them are
annotated (multi-task training masks the losses of missing labels). Frames unannotated for every trained
task, or without a face image, are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from ensemble.errors import DataError
from ensemble.frames import FRAME_ROOT, face_images, frame_roots, video_folders
from ensemble.labels import read_labels
from ensemble.tasks import Edition

MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def derived_seed(*parts: int) -> int:
    """A well-mixed 32-bit seed from integers (the run's seed, an epoch, a step or sample; negative allowed)."""
    return int(np.random.SeedSequence([p % 2**64 for p in parts]).generate_state(1)[0])


def face_paths(folders: dict[str, Path], keys: pd.DataFrame) -> list[Path | None]:
    """The face image of each (video, frame) of ``keys``, given each video's frame folder
    (``ensemble.frames.video_folders``); None where the frame has none."""
    images = {v: face_images(folders[v]) if v in folders else {} for v in keys["video"].unique()}
    return [images[v].get(int(f)) for v, f in zip(keys["video"], keys["frame"])]


def image_transform(size: int, train: bool):
    """Resize and normalise; training adds the usual light augmentations (crop, flip, colour) (a torchvision
    ``Compose``; torchvision is imported here: it brings torch's compiler modules, seconds that the commands
    listing members, their --help among them, do not need)."""
    from torchvision import transforms

    steps = [transforms.Resize((size, size))]
    if train:
        steps += [
            transforms.RandomResizedCrop(size, scale=(0.85, 1.0), ratio=(0.95, 1.05)),
            transforms.RandomHorizontalFlip(),
            transforms.ColorJitter(0.2, 0.2, 0.1),
        ]
    return transforms.Compose(steps + [transforms.ToTensor(), transforms.Normalize(MEAN, STD)])


def load_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: unreadable image ({type(exc).__name__}: {str(exc)[:60]})") from None


def transformed(dataset, image: Image.Image, i: int) -> torch.Tensor:
    """Sample ``i``'s image through ``dataset.transform``; in training with the augmentation drawn from
    (``dataset.seed``, ``dataset.epoch``, ``i``), the same in any process or worker and after a resume."""
    if not dataset.train:
        return dataset.transform(image)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed(dataset.seed, dataset.epoch, i))
        return dataset.transform(image)


@dataclass
class LabelArrays:
    """Labels of the samples, one array per task, with NaN where a task's label is missing."""

    expr: np.ndarray
    va: np.ndarray
    au: np.ndarray


def labelled_frames(
    root: Path, split: str, tasks: tuple[str, ...], edition: Edition, folders: dict[str, Path] | None = None
) -> pd.DataFrame:
    """Key and label columns of every frame annotated for at least one task and having a face image."""
    folders = video_folders(root) if folders is None else folders
    merged = None
    for task in tasks:
        lab = read_labels(root, task, split, edition)
        merged = lab if merged is None else merged.merge(lab, on=["video", "frame"], how="outer")
    exists = [path is not None for path in face_paths(folders, merged)]
    return merged[np.array(exists, dtype=bool)].sort_values(["video", "frame"]).reset_index(drop=True)


class FrameDataset(Dataset):
    """Face frames with masked multi-task targets: (image, expr, va, au, mask) per sample.

    Training augmentations are drawn from a generator seeded by (``seed``, epoch, sample), so a sample gets the
    same augmentation in an epoch whichever process or loader worker reads it, and after a resume.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        tasks: tuple[str, ...],
        edition: Edition,
        size: int,
        train: bool,
        seed: int = 0,
    ):
        self.root = Path(root)
        self.train, self.seed, self.epoch = train, seed, 0
        self.tasks = tasks
        self.edition = edition
        self.folders = video_folders(self.root)
        self.frames = labelled_frames(self.root, split, tasks, edition, self.folders)
        if len(self.frames) == 0:
            raise DataError(
                f"{self.root}: no annotated frames with face images for {', '.join(tasks)} in split {split!r}"
            )
        self.paths = face_paths(self.folders, self.frames)
        self.transform = image_transform(size, train)
        self.labels = self._label_arrays()

    def _label_arrays(self) -> LabelArrays:
        n, f = len(self.frames), self.frames
        expr = f["expr"].to_numpy(np.float64) if "expr" in self.tasks else np.full(n, np.nan)
        va = f[["valence", "arousal"]].to_numpy(np.float64) if "va" in self.tasks else np.full((n, 2), np.nan)
        au_cols = self.edition.label_columns("au")
        au = f[au_cols].to_numpy(np.float64) if "au" in self.tasks else np.full((n, len(au_cols)), np.nan)
        return LabelArrays(expr, va, au)

    def __len__(self) -> int:
        return len(self.frames)

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose augmentations ``__getitem__`` draws."""
        self.epoch = epoch

    def image(self, i: int) -> torch.Tensor:
        return transformed(self, load_image(self.paths[i]), i)

    def __getitem__(self, i: int):
        image = self.image(i)
        lab = self.labels
        mask = torch.tensor([not np.isnan(lab.expr[i]), not np.isnan(lab.va[i, 0]), not np.isnan(lab.au[i, 0])])
        expr = torch.tensor(0 if np.isnan(lab.expr[i]) else int(lab.expr[i]))
        va = torch.tensor(np.nan_to_num(lab.va[i]), dtype=torch.float32)
        au = torch.tensor(np.nan_to_num(lab.au[i]), dtype=torch.float32)
        return image, expr, va, au, mask


class ImageListDataset(Dataset):
    """Every face image of the given videos, for prediction and feature extraction: (image, index)."""

    def __init__(self, root: str | Path, videos: list[str], size: int):
        self.root = Path(root)
        folders, rows, self.paths = video_folders(self.root), [], []
        for video in videos:
            if video not in folders:
                roots = ", ".join(p.name for p in frame_roots(self.root)) or FRAME_ROOT
                raise DataError(f"{self.root}: no frame folder for video {video!r} (frame roots: {roots})")
            images = face_images(folders[video])
            rows += [(video, frame) for frame in sorted(images)]
            self.paths += [images[frame] for frame in sorted(images)]
        self.keys = pd.DataFrame(rows, columns=["video", "frame"])
        self.transform = image_transform(size, train=False)

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int):
        return self.transform(load_image(self.paths[i])), i
