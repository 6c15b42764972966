"""LightGBM stacking on the members' outputs, tuned on validation with video-grouped folds.

One regressor per VA dimension, one multiclass model for EXPR, one binary model per AU. Features are the
members' outputs of the task (for an AU: that unit's probability from every member), plus optional
temporal context: each feature's mean over +-``context`` frames of the same video. Each fold model stops
early on an inner hold-out of its own training videos, using the challenge metric as a custom eval
(``metric='None'`` with ``feval``), so the out-of-fold predictions never saw their videos; the final model
is refit on all validation frames with the median best iteration.
"""

from __future__ import annotations

from collections.abc import Callable

import lightgbm as lgb
import numpy as np

from ensemble.align import Aligned
from ensemble.errors import AffectEnsError
from ensemble.evaluate import Truth, video_folds
from ensemble.fusion.base import FUSERS, Fuser
from ensemble.metrics import binary_f1_per_unit, ccc_score, macro_f1_score
from ensemble.postprocess import smooth_within_videos


def stack_features(values: np.ndarray, codes: np.ndarray, context: int) -> np.ndarray:
    """(frames, members*k [*2]) features from (members, frames, k) outputs."""
    base = values.transpose(1, 0, 2).reshape(values.shape[1], -1).astype(np.float32)
    if context <= 0:
        return base
    return np.hstack([base, smooth_within_videos(base, codes, "mean", context).astype(np.float32)])


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

    def __init__(
        self,
        *,
        weights: list[float] | None = None,
        context: int = 0,
        folds: int = 5,
        max_frames: int | None = None,
        rounds: int = 200,
        learning_rate: float = 0.1,
        num_leaves: int = 15,
        seed: int = 0,
    ) -> None:
        if weights is not None:
            raise AffectEnsError("stack learns its own weighting of the members; --weights does not apply")
        super().__init__(weights=None)
        self.context = context  # half-width of the temporal-context features, 0 for none
        self.folds = folds
        self.max_frames = max_frames  # subsample training frames to this many for speed
        self.rounds = rounds
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.seed = seed
        self.models_: dict[str, list[str]] = {}
        self._boosters: dict[str, list[lgb.Booster]] = {}
        self.oof: np.ndarray | None = None  # out-of-fold outputs of the last fit (not saved)

    def _params(self, objective: str, **extra) -> dict:
        return {
            "objective": objective,
            "metric": "None",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": 40,
            "feature_fraction": 1.0,  # all features each tree: results do not depend on member order
            "max_bin": 63,  # inputs are probabilities and values in [-1, 1]: 63 bins lose nothing here
            "bagging_fraction": 0.7,
            "bagging_freq": 1,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": 2,
            "seed": self.seed,
            "verbosity": -1,
            **extra,
        }

    def _targets(self, task: str, k: int, truth: Truth) -> list[tuple[list[int], np.ndarray, dict, Callable]]:
        """(feature columns of the task, target, LightGBM params, eval) of each model of ``task``."""
        if task == "va":
            return [([0, 1], truth.values[:, d], self._params("regression"), _ccc_eval) for d in range(2)]
        if task == "expr":
            return [(list(range(k)), truth.values, self._params("multiclass", num_class=k), _f1_eval(k))]
        return [([j], truth.values[:, j], self._params("binary"), _binary_f1_eval) for j in range(k)]

    def _train(
        self, x: np.ndarray, y: np.ndarray, groups: np.ndarray, params: dict, feval: Callable, rounds: int | None
    ):
        """One booster: early-stopped on an inner video hold-out, or ``rounds`` iterations on everything."""
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
        if self.oof is None:
            self.oof = np.full((values.shape[1], len(stack.columns)), np.nan, dtype=np.float32)
        start = stack.columns.index(stack.edition.output_columns(task)[0])
        self.models_[task], self._boosters[task] = [], []
        for j, (cols, y, params, feval) in enumerate(self._targets(task, k, truth)):
            x = stack_features(values[:, :, cols], codes, self.context)
            booster, oof = self._fit_target(x, y, truth.rows, codes, params, feval)
            self._boosters[task].append(booster)
            self.models_[task].append(booster.model_to_string())
            target_cols = slice(start, start + k) if task == "expr" else slice(start + j, start + j + 1)
            self.oof[:, target_cols] = oof.reshape(len(oof), -1)

    def _fit_target(self, x, y, rows, codes, params, feval) -> tuple[lgb.Booster, np.ndarray]:
        """Out-of-fold predictions on every frame of each held-out video, then the final refit."""
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
            self._boosters[task] = [lgb.Booster(model_str=s) for s in self.models_[task]]
        return self._boosters[task]

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
