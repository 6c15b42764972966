"""Prediction tables and feature caches from a trained run, covering every frame of every video.

Under torchrun the processes share the videos (each predicts a contiguous share, in batches that never mix
two videos, so every frame's output is the one a single process computes) and rank 0 merges and writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from ensemble.contract import PredictionTable, TableMeta, write_table
from ensemble.datasets import read_dataset
from ensemble.errors import DataError
from ensemble.frames import fill_missing_frames, read_manifest
from ensemble.labels import annotation_frame_counts, track_dir
from ensemble.outputs import STAMP, atomic_file, safe_join, safe_name
from ensemble.tasks import get_edition
from members.base import Member, Progress
from members.heads import probabilities
from members.training.data import ImageListDataset
from members.training.datasets import ListedImages, is_listed, listed_outputs, pooled
from members.training.distributed import Launch, gather_to_main, shard
from members.training.runs import Run


def image_network(run: Run) -> nn.Module:
    """The network of a finished image-member run (cnn, keras) with its best weights."""
    if not run.member_cls.reads_images:
        raise DataError(
            f"{run.path}: a {run.name} run has no per-frame image network; "
            "features come from an image member's run (cnn, keras)"
        )
    return run.load_network()


def split_frame_counts(
    data_root: Path, split: str, tasks: tuple[str, ...], edition_year: int, frames: Path | None
) -> dict[str, int]:
    """Frames per video of ``split``: a manifest if given (or ``<split>_frames.csv`` in the data root),
    else the line counts of the annotation files."""
    if frames is not None and not Path(frames).is_file():
        raise DataError(f"{frames}: frame manifest not found")
    manifest = frames or data_root / f"{split}_frames.csv"
    if manifest.is_file():
        return read_manifest(manifest)
    if split == "test":
        raise DataError(f"{data_root}: the test split needs a frame manifest (--frames video,frames CSV)")
    edition = get_edition(edition_year)
    return annotation_frame_counts(track_dir(data_root, tasks[0], split, edition), tasks[0], edition)


def video_batches(keys: pd.DataFrame, batch_size: int) -> list[list[int]]:
    """Row indices in batches of at most ``batch_size`` that never mix two videos."""
    starts = np.flatnonzero(np.r_[True, keys["video"].to_numpy()[1:] != keys["video"].to_numpy()[:-1]])
    bounds = np.r_[starts, len(keys)]
    return [
        list(range(i, min(i + batch_size, stop)))
        for start, stop in zip(bounds[:-1], bounds[1:])
        for i in range(start, stop, batch_size)
    ]


@torch.no_grad()
def run_images(model, data_root: Path, videos: list[str], size: int, batch_size: int, fn, progress, launch: Launch):
    """Keys of every face image of ``videos`` and ``fn(model, images)`` stacked per output name."""
    dataset = ImageListDataset(data_root, videos, size)
    model = model.to(launch.device)
    parts: dict[str, list[np.ndarray]] = {}
    done = 0
    batches = video_batches(dataset.keys, batch_size)
    for images, _ in DataLoader(dataset, batch_sampler=batches, num_workers=launch.workers):
        for name, value in fn(model, images.to(launch.device)).items():
            parts.setdefault(name, []).append(value.float().cpu().numpy())
        done += len(images)
        if progress:
            progress(done, len(dataset))
    return dataset.keys, {k: np.concatenate(v) for k, v in parts.items()}


def run_split(run: Run, data_root: Path, split: str, frames: Path | None, batch_size: int, fn, progress, launch):
    """The split's frame counts and ``fn(model, images)`` of a finished image run on every face image; the
    processes share the videos and rank 0 gets every output, in video order (the others get None)."""
    cfg, model = run.config, image_network(run)
    counts = split_frame_counts(data_root, split, tuple(cfg.tasks), cfg.edition, frames)
    mine = list(counts)[shard(list(counts.values()), launch)]
    parts = gather_to_main(launch, run_images(model, data_root, mine, cfg.image_size, batch_size, fn, progress, launch))
    if parts is None:
        return counts, None, None
    parts = [(keys, outs) for keys, outs in parts if len(keys)]
    keys = pd.concat([k for k, _ in parts], ignore_index=True)
    return counts, keys, {name: np.concatenate([o[name] for _, o in parts]) for name in parts[0][1]}


@dataclass
class Prediction:
    """A member's table of a split, how many frames were filled, and (committee) each part's own table. Under
    torchrun rank 0 holds them; the other processes get ``table`` None."""

    table: PredictionTable | None
    filled: int
    parts: dict[str, PredictionTable] = field(default_factory=dict)


def predict_member(run: Path | Run, data_root: Path, split: str, **how) -> Prediction:
    """The run's prediction table for every frame of ``split`` (nothing is written: see ``write_prediction``);
    ``how``: ``frames`` (a manifest), ``progress`` and ``launch`` (under torchrun the processes share the videos
    and rank 0 gets the table), as ``Member.predict`` takes them."""
    run = run if isinstance(run, Run) else Run.open(run)
    return Member.from_run(run).predict(run, data_root, split, **how)


def predict_images(run: Run, data_root: Path, split: str, frames, progress, launch) -> Prediction:
    """An image member's ``Prediction``: its network on every face image, faceless frames filled; on a
    class-folder, clip or list dataset one row per image or clip (``members.training.datasets``)."""
    if is_listed(data_root):
        return predict_listed(run, data_root, split, progress, launch)
    counts, keys, outs = run_split(
        run, data_root, split, frames, 128, lambda m, x: probabilities(m(x)), progress, launch or Launch()
    )
    if keys is None:
        return Prediction(None, 0)
    cfg, edition = run.config, get_edition(run.config.edition)
    columns = {c: outs[t][:, j] for t in cfg.tasks for j, c in enumerate(edition.output_columns(t))}
    data = pd.concat([keys, pd.DataFrame(columns)], axis=1)
    meta = TableMeta.of(tuple(cfg.tasks), edition, member=run.path.name, split=split, extra={"config": run.doc})
    return Prediction(*fill_missing_frames(PredictionTable(data, meta), counts, f"{run.path} ({split})"))


def part_paths(out: Path, parts: dict[str, PredictionTable]) -> dict[str, Path]:
    """Where each part's table goes beside ``out``: ``<out stem>_<part><suffix>``."""
    return {name: safe_join(out.parent, f"{out.stem}_{safe_name(name, 'part name')}", out.suffix) for name in parts}


