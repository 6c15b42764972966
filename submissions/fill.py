"""The named policies that fill the frames a prediction table lacks (frames without a detected face have no
prediction). Placing table rows on a frame source and filling them is ``ensemble.frames.place``/``fill``, which
member tables use too.

``previous`` copies the closest earlier predicted frame of the video (the next one before the first): what
participants do (wtomin/ABAW3_MultiEmotionNet ``refill_frames_ids``, ``read_test_set.py``: "replicate the
previous frame"). ``nearest`` copies the closest predicted frame, ``linear`` interpolates outputs between the
two neighbours before deciding. ``sentinel`` writes the annotation sentinels (-1, -5) instead, as 2021
participants did (gsethan17/CAPNet_ABAW2021 ``eval.py``); only the 2021 edition allows it.
"""

from __future__ import annotations

from ensemble.errors import SubmissionError
from ensemble.frames import Placement, fill, place
from ensemble.tasks import EDITIONS, Edition
from submissions.formats import DEFAULT_FILL, FILLS

__all__ = ["DEFAULT_FILL", "FILLS", "Placement", "check_fill", "fill", "place"]


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
