"""Scoring predictions against labels: matching label frames to predicted frames, video-grouped folds,
and per-member score tables. Every score here comes from ``metrics.task_metrics``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ensemble.contract import KEY
from ensemble.errors import AffectEnsError, ContractError
from ensemble.metrics import task_metrics
from ensemble.tasks import Edition


@dataclass
class Truth:
    """Labels of one task on predicted frames: ``values[i]`` is the label of predicted row ``rows[i]``."""

    rows: np.ndarray
    values: np.ndarray


def match_labels(
    keys: pd.DataFrame, labels: pd.DataFrame, task: str, edition: Edition, *, strict: bool = True
) -> Truth:
    """Find each labelled frame among the predicted ``keys``; a labelled frame with no prediction is an
    error when ``strict`` (a submission must cover every frame), else it is skipped."""
    cols = edition.label_columns(task)
    pos = pd.MultiIndex.from_frame(keys[KEY]).get_indexer(pd.MultiIndex.from_frame(labels[KEY]))
    missing = pos < 0
    if missing.any() and strict:
        first = labels.iloc[int(np.flatnonzero(missing)[0])]
        raise ContractError(
            f"predictions miss {int(missing.sum())} labelled {task} frame(s), first at video "
            f"{first['video']!r} frame {first['frame']}"
        )
    values = labels.loc[~missing, cols].to_numpy()
    return Truth(pos[~missing], values.reshape(-1) if task == "expr" else values)


def truths_for(
    keys: pd.DataFrame, labels: dict[str, pd.DataFrame], edition: Edition, strict: bool = True
) -> dict[str, Truth]:
    return {task: match_labels(keys, lab, task, edition, strict=strict) for task, lab in labels.items()}


def video_folds(codes: np.ndarray, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, held-out rows) per fold; a video's frames never fall on both sides."""
    n_videos = len(np.unique(codes))
    if n_videos < 2:
        raise AffectEnsError(f"out-of-fold scores need at least 2 validation videos, got {n_videos}")
    from sklearn.model_selection import GroupKFold  # imported here: it costs a second of CLI start-up

    splitter = GroupKFold(n_splits=min(n_folds, n_videos))
    return list(splitter.split(np.zeros(len(codes)), groups=codes))


def score(task: str, edition: Edition, truth: Truth, outputs: np.ndarray, thresholds=0.5) -> dict[str, float]:
    """Metrics of ``task`` for full-length ``outputs`` (frames, k) on the labelled rows."""
    return task_metrics(task, edition, truth.values, outputs[truth.rows], thresholds)
