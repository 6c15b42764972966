"""ABAW metrics: CCC, macro F1 over the full label list, AU mean F1, accuracy, and each edition's score.

Every function takes plain arrays of annotated frames only (the labels loader drops sentinel frames) and
returns a float; ``*_score`` means higher is better. Undefined values are NaN, as in audmetric.
The same ``task_score`` is used to tune fusions and to report them, so tuning and reporting never differ.
Post-processing tunes on many subsets of videos at once from each video's counts and sums (``*_from_counts``,
``ccc_from_sums``): the score functions here are built on the same formulas, so the numbers are the same.
"""

from __future__ import annotations

import numpy as np

from ensemble.tasks import Edition


def ccc_score(truth: np.ndarray, pred: np.ndarray) -> float:
    """Lin's concordance correlation coefficient with population moments.

    ``ccc = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))**2)``; NaN when the denominator is 0.

    >>> round(ccc_score(np.array([0.0, 1.0]), np.array([0.0, 1.0])), 6)
    1.0
    """
    x = np.asarray(truth, dtype=np.float64)
    y = np.asarray(pred, dtype=np.float64)
    if x.size == 0:
        return float("nan")
    mx, my = x.mean(), y.mean()
    cov = np.mean((x - mx) * (y - my))
    denom = x.var() + y.var() + (mx - my) ** 2
    return float(2.0 * cov / denom) if denom > 0 else float("nan")


def ccc_from_sums(sums: np.ndarray) -> float:
    """CCC from ``(n, sum x, sum y, sum x^2, sum y^2, sum xy)``, so that sums over videos can be added up."""
    n, sx, sy, sxx, syy, sxy = (float(v) for v in sums)
    if n == 0:
        return float("nan")
    mx, my = sx / n, sy / n
    var_x, var_y, cov = sxx / n - mx * mx, syy / n - my * my, sxy / n - mx * my
    denom = var_x + var_y + (mx - my) ** 2
    return float(2.0 * cov / denom) if denom > 0 else float("nan")


def va_score(truth: np.ndarray, pred: np.ndarray) -> float:
    """Mean of CCC(valence) and CCC(arousal); both arrays are (frames, 2)."""
    return (ccc_score(truth[:, 0], pred[:, 0]) + ccc_score(truth[:, 1], pred[:, 1])) / 2.0


