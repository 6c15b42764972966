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
LAG_FRAMES = 100_000
"""The lag is measured on at most this many frames (whole videos spread over the split)."""
TASK_NAMES = {"expr": "EXPR", "va": "VA", "au": "AU"}
AGREEMENT = {"expr": "κ", "va": "r", "au": "κ"}


@dataclass(frozen=True)
class Limits:
    """Where a statistic becomes a flag: set on simulated ensembles so that no member of a clean one (3 to 7
    members of mixed quality, 8 to 60 videos, a harder test split) trips one, with room to spare, while the bad
    members of ``ensemble.simulate`` do. ``benchmarks/bench_check.py`` measures both rates."""

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


def distribution_shift(task: str, fit: np.ndarray, apply: np.ndarray) -> np.ndarray:
    """Per member, how much more its distribution moves between the splits than the others' (their median
    move): total variation of the class shares (EXPR), the largest move of a VA mean or std or an AU rate.
    ``fit`` and ``apply`` are (..., members, d) distributions; the result is (..., members)."""
    moves = apply - fit
    out = np.zeros(moves.shape[:-1])
    for m in range(moves.shape[-2]):
        others = np.delete(moves, m, axis=-2)
        excess = np.abs(moves[..., m, :] - (np.median(others, axis=-2) if others.shape[-2] else 0.0))
        out[..., m] = 0.5 * excess.sum(axis=-1) if task == "expr" else excess.max(axis=-1)
    return out


def shift_and_z(task: str, fit: tuple[np.ndarray, np.ndarray], apply: tuple[np.ndarray, np.ndarray]):
    """``distribution_shift`` of every member from the ``video_sums`` of both splits, and that in standard errors
    (jackknife over the videos of each split): a few videos distributed unlike the rest move a small split's
    shares a lot, a broken table moves them whatever the videos."""
    (a, fa), (b, fb) = fit, apply
    full_a, full_b = distribution_from(task, a.sum(axis=0), fa.sum()), distribution_from(task, b.sum(axis=0), fb.sum())
    shift = distribution_shift(task, full_a, full_b)
    if len(fa) < 2 or len(fb) < 2:
        return shift, np.zeros_like(shift)
    left_a = distribution_from(task, a.sum(axis=0) - a, (fa.sum() - fa)[:, None, None])
    left_b = distribution_from(task, b.sum(axis=0) - b, (fb.sum() - fb)[:, None, None])
    variance = 0.0
    for reps in (distribution_shift(task, left_a, full_b), distribution_shift(task, full_a, left_b)):
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
    shifts = {t: shift_and_z(t, (a.sums[t], a.frames), (b.sums[t], b.frames)) for t in stack.tasks}
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


def raise_if_flagged(reports: list[MemberReport], accept: list[str] | tuple[str, ...] = ()) -> None:
    """One-line ``MemberCheckError`` naming each flagged member (not accepted), its reasons and the ways on."""
    bad = flagged(reports, accept)
    if not bad:
        return
    what = "; ".join(f"member {r.name!r}: {'; '.join(r.flags)}" for r in bad)
    if len(bad) == 1:
        ways = f"fuse without it (--drop-member {bad[0].name}) or vouch for it (--accept {bad[0].name})"
    else:
        drops = " ".join(f"--drop-member {r.name}" for r in bad)
        ways = f"fuse without them ({drops}) or vouch for one (--accept NAME)"
    raise MemberCheckError(f"member check failed: {what}. To go on, {ways}")


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
