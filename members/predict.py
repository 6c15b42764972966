"""Prediction tables and feature caches from a trained run, covering every frame of every video."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from ensemble.contract import PredictionTable, TableMeta, write_table
from ensemble.errors import DataError
from ensemble.frames import fill_missing_frames, read_manifest
from ensemble.io import read_json_object
from ensemble.labels import annotation_frame_counts, track_dir
from ensemble.outputs import STAMP, atomic_file, safe_join, safe_name
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
    raw = read_json_object(config_file, "run config")
    raw.pop("generator", None)  # the tool's stamp (a committee's config.json), not a config field
    class_name = raw.pop("member", None)
    member_cls = next((MEMBERS.get(n) for n in MEMBERS.names() if MEMBERS.get(n).__name__ == class_name), None)
    if member_cls is None:
        raise DataError(f"{config_file}: names no known member ({class_name!r})")
    try:
        return member_cls, member_cls.config_class(**{**raw, "tasks": tuple(raw["tasks"])})
    except (KeyError, TypeError):
        raise DataError(f"{config_file}: does not fit member {class_name} (fields differ)") from None


def load_run(run_dir: Path):
    """(member class, config, network with the best weights) of a finished image-member run."""
    member_cls, cfg = load_config(run_dir)
    if not hasattr(member_cls, "network") or getattr(member_cls, "on_features", False):
        raise DataError(
            f"{run_dir}: a {member_cls.__name__} run has no per-frame image network; "
            "features come from an image member's run (cnn, keras)"
        )
    best = run_dir / "best.pt"
    model = member_cls.network(cfg, get_edition(cfg.edition))
    try:
        model.load_state_dict(load_weights(best)["model"])
    except (RuntimeError, KeyError, TypeError) as exc:  # a best.pt from another config or version of the member
        detail = " ".join(str(exc).split())[:160]
        raise DataError(f"{best}: the weights do not fit the run's config.json ({detail})") from None
    return member_cls, cfg, model.eval()


def load_weights(path: Path) -> dict:
    """A checkpoint's tensors and plain values, never unpickled code: anything else is a one-line error."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise DataError(
            f"{path}: holds more than weights and plain values; refused (loading it could run code)"
        ) from None
    except (RuntimeError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable torch checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise DataError(f"{path}: not a checkpoint of affect-ens (expected a dict, got {type(state).__name__})")
    return state


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


@dataclass
class Prediction:
    """A member's table of a split, how many frames were filled, and (committee) each part's own table."""

    table: PredictionTable
    filled: int
    parts: dict[str, PredictionTable] = field(default_factory=dict)


def predict_member(
    run_dir: Path,
    data_root: Path,
    split: str,
    *,
    frames: Path | None = None,
    batch_size: int = 128,
    progress: Progress | None = None,
) -> Prediction:
    """The run's prediction table for every frame of ``split`` (nothing is written: see ``write_prediction``)."""
    member_cls, cfg = load_config(run_dir)
    if hasattr(member_cls, "predict"):
        return member_cls.predict(cfg, run_dir, data_root, split, frames, progress)
    if getattr(member_cls, "on_features", False):
        from members.temporal_train import predict_temporal

        return predict_temporal(member_cls, cfg, run_dir, split)
    cfg, counts, keys, outs = run_split(
        run_dir, data_root, split, frames, batch_size, lambda m, x: probabilities(m(x)), progress
    )
    edition = get_edition(cfg.edition)
    columns = {c: outs[t][:, j] for t in cfg.tasks for j, c in enumerate(edition.output_columns(t))}
    data = pd.concat([keys, pd.DataFrame(columns)], axis=1)
    config = read_json_object(run_dir / "config.json", "run config")
    meta = TableMeta(tuple(cfg.tasks), cfg.edition, member=run_dir.name, split=split, extra={"config": config})
    return Prediction(*fill_missing_frames(PredictionTable(data, meta), counts, f"{run_dir} ({split})"))


def part_paths(out: Path, parts: dict[str, PredictionTable]) -> dict[str, Path]:
    """Where each part's table goes beside ``out``: ``<out stem>_<part><suffix>``."""
    return {name: safe_join(out.parent, f"{out.stem}_{safe_name(name, 'part name')}", out.suffix) for name in parts}


def write_prediction(prediction: Prediction, out: Path) -> Path:
    """Write the table at ``out`` and each part's beside it (each file atomically)."""
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
) -> int:
    """Cache the CNN's per-frame embeddings of every face image of ``split`` as ``.npz``
    (``video``, ``frame``, ``features``, plus the frame counts); returns the number of frames."""
    _, counts, keys, outs = run_split(
        run_dir, data_root, split, frames, batch_size, lambda m, x: {"features": m.features(x)}, progress
    )
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
