"""Post-processing after any fusion: temporal smoothing within each video and per-AU thresholds, each kept only
where it raises the out-of-fold score.

Windows never cross a video boundary (rows of one video are contiguous and sorted by frame, as the contract
guarantees). A window is tuned per task (per VA dimension) and a threshold per AU on validation, with the same
metric formulas as the reported scores. Each step is then scored out-of-fold by video (chosen without the
held-out videos, scored on them) against doing nothing, and kept only when it gains ``MARGIN``; ``decisions_``
records what was kept and dropped, with both out-of-fold scores.

Tuning is fast at Aff-Wild2 scale because each candidate window smooths the whole split once: a video's smoothed
values do not depend on the other videos, so each video's contribution to the metric (counts and sums) is kept,
and choosing a window or a threshold on any set of videos, and scoring it on others, is a sum over videos.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter1d, median_filter, uniform_filter1d

from ensemble.evaluate import Truth, video_folds
from ensemble.frames import run_bounds, video_runs
from ensemble.metrics import au_unit_scores_from_counts, ccc_from_sums, expr_score_from_counts
from ensemble.tasks import Edition, tuned_groups

KINDS = ("mean", "median", "gaussian")
HALF_WINDOWS = (0, 1, 2, 3, 5, 8, 12, 18, 25, 35, 50, 70)
"""Candidate half-widths: a window of half-width h covers frames i-h..i+h of the same video."""
NO_WINDOW = ("mean", 0)
WINDOWS = [NO_WINDOW] + [(kind, half) for half in HALF_WINDOWS[1:] for kind in KINDS]
"""Every candidate, narrowest first (the first of equal scores wins)."""
THRESHOLDS = np.round(np.arange(0.2, 0.81, 0.1), 2)
"""A coarse grid: finer grids fit the validation set's noise rather than the units."""
DEFAULT_THRESHOLD = 0.5
THRESHOLD_TIE = 0.002
"""Thresholds scoring within this of a unit's best count as tied; the one nearest the default wins."""
MARGIN = 0.005
"""Out-of-fold gain (CCC, F1 or score) a step must bring to be kept."""


# --- smoothing ---------------------------------------------------------------------------------------------


