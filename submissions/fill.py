"""Rows of a prediction table for every frame of a frame source, and the named policies that fill the frames
the table lacks (frames without a detected face have no prediction).

``previous`` copies the closest earlier predicted frame of the video (the next one before the first): what
participants do (wtomin/ABAW3_MultiEmotionNet ``refill_frames_ids``, ``read_test_set.py``: "replicate the
previous frame"). ``nearest`` copies the closest predicted frame, ``linear`` interpolates outputs between the
two neighbours before deciding. ``sentinel`` writes the annotation sentinels (-1, -5) instead, as 2021
participants did (gsethan17/CAPNet_ABAW2021 ``eval.py``); only the 2021 edition allows it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ensemble.contract import PredictionTable
from ensemble.errors import ContractError, SubmissionError
from ensemble.frames import FrameSource
from ensemble.tasks import EDITIONS, Edition
from submissions.formats import DEFAULT_FILL, FILLS

__all__ = ["DEFAULT_FILL", "FILLS", "Placement", "check_fill", "fill", "place"]


@dataclass
class Placement:
    """Where each source row finds its values: table rows before and after it in its video (-1: none) and
    its position between them (0 at ``before``, 1 at ``after``)."""

    before: np.ndarray
    after: np.ndarray
    weight: np.ndarray
    exact: np.ndarray  # the table has this very frame
    dropped: int  # table videos the source does not list

    @property
    def filled(self) -> int:
        return int((~self.exact).sum())


def check_fill(policy: str, edition: Edition) -> str:
    """``policy`` if it is known and allowed in ``edition``."""
    if policy not in FILLS:
        raise SubmissionError(f"unknown fill policy {policy!r}; choose one of: {', '.join(FILLS)}")
    if policy == "sentinel" and not edition.sentinel_fill:
        allowed = ", ".join(e.name for e in EDITIONS.values() if e.sentinel_fill)
        raise SubmissionError(
            f"--fill sentinel is for {allowed} only (its participants wrote -1/-5 rows); "
            f"edition {edition.name} takes: previous, nearest or linear"
        )
    return policy


def _table_codes(table: PredictionTable, source: FrameSource) -> np.ndarray:
    import pandas as pd

    return pd.Index(source.videos).get_indexer(table.data["video"]).astype(np.int64)


def check_lengths(table: PredictionTable, source: FrameSource, codes: np.ndarray) -> None:
    """No predicted frame past the end of its video, when the source gives the videos' lengths."""
    if not source.knows_lengths:
        return
    frames = table.data["frame"].to_numpy(np.int64)
    keep = codes >= 0
    last = np.zeros(len(source.videos), dtype=np.int64)
    np.maximum.at(last, codes[keep], frames[keep])
    length = np.bincount(source.codes, minlength=len(source.videos))
    over = np.flatnonzero(last > length)
    if len(over):
        v = over[0]
        raise ContractError(
            f"{source.path}: frames past the video's length in {len(over)} video(s), first "
            f"{source.videos[v]!r} (frame {last[v]} of {length[v]})"
        )


def place(table: PredictionTable, source: FrameSource) -> Placement:
    """The table rows around every source row; a source video with no prediction at all is an error."""
    codes = _table_codes(table, source)
    check_lengths(table, source, codes)
    have = np.bincount(codes[codes >= 0], minlength=len(source.videos))
    if (have == 0).any():
        absent = np.flatnonzero(have == 0)
        raise ContractError(
            f"no predictions for {len(absent)} video(s) of the frame source {source.path}, "
            f"first {source.videos[absent[0]]!r}"
        )
    frames = table.data["frame"].to_numpy(np.int64)
    span = int(max(frames.max(), source.frames.max())) + 2
    rows = np.flatnonzero(codes >= 0)
    keys = codes[rows] * span + frames[rows]
    order = np.argsort(keys, kind="stable")
    keys, rows = keys[order], rows[order]
    want = source.codes * span + source.frames
    pos = np.searchsorted(keys, want)
    exact = (pos < len(keys)) & (keys[np.minimum(pos, len(keys) - 1)] == want)
    after_pos = np.minimum(pos, len(keys) - 1)
    after_ok = (pos < len(keys)) & (keys[after_pos] // span == source.codes)
    before_pos = np.where(exact, pos, pos - 1)
    before_ok = (before_pos >= 0) & (keys[np.maximum(before_pos, 0)] // span == source.codes)
    before = np.where(before_ok, rows[np.maximum(before_pos, 0)], -1)
    after = np.where(exact, before, np.where(after_ok, rows[after_pos], -1))
    weight = _weights(frames, source.frames, before, after)
    dropped = int(len(np.unique(table.data["video"].to_numpy()[codes < 0]))) if (codes < 0).any() else 0
    return Placement(before, after, weight, exact, dropped)


def _weights(frames: np.ndarray, wanted: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    both = (before >= 0) & (after >= 0) & (before != after)
    weight = np.zeros(len(wanted))
    f0, f1 = frames[before[both]], frames[after[both]]
    weight[both] = (wanted[both] - f0) / (f1 - f0)
    weight[(before < 0) & (after >= 0)] = 1.0
    return weight


def fill(values: np.ndarray, placement: Placement, policy: str) -> np.ndarray:
    """``values`` (table rows, k) on the source rows, gaps filled by ``policy`` (``sentinel`` fills like
    ``previous``; the writer replaces those rows)."""
    b, a, w = placement.before, placement.after, placement.weight
    if policy == "linear":
        lo = values[np.where(b >= 0, b, a)].astype(np.float64)
        hi = values[np.where(a >= 0, a, b)].astype(np.float64)
        return lo + (hi - lo) * w[:, None]
    if policy == "nearest":
        return values[np.where((b >= 0) & ((a < 0) | (w <= 0.5)), b, a)]
    return values[np.where(b >= 0, b, a)]
