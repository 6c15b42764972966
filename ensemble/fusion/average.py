"""Weighted averaging of probabilities (EXPR, AU) and values (VA).

Weights are given, uniform, or tuned on validation by greedy ensemble selection with replacement
(Caruana et al., 2004; AutoGluon's weighted ensemble): start from nothing, repeatedly add the member whose
addition most improves the running average's challenge score, and use the selection counts as weights.
It optimises the non-differentiable ABAW metrics (F1 of an argmax, CCC) directly, gives non-negative
weights that sum to 1, and overfits little because weights move in steps of 1/rounds. VA dimensions
are tuned separately, each on its own CCC.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ensemble.align import Stack, weighted_sum
from ensemble.errors import AffectEnsError
from ensemble.evaluate import Truth
from ensemble.fusion.base import FUSERS, Fuser
from ensemble.metrics import ccc_score, task_score


def weighted_average(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average over members (axis 0) of (members, frames, k) values with weights summing to 1."""
    return weighted_sum(values, np.asarray(weights, dtype=np.float64))


def greedy_weights(values: np.ndarray, scorer: Callable[[np.ndarray], float], rounds: int = 25) -> np.ndarray:
    """Caruana ensemble selection with replacement; returns member weights summing to 1."""
    counts = np.zeros(values.shape[0])
    total = np.zeros(values.shape[1:])
    for step in range(1, rounds + 1):
        trials = [scorer((total + values[m]) / step) for m in range(values.shape[0])]
        best = int(np.nanargmax(np.nan_to_num(trials, nan=-np.inf)))
        counts[best] += 1
        total += values[best]
    return counts / counts.sum()


def _scorers(task: str, stack: Stack, truth: Truth) -> list[tuple[slice, Callable[[np.ndarray], float]]]:
    """(columns of the task, scorer of those columns on labelled rows) per independently tuned group."""
    if task == "va":
        return [(slice(d, d + 1), lambda out, d=d: ccc_score(truth.values[:, d], out[:, 0])) for d in range(2)]
    k = stack.task_values(task).shape[2]
    return [(slice(0, k), lambda out: task_score(task, stack.edition, truth.values, out))]


@FUSERS.register("average")
class AverageFuser(Fuser):
    """Weighted mean; ``tune=True`` learns weights per task (per VA dimension) on validation."""

    name = "average"

    def __init__(self, *, weights: list[float] | None = None, tune: bool = False, rounds: int = 25) -> None:
        super().__init__(weights=weights)
        if tune and weights is not None:
            raise AffectEnsError("average: give weights or tune them, not both")
        self.tune = tune
        self.rounds = rounds
        self.weights_: dict[str, list[list[float]]] = {}

    def fit_task(self, task: str, stack: Stack, truth: Truth | None) -> None:
        if not self.tune:
            return
        if truth is None:
            raise AffectEnsError(f"average: tuning weights needs {task} labels")
        labelled = stack.task_values(task)[:, truth.rows].astype(np.float64)
        self.weights_[task] = [
            greedy_weights(labelled[:, :, cols], scorer, self.rounds).tolist()
            for cols, scorer in _scorers(task, stack, truth)
        ]

    def predict_task(self, task: str, stack: Stack) -> np.ndarray:
        values = stack.task_values(task)
        if not self.tune:
            return weighted_average(values, self.member_weights(len(stack.members)))
        groups = self.weights_[task]
        if len(groups) == 1:
            return weighted_average(values, np.asarray(groups[0]))
        return np.column_stack([weighted_average(values[:, :, d], np.asarray(w)) for d, w in enumerate(groups)])