def _confusion(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    idx = np.asarray(truth, dtype=np.int64) * n_classes + np.asarray(pred, dtype=np.int64)
    return np.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def f1_from_counts(tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """F1 ``2 tp / (predicted + actual)`` of each class or unit from its counts; 0 where both counts are 0."""
    tp, denom = np.asarray(tp, dtype=np.float64), np.asarray(predicted + actual, dtype=np.float64)
    return np.divide(2 * tp, denom, out=np.zeros(tp.shape), where=denom > 0)


def f1_per_class(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """F1 of each class ``2 tp / (2 tp + fp + fn)``; 0 where a class is neither present nor predicted."""
    cm = _confusion(truth, pred, n_classes)
    return f1_from_counts(np.diag(cm), cm.sum(axis=0), cm.sum(axis=1))


def macro_f1_score(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean F1 over all ``n_classes`` classes, including classes never predicted (F1 = 0)."""
    if len(truth) == 0:
        return float("nan")
    return float(f1_per_class(truth, pred, n_classes).mean())


def accuracy_score(truth: np.ndarray, pred: np.ndarray) -> float:
    """Share of equal entries; for 2-D AU arrays, the mean of the per-AU accuracies."""
    truth = np.asarray(truth)
    return float(np.mean(truth == np.asarray(pred))) if truth.size else float("nan")


def binary_counts(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true positives, predicted positives, actual positives) of each column of (frames, units) 0/1 arrays."""
    t = np.asarray(truth, dtype=bool)
    p = np.asarray(pred, dtype=bool)
    return np.count_nonzero(t & p, axis=0), np.count_nonzero(p, axis=0), np.count_nonzero(t, axis=0)


def binary_f1_per_unit(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Binary F1 of the positive class for each column of (frames, units) 0/1 arrays."""
    return f1_from_counts(*binary_counts(truth, pred))


def au_f1_score(truth: np.ndarray, pred: np.ndarray) -> float:
    """Mean over action units of the binary F1 of each unit."""
    if len(truth) == 0:
        return float("nan")
    return float(binary_f1_per_unit(truth, pred).mean())


def expr_metrics(edition: Edition, truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """F1, accuracy and the edition's EXPR score from class indices."""
    if len(truth) == 0:
        return {"f1": float("nan"), "accuracy": float("nan"), "score": float("nan")}
    cm = _confusion(truth, pred, len(edition.expr_classes))
    counts = np.diag(cm), cm.sum(axis=0), cm.sum(axis=1)
    f1, acc = float(f1_from_counts(*counts).mean()), float(np.trace(cm) / len(truth))
    return {"f1": f1, "accuracy": acc, "score": expr_score_from_counts(edition, *counts)}


def va_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """CCC of each dimension and their mean, the VA score of every edition."""
    cv, ca = ccc_score(truth[:, 0], pred[:, 0]), ccc_score(truth[:, 1], pred[:, 1])
    return {"ccc_valence": cv, "ccc_arousal": ca, "score": (cv + ca) / 2.0}


def au_metrics(edition: Edition, truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Mean F1, mean accuracy and the edition's AU score from 0/1 arrays."""
    if len(truth) == 0:
        return {"f1": float("nan"), "accuracy": float("nan"), "score": float("nan")}
    counts, n = binary_counts(truth, pred), len(truth)
    f1, acc = float(f1_from_counts(*counts).mean()), float(binary_accuracy_from_counts(*counts, n).mean())
    return {"f1": f1, "accuracy": acc, "score": float(au_unit_scores_from_counts(edition, *counts, n).mean())}


def expr_score_from_counts(edition: Edition, tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> float:
    """The edition's EXPR score from the per-class counts of true, predicted and actual frames."""
    n = float(np.sum(actual))
    if n == 0:
        return float("nan")
    w_f1, w_acc = edition.expr_weights
    return float(w_f1 * f1_from_counts(tp, predicted, actual).mean() + w_acc * np.sum(tp) / n)


def binary_accuracy_from_counts(tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray, n: float) -> np.ndarray:
    """Each unit's accuracy over ``n`` frames from its counts: ``(n - fp - fn) / n``."""
    return (n - predicted - actual + 2 * np.asarray(tp, dtype=np.float64)) / max(n, 1)


def au_unit_scores_from_counts(
    edition: Edition, tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray, n: float
) -> np.ndarray:
    """Each unit's part of the edition's AU score (``w_f1 F1 + w_acc accuracy``; the score is their mean) from
    its counts over ``n`` frames: the one AU score formula, for reporting and for tuning."""
    w_f1, w_acc = edition.au_weights
    return w_f1 * f1_from_counts(tp, predicted, actual) + w_acc * binary_accuracy_from_counts(tp, predicted, actual, n)


def decide(task: str, outputs: np.ndarray, thresholds: np.ndarray | float = 0.5) -> np.ndarray:
    """Turn model outputs into challenge predictions: argmax class, 0/1 AUs, VA values clipped."""
    if task == "expr":
        return np.argmax(outputs, axis=1)
    if task == "au":
        return (outputs >= thresholds).astype(np.int8)
    return np.clip(outputs, -1.0, 1.0)


def task_metrics(
    task: str, edition: Edition, truth: np.ndarray, outputs: np.ndarray, thresholds: np.ndarray | float = 0.5
) -> dict[str, float]:
    """All metrics of ``task`` from raw outputs (probabilities or values) against label arrays."""
    pred = decide(task, outputs, thresholds)
    if task == "expr":
        return expr_metrics(edition, np.asarray(truth).reshape(-1), pred)
    if task == "va":
        return va_metrics(truth, pred)
    return au_metrics(edition, truth, pred)


def task_score(
    task: str, edition: Edition, truth: np.ndarray, outputs: np.ndarray, thresholds: np.ndarray | float = 0.5
) -> float:
    """The edition's challenge score of ``task``: the one number fusions are tuned on and reported by."""
    return task_metrics(task, edition, truth, outputs, thresholds)["score"]


def mtl_score(va: float, expr_f1: float, au_f1: float) -> float:
    """Multi-task track score: VA score + EXPR macro F1 + AU mean F1 (``pipeline.score_row`` reports it).

    >>> mtl_score(0.5, 0.25, 0.5)
    1.25
    """
    return va + expr_f1 + au_f1
