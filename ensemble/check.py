"""The member check: does each member behave on the split a fusion is applied to as it did on the split the
fusion was fitted on?

A fusion fitted on validation trusts each member as it behaved there. A member whose test table is broken
(frames numbered from 0, classes in another order, the wrong checkpoint) or whose validation table is too good
(a model trained on train + validation) takes the fusion down with it, silently: the validation scores stay
high. No test labels are needed to see it: on each split, each member is compared with the other members.

Per member and split: its agreement with the others (Cohen's kappa of EXPR classes and of AU decisions, the
Pearson correlation of VA values, averaged over the other members), its output distribution (class shares,
VA mean and std, AU rates), the frame lag at which it agrees best with the others' mean, and the reading of
its classes that agrees best with the others'. Every flag compares the two splits and the member with the
others, so that a test split that is harder, or distributed differently, for every member flags no one.

The distribution rule. Other videos (other subjects) have other label distributions, and a member's output
distribution follows them by its own sensitivity: a sharp member's AU rate moves 0.3 when the label rate
rises from 0.1 to 0.4, a flat one's 0.1. So each member's sensitivity is measured on the fit split, against
the labels (or, without them, the members' consensus): AU: TPR - FPR of each unit; VA: the slope of its
output on the label (b for the mean, b² for the variance); EXPR: its confusion matrix. Each other member's
move, undone through its own sensitivity, estimates the labels' move; their median (weighted by the
sensitivity squared), through the member's own sensitivity, is the move expected of the member. A member is
flagged only when its move lies far (``Limits.shift``, ``Limits.shift_z`` standard errors) both from that
expected move and from the others' median move: never because it is sharper, flatter or more biased than
the others, nor when it merely follows the split's label distribution like them. The expectation assumes
that a member errs alike, given the label, on both splits; when more than half of the members are flagged
for one reason, the error says the split itself looks different rather than naming each as bad.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ensemble.align import Aligned
from ensemble.errors import AffectEnsError, MemberCheckError
from ensemble.evaluate import Truth, score
from ensemble.frames import run_bounds
from ensemble.postprocess import per_run_sums

MAX_LAG = 5
"""Frame lags tried on each side (a table numbered from 0 instead of 1 is off by one)."""
CALIBRATION_RIDGE = 0.01
"""Ridge on a member's estimate of the labels' move (``label_move``): a member barely sensitive to the labels
estimates no move rather than an unbounded one."""
LAG_FRAMES = 100_000
"""The lag is measured on at most this many frames (whole videos spread over the split)."""
TASK_NAMES = {"expr": "EXPR", "va": "VA", "au": "AU"}
AGREEMENT = {"expr": "κ", "va": "r", "au": "κ"}


@dataclass(frozen=True)
class Limits:
    """Where a statistic becomes a flag: set on simulated ensembles so that no member of a clean one (3 to 7
    members of mixed quality and calibration, 8 to 60 videos, a harder test split with other label
    distributions) trips one, with room to spare, while the bad members of ``ensemble.simulate`` do.
    ``benchmarks/bench_check.py`` measures both rates."""

    collapse: float = 0.2  # fall of the agreement (kappa or r) beyond the fall of the pairs without the member
    collapse_ratio: float = 0.5  # ... to below this share of the fit split's agreement
    lag_z: float = 5.0  # another lag agrees better than the fit split's, by this many standard errors
    permutation_z: float = 4.0  # another reading of the classes agrees better, by this many standard errors
    permutation_gain: float = 0.03  # ... and by this much kappa
    permutation_share: float = 0.5  # ... to at least this share of the other members' median kappa
    shift: float = 0.15  # the distribution moves this much more than the others' (shares, VA mean/std, rates)
    shift_z: float = 8.0  # ... by this many standard errors (jackknife over videos)
    leak_gap: float = 0.15  # a fit-split score this far above every other member's ...
    leak_fall: float = 0.12  # ... while its agreement falls this much more than the others'


@dataclass
class SplitStats:
    """One member on one split."""

    agreement: dict[str, float]  # task -> mean agreement with each other (unflagged) member
    distribution: dict[str, np.ndarray]  # expr: class shares; va: mean, std of valence, arousal; au: unit rates
    lag: int  # the lag that agrees better than lag 0 by ``Limits.lag_z`` standard errors, else 0
    permutation: list[int]  # perm[c]: the others' class that the member's class c agrees with best
    permutation_gain: float  # kappa gained by that reading (0 when it is the identity)
    permutation_z: float
    consensus_kappa: float  # kappa of its EXPR classes, as given, with the argmax of the others' mean


@dataclass
class MemberReport:
    """The check of one member: statistics on both splits, fit-split scores (with labels) and flags."""

    name: str
    fit: SplitStats
    apply: SplitStats
    scores: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)  # one-line reasons
    tags: list[str] = field(default_factory=list)  # a word for each reason: collapse, leak, distribution, ...


# --- agreement between members -----------------------------------------------------------------------------


def kappas(counts: np.ndarray) -> np.ndarray:
    """Cohen's kappa ``(p_o - p_e) / (1 - p_e)`` of each of a batch (..., k, k) of confusion matrices."""
    n = counts.sum(axis=(-2, -1))
    p_o = np.trace(counts, axis1=-2, axis2=-1) / n
    p_e = np.einsum("...i,...i->...", counts.sum(axis=-1), counts.sum(axis=-2)) / n**2
    return np.divide(p_o - p_e, 1 - p_e, out=np.zeros_like(p_o, dtype=np.float64), where=p_e < 1 - 1e-12)


