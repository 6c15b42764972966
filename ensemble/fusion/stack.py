"""LightGBM stacking on the members' outputs, tuned on validation with video-grouped folds.

One regressor per VA dimension, one multiclass model for EXPR, one binary model per AU. Features are the
members' outputs of the task (for an AU: that unit's probability from every member), plus optional
temporal context: each feature's mean over +-``context`` frames of the same video. Each fold model stops
early on an inner hold-out of its own training videos, using the challenge metric as a custom eval
(``metric='None'`` with ``feval``), so the out-of-fold predictions never saw their videos; the final model
is refit on all validation frames with the median best iteration.

Frames 1/30 s apart are near duplicates, so the models learn from every ``stride``-th frame of each video
(``temporal_stride`` chooses it from the members' outputs); the out-of-fold predictions still
cover every frame.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import field
from typing import TYPE_CHECKING

import numpy as np

from ensemble.errors import AffectEnsError
from ensemble.fusion.base import FUSERS, Fuser, learned, param
from ensemble.fusion.lgbm_text import safe_model_text
from ensemble.metrics import binary_f1_per_unit, ccc_score, macro_f1_score

if TYPE_CHECKING:  # LightGBM is imported when a stacker is fitted or applied: it costs half a second of start-up
    import lightgbm as lgb

    from ensemble.align import Aligned
    from ensemble.evaluate import Truth

MAX_CONTEXT = 100
"""Largest half-width of the temporal context features (frames)."""


def stack_features(values: np.ndarray, codes: np.ndarray, context: int) -> np.ndarray:
    """(frames, members*k [*2]) features from (members, frames, k) outputs."""
    base = values.transpose(1, 0, 2).reshape(values.shape[1], -1).astype(np.float32)
    if context <= 0:
        return base
    from ensemble.postprocess import smooth_within_videos

    return np.hstack([base, smooth_within_videos(base, codes, "mean", context).astype(np.float32)])


STRIDE_LAGS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
"""Lags ``temporal_stride`` tries: 32 frames is about a second of 30 fps video."""
STRIDE_KEEP = 2 / 3
"""Share of the lag-1 autocorrelation a lag must keep to count as 'the same moment'."""
STRIDE_MIN_FRAMES = 20_000
"""Fewest training frames a stride may leave: below this the stacker learns from every frame it can."""
STRIDE_FRAMES_PER_CLASS = 5_000
"""... and, for the multiclass EXPR model, as many per class (8 classes: 40,000): at 20,000 frames its
out-of-fold F1 fell 0.0085 on bench_fusion's 400,000 frames, at 40,000 by 0.0048."""
STRIDE_SAMPLE = 50_000
"""About as many frames (whole videos) estimate the autocorrelations."""


LEARNING_RATES = {"va": 0.1, "expr": 0.1, "au": 0.2}
"""Default learning rate of each task's models. At 0.2 the twelve one-output AU models reach the out-of-fold F1
they reach at 0.1 within 0.0004 with two thirds of the CPU time (``benchmarks/bench_fusion.py``, 5 members x
400,000 frames: 26.6 s against 39.4 s); the 8-class EXPR model lost 0.0035 of F1 there and the demo's VA stack
0.014 of CCC, so they keep 0.1."""


THREADS = 1
"""LightGBM threads per model. The strided training sets are tens of thousands of frames, too few to share:
on this 2-core machine, idle, one thread fitted the same models as two in 21.9 s instead of 32.6 s (EXPR),
17.1 s instead of 30.7 s (AU) and 4.2 s instead of 10.8 s (VA) (``benchmarks/bench_fusion.py``, 5 members x
400,000 frames)."""


def lag_autocorrelation(values: np.ndarray, codes: np.ndarray, lag: int) -> float:
    """Mean over members and columns of the correlation between frames ``lag`` apart in the same video
    (``values``: members, frames, k; frames in video order, as aligned tables are)."""
    same = codes[lag:] == codes[:-lag]
    if same.sum() < 2:
        return float("nan")
    a, b = values[:, lag:][:, same], values[:, :-lag][:, same]
    a, b = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")