def write_prediction(prediction: Prediction, out: Path) -> Path:
    """Write the table at ``out`` and each part's beside it (each file atomically; the folder is made if new)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for name, path in part_paths(out, prediction.parts).items():
        write_table(prediction.parts[name], path)
    return write_table(prediction.table, out)


def extract_features(
    run_dir: Path,
    data_root: Path,
    split: str,
    out: Path,
    *,
    frames: Path | None = None,
    batch_size: int = 128,
    progress: Progress | None = None,
    launch: Launch | None = None,
) -> int:
    """Cache the CNN's per-frame embeddings of every face image of ``split`` as ``.npz``
    (``video``, ``frame``, ``features``, plus the frame counts); returns the number of frames (rank 0 writes;
    the other processes return 0). A clip dataset's clips are the videos (``members.training.datasets``)."""
    if is_listed(data_root):
        counts, keys, outs = listed_features(Run.open(run_dir), data_root, split, batch_size, progress, launch)
    else:
        counts, keys, outs = split_features(Run.open(run_dir), data_root, split, frames, batch_size, progress, launch)
    if keys is None:
        return 0
    with atomic_file(out) as tmp, open(tmp, "wb") as file:  # a file object: savez adds no '.npz' to it
        np.savez(
            file,
            video=keys["video"].to_numpy(str),
            frame=keys["frame"].to_numpy(np.int64),
            features=outs["features"].astype(np.float32),
            count_videos=np.array(list(counts), dtype=str),
            count_frames=np.array(list(counts.values()), dtype=np.int64),
            split=split,
            run=str(run_dir),
            generator=STAMP,
        )
    return len(keys)


def split_features(run: Run, data_root: Path, split: str, frames, batch_size: int, progress, launch):
    """(frame counts, keys, {'features': ...}) of every face image of an Aff-Wild2 split (None keys off rank 0)."""
    fn = lambda m, x: {"features": m.features(x)}  # noqa: E731
    return run_split(run, data_root, split, frames, batch_size, fn, progress, launch or Launch())


# --- class-folder, clip and list datasets (members.training.datasets) ---------------------------------


def predict_listed(run, data_root: Path, split: str, progress, launch):
    """An image member's ``Prediction`` on a split of a class-folder, clip or list dataset: one row per image, or
    per clip (its frames' probabilities averaged), keyed by the path relative to the dataset folder."""
    launch, cfg, model = launch or Launch(), run.config, image_network(run)
    edition = get_edition(cfg.edition)
    dataset = ListedImages(read_dataset(data_root), split, edition, cfg.image_size, train=False)
    outs = listed_outputs(model, dataset, 64, lambda m, x: probabilities(m(x)), progress, launch)
    keys, expr = pooled(dataset.frames, outs["expr"])
    data = pd.concat([keys, pd.DataFrame(expr, columns=edition.output_columns("expr"))], axis=1)
    meta = TableMeta.of(("expr",), edition, member=run.path.name, split=split, extra={"config": run.doc})
    return Prediction(PredictionTable(data, meta), 0)


def listed_features(run, data_root: Path, split: str, batch_size: int, progress, launch):
    """(frames per clip or image, keys, {'features': ...}) of a split's images, as ``extract_features`` caches
    them: a clip's frames are its video's frames."""
    cfg, model = run.config, image_network(run)
    dataset = ListedImages(read_dataset(data_root), split, get_edition(cfg.edition), cfg.image_size, train=False)
    fn = lambda m, x: {"features": m.features(x)}  # noqa: E731
    outs = listed_outputs(model, dataset, batch_size, fn, progress, launch or Launch())
    keys = dataset.frames[["video", "frame"]].reset_index(drop=True)
    counts = keys.groupby("video", sort=False)["frame"].max().to_dict()
    return counts, keys, outs
