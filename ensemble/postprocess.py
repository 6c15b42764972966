"""Post-processing after any fusion: temporal smoothing within each video and per-AU thresholds.

Windows never cross a video boundary (rows of one video are contiguous and sorted by frame, as the
contract guarantees). Both are tuned on validation with the same ``task_score`` used for reporting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d, median_filter, uniform_filter1d

from ensemble.evaluate import Truth
from ensemble.metrics import binary_f1_per_unit, ccc_score, task_score
from ensemble.tasks import Edition

KINDS = ("mean", "median", "gaussian")
HALF_WINDOWS = (0, 1, 2, 3, 5, 8, 12, 18, 25, 35, 50, 70)
"""Candidate half-widths: a window of half-width h covers frames i-h..i+h of the same video."""
THRESHOLDS = np.round(np.arange(0.1, 0.91, 0.05), 2)


def video_runs(codes: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of equal video codes."""
    edges = np.flatnonzero(np.diff(codes)) + 1
    bounds = np.concatenate([[0], edges, [len(codes)]])
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def _filter(kind: str, x: np.ndarray, half: int) -> np.ndarray:
    if kind == "mean":
        return uniform_filter1d(x, size=2 * half + 1, axis=0, mode="nearest")
    if kind == "median":
        return median_filter(x, size=(2 * half + 1, 1), mode="nearest")
    return gaussian_filter1d(x, sigma=half / 2.0, axis=0, mode="nearest", truncate=2.0)


def smooth_within_videos(values: np.ndarray, codes: np.ndarray, kind: str, half: int) -> np.ndarray:
    """Smooth (frames, k) ``values`` over a window of half-width ``half``, separately in each video."""
    if half <= 0:
        return values
    out = np.empty_like(values, dtype=np.float64)
    for start, stop in video_runs(codes):
        out[start:stop] = _filter(kind, values[start:stop].astype(np.float64), half)
    return out


def renormalise(values: np.ndarray, unsmoothed: np.ndarray) -> np.ndarray:
    """Rows rescaled to sum to 1 (median smoothing of probabilities breaks the sum); a row the median emptied
    (each class's median is 0 when the class changes at every frame of the window) keeps its unsmoothed values."""
    sums = values.sum(axis=1, keepdims=True)
    return np.where(sums > 1e-6, values / np.maximum(sums, 1e-12), unsmoothed)


def tune_window(values: np.ndarray, codes: np.ndarray, scorer: Callable[[np.ndarray], float]) -> tuple[str, int]:
    """The (kind, half-width) of the best validation score; ('mean', 0) is no smoothing."""
    best, best_score = ("mean", 0), scorer(values)
    for kind in KINDS:
        for half in HALF_WINDOWS[1:]:
            s = scorer(smooth_within_videos(values, codes, kind, half))
            if s > best_score + 1e-9:
                best, best_score = (kind, half), s
    return best


def tune_thresholds(probs: np.ndarray, truth: np.ndarray, edition: Edition) -> np.ndarray:
    """Per-AU threshold maximising that unit's share of the edition's AU score (F1, or F1 and accuracy)."""
    w_f1, w_acc = edition.au_weights
    scores = []
    for t in THRESHOLDS:
        pred = probs >= t
        scores.append(w_f1 * binary_f1_per_unit(truth, pred) + w_acc * np.mean(pred == truth.astype(bool), axis=0))
    return THRESHOLDS[np.argmax(np.array(scores), axis=0)]


def move_threshold_to_half(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Monotone map of each unit's probabilities sending its threshold to 0.5, so that the contract's
    0.5 cut (used by every scorer and submission writer) reproduces the tuned decisions."""
    t = np.clip(thresholds, 1e-6, 1 - 1e-6)
    low = probs / (2 * t)
    high = 0.5 + (probs - t) / (2 * (1 - t))
    return np.clip(np.where(probs < t, low, high), 0.0, 1.0)


@dataclass
class PostProcess:
    """Smoothing windows per task (per VA dimension) and per-AU thresholds, tuned on validation."""

    smooth: bool = True
    thresholds: bool = True
    windows_: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    thresholds_: list[float] = field(default_factory=list)

    def fit(
        self, tasks: dict[str, np.ndarray], codes: np.ndarray, truths: dict[str, Truth], edition: Edition
    ) -> PostProcess:
        """``tasks`` maps each task to its (frames, k) fused outputs on every validation frame."""
        for task, values in tasks.items():
            truth = truths[task]
            if self.smooth:
                self.windows_[task] = [
                    tune_window(values[:, cols], codes, scorer) for cols, scorer in _groups(task, edition, truth)
                ]
            if task == "au" and self.thresholds:
                smoothed = self._smooth(task, values, codes)
                self.thresholds_ = tune_thresholds(smoothed[truth.rows], truth.values, edition).tolist()
        return self

    def _smooth(self, task: str, values: np.ndarray, codes: np.ndarray) -> np.ndarray:
        windows = self.windows_.get(task)
        if not windows:
            return values
        if len(windows) == 1:
            out = smooth_within_videos(values, codes, *windows[0])
        else:
            out = np.column_stack(
                [smooth_within_videos(values[:, [d]], codes, *w)[:, 0] for d, w in enumerate(windows)]
            )
        return renormalise(out, values) if task == "expr" else out

    def apply(self, task: str, values: np.ndarray, codes: np.ndarray) -> np.ndarray:
        out = self._smooth(task, values, codes)
        if task == "au" and self.thresholds_:
            out = move_threshold_to_half(out, np.asarray(self.thresholds_))
        return out


def _groups(task: str, edition: Edition, truth: Truth) -> list[tuple[slice, Callable[[np.ndarray], float]]]:
    """Column groups tuned separately (each VA dimension on its own CCC) with their scorers."""
    if task == "va":
        return [(slice(d, d + 1), lambda v, d=d: ccc_score(truth.values[:, d], v[truth.rows, 0])) for d in range(2)]
    return [(slice(None), lambda v: task_score(task, edition, truth.values, v[truth.rows]))]