def per_run_sums(x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sums over axis 0 of ``x`` between consecutive ``starts`` (0/1 arrays counted as bytes into int32, many
    times faster than as floats)."""
    if x.dtype == bool:
        return np.add.reduceat(x.view(np.uint8), starts, axis=0, dtype=np.int32)
    return np.add.reduceat(x, starts, axis=0, dtype=np.float64)


def padded_rows(codes: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of every video with ``half`` copies of its first and last row on either side, and where the
    original rows sit among them: one filter pass over the padded rows never mixes two videos."""
    runs = np.array(video_runs(codes))
    starts, lengths = runs[:, 0], runs[:, 1] - runs[:, 0]
    padded = lengths + 2 * half
    within = np.arange(padded.sum()) - np.repeat(np.cumsum(padded) - padded, padded)
    rows = np.repeat(starts, padded) + np.clip(within - half, 0, np.repeat(lengths - 1, padded))
    inner = np.arange(len(codes)) + half * (2 * np.repeat(np.arange(len(starts)), lengths) + 1)
    return rows, inner


def _filter(kind: str, x: np.ndarray, half: int) -> np.ndarray:
    size = 2 * half + 1
    if kind == "mean":
        return uniform_filter1d(x, size=size, axis=0, mode="nearest")
    if kind == "median":  # column by column: scipy's 1-D rank filter is many times faster than the 2-D one
        out = np.empty(x.shape, dtype=x.dtype, order="F")
        for j in range(x.shape[1]):
            median_filter(np.ascontiguousarray(x[:, j]), size=size, mode="nearest", output=out[:, j])
        return out
    return gaussian_filter1d(x, sigma=half / 2.0, axis=0, mode="nearest", truncate=2.0)


def smooth_within_videos(values: np.ndarray, codes: np.ndarray, kind: str, half: int) -> np.ndarray:
    """Smooth (frames, k) ``values`` over a window of half-width ``half``, separately in each video (each video
    extended by its edge values, as scipy's ``mode='nearest'``)."""
    if half <= 0:
        return values
    rows, inner = padded_rows(codes, half)
    return _filter(kind, values[rows].astype(np.float64), half)[inner]


def renormalise(values: np.ndarray, unsmoothed: np.ndarray) -> np.ndarray:
    """Rows rescaled to sum to 1 (median smoothing of probabilities breaks the sum); a row the median emptied
    (each class's median is 0 when the class changes at every frame of the window) keeps its unsmoothed values."""
    sums = values.sum(axis=1, keepdims=True)
    return np.where(sums > 1e-6, values / np.maximum(sums, 1e-12), unsmoothed)


def move_threshold_to_half(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Monotone map of each unit's probabilities sending its threshold to 0.5, so that the contract's
    0.5 cut (used by every scorer and submission writer) reproduces the tuned decisions."""
    t = np.clip(thresholds, 1e-6, 1 - 1e-6)
    low = probs / (2 * t)
    high = 0.5 + (probs - t) / (2 * (1 - t))
    return np.clip(np.where(probs < t, low, high), 0.0, 1.0)


# --- each video's part of a score --------------------------------------------------------------------------


@dataclass
class Target:
    """Columns tuned together (a task, or one VA dimension) with their labels; ``stats`` gives each video's
    counts or sums for outputs of those columns, ``score`` the metric of summed stats."""

    task: str
    name: str
    columns: slice
    labels: np.ndarray  # labels of the labelled rows, in ``rows`` order
    rows: np.ndarray  # labelled rows, sorted by video
    videos: np.ndarray  # video code of each labelled row
    n_videos: int
    edition: Edition

    def __post_init__(self) -> None:
        self.starts = run_bounds(self.videos)[:-1] if len(self.rows) else []
        self.present = self.videos[self.starts]

    def per_video(self, x: np.ndarray) -> np.ndarray:
        """(videos, ...) sums over each video's labelled rows of the per-row (rows, ...) ``x``."""
        out = np.zeros((self.n_videos,) + x.shape[1:])
        if len(self.rows):
            out[self.present] = per_run_sums(x, self.starts)
        return out

    def stats(self, values: np.ndarray, thresholds: np.ndarray = np.array([DEFAULT_THRESHOLD])) -> np.ndarray:
        """(videos, ...) counts or sums of the outputs ``values`` (every frame, the target's columns)."""
        pred = values[self.rows]
        if self.task == "expr":
            return expr_counts(self.videos, self.n_videos, pred.argmax(axis=1), self.labels, pred.shape[1])
        if self.task == "va":
            y, p = self.labels.astype(np.float64), pred[:, 0].astype(np.float64)
            return self.per_video(np.column_stack([np.ones_like(y), y, p, y * y, p * p, y * p]))
        return self.au_counts(pred, thresholds)

    def au_counts(self, probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
        """(videos, 4, units, thresholds): true positives, predicted and actual positives, and frames, of each
        unit in each video at each threshold."""
        positive = self.labels.astype(bool)
        out = np.zeros((self.n_videos, 4, probs.shape[1], len(thresholds)))
        for i, t in enumerate(thresholds):
            yes = probs >= t
            out[:, 0, :, i] = self.per_video(yes & positive)
            out[:, 1, :, i] = self.per_video(yes)
        out[:, 2] = self.per_video(positive)[:, :, None]
        out[:, 3] = self.per_video(np.ones((len(probs), 1)))[:, :, None]
        return out

    def score(self, summed: np.ndarray) -> float:
        """The metric of stats summed over some videos (AU: at the first threshold)."""
        if self.task == "expr":
            return expr_score_from_counts(self.edition, *summed)
        if self.task == "va":
            return ccc_from_sums(summed)
        return float(self.unit_scores(summed)[:, 0].mean())

    def unit_scores(self, summed: np.ndarray) -> np.ndarray:
        """(units, thresholds) part of the AU score of each unit at each threshold."""
        tp, predicted, actual, frames = summed
        return au_unit_scores_from_counts(self.edition, tp, predicted, actual, float(frames[0, 0]))


def expr_counts(videos: np.ndarray, n_videos: int, pred: np.ndarray, truth: np.ndarray, k: int) -> np.ndarray:
    """(videos, 3, k): true positives, predictions and labels of each class in each video."""
    truth = truth.astype(np.int64)

    def per_video(classes: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        cells = videos * k + classes if where is None else (videos * k + classes)[where]
        return np.bincount(cells, minlength=n_videos * k).reshape(n_videos, k)

    return np.stack([per_video(truth, pred == truth), per_video(pred), per_video(truth)], axis=1)


def targets(task: str, truth: Truth, codes: np.ndarray, edition: Edition, k: int) -> list[Target]:
    """The targets of a task: each VA dimension on its own CCC; EXPR and AU as a whole."""
    order = np.argsort(codes[truth.rows], kind="stable")
    rows, values = truth.rows[order], truth.values[order]
    common = dict(rows=rows, videos=codes[rows], n_videos=int(codes.max()) + 1, edition=edition)
    return [
        Target(task, name, cols, values[:, cols.start] if task == "va" else values, **common)
        for name, cols in tuned_groups(task, k)
    ]


# --- choosing on some videos, scoring on others ------------------------------------------------------------


def choose(stats: list[np.ndarray], videos: np.ndarray, score: Callable[[np.ndarray], float]) -> int:
    """Index of the candidate with the best score on ``videos`` (a boolean mask); the first on ties."""
    best, best_score = 0, -np.inf
    for i, s in enumerate(stats):
        value = score(s[videos].sum(axis=0))
        if value > best_score + 1e-9:
            best, best_score = i, value
    return best


def choose_thresholds(unit_scores: np.ndarray) -> np.ndarray:
    """Per unit, among the thresholds scoring within ``THRESHOLD_TIE`` of its best, the one nearest the default
    (a shrinkage toward 0.5): (units, thresholds) scores -> (units,) indices into ``THRESHOLDS``."""
    scores = np.nan_to_num(unit_scores, nan=-np.inf)
    near = scores >= scores.max(axis=1, keepdims=True) - THRESHOLD_TIE
    distance = np.where(near, np.abs(THRESHOLDS - DEFAULT_THRESHOLD)[None, :], np.inf)
    return distance.argmin(axis=1)


def tune_thresholds(probs: np.ndarray, truth: np.ndarray, edition: Edition) -> np.ndarray:
    """Per-AU thresholds on these frames (``choose_thresholds`` of each unit's part of the AU score)."""
    rows = np.arange(len(probs))
    target = Target("au", "AU", slice(None), truth, rows, np.zeros(len(probs), dtype=np.int64), 1, edition)
    return THRESHOLDS[choose_thresholds(target.unit_scores(target.au_counts(probs, THRESHOLDS)[0]))]


@dataclass
class Folds:
    """Video masks of the out-of-fold split: ``train[f]`` and ``held[f]`` are (videos,) booleans."""

    train: list[np.ndarray]
    held: list[np.ndarray]
    rows: list[np.ndarray]  # held-out rows of each fold

    @classmethod
    def of(cls, codes: np.ndarray, n_folds: int) -> Folds:
        n_videos = int(codes.max()) + 1
        held_rows = [rows for _, rows in video_folds(codes, n_folds)]
        held = [np.isin(np.arange(n_videos), np.unique(codes[rows])) for rows in held_rows]
        return cls([~h for h in held], held, held_rows)


def candidate_windows(values: np.ndarray, codes: np.ndarray):
    """Yield (window, smoothed values) for every window of ``WINDOWS``: the padded rows of a half-width are
    gathered once for the three kinds."""
    yield NO_WINDOW, values
    padded, inner, gathered = None, None, -1
    for kind, half in WINDOWS[1:]:
        if half != gathered:
            rows, inner = padded_rows(codes, half)
            padded, gathered = values[rows].astype(np.float64), half
        yield (kind, half), _filter(kind, padded, half)[inner]


def tune_window(values: np.ndarray, codes: np.ndarray, target: Target, folds: Folds) -> dict[str, Any]:
    """The window of ``target`` chosen on all videos and in each fold, with the out-of-fold scores with the
    fold windows and without smoothing."""
    stats = [target.stats(smoothed) for _, smoothed in candidate_windows(values, codes)]
    everything = np.ones(target.n_videos, dtype=bool)
    chosen = [choose(stats, train, target.score) for train in folds.train]
    with_ = sum(stats[c][held].sum(axis=0) for c, held in zip(chosen, folds.held))
    return {
        "window": WINDOWS[choose(stats, everything, target.score)],
        "folds": [WINDOWS[c] for c in chosen],
        "without": target.score(stats[0].sum(axis=0)),
        "with": target.score(with_),
    }


def threshold_stats(values: np.ndarray, codes: np.ndarray, target: Target, windows: list[tuple[str, int]]) -> dict:
    """AU counts at every threshold after each distinct window of ``windows``."""
    return {w: target.stats(smooth_within_videos(values, codes, *w), THRESHOLDS) for w in dict.fromkeys(windows)}


def tune_unit_thresholds(stats: dict, target: Target, folds: Folds, window, fold_windows) -> dict[str, Any]:
    """Per-AU thresholds on all videos and in each fold (after that fold's window), with each unit's
    out-of-fold score with the fold thresholds and at the default."""
    default = int(np.flatnonzero(THRESHOLDS == DEFAULT_THRESHOLD)[0])
    with_, without, chosen = 0.0, 0.0, []
    for w, train, held in zip(fold_windows, folds.train, folds.held):
        picks = choose_thresholds(target.unit_scores(stats[w][train].sum(axis=0)))
        chosen.append(THRESHOLDS[picks])
        summed = stats[w][held].sum(axis=0)
        units = np.arange(len(picks))
        with_ = with_ + summed[:, units, picks][..., None]
        without = without + summed[:, :, [default]]
    return {
        "thresholds": THRESHOLDS[choose_thresholds(target.unit_scores(stats[window].sum(axis=0)))],
        "folds": chosen,
        "with": target.unit_scores(with_)[:, 0],
        "without": target.unit_scores(without)[:, 0],
    }


def _decision(step: str, task: str, target: str, kept: bool, setting: str, without: float, with_: float) -> dict:
    return {
        "step": step,
        "task": task,
        "target": target,
        "kept": bool(kept),
        "setting": setting,
        "out_of_fold_without": round(float(without), 6),
        "out_of_fold_with": round(float(with_), 6),
    }


def window_text(window) -> str:
    kind, half = window
    return f"{kind} ±{half}" if half else "none"


@dataclass
class PostProcess:
    """Smoothing windows per task (per VA dimension) and per-AU thresholds, tuned on validation and kept where
    they raise the out-of-fold score by ``MARGIN``."""

    smooth: bool = True
    thresholds: bool = True
    windows_: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    thresholds_: list[float] = field(default_factory=list)
    decisions_: list[dict[str, Any]] = field(default_factory=list)
    oof_: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # out-of-fold outputs (not saved)

    def fit(
        self,
        tasks: dict[str, np.ndarray],
        codes: np.ndarray,
        truths: dict[str, Truth],
        edition: Edition,
        folds: int = 5,
    ) -> PostProcess:
        """``tasks`` maps each task to its (frames, k) fused outputs on every validation frame (out-of-fold
        outputs of the fusion, so that the post-processing is tuned on what the fusion gives unseen videos)."""
        split = Folds.of(codes, folds)
        fold_posts = [PostProcess(self.smooth, self.thresholds) for _ in split.held]
        for task, values in tasks.items():
            found = targets(task, truths[task], codes, edition, values.shape[1])
            if self.smooth:
                self._fit_windows(task, values, codes, found, split, fold_posts)
            if task == "au" and self.thresholds:
                self._fit_thresholds(values, codes, found[0], split, fold_posts)
        self.oof_ = {task: values.copy() for task, values in tasks.items()}
        for post, rows in zip(fold_posts, split.rows):
            for task, values in tasks.items():
                self.oof_[task][rows] = post.apply(task, values[rows], codes[rows])
        return self

    def _fit_windows(self, task, values, codes, found: list[Target], split: Folds, fold_posts) -> None:
        self.windows_[task] = []
        for post in fold_posts:
            post.windows_[task] = []
        for target in found:
            tuned = tune_window(values[:, target.columns], codes, target, split)
            kept = tuned["window"] != NO_WINDOW and tuned["with"] >= tuned["without"] + MARGIN
            self.windows_[task].append(tuned["window"] if kept else NO_WINDOW)
            for post, window in zip(fold_posts, tuned["folds"]):
                post.windows_[task].append(window if kept else NO_WINDOW)
            setting = window_text(tuned["window"])
            self.decisions_.append(
                _decision("smoothing", task, target.name, kept, setting, tuned["without"], tuned["with"])
            )

    def _fit_thresholds(self, values, codes, target: Target, split: Folds, fold_posts) -> None:
        window = self.windows_.get("au", [NO_WINDOW])[0]
        fold_windows = [post.windows_.get("au", [NO_WINDOW])[0] for post in fold_posts]
        stats = threshold_stats(values, codes, target, [window, *fold_windows])
        tuned = tune_unit_thresholds(stats, target, split, window, fold_windows)
        kept = tuned["with"] >= tuned["without"] + MARGIN
        self.thresholds_ = np.where(kept, tuned["thresholds"], DEFAULT_THRESHOLD).tolist()
        for post, chosen in zip(fold_posts, tuned["folds"]):
            post.thresholds_ = np.where(kept, chosen, DEFAULT_THRESHOLD).tolist()
        for u, name in enumerate(target.edition.aus):
            setting = f"{tuned['thresholds'][u]:.1f}"
            self.decisions_.append(
                _decision("threshold", "au", name, kept[u], setting, tuned["without"][u], tuned["with"][u])
            )

    def _smooth(self, task: str, values: np.ndarray, codes: np.ndarray) -> np.ndarray:
        windows = self.windows_.get(task)
        if not windows or all(w[1] == 0 for w in windows):
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

    def check_saved(self) -> None:
        """Values read from a fusion file: windows only those ``fit`` tries (which bounds the memory smoothing
        takes), thresholds in (0, 1), decisions as ``fit`` writes them; else a one-line error."""
        from ensemble.errors import AffectEnsError

        if not isinstance(self.smooth, bool) or not isinstance(self.thresholds, bool):
            raise AffectEnsError("post-processing: smooth and thresholds must be true or false")
        if not isinstance(self.windows_, dict) or not all(
            isinstance(ws, list) and all(w in WINDOWS and type(w[1]) is int for w in ws)
            for ws in self.windows_.values()
        ):
            allowed = f"kinds {', '.join(KINDS)}, half-widths {', '.join(map(str, HALF_WINDOWS))}"
            raise AffectEnsError(f"post-processing: a smoothing window is not one fit tries ({allowed})")
        if not isinstance(self.thresholds_, list) or not all(
            isinstance(t, float | int) and not isinstance(t, bool) and 0 < t < 1 for t in self.thresholds_
        ):
            raise AffectEnsError("post-processing: AU thresholds must be numbers between 0 and 1")
        keys = {"step": str, "task": str, "target": str, "kept": bool, "setting": str}
        numbers = ("out_of_fold_without", "out_of_fold_with")
        if not isinstance(self.decisions_, list) or not all(
            isinstance(d, dict)
            and all(isinstance(d.get(k), t) for k, t in keys.items())
            and all(isinstance(d.get(k), float | int) for k in numbers)
            for d in self.decisions_
        ):
            raise AffectEnsError("post-processing: decisions are not those fit records")

    def check_loaded(self, tasks: list[str] | tuple[str, ...], edition: Edition) -> None:
        """Windows and thresholds against the tasks and the edition they are applied to."""
        from ensemble.errors import AffectEnsError

        for task in tasks:
            windows = self.windows_.get(task, [])
            if len(windows) not in (0, 1, len(tuned_groups(task, 2))):
                raise AffectEnsError(f"post-processing: {len(windows)} {task} window(s) saved")
        aus = len(edition.aus)
        if "au" in tasks and self.thresholds_ and len(self.thresholds_) != aus:
            raise AffectEnsError(
                f"post-processing: {len(self.thresholds_)} AU thresholds saved, edition {edition.year} has {aus} AUs"
            )

    def summary(self) -> str:
        """One line: what was kept and what was dropped, with the out-of-fold scores."""
        return summarise(self.decisions_)


def summarise(decisions: list[dict[str, Any]]) -> str:
    """One line from ``PostProcess.decisions_``: each step kept or dropped, with its out-of-fold scores."""
    parts: dict[bool, list[str]] = {True: [], False: []}
    for d in decisions:
        scores = f"{d['out_of_fold_without']:.3f} → {d['out_of_fold_with']:.3f}"
        parts[d["kept"]].append(f"{d['target']} {d['step']} {d['setting']} ({scores})")
    kept, dropped = "; ".join(parts[True]) or "nothing", "; ".join(parts[False]) or "nothing"
    return f"(out-of-fold score without → with each step): kept {kept}. Dropped (gain under {MARGIN}): {dropped}"
