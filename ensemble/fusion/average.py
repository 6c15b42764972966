"""Weighted averaging of probabilities (EXPR, AU) and values (VA).

Weights are given, uniform, or tuned on validation by greedy ensemble selection with replacement
(Caruana et al., 2004; AutoGluon's weighted ensemble): start from nothing, repeatedly add the member whose
addition most improves the running average's challenge score, and use the selection counts as weights.
It optimises the non-differentiable ABAW metrics (F1 of an argmax, CCC) directly, gives non-negative
weights that sum to 1, and overfits little because weights move in steps of 1/rounds. VA dimensions
are tuned separately, each on its own CCC.

Each trial scores a candidate mean on every labelled frame, so the scorers are built for speed at Aff-Wild2
scale (the counts and sums of ``metrics``, one formula for tuning and reporting): EXPR and AU outputs are laid
out class- or unit-major, and the CCC of any mean of members follows from the members' sums of products.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ensemble.errors import AffectEnsError
from ensemble.fusion.base import FUSERS, Fuser, learned, number_lists, param
from ensemble.metrics import au_unit_scores_from_counts, ccc_from_sums, expr_score_from_counts
from ensemble.tasks import Edition, tuned_groups
from ensemble.voting import weighted_sum

if TYPE_CHECKING:
    from ensemble.align import Aligned
    from ensemble.evaluate import Truth


def weighted_average(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average over members (axis 0) of (members, frames, k) values with weights summing to 1."""
    return weighted_sum(values, np.asarray(weights, dtype=np.float64))


def greedy_weights(values: np.ndarray, scorer: Callable[[np.ndarray, int], float], rounds: int = 25) -> np.ndarray:
    """Caruana ensemble selection with replacement over ``values[m]`` (one array per member);
    ``scorer(total, count)`` scores the mean ``total / count`` of ``count`` selected outputs. Returns member
    weights summing to 1."""
    counts = np.zeros(values.shape[0])
    total = np.zeros(values.shape[1:], dtype=values.dtype)
    trial = np.empty_like(total)  # one buffer for every trial: no large allocation per trial
    for step in range(1, rounds + 1):
        trials = []
        for m in range(values.shape[0]):
            np.add(total, values[m], out=trial)
            trials.append(scorer(trial, step))
        best = int(np.nanargmax(np.nan_to_num(trials, nan=-np.inf)))
        counts[best] += 1
        total += values[best]
    return counts / counts.sum()


def greedy_ccc_weights(values: np.ndarray, truth: np.ndarray, rounds: int = 25) -> np.ndarray:
    """``greedy_weights`` of (members, frames) values on the CCC with ``truth``, from the members' sums of
    products: the mean of a selection ``c`` has sum ``c . s``, sum of squares ``c' G c / n^2`` and so on."""
    v, x = values.astype(np.float64), truth.astype(np.float64)
    gram, cross, sums = v @ v.T, v @ x, v.sum(axis=1)
    fixed = (len(x), x.sum(), x @ x)
    counts = np.zeros(len(v))
    for step in range(1, rounds + 1):
        trials = []
        for m in range(len(v)):
            c = counts.copy()
            c[m] += 1
            moments = (c @ sums / step, c @ gram @ c / step**2, c @ cross / step)
            trials.append(ccc_from_sums(np.array([fixed[0], fixed[1], moments[0], fixed[2], moments[1], moments[2]])))
        counts[int(np.nanargmax(np.nan_to_num(trials, nan=-np.inf)))] += 1
    return counts / counts.sum()


def column_major(values: np.ndarray, rows: list[np.ndarray]) -> np.ndarray:
    """(members, k, n) array whose column j holds ``values[:, rows[j], j]`` of (members, frames, k) ``values``:
    each output column's frames in its own order, contiguous (whole-row passes are fast)."""
    out = np.empty((len(values), len(rows), len(rows[0])), dtype=values.dtype)
    for j, r in enumerate(rows):
        out[:, j] = values[:, r, j]
    return out


