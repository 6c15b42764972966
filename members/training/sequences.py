"""Cached per-frame features as per-video sequences, and windows over them that never cross a video.

A feature cache (``extract-features``) holds embeddings of face frames only; frames without a face get
features interpolated from their neighbours so every video is a full (frames, dim) sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.datasets import CLIPS, detect_dataset
from ensemble.errors import DataError
from ensemble.labels import read_labels
from ensemble.tasks import Edition


@dataclass
class VideoSequence:
    video: str
    features: np.ndarray  # (frames, dim) float32, frame i+1 at row i
    expr: np.ndarray  # (frames,) float, NaN where unannotated
    va: np.ndarray  # (frames, 2)
    au: np.ndarray  # (frames, units)


def load_cache(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: feature cache not found (write it with affect-ens extract-features)")
    with np.load(path) as cache:
        return {k: cache[k] for k in cache.files}


def full_sequences(cache: dict, counts: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Features for frames 1..n of every video (``counts``, default the cache's own frame counts),
    interpolated where a face image was missing; before the first face and after the last, the nearest."""
    counts = counts or dict(zip(cache["count_videos"].tolist(), cache["count_frames"].tolist()))
    out = {}
    for video, n in counts.items():
        rows = np.flatnonzero(cache["video"] == video)
        if len(rows) == 0:
            raise DataError(f"feature cache has no frames of video {video!r}")
        have, feats, frames = cache["frame"][rows], cache["features"][rows], np.arange(1, n + 1)
        out[video] = np.column_stack([np.interp(frames, have, feats[:, j]) for j in range(feats.shape[1])]).astype(
            np.float32
        )
    return out


def _labels_by_frame(labels: pd.DataFrame | None, video: str, n: int, cols: list[str]) -> np.ndarray:
    out = np.full((n, len(cols)), np.nan)
    if labels is not None:
        rows = labels[labels["video"] == video]
        rows = rows[rows["frame"] <= n]
        out[rows["frame"].to_numpy() - 1] = rows[cols].to_numpy(np.float64)
    return out


def load_sequences(
    cache_path: Path,
    data_root: Path | None,
    split: str,
    tasks: tuple[str, ...],
    edition: Edition,
    counts: dict[str, int] | None = None,
) -> list[VideoSequence]:
    """Sequences of a split with their labels (NaN everywhere when ``data_root`` is None), of the videos and
    frame counts ``counts`` names (default: the cache's)."""
    feats = full_sequences(load_cache(cache_path), counts)
    labels = {t: read_labels(data_root, t, split, edition) if data_root is not None else None for t in tasks}
    per_clip = data_root is not None and detect_dataset(data_root) == CLIPS  # one label per clip: every frame's
    seqs = []
    for video, x in feats.items():
        n = len(x)
        lab = {t: _labels_by_frame(labels.get(t), video, n, edition.label_columns(t)) for t in ("expr", "va", "au")}
        if per_clip:
            lab["expr"][:] = lab["expr"][0]
        seqs.append(VideoSequence(video, x, lab["expr"][:, 0], lab["va"], lab["au"]))
    return seqs


def windows(length: int, size: int, stride: int) -> list[tuple[int, int]]:
    """(start, stop) windows covering 0..length, the last one ending at ``length``; a video shorter than
    ``size`` is one window. Windows are per video, so they never cross a video boundary."""
    if length <= size:
        return [(0, length)]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] + size < length:
        starts.append(length - size)
    return [(s, s + size) for s in starts]


def temporal_statistics(x: np.ndarray, half: int) -> np.ndarray:
    """Mean, std, min and max of each feature over +-``half`` frames (within the video), concatenated."""
    from numpy.lib.stride_tricks import sliding_window_view

    padded = np.pad(x, ((half, half), (0, 0)), mode="edge")
    win = sliding_window_view(padded, 2 * half + 1, axis=0)  # (frames, dim, window)
    return np.concatenate([win.mean(-1), win.std(-1), win.min(-1), win.max(-1)], axis=1).astype(np.float32)
