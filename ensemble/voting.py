"""The vote, one pure function for the fusion's ``vote`` method and the committee member: per frame for EXPR
classes, per unit for AUs, weighted median for VA values.

Ties are decided by ``tie_break``: ``lead`` (the member at index ``lead``, as in committee submissions) or
``soft`` (the highest summed probability among the tied choices); the fusion's ``best`` picks the lead by
validation score and then votes as ``lead``.
"""

from __future__ import annotations

import numpy as np


def vote(task: str, values: np.ndarray, weights: np.ndarray, tie_break: str, lead: int = 0) -> np.ndarray:
    """The vote of one task's (members, frames, k) contract values with normalised member ``weights``, as
    (frames, k) contract values: EXPR vote shares averaged with the winner's one-hot (the winner is the
    argmax), AU the yes-share averaged with the 0/1 decision, VA the weighted median."""
    if task == "va":
        return weighted_median(values, weights)
    if task == "expr":
        counts = vote_counts(values, weights)
        return class_probabilities(decide_votes(counts, values, weights, tie_break, lead), counts)
    yes = weighted_sum(values >= 0.5, weights)
    return (yes + decide_units(yes, values, weights, tie_break, lead)) / 2.0


def weighted_sum(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Sum over axis 0 of (members, frames, k) ``values`` (probabilities, values or 0/1 decisions) weighted by
    ``weights``, one member at a time into one float32 buffer (no members-sized or float64 copy)."""
    out = np.zeros(values.shape[1:], dtype=np.float32)
    scaled = np.empty_like(out)
    for m, w in enumerate(weights):
        if w:
            np.multiply(values[m], np.float32(w), out=scaled)
            out += scaled
    return out


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