def temporal_stride(values: np.ndarray, codes: np.ndarray, n_train: int, min_frames: int = STRIDE_MIN_FRAMES) -> int:
    """The training stride: the longest lag (of ``STRIDE_LAGS``) whose autocorrelation of the members' outputs
    keeps ``STRIDE_KEEP`` of the lag-1 autocorrelation, limited so that ``n_train`` labelled frames leave at
    least ``min_frames``; 1 when outputs do not persist (lag-1 autocorrelation under 0.05).

    Outputs are a slow part (the affect of the moment, shared by neighbouring frames) plus a part that changes
    every frame (noise); the second only lowers the correlation at every lag alike, so the ratio to lag 1
    measures how long the slow part lasts. Frames within that span tell the stacker the same thing."""
    limit = max(1, n_train // min_frames)
    if limit == 1:
        return 1
    every = -(-len(codes) // STRIDE_SAMPLE)  # every n-th video, about STRIDE_SAMPLE frames: enough to estimate
    sample = np.flatnonzero(codes % every == 0)
    values, codes = values[:, sample].astype(np.float32), codes[sample]
    base = lag_autocorrelation(values, codes, 1)
    if not base >= 0.05:
        return 1
    stride = 1
    for lag in STRIDE_LAGS[1:]:
        if lag > limit or not lag_autocorrelation(values, codes, lag) >= STRIDE_KEEP * base:
            break
        stride = lag
    return stride


def strided(codes: np.ndarray, stride: int) -> np.ndarray:
    """Indices of every ``stride``-th entry of each video's run in ``codes`` (from its first)."""
    if stride <= 1:
        return np.arange(len(codes))
    starts = np.r_[0, np.flatnonzero(codes[1:] != codes[:-1]) + 1]
    position = np.arange(len(codes)) - np.repeat(starts, np.diff(np.r_[starts, len(codes)]))
    return np.flatnonzero(position % stride == 0)


def _lightgbm():
    """LightGBM, its OpenMP threads told to sleep, not spin, while they wait (unless the user set
    OMP_WAIT_POLICY): on a busy 2-core machine spinning threads made 100 rounds on 25,000 frames take over
    120 s instead of 2 s (measured; see the README's stacker speed)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when OpenMP starts with LightGBM's import
    import lightgbm

    return lightgbm


def _ccc_eval(preds: np.ndarray, data: lgb.Dataset) -> tuple[str, float, bool]:
    return "ccc", ccc_score(data.get_label(), preds), True


def _f1_eval(n_classes: int) -> Callable:
    def evaluate(preds: np.ndarray, data: lgb.Dataset) -> tuple[str, float, bool]:
        probs = preds.reshape(n_classes, -1).T if preds.ndim == 1 else preds
        return "macro_f1", macro_f1_score(data.get_label().astype(int), probs.argmax(axis=1), n_classes), True

    return evaluate


def _binary_f1_eval(preds: np.ndarray, data: lgb.Dataset) -> tuple[str, float, bool]:
    truth = data.get_label()[:, None]
    return "f1", float(binary_f1_per_unit(truth, (preds >= 0.5)[:, None])[0]), True


def _inner_split(groups: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """About a fifth of the videos held out for early stopping (one video at least)."""
    videos = np.unique(groups)
    rng = np.random.default_rng(seed)
    held = rng.choice(videos, size=max(1, len(videos) // 5), replace=False)
    mask = np.isin(groups, held)
    return np.flatnonzero(~mask), np.flatnonzero(mask)


@FUSERS.register("stack")
class StackingFuser(Fuser):
    """LightGBM stacker per task with video-grouped out-of-fold predictions."""

    name = "stack"

    context: int = param(  # the context features pad each video by 2 * context frames
        0, "stack: half-width of temporal context features (0: none).", min=0, max=MAX_CONTEXT
    )
    folds: int = param(5, "stack: video-grouped folds of the out-of-fold predictions it learns from.", min=2)
    max_frames: int | None = param(None, "stack: subsample training frames to this many for speed.", min=1)
    rounds: int = param(200, "stack: most boosting rounds (early stopping on held-out videos picks fewer).", min=1)
    learning_rate: float | None = param(
        None, "stack: LightGBM learning rate (default: 0.2 for the AU models, 0.1 for VA and EXPR).", min=1e-6
    )
    num_leaves: int = param(15, "stack: LightGBM leaves per tree.", min=2)
    seed: int = param(0, "stack: seed of the inner hold-out, subsampling and bagging.")
    models_: dict[str, list[str]] = learned(dict)  # LightGBM models as text, per task
    strides_: dict[str, int] = learned(dict, saved=False)  # the training stride of each task
    _boosters: dict[str, list] = field(default_factory=dict, init=False, repr=False)  # models_ loaded, a cache

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.weights is not None:
            raise AffectEnsError("stack learns its own weighting of the members; --weights does not apply")

    def _params(self, task: str, objective: str, **extra) -> dict:
        return {
            "objective": objective,
            "metric": "None",
            "learning_rate": self.learning_rate or LEARNING_RATES[task],
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": 40,
            "feature_fraction": 1.0,  # all features each tree: results do not depend on member order
            "max_bin": 63,  # inputs are probabilities and values in [-1, 1]: 63 bins lose nothing here
            "bagging_fraction": 0.7,
            "bagging_freq": 1,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": THREADS,
            "seed": self.seed,
            "verbosity": -1,
            **extra,
        }

    def _targets(self, task: str, k: int, truth: Truth) -> list[tuple[list[int], np.ndarray, dict, Callable]]:
        """(feature columns of the task, target, LightGBM params, eval) of each model of ``task``."""
        if task == "va":
            return [([0, 1], truth.values[:, d], self._params(task, "regression"), _ccc_eval) for d in range(2)]
        if task == "expr":
            return [(list(range(k)), truth.values, self._params(task, "multiclass", num_class=k), _f1_eval(k))]
        return [([j], truth.values[:, j], self._params(task, "binary"), _binary_f1_eval) for j in range(k)]

    def _train(
        self, x: np.ndarray, y: np.ndarray, groups: np.ndarray, params: dict, feval: Callable, rounds: int | None
    ):
        """One booster: early-stopped on an inner video hold-out, or ``rounds`` iterations on everything."""
        lgb = _lightgbm()
        if rounds is not None:
            return lgb.train(params, lgb.Dataset(x, y), num_boost_round=rounds)
        fit, held = _inner_split(groups, self.seed)
        if len(fit) == 0:
            return lgb.train(params, lgb.Dataset(x, y), num_boost_round=self.rounds // 3)
        dtrain, dvalid = lgb.Dataset(x[fit], y[fit]), lgb.Dataset(x[held], y[held])
        stop = lgb.early_stopping(20, verbose=False)
        return lgb.train(params, dtrain, self.rounds, valid_sets=[dvalid], feval=feval, callbacks=[stop])

    def _subsample(self, n: int) -> np.ndarray:
        if self.max_frames is None or n <= self.max_frames:
            return np.arange(n)
        return np.sort(np.random.default_rng(self.seed).choice(n, self.max_frames, replace=False))

    def fit_task(self, task: str, stack: Aligned, truth: Truth | None) -> None:
        if truth is None or len(truth.rows) == 0:
            raise AffectEnsError(f"stack: fitting needs {task} labels")
        values, codes = stack.task_values(task), stack.video_codes()
        k = values.shape[2]
        if self.oof_ is None:
            self.oof_ = np.full((values.shape[1], len(stack.columns)), np.nan, dtype=np.float32)
        start = stack.slices[task].start
        self.models_[task], self._boosters[task] = [], []
        least = max(STRIDE_MIN_FRAMES, STRIDE_FRAMES_PER_CLASS * k) if task == "expr" else STRIDE_MIN_FRAMES
        self.strides_[task] = temporal_stride(values, codes, len(truth.rows), least)
        take = strided(codes[truth.rows], self.strides_[task])
        for j, (cols, y, params, feval) in enumerate(self._targets(task, k, truth)):
            x = stack_features(values[:, :, cols], codes, self.context)
            booster, oof = self._fit_target(x, y[take], truth.rows[take], codes, params, feval)
            self._boosters[task].append(booster)
            self.models_[task].append(booster.model_to_string())
            target_cols = slice(start, start + k) if task == "expr" else slice(start + j, start + j + 1)
            self.oof_[:, target_cols] = oof.reshape(len(oof), -1)

    def _fit_target(self, x, y, rows, codes, params, feval) -> tuple[lgb.Booster, np.ndarray]:
        """Out-of-fold predictions on every frame of each held-out video, then the final refit; ``rows`` are
        the training frames (strided), ``y`` their targets."""
        from ensemble.evaluate import video_folds

        oof = np.full((len(x),) + ((params["num_class"],) if "num_class" in params else ()), np.nan)
        best = []
        for train_idx, held_idx in video_folds(codes[rows], self.folds):
            keep = train_idx[self._subsample(len(train_idx))]
            booster = self._train(x[rows[keep]], y[keep], codes[rows[keep]], params, feval, None)
            best.append(booster.best_iteration or booster.current_iteration())
            held_videos = np.unique(codes[rows[held_idx]])
            frames = np.flatnonzero(np.isin(codes, held_videos))
            oof[frames] = booster.predict(x[frames])
        keep = self._subsample(len(rows))
        final = self._train(x[rows[keep]], y[keep], codes[rows[keep]], params, feval, int(np.median(best)))
        return final, oof

    def boosters(self, task: str) -> list[lgb.Booster]:
        if task not in self._boosters:
            lgb = _lightgbm()
            label = f"stack: saved {task} model"
            self._boosters[task] = [
                lgb.Booster(model_str=safe_model_text(s, f"{label} {i}")) for i, s in enumerate(self.models_[task])
            ]
        return self._boosters[task]

    def check_learned(self, task: str, stack: Aligned) -> None:
        """A loaded stack's models of ``task``: as many as ``fit_task`` makes, each LightGBM text that passes
        ``safe_model_text`` and takes the features these members give."""
        k = stack.task_values(task).shape[2]
        count = {"va": 2, "expr": 1}.get(task, k)
        saved = vars(self).get("models_")
        models = saved.get(task) if isinstance(saved, dict) else None
        if not isinstance(models, list) or len(models) != count or not all(isinstance(m, str) for m in models):
            raise AffectEnsError(f"stack: the saved fusion has no {count} {task} model(s) for these members")
        width = {"va": 2, "expr": k}.get(task, 1)
        probe = np.zeros((len(stack.members), 1, width), dtype=np.float32)
        features = stack_features(probe, np.zeros(1, dtype=np.int64), self.context).shape[1]
        for i, text in enumerate(models):
            safe_model_text(text, f"stack: saved {task} model {i}", features)
        self._boosters.pop(task, None)

    def predict_task(self, task: str, stack: Aligned) -> np.ndarray:
        values, codes = stack.task_values(task), stack.video_codes()
        cols = list(range(values.shape[2]))
        if task == "expr":
            return self.boosters(task)[0].predict(stack_features(values, codes, self.context))
        if task == "va":
            x = stack_features(values, codes, self.context)
            return np.clip(np.column_stack([b.predict(x) for b in self.boosters(task)]), -1, 1)
        preds = [
            b.predict(stack_features(values[:, :, [j]], codes, self.context)) for j, b in zip(cols, self.boosters(task))
        ]
        return np.column_stack(preds)