def confusion(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts of the frames where ``a`` says the row's class and ``b`` the column's."""
    return np.bincount(a.astype(np.int64) * k + b, minlength=k * k).reshape(k, k)


def expr_agreement(classes: np.ndarray, k: int) -> np.ndarray:
    """(members, members) kappa between the members' (members, frames) class decisions."""
    n = len(classes)
    out = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = float(kappas(confusion(classes[i], classes[j], k)))
    return out


def au_agreement(decisions: np.ndarray) -> np.ndarray:
    """(members, members) kappa of AU decisions averaged over units, from (members, frames, units) 0/1."""
    n_members, n_frames, n_units = decisions.shape
    out = np.zeros((n_members, n_members))
    for u in range(n_units):
        d = decisions[:, :, u].astype(np.float32)
        both = (d @ d.T) / n_frames  # share of frames where both members say yes
        rate = np.diag(both)
        p_o = 1 - rate[:, None] - rate[None, :] + 2 * both
        p_e = rate[:, None] * rate[None, :] + (1 - rate[:, None]) * (1 - rate[None, :])
        out += np.divide(p_o - p_e, 1 - p_e, out=np.zeros_like(p_o), where=p_e < 1 - 1e-9)
    return out / n_units


def va_agreement(values: np.ndarray) -> np.ndarray:
    """(members, members) Pearson correlation of VA values, averaged over valence and arousal."""
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = [np.atleast_2d(np.corrcoef(values[:, :, d].astype(np.float64))) for d in range(values.shape[2])]
    return np.nan_to_num(np.mean(corr, axis=0), nan=0.0)


def pairwise_agreement(stack: Aligned) -> dict[str, np.ndarray]:
    """Per task, the (members, members) agreement of every pair of members."""
    out = {}
    for task in stack.tasks:
        values = stack.task_values(task)
        if task == "expr":
            out[task] = expr_agreement(values.argmax(axis=2), values.shape[2])
        elif task == "va":
            out[task] = va_agreement(values)
        else:
            out[task] = au_agreement(values >= 0.5)
    return out


def mean_of_others(matrix: np.ndarray) -> np.ndarray:
    """Each member's mean over the other members of a (members, members) matrix."""
    n = len(matrix)
    return (matrix.sum(axis=1) - np.diag(matrix)) / max(n - 1, 1)


def fall_excess(fit: np.ndarray, apply: np.ndarray, m: int, exclude: set[int] = frozenset()) -> float:
    """How much more member ``m``'s mean agreement with the others falls from fit to apply than that of the
    pairs without it (their median fall; 0 when there are none), leaving out the members ``exclude``. A bad
    member drags down every pair it is in, and only those."""
    fall = fit - apply
    others = [n for n in range(len(fall)) if n != m and n not in exclude]
    if not others:
        return 0.0
    rest = [fall[i, j] for i, j in combinations(others, 2)]
    return float(fall[m, others].mean() - (np.median(rest) if rest else 0.0))


def collapsed_members(fit: np.ndarray, apply: np.ndarray, limits: Limits) -> list[int]:
    """Members whose agreement collapses (``Limits.collapse`` and ``collapse_ratio``), worst first: each is set
    aside before the next is looked for, so that it does not drag its partners down with it."""
    out: list[int] = []
    while True:
        found = []
        for m in set(range(len(fit))) - set(out):
            others = [n for n in range(len(fit)) if n != m and n not in out]
            excess = fall_excess(fit, apply, m, set(out))
            if (
                others
                and excess >= limits.collapse
                and apply[m, others].mean() < limits.collapse_ratio * fit[m, others].mean()
            ):
                found.append((excess, m))
        if not found:
            return out
        if len(fit) == 2:  # one pair: nothing tells which of the two changed
            return [0, 1]
        out.append(max(found)[1])


# --- distribution ------------------------------------------------------------------------------------------


def video_sums(stack: Aligned) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per task, (videos, members, d) sums over each video from which the output distribution follows (EXPR
    class counts; VA sum and sum of squares of each dimension; AU counts of yes), and the frames per video."""
    codes = stack.video_codes()
    bounds = run_bounds(codes)
    starts = bounds[:-1]
    n_videos, out = len(starts), {}
    for task in stack.tasks:
        values = stack.task_values(task)
        if task == "expr":
            k = values.shape[2]
            cells = [codes * k + v.argmax(axis=1) for v in values]
            sums = [np.bincount(c, minlength=n_videos * k).reshape(n_videos, k) for c in cells]
        elif task == "va":
            sums = [
                per_run_sums(np.column_stack([v[:, 0], v[:, 0] ** 2.0, v[:, 1], v[:, 1] ** 2.0]), starts)
                for v in values
            ]
        else:
            sums = [per_run_sums(v >= 0.5, starts) for v in values]
        out[task] = np.stack(sums, axis=1).astype(np.float64)
    return out, np.diff(bounds).astype(np.float64)


def distribution_from(task: str, sums: np.ndarray, frames) -> np.ndarray:
    """(..., members, d) distribution from summed ``video_sums`` over ``frames``: class shares, VA mean and std
    of each dimension, AU rates."""
    if task != "va":
        return sums / frames
    mean = sums[..., 0::2] / frames
    std = np.sqrt(np.maximum(sums[..., 1::2] / frames - mean**2, 0.0))
    return np.stack([mean, std], axis=-1).reshape(sums.shape)


def reference_labels(stack: Aligned, truths: dict[str, Truth] | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per task, the rows and the labels against which each member's sensitivity is measured on the fit split:
    the labels where given, else the members' consensus on every frame (the class of the highest mean
    probability, a mean AU probability of 0.5 or more, the mean VA)."""
    out = {}
    for task in stack.tasks:
        if truths and task in truths:
            order = np.argsort(truths[task].rows, kind="stable")
            out[task] = truths[task].rows[order], truths[task].values[order]
            continue
        mean = stack.task_values(task).mean(axis=0)
        consensus = mean.argmax(axis=1) if task == "expr" else (mean >= 0.5) if task == "au" else mean
        out[task] = np.arange(len(mean)), consensus
    return out


def by_video(columns: np.ndarray, codes: np.ndarray, n_videos: int) -> np.ndarray:
    """(videos, c) sums of the (rows, c) ``columns`` over the rows of each video (``codes``, non-decreasing)."""
    out = np.zeros((n_videos, columns.shape[1]))
    if len(codes):
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        out[codes[starts]] = np.add.reduceat(columns, starts, axis=0)
    return out


def member_joint(task: str, outputs: np.ndarray, labels: np.ndarray, codes: np.ndarray, n_videos: int) -> np.ndarray:
    """(videos, s) ``joint_sums`` of one member's ``outputs`` on the labelled rows (their video ``codes``)."""
    if task == "expr":
        k = outputs.shape[1]
        cells = (codes.astype(np.int64) * k + labels.astype(np.int64)) * k + outputs.argmax(axis=1)
        return np.bincount(cells, minlength=n_videos * k * k).reshape(n_videos, k * k).astype(np.float64)
    y = labels.astype(np.float64)
    if task == "va":
        o = outputs.astype(np.float64)
        return by_video(np.concatenate([o, o**2, y, y**2, o * y], axis=1), codes, n_videos)
    decision = (outputs >= 0.5).astype(np.float64)
    return by_video(np.concatenate([decision * y, y, decision], axis=1), codes, n_videos)


def joint_sums(stack: Aligned, reference: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, tuple]:
    """Per task, (videos, members, s) sums over the labelled rows of each video from which each member's
    sensitivity to the labels follows (EXPR: counts of (label, class) pairs; VA: sums of output, its square,
    label, its square, and their product, per dimension; AU: sums of decision x label, label and decision per
    unit), and the labelled rows of each video."""
    codes, out = stack.video_codes(), {}
    n_videos = int(codes.max()) + 1
    for task, (rows, labels) in reference.items():
        values, at = stack.task_values(task)[:, rows], codes[rows]
        sums = np.stack([member_joint(task, v, labels, at, n_videos) for v in values], axis=1)
        out[task] = sums, np.bincount(at, minlength=n_videos).astype(np.float64)
    return out


def _au_sensitivity(joint: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    both, yes_label, yes = np.split(joint, 3, axis=-1)
    tpr = np.divide(both, yes_label, out=np.zeros_like(both), where=yes_label > 0)
    fpr = np.divide(yes - both, n - yes_label, out=np.zeros_like(both), where=n - yes_label > 0)
    gain = np.where((yes_label > 0) & (n - yes_label > 0), tpr - fpr, 0.0)
    return gain, gain, yes_label / np.maximum(n, 1)


def _va_sensitivity(joint: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    o, o2, y, y2, oy = (x / np.maximum(n, 1) for x in np.split(joint, 5, axis=-1))
    var_y = y2 - y**2
    slope = np.divide(oy - o * y, var_y, out=np.zeros_like(o), where=var_y > 1e-12)
    gain = np.stack([slope, slope**2], axis=-1).reshape(slope.shape[:-1] + (-1,))
    return gain, gain, np.stack([y, var_y], axis=-1).reshape(gain.shape)


def _expr_sensitivity(joint: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    k = int(round(np.sqrt(joint.shape[-1])))
    counts = joint.reshape(joint.shape[:-1] + (k, k))
    per_label = counts.sum(axis=-1)
    confusion = np.divide(counts, per_label[..., None], out=np.zeros_like(counts), where=per_label[..., None] > 0)
    diagonal = np.diagonal(counts, axis1=-2, axis2=-1)
    rest = n - per_label
    elsewhere = np.divide(counts.sum(axis=-2) - diagonal, rest, out=np.zeros_like(diagonal), where=rest > 0)
    gain = np.where((per_label > 0) & (rest > 0), np.diagonal(confusion, axis1=-2, axis2=-1) - elsewhere, 0.0)
    return confusion, gain, per_label / np.maximum(n, 1)


def sensitivity(task: str, joint: np.ndarray, labelled) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From summed ``joint_sums`` (..., members, s) and labelled rows (...): how each member's output
    distribution moves when the labels' distribution moves (AU: its rate by TPR - FPR times the label rate's
    move; VA: its mean by the slope b of its output on the label times the label mean's move, its variance by
    b² times the label variance's move; EXPR: its class shares by its confusion matrix C[label, class] times
    the label shares' move), the gain of each label entry (AU: TPR - FPR; VA: b, b²; EXPR: P(class i | label
    i) - P(class i | another label)) and the labels' distribution (rates; mean and variance of each dimension;
    shares), each (..., members, ...)."""
    n = np.asarray(labelled, dtype=np.float64)[..., None, None]
    of_task = {"au": _au_sensitivity, "va": _va_sensitivity, "expr": _expr_sensitivity}[task]
    return of_task(joint, n)


def weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted median over axis -2 (the mean of the two middle values where the weights split evenly, as
    ``np.median`` with equal weights); 0 where every weight is 0."""
    values, weights = np.broadcast_arrays(values, weights)
    order = np.argsort(values, axis=-2)
    v, w = np.take_along_axis(values, order, -2), np.take_along_axis(weights, order, -2)
    cum = np.cumsum(w, axis=-2)
    half, tol = cum[..., -1:, :] / 2, 1e-9 * cum[..., -1:, :]
    last = v.shape[-2] - 1
    lower = np.minimum((cum < half - tol).sum(axis=-2, keepdims=True), last)
    upper = np.minimum((cum <= half + tol).sum(axis=-2, keepdims=True), last)
    middle = (np.take_along_axis(v, lower, -2) + np.take_along_axis(v, upper, -2))[..., 0, :] / 2
    return np.where(cum[..., -1, :] > 0, middle, 0.0)


def others_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(..., members, p): for each member, the ``weighted_median`` of the other members' (..., members, p)
    ``values``."""
    values, weights = np.broadcast_arrays(values, weights)
    out = np.zeros(values.shape)
    for m in range(values.shape[-2]):
        out[..., m, :] = weighted_median(np.delete(values, m, axis=-2), np.delete(weights, m, axis=-2))
    return out


def _odd(d: int) -> np.ndarray:
    return np.arange(d) % 2 == 1


def moved_statistics(task: str, dist: np.ndarray) -> np.ndarray:
    """What ``sensitivity`` moves: the distribution, with VA variances in place of the stds."""
    return np.where(_odd(dist.shape[-1]), dist**2, dist) if task == "va" else dist


def label_move(task: str, beta: np.ndarray, gain: np.ndarray, moves: np.ndarray) -> np.ndarray:
    """Each member's estimate of the labels' move from its own output ``moves``: the move undone through its
    sensitivity, with a ridge (``CALIBRATION_RIDGE``) so that an insensitive member estimates no move."""
    if task != "expr":
        return gain * moves / (gain**2 + CALIBRATION_RIDGE)
    normal = beta @ np.swapaxes(beta, -1, -2) + CALIBRATION_RIDGE * np.eye(beta.shape[-1])
    return np.linalg.solve(normal, beta @ moves[..., None])[..., 0]


def bounded(task: str, labels: np.ndarray, move: np.ndarray) -> np.ndarray:
    """The labels' ``move`` kept within what labels can be (rates in [0, 1], VA means in [-1, 1] and variances
    at least 0, shares on the simplex) from the fit split's ``labels``."""
    if task == "au":
        return np.clip(labels + move, 0.0, 1.0) - labels
    if task == "va":
        return np.clip(labels + move, np.where(_odd(move.shape[-1]), 0.0, -1.0), 1.0) - labels
    shares = np.clip(labels + move, 0.0, None)
    total = shares.sum(axis=-1, keepdims=True)
    return np.divide(shares, total, out=np.broadcast_to(labels, shares.shape).copy(), where=total > 0) - labels


