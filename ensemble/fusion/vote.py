"""Majority vote: per frame for EXPR classes, per unit for AUs, weighted median for VA values.

Ties are decided explicitly: ``lead`` (a named member, as in committee submissions), ``soft`` (the highest
summed probability among the tied choices) or ``best`` (the member with the best validation score).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ensemble.errors import AffectEnsError
from ensemble.fusion.base import FUSERS, Fuser, learned, param, weighted_sum

if TYPE_CHECKING:
    from ensemble.align import Aligned
    from ensemble.evaluate import Truth

TIE_BREAKS = ("lead", "soft", "best")


def vote_classes(probs: np.ndarray, weights: np.ndarray, tie_break: str, lead: int = 0) -> np.ndarray:
    """Winning class per frame from (members, frames, classes) probabilities and normalised weights."""
    return decide_votes(vote_counts(probs, weights), probs, weights, tie_break, lead)


def vote_counts(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(frames, classes) summed weights of the members whose argmax is each class: an argmax per member and
    one scatter-add of its weight per frame."""
    n_members, n_frames, n_classes = probs.shape
    counts = np.zeros(n_frames * n_classes, dtype=np.float32)
    cells = np.arange(n_frames) * n_classes
    for m in range(n_members):
        counts[cells + probs[m].argmax(axis=1)] += weights[m]  # one cell per frame: no repeated index
    return counts.reshape(n_frames, n_classes)


def decide_votes(counts: np.ndarray, probs: np.ndarray, weights: np.ndarray, tie_break: str, lead: int) -> np.ndarray:
    """The class with the most votes per frame; frames where several classes tie go to the tie-break, which
    looks only at those frames."""
    winners = counts.argmax(axis=1)
    tied = counts >= counts.max(axis=1, keepdims=True) - 1e-6
    rows = np.flatnonzero(np.count_nonzero(tied, axis=1) > 1)
    if len(rows):
        sub = probs[:, rows]
        breaker = weighted_sum(sub, weights) if tie_break == "soft" else sub[lead]
        winners[rows] = np.where(tied[rows], breaker, -np.inf).argmax(axis=1)
    return winners


def vote_units(
    probs: np.ndarray, weights: np.ndarray, tie_break: str, lead: int = 0, threshold: float = 0.5
) -> np.ndarray:
    """0/1 decision per frame and unit from (members, frames, units) probabilities."""
    return decide_units(weighted_sum(probs >= threshold, weights), probs, weights, tie_break, lead, threshold)


def decide_units(
    yes: np.ndarray, probs: np.ndarray, weights: np.ndarray, tie_break: str, lead: int, threshold: float = 0.5
) -> np.ndarray:
    """Majority of the weighted ``yes`` votes; exact halves go to the tie-break, which looks only at them."""
    decision = (yes > 0.5 + 1e-6).astype(np.int8)
    rows, units = np.nonzero(np.abs(yes - 0.5) < 1e-6)
    if len(rows):
        sub = probs[:, rows, units]
        breaker = weighted_sum(sub, weights) if tie_break == "soft" else sub[lead]
        decision[rows, units] = breaker >= threshold
    return decision


def weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Median over members (axis 0) of (members, frames, dims) values, each member counted by weight."""
    if np.allclose(weights, weights[0]) and len(weights) % 2:
        return np.median(values, axis=0)  # same result, partition instead of a full sort
    order = np.argsort(values, axis=0)
    ranked = np.take_along_axis(values, order, axis=0)
    cum = np.cumsum(weights[order], axis=0)
    first = (cum >= 0.5 - 1e-9).argmax(axis=0)
    return np.take_along_axis(ranked, first[None], axis=0)[0]


def class_probabilities(winners: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Vote shares averaged with the winner's one-hot: rows sum to 1 and the winner is the argmax."""
    shares = counts.copy()
    shares[np.arange(len(winners)), winners] += 1.0
    return shares / 2.0


@FUSERS.register("vote")
class VoteFuser(Fuser):
    """Majority vote with an explicit tie-break; optional member weights."""

    name = "vote"

    tie_break: str = param("soft", f"vote: how ties are decided: {', '.join(TIE_BREAKS)}.")
    lead: str | None = param(None, "vote: the member deciding ties with --tie-break lead.")
    lead_by_task_: dict[str, int] = learned(dict)

    def __post_init__(self) -> None:
        if self.tie_break not in TIE_BREAKS:
            raise AffectEnsError(f"unknown tie-break {self.tie_break!r}; choose one of: {', '.join(TIE_BREAKS)}")

    def fit_task(self, task: str, stack: Aligned, truth: Truth | None) -> None:
        if self.tie_break == "lead":
            if self.lead is None or self.lead not in stack.members:
                raise AffectEnsError(f"vote: tie-break 'lead' needs --lead, one of: {', '.join(stack.members)}")
            self.lead_by_task_[task] = stack.members.index(self.lead)
        elif self.tie_break == "best":
            if truth is None:
                raise AffectEnsError(f"vote: tie-break 'best' needs {task} labels to rank the members")
            values = stack.task_values(task)
            from ensemble.evaluate import score

            scores = [score(task, stack.edition, truth, values[m])["score"] for m in range(len(stack.members))]
            self.lead_by_task_[task] = int(np.nanargmax(scores))

    def check_learned(self, task: str, stack: Aligned) -> None:
        leads = vars(self).get("lead_by_task_", {})
        leads = leads if isinstance(leads, dict) else None
        lead = leads.get(task, 0) if leads is not None else None
        if not isinstance(lead, int) or isinstance(lead, bool) or not 0 <= lead < len(stack.members):
            raise AffectEnsError(
                f"vote: the saved {task} lead {lead!r} is not a member index (0..{len(stack.members) - 1})"
            )

    def predict_task(self, task: str, stack: Aligned) -> np.ndarray:
        probs = stack.task_values(task)
        weights = self.member_weights(len(stack.members))
        lead = self.lead_by_task_.get(task, 0)
        if task == "va":
            return weighted_median(probs, weights)
        if task == "expr":
            counts = vote_counts(probs, weights)
            return class_probabilities(decide_votes(counts, probs, weights, self.tie_break, lead), counts)
        yes = weighted_sum(probs >= 0.5, weights)
        return (yes + decide_units(yes, probs, weights, self.tie_break, lead)) / 2.0