def expr_weights(
    values: np.ndarray, truth: np.ndarray, edition: Edition, rounds: int, rows: np.ndarray | None = None
) -> np.ndarray:
    """Greedy weights on the edition's EXPR score from (members, frames, classes) probabilities of which
    ``rows`` (default all) carry the labels ``truth``. Frames are put in order of their true class and classes
    made rows, so that a trial's counts are whole-row passes: the frames where a class's row reaches the
    column maximum are its predictions (the argmax of a sum is that of the mean), those in its own stretch
    its true positives."""
    k = values.shape[2]
    order = np.argsort(truth, kind="stable")
    bounds = np.searchsorted(truth[order], np.arange(k + 1))
    frames = order if rows is None else rows[order]
    classes = column_major(values, [frames] * k)
    stretch = [slice(bounds[c], bounds[c + 1]) for c in range(k)]
    hit = np.empty(classes.shape[2], dtype=bool)

    def scorer(total: np.ndarray, count: int) -> float:
        best = total.max(axis=0)
        predicted = np.array([np.count_nonzero(np.equal(total[c], best, out=hit)) for c in range(k)])
        if predicted.sum() != len(best):  # two classes tie somewhere: decide as argmax does (the first)
            pred = total.argmax(axis=0)
            predicted = np.bincount(pred, minlength=k)
            tp = np.array([np.count_nonzero(pred[s] == c) for c, s in enumerate(stretch)])
        else:
            tp = np.array([np.count_nonzero(total[c, s] == best[s]) for c, s in enumerate(stretch)])
        return expr_score_from_counts(edition, tp, predicted, np.diff(bounds))

    return greedy_weights(classes, scorer, rounds)


def au_weights(
    values: np.ndarray, truth: np.ndarray, edition: Edition, rounds: int, rows: np.ndarray | None = None
) -> np.ndarray:
    """Greedy weights on the edition's AU score from (members, frames, units) probabilities of which ``rows``
    (default all) carry the labels ``truth``; each unit's frames are put positives first, so that its true
    positives are the decisions counted in one stretch."""
    n, n_units = truth.shape
    order = [np.argsort(-truth[:, u], kind="stable") for u in range(n_units)]
    units = column_major(values, [o if rows is None else rows[o] for o in order])
    positives = truth.sum(axis=0).astype(np.int64)
    yes = np.empty(units.shape[1:], dtype=bool)

    def scorer(total: np.ndarray, count: int) -> float:
        np.greater_equal(total, 0.5 * count, out=yes)  # the mean's 0.5 cut
        tp = [np.count_nonzero(yes[u, : positives[u]]) for u in range(n_units)]
        predicted = [np.count_nonzero(yes[u]) for u in range(n_units)]  # per row: count_nonzero(axis=) is slow
        return float(au_unit_scores_from_counts(edition, np.array(tp), np.array(predicted), positives, n).mean())

    return greedy_weights(units, scorer, rounds)


def tuned_weights(task: str, values: np.ndarray, truth: Truth, edition: Edition, rounds: int) -> list[list[float]]:
    """Weights per independently tuned group of a task (each VA dimension; EXPR and AU as a whole) from the
    (members, frames, k) outputs, tuned on the labelled frames."""
    if task == "va":
        dims = [cols.start for _, cols in tuned_groups(task, 2)]
        return [greedy_ccc_weights(values[:, truth.rows, d], truth.values[:, d], rounds).tolist() for d in dims]
    if task == "expr":
        return [expr_weights(values, truth.values, edition, rounds, truth.rows).tolist()]
    return [au_weights(values, truth.values, edition, rounds, truth.rows).tolist()]


def _task_value(learned: object, task: str) -> object:
    return learned.get(task) if isinstance(learned, dict) else None


@FUSERS.register("average")
class AverageFuser(Fuser):
    """Weighted mean; ``tune=True`` learns weights per task (per VA dimension) on validation."""

    name = "average"

    tune: bool = param(False, "average: tune weights on validation (greedy selection).", flag="--tune-weights")
    rounds: int = param(25, "average: greedy selection rounds when tuning.", min=1)  # 0 rounds: no weights
    weights_: dict[str, list[list[float]]] = learned(dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tune and self.weights is not None:
            raise AffectEnsError("average: give weights or tune them, not both")

    def fit_task(self, task: str, stack: Aligned, truth: Truth | None) -> None:
        if not self.tune:
            return
        if truth is None:
            raise AffectEnsError(f"average: tuning weights needs {task} labels")
        self.weights_[task] = tuned_weights(task, stack.task_values(task), truth, stack.edition, self.rounds)

    def check_learned(self, task: str, stack: Aligned) -> None:
        count = 2 if task == "va" else 1  # tuned per VA dimension
        if self.tune and not number_lists(_task_value(vars(self).get("weights_"), task), count, len(stack.members)):
            raise AffectEnsError(
                f"average: the saved {task} weights are not {count} list(s) of {len(stack.members)} non-negative "
                "numbers, one per member"
            )

    def predict_task(self, task: str, stack: Aligned) -> np.ndarray:
        values = stack.task_values(task)
        if not self.tune:
            return weighted_average(values, self.member_weights(len(stack.members)))
        groups = self.weights_[task]
        if len(groups) == 1:
            return weighted_average(values, np.asarray(groups[0]))
        return np.column_stack([weighted_average(values[:, :, d], np.asarray(w)) for d, w in enumerate(groups)])