def _gap(task: str, apply: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Total variation of the class shares (EXPR), the largest gap of a VA mean or std or of an AU rate."""
    gap = np.abs(apply - expected)
    return 0.5 * gap.sum(axis=-1) if task == "expr" else gap.max(axis=-1)


def calibrated_shift(task: str, sens: tuple, fit: np.ndarray, apply: np.ndarray) -> np.ndarray:
    """Per member, how far its output distribution on the apply split lies from where the others' moves put a
    member of its sensitivity: each other member's move, undone through its own sensitivity, estimates the
    labels' move; their weighted median (weights: gain²), through the member's sensitivity, is its expected
    move. ``sens``: ``sensitivity`` on the fit split; ``fit``, ``apply``: (..., members, d) distributions; the
    result is (..., members)."""
    beta, gain, labels = sens
    moves = moved_statistics(task, apply) - moved_statistics(task, fit)
    common = bounded(task, labels, others_median(label_move(task, beta, gain, moves), gain**2))
    expected = (common[..., None, :] @ beta)[..., 0, :] if task == "expr" else beta * common
    predicted = moved_statistics(task, fit) + expected
    if task == "va":
        predicted = np.where(_odd(predicted.shape[-1]), np.sqrt(np.maximum(predicted, 0.0)), predicted)
    return _gap(task, apply, predicted)


def uncalibrated_shift(task: str, fit: np.ndarray, apply: np.ndarray) -> np.ndarray:
    """Per member, how far its move lies from the others' median move, whatever the sensitivities."""
    moves = apply - fit
    others = np.stack([np.median(np.delete(moves, m, axis=-2), axis=-2) for m in range(moves.shape[-2])], axis=-2)
    return _gap(task, moves, others)


def distribution_shift(task: str, sens: tuple, fit: np.ndarray, apply: np.ndarray) -> np.ndarray:
    """Per member, how much its distribution moves unlike the others': the smaller of ``calibrated_shift`` and
    ``uncalibrated_shift``. A member that is merely more or less sensitive to the labels than the others moves
    as its sensitivity says (small ``calibrated_shift``); one whose outputs follow a split's label distribution
    but not its frames (useless on both splits) moves with the others (small ``uncalibrated_shift``)."""
    return np.minimum(calibrated_shift(task, sens, fit, apply), uncalibrated_shift(task, fit, apply))


def shift_and_z(task: str, fit: tuple, apply: tuple[np.ndarray, np.ndarray]):
    """``distribution_shift`` of every member from the fit split's ``video_sums``, frames per video and
    ``joint_sums``, and the apply split's ``video_sums`` and frames, and that in standard errors (jackknife over
    the videos of each split): a few videos distributed unlike the rest move a small split's shares a lot, a
    broken table moves them whatever the videos."""
    (a, fa, (joint, labelled)), (b, fb) = fit, apply
    full_a, full_b = distribution_from(task, a.sum(axis=0), fa.sum()), distribution_from(task, b.sum(axis=0), fb.sum())
    sens = sensitivity(task, joint.sum(axis=0), labelled.sum())
    shift = distribution_shift(task, sens, full_a, full_b)
    if len(fa) < 2 or len(fb) < 2:
        return shift, np.zeros_like(shift)
    left_sens = sensitivity(task, joint.sum(axis=0) - joint, labelled.sum() - labelled)
    left_a = distribution_from(task, a.sum(axis=0) - a, (fa.sum() - fa)[:, None, None])
    left_b = distribution_from(task, b.sum(axis=0) - b, (fb.sum() - fb)[:, None, None])
    variance = 0.0
    for reps in (distribution_shift(task, left_sens, left_a, full_b), distribution_shift(task, sens, full_a, left_b)):
        variance = variance + (len(reps) - 1) / len(reps) * ((reps - reps.mean(axis=0)) ** 2).sum(axis=0)
    return shift, np.divide(shift, np.sqrt(variance), out=np.full_like(shift, np.inf), where=variance > 0)


# --- lag ---------------------------------------------------------------------------------------------------


def column_weights(stack: Aligned) -> np.ndarray:
    """Weights making every task count the same in a sum over the columns."""
    sizes = [s.stop - s.start for s in stack.slices.values()]
    return np.concatenate([np.full(k, 1.0 / (k * len(sizes))) for k in sizes]).astype(np.float32)


def standardised(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(frames, columns) ``values`` at mean 0 and std 1 per column, times the root of the column ``weights`` (so
    that a row-wise dot product of two of them is a weighted mean of correlations)."""
    mean, std = values.mean(axis=0), values.std(axis=0)
    scale = np.divide(np.sqrt(weights), std, out=np.zeros_like(std), where=std > 1e-8)
    return (values - mean) * scale


def some_videos(codes: np.ndarray, max_frames: int) -> np.ndarray:
    """Rows of whole videos spread over the split, about ``max_frames`` of them (all rows when fewer)."""
    if len(codes) <= max_frames:
        return np.arange(len(codes))
    stride = int(np.ceil(len(codes) / max_frames))
    return np.flatnonzero(codes % stride == 0)


def lag_sums(a: np.ndarray, b: np.ndarray, codes: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Per lag l in -max_lag..max_lag and per video, the sum of ``a[t] . b[t + l]`` over the frames whose
    partner lies in the same video, and their count; both (2 max_lag + 1, videos)."""
    n, n_videos = len(a), int(codes.max()) + 1
    sums = np.zeros((2 * max_lag + 1, n_videos))
    counts = np.zeros_like(sums)
    for i, lag in enumerate(range(-max_lag, max_lag + 1)):
        x, y = (slice(0, n - lag), slice(lag, n)) if lag >= 0 else (slice(-lag, n), slice(0, n + lag))
        same = codes[x] == codes[y]
        dots = np.einsum("ij,ij->i", a[x], b[y])
        sums[i] = np.bincount(codes[x][same], weights=dots[same], minlength=n_videos)
        counts[i] = np.bincount(codes[x][same], minlength=n_videos)
    return sums, counts


def lag_gain(sums: np.ndarray, counts: np.ndarray, lag: int, reference: int) -> tuple[float, float]:
    """How much better the agreement is at ``lag`` than at ``reference``, and that in standard errors, with
    each video an independent draw (a ratio estimate over videos)."""
    mid = (len(sums) - 1) // 2
    a, b = mid + lag, mid + reference
    corr = sums.sum(axis=1) / np.maximum(counts.sum(axis=1), 1)
    gain = float(corr[a] - corr[b])
    per_video = sums[a] / np.maximum(counts[a], 1) - sums[b] / np.maximum(counts[b], 1)
    weights = counts[b] / counts[b].sum()
    n = int((weights > 0).sum())
    spread = float(np.sqrt(np.sum(weights**2 * (per_video - gain) ** 2) * n / max(n - 1, 1)))
    return gain, gain / spread if spread > 0 else (np.inf if gain > 0 else 0.0)


def peak_lag(sums: np.ndarray, counts: np.ndarray, reference: int, limit_z: float) -> int:
    """The lag of the best agreement if it beats ``reference`` by ``limit_z`` standard errors, else
    ``reference``."""
    mid = (len(sums) - 1) // 2
    corr = sums.sum(axis=1) / np.maximum(counts.sum(axis=1), 1)
    best = int(np.argmax(corr)) - mid
    if best != reference and lag_gain(sums, counts, best, reference)[1] >= limit_z:
        return best
    return reference


def lag_profiles(stack: Aligned) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per member, ``lag_sums`` of its standardised outputs against the mean of the others', on at most
    ``LAG_FRAMES`` frames (whole videos): enough to see a one-frame shift, and quick at Aff-Wild2 scale."""
    n, codes = len(stack.members), stack.video_codes()
    if n < 2:
        return []
    rows = some_videos(codes, LAG_FRAMES)
    weights = column_weights(stack)
    members = [standardised(stack.values[m, rows], weights) for m in range(n)]
    total = sum(members)
    return [lag_sums(own, (total - own) / (n - 1), codes[rows], MAX_LAG) for own in members]


# --- class order -------------------------------------------------------------------------------------------


def best_permutation(
    classes: np.ndarray, reference: np.ndarray, codes: np.ndarray, k: int
) -> tuple[list, float, float, float]:
    """The reading of ``classes`` that agrees best with ``reference`` beyond chance (``perm[c]``: the reference
    class that class c agrees with), the kappa it gains over the classes as given, that gain in standard
    errors (jackknife over videos), and the kappa as given."""
    n_videos = int(codes.max()) + 1
    cells = (codes.astype(np.int64) * k + classes) * k + reference
    per_video = np.bincount(cells, minlength=n_videos * k * k).reshape(n_videos, k, k)
    counts = per_video.sum(axis=0)
    expected = np.outer(counts.sum(axis=1), counts.sum(axis=0)) / counts.sum()
    rows, cols = linear_sum_assignment(counts - expected, maximize=True)
    perm = np.empty(k, dtype=int)
    perm[rows] = cols
    as_given = float(kappas(counts))
    if np.array_equal(perm, np.arange(k)):
        return perm.tolist(), 0.0, 0.0, as_given
    read = np.argsort(perm)  # column order putting each class's best partner on the diagonal
    gain = float(kappas(counts[:, read])) - as_given
    left_out = counts[None] - per_video
    gains = kappas(left_out[:, :, read]) - kappas(left_out)
    spread = float(np.sqrt((n_videos - 1) / n_videos * np.sum((gains - gains.mean()) ** 2)))
    return perm.tolist(), gain, gain / spread if spread > 0 else np.inf, as_given


def permutations(stack: Aligned) -> list[tuple[list, float, float, float]]:
    """``best_permutation`` of each member's EXPR classes against the others' mean probabilities."""
    if "expr" not in stack.tasks or len(stack.members) < 2:
        return [([], 0.0, 0.0, 0.0)] * len(stack.members)
    expr, codes = stack.task_values("expr"), stack.video_codes()
    total, n = expr.sum(axis=0), len(expr)
    return [
        best_permutation(expr[m].argmax(axis=1), ((total - expr[m]) / (n - 1)).argmax(axis=1), codes, expr.shape[2])
        for m in range(n)
    ]


# --- the check ---------------------------------------------------------------------------------------------


@dataclass
class SplitData:
    """Everything the flags need from one split."""

    stats: list[SplitStats]
    pairs: dict[str, np.ndarray]
    profiles: list[tuple[np.ndarray, np.ndarray]]
    sums: dict[str, np.ndarray]  # ``video_sums`` of each task
    frames: np.ndarray  # frames per video
    joint: dict[str, tuple] = field(default_factory=dict)  # ``joint_sums`` of each task (the fit split only)


def split_data(stack: Aligned, limits: Limits) -> SplitData:
    """The statistics of every member of ``stack``."""
    pairs = pairwise_agreement(stack)
    (sums, frames), profiles, perms = video_sums(stack), lag_profiles(stack), permutations(stack)
    dist = {t: distribution_from(t, x.sum(axis=0), frames.sum()) for t, x in sums.items()}
    stats = []
    for m in range(len(stack.members)):
        lag = peak_lag(*profiles[m], 0, limits.lag_z) if profiles else 0
        stats.append(
            SplitStats(
                {t: float(mean_of_others(p)[m]) for t, p in pairs.items()},
                {t: d[m] for t, d in dist.items()},
                lag,
                *perms[m],
            )
        )
    return SplitData(stats, pairs, profiles, sums, frames)


def check_members(
    fit: Aligned,
    apply: Aligned,
    truths: dict[str, Truth] | None = None,
    *,
    limits: Limits = Limits(),
    splits: tuple[str, str] = ("validation", "test"),
) -> list[MemberReport]:
    """Check every member of ``fit`` (the split a fusion is fitted on) against its behaviour on ``apply``;
    ``truths`` (labels of the fit split) add the fit-split scores and the possible-leak flag."""
    if fit.members != apply.members:
        raise AffectEnsError(f"member check: the splits have different members: {fit.members} and {apply.members}")
    if fit.tasks != apply.tasks:
        raise AffectEnsError(f"member check: the splits hold different tasks: {fit.tasks} and {apply.tasks}")
    a, b = split_data(fit, limits), split_data(apply, limits)
    a.joint = joint_sums(fit, reference_labels(fit, truths))
    reports = [MemberReport(name, a.stats[m], b.stats[m]) for m, name in enumerate(fit.members)]
    if truths:
        for m, report in enumerate(reports):
            report.scores = {
                t: score(t, fit.edition, truths[t], fit.task_values(t)[m])["score"] for t in fit.tasks if t in truths
            }
    if len(fit.members) > 1:
        for report, found in zip(reports, all_flags(reports, fit, a, b, limits, splits)):
            report.tags, report.flags = [t for t, _ in found], [f for _, f in found]
        agreement_with_unflagged(reports, a, b)
    return reports


def all_flags(reports: list[MemberReport], stack: Aligned, a: SplitData, b: SplitData, limits: Limits, splits):
    """(tag, reason) pairs of every member. The leak flag comes last: it compares a member's agreement fall with
    that of the members no other flag explains (a stale or unrelated member drags its partners down)."""
    collapsed = {t: collapsed_members(a.pairs[t], b.pairs[t], limits) for t in stack.tasks}
    shifts = {t: shift_and_z(t, (a.sums[t], a.frames, a.joint[t]), (b.sums[t], b.frames)) for t in stack.tasks}
    found = [member_flags(m, reports, stack, a, b, (collapsed, shifts), limits, splits) for m in range(len(reports))]
    suspects = {m for m, flags in enumerate(found) if flags}
    for m, flags in enumerate(found):
        others = suspects - {m} if len(reports) - len(suspects - {m}) > 1 else set()  # keep one at least
        leak = leak_flag(m, reports, a, b, others, limits, splits)
        if leak:
            after_collapse = 1 if flags and flags[0][0] == "collapse" else 0
            flags.insert(after_collapse, ("leak", leak))
        if len(reports) == 2 and flags:
            flags.append(("two members", "with two members the check cannot tell which of them changed"))
    return found


def agreement_with_unflagged(reports: list[MemberReport], a: SplitData, b: SplitData) -> None:
    """Each member's agreement, now with the unflagged other members only (all others if none is left): a
    flagged member no longer drags down everyone's numbers in the table."""
    clean = [m for m, r in enumerate(reports) if not r.flags]
    for m, report in enumerate(reports):
        others = [n for n in clean if n != m] or [n for n in range(len(reports)) if n != m]
        for stats, data in ((report.fit, a), (report.apply, b)):
            stats.agreement = {t: float(p[m, others].mean()) for t, p in data.pairs.items()}


def member_flags(
    m: int, reports: list[MemberReport], stack: Aligned, a: SplitData, b: SplitData, found, limits: Limits, splits
) -> list[tuple[str, str]]:
    """(tag, reason) of each reason but a leak to distrust member ``m``; empty when it behaves alike on both
    splits. ``found``: the members whose agreement collapses and the distribution shifts, per task."""
    collapsed, shifts = found
    flags = [
        ("collapse", collapse_flag(m, reports, collapsed, splits)),
        ("distribution", shift_flag(m, shifts, limits, splits)),
        ("shifted", lag_flag(m, reports, b, limits, splits)),
        ("classes", permutation_flag(m, reports, 0, stack, limits, splits[0])),
        ("classes", permutation_flag(m, reports, 1, stack, limits, splits[1])),
    ]
    return [(tag, text) for tag, text in flags if text]


def _falls(m: int, reports: list[MemberReport], task: str) -> str:
    r = reports[m]
    return f"{TASK_NAMES[task]} {AGREEMENT[task]} {r.fit.agreement[task]:.2f} → {r.apply.agreement[task]:.2f}"


def collapse_flag(m: int, reports, collapsed: dict[str, list[int]], splits) -> str:
    tasks = [t for t, members in collapsed.items() if m in members]
    if not tasks:
        return ""
    falls = ", ".join(_falls(m, reports, t) for t in tasks)
    return f"its agreement with the other members collapses on {splits[1]} ({falls})"


def leak_flag(m: int, reports, a: SplitData, b: SplitData, suspects: set[int], limits: Limits, splits) -> str:
    r = reports[m]
    tasks = []
    for t, s in r.scores.items():
        best_other = max(o.scores[t] for i, o in enumerate(reports) if i != m)
        excess = fall_excess(a.pairs[t], b.pairs[t], m, suspects)
        if s - best_other >= limits.leak_gap and excess >= limits.leak_fall:
            tasks.append((t, s, best_other))
    if not tasks:
        return ""
    gaps = ", ".join(f"{TASK_NAMES[t]} {s:.2f} vs at most {o:.2f}" for t, s, o in tasks)
    falls = ", ".join(_falls(m, reports, t) for t, _, _ in tasks)
    return (
        f"its {splits[0]} score is far above every other member's ({gaps}) while its agreement with them falls "
        f"on {splits[1]} ({falls}): possibly trained on {splits[0]}"
    )


def shift_flag(m: int, shifts: dict[str, tuple[np.ndarray, np.ndarray]], limits: Limits, splits) -> str:
    moved = []
    for t, (shift, z) in shifts.items():
        if shift[m] >= limits.shift and z[m] >= limits.shift_z:
            what = {"expr": "class shares", "va": "mean or std", "au": "unit rates"}[t]
            moved.append(f"{TASK_NAMES[t]} {what} by {shift[m]:.2f}")
    if not moved:
        return ""
    return f"its output distribution moves on {splits[1]} unlike the others' ({', '.join(moved)})"


def lag_flag(m: int, reports, b: SplitData, limits: Limits, splits) -> str:
    reference = reports[m].fit.lag
    lag = peak_lag(*b.profiles[m], reference, limits.lag_z)
    if lag == reference:
        return ""
    z = lag_gain(*b.profiles[m], lag, reference)[1]
    frames = f"{lag - reference:+d} frame{'s' * (abs(lag - reference) != 1)}"
    before = f"; on {splits[0]}, f{reference:+d}" if reference else ""
    return (
        f"its {splits[1]} table looks shifted by {frames} (its frame f agrees best with the others' frame "
        f"f{lag:+d}{before}; {z:.0f} standard errors)"
    )


def permutation_flag(
    m: int, reports: list[MemberReport], which: int, stack: Aligned, limits: Limits, split: str
) -> str:
    """Flag a reading of the classes that agrees better than the classes as given, and about as well as the
    other members agree with theirs (a member unrelated to the labels finds some reading by chance)."""
    stats = [r.fit if which == 0 else r.apply for r in reports]
    own, others = stats[m], [s.consensus_kappa for i, s in enumerate(stats) if i != m]
    read = own.consensus_kappa + own.permutation_gain
    if (
        own.permutation_z < limits.permutation_z
        or own.permutation_gain < limits.permutation_gain
        or read < limits.permutation_share * float(np.median(others))
    ):
        return ""
    names = stack.edition.expr_classes
    moved = ", ".join(f"{names[c]} as {names[p]}" for c, p in enumerate(own.permutation) if c != p)
    return (
        f"its {split} EXPR classes agree better with the others read in another order ({moved}: "
        f"κ {own.consensus_kappa:.2f} → {read:.2f})"
    )


# --- using the check ---------------------------------------------------------------------------------------


def flagged(reports: list[MemberReport], accept: list[str] | tuple[str, ...] = ()) -> list[MemberReport]:
    """The reports with flags, except those of the members the user vouches for."""
    return [r for r in reports if r.flags and r.name not in accept]


SPLIT_REASONS = {
    "collapse": "the agreement with the other members collapses",
    "leak": "the fit-split score is far above the others'",
    "distribution": "the output distribution moves unlike the others' predict",
    "shifted": "the table looks shifted in time",
    "classes": "the classes agree better read in another order",
}
"""What a reason (tag) says when most members carry it."""


def split_reasons(reports: list[MemberReport]) -> dict[str, list[str]]:
    """The reasons (tags) for which more than half of three or more members are flagged, with those members:
    then the split itself looks different, and the check cannot tell which member, if any, changed."""
    if len(reports) < 3:
        return {}
    carriers: dict[str, list[str]] = {}
    for r in reports:
        for tag in dict.fromkeys(r.tags):
            carriers.setdefault(tag, []).append(r.name)
    return {t: names for t, names in carriers.items() if t in SPLIT_REASONS and 2 * len(names) > len(reports)}


def raise_if_flagged(
    reports: list[MemberReport],
    accept: list[str] | tuple[str, ...] = (),
    splits: tuple[str, str] = ("validation", "test"),
) -> None:
    """One-line ``MemberCheckError`` naming each flagged member (not accepted), its reasons and the ways on; a
    reason that most members share is said once, of the split (``split_reasons``)."""
    bad = flagged(reports, accept)
    if not bad:
        return
    shared = split_reasons(reports)
    own = [(r, [f for f, t in zip(r.flags, r.tags) if t not in shared]) for r in bad]
    own = [(r, flags) for r, flags in own if flags]
    said = [f"member {r.name!r}: {'; '.join(flags)}" for r, flags in own]
    if shared:
        why = "; ".join(
            f"{SPLIT_REASONS[t]} for {len(n)} of {len(reports)} members ({', '.join(n)})" for t, n in shared.items()
        )
        said.insert(
            0,
            f"the {splits[1]} split itself looks different from {splits[0]} ({why}): the check cannot tell "
            f"whether a member or the videos changed",
        )
    ways = []
    if own:
        drops = " ".join(f"--drop-member {r.name}" for r, _ in own)
        ways.append(f"fuse without {'it' if len(own) == 1 else 'them'} ({drops})")
    alone = {r.name for r, _ in own}
    vouch = [r.name for r in bad if r.name not in alone] or [r.name for r in bad]
    if shared or len(own) == 1:
        ways.append(f"vouch for {'them' if len(vouch) > 1 else 'it'} ({' '.join(f'--accept {n}' for n in vouch)})")
    else:
        ways.append("vouch for one (--accept NAME)")
    raise MemberCheckError(f"member check failed: {'; '.join(said)}. To go on, {' or '.join(ways)}")


def drop_members(stack: Aligned, names: list[str] | tuple[str, ...]) -> Aligned:
    """``stack`` without the members ``names``; an unknown name is an error listing the members."""
    unknown = [n for n in names if n not in stack.members]
    if unknown:
        raise AffectEnsError(f"--drop-member {unknown[0]!r}: no such member; members: {', '.join(stack.members)}")
    keep = [m for m, name in enumerate(stack.members) if name not in names]
    if not keep:
        raise AffectEnsError("--drop-member leaves no member to fuse")
    members = [stack.members[m] for m in keep]
    return Aligned(stack.keys, stack.values[keep], stack.columns, members, stack.tasks, stack.edition)
