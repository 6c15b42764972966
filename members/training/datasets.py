"""Class-folder, clip and list datasets (``ensemble.datasets``) for members: a run's config takes the dataset's
classes as its label set, image members train on its images (a clip's frames each carry the clip's label) and
predict one row per image, or per clip with the frames' probabilities averaged.
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from ensemble.contract import PredictionTable, TableMeta
from ensemble.datasets import AFF_WILD2, Dataset, detect_dataset, read_dataset
from ensemble.errors import AffectEnsError, DataError
from ensemble.tasks import Edition, get_edition, label_set
from members.training.data import LabelArrays, derived_seed, image_transform, load_image


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
        image = load_image(self.root / self.frames["path"].iloc[i])
        if not self.train:
            return self.transform(image)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derived_seed(self.seed, self.epoch, i))
            return self.transform(image)

    def __getitem__(self, i: int):
        label = self.labels.expr[i]
        mask = torch.tensor([not np.isnan(label), False, False])
        expr = torch.tensor(0 if np.isnan(label) else int(label))
        return self.image(i), expr, torch.zeros(2), torch.zeros(1), mask


def listed_fit(member_cls, cfg, data_root: Path, launch, model=None):
    """The loop's ``Fit`` on a dataset's train images, validated on its val images (or the hold-out)."""
    from members.training.loop import Fit, evaluate_member, image_loss

    dataset, edition = read_dataset(data_root), get_edition(cfg.edition)
    train_set = ListedImages(dataset, "train", edition, cfg.image_size, train=True, seed=cfg.seed)
    val_set = ListedImages(dataset, "val", edition, cfg.image_size, train=False)
    model = member_cls.network(cfg, edition) if model is None else model
    return Fit(model, train_set, image_loss, lambda m, la: evaluate_member(m, val_set, cfg.batch_size, la))


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


def predict_listed(member_cls, cfg, run_dir: Path, data_root: Path, split: str, progress, launch):
    """An image member's ``Prediction`` on a split of a class-folder, clip or list dataset: one row per image, or
    per clip (its frames' probabilities averaged), keyed by the path relative to the dataset folder."""
    from members.heads import probabilities
    from members.training.distributed import Launch
    from members.training.prediction import Prediction, load_run
    from members.training.runs import read_config

    launch = launch or Launch()
    _, cfg, model = load_run(run_dir)
    edition = get_edition(cfg.edition)
    dataset = ListedImages(read_dataset(data_root), split, edition, cfg.image_size, train=False)
    outs = listed_outputs(model, dataset, 64, lambda m, x: probabilities(m(x)), progress, launch)
    keys, expr = pooled(dataset.frames, outs["expr"])
    data = pd.concat([keys, pd.DataFrame(expr, columns=edition.output_columns("expr"))], axis=1)
    meta = TableMeta.of(("expr",), edition, member=run_dir.name, split=split, extra={"config": read_config(run_dir)})
    return Prediction(PredictionTable(data, meta), 0)


def listed_features(run_dir: Path, data_root: Path, split: str, batch_size: int, progress, launch):
    """(frames per clip or image, keys, {'features': ...}) of a split's images, as ``extract_features`` caches
    them: a clip's frames are its video's frames."""
    from members.training.distributed import Launch
    from members.training.prediction import load_run

    _, cfg, model = load_run(run_dir)
    dataset = ListedImages(read_dataset(data_root), split, get_edition(cfg.edition), cfg.image_size, train=False)
    fn = lambda m, x: {"features": m.features(x)}  # noqa: E731
    outs = listed_outputs(model, dataset, batch_size, fn, progress, launch or Launch())
    keys = dataset.frames[["video", "frame"]].reset_index(drop=True)
    counts = keys.groupby("video", sort=False)["frame"].max().to_dict()
    return counts, keys, outs


def map_onto_dataset(table: PredictionTable, data_root: Path, names: tuple[str, ...], class_map: dict[str, str]):
    """An ABAW-labelled table of a class-folder, clip or list dataset's images mapped onto the dataset's classes
    (``names``, default the folder names): each ABAW class feeds the class of the same name or a synonym
    (Happiness: happy) or the one ``class_map`` names, as keras imports map their classes; probabilities of
    classes mapped together are summed."""
    from members.keras import class_mapping

    dataset = read_dataset(data_root)
    if names and len(names) != len(dataset.classes):
        raise AffectEnsError(f"--classes names {len(names)} classes; {data_root} has {len(dataset.classes)}")
    target = label_set(names or dataset.classes)
    mapping = class_mapping(table.edition.expr_classes, class_map, target)
    probs = table.outputs("expr") @ mapping
    data = pd.concat(
        [table.data[["video", "frame"]], pd.DataFrame(probs, columns=target.output_columns("expr"))], axis=1
    )
    extra = {**table.meta.extra, "mapped_from": list(table.edition.expr_classes), "map": class_map}
    meta = TableMeta.of(("expr",), target, member=table.meta.member, split=table.meta.split, extra=extra)
    return PredictionTable(data, meta)
