"""Challenge file formats per ABAW edition and track, in one table.

Per-video tracks (expr, va, au): one ``<video>.txt`` per test video, the annotation header, one line per
frame in frame order. The multi-task track (mtl): one file, a row per image ``video/00001.jpg``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ensemble.errors import SubmissionError
from ensemble.tasks import EDITIONS, TASKS, Edition, get_edition

TRACKS = ("expr", "va", "au", "mtl")
MTL_EDITIONS = (2022, 2023)  # editions with the multi-task track on s-Aff-Wild2 (ABAW.md)
MTL_HEADER = "image,valence,arousal,expression,aus"
MTL_FILE = "predictions.txt"


@dataclass(frozen=True)
class TrackFormat:
    """What a submission of ``track`` for ``edition`` looks like."""

    track: str
    edition: Edition
    header: str
    tasks: tuple[str, ...]
    per_video: bool

    def file_name(self, video: str) -> str:
        return f"{video}.txt" if self.per_video else MTL_FILE

    @property
    def width(self) -> int:
        """Values per line: 1 class index, 2 VA values, one 0/1 per AU (mtl: image + 3 + AUs)."""
        if not self.per_video:
            return 4 + len(self.edition.aus)
        return {"expr": 1, "va": 2, "au": len(self.edition.aus)}[self.track]


def get_format(track: str, edition: int) -> TrackFormat:
    """The submission format of ``track`` in ``edition``; unknown combinations list the valid ones."""
    ed = get_edition(edition)
    if track not in TRACKS:
        raise SubmissionError(f"unknown track {track!r}; choose one of: {', '.join(TRACKS)}")
    if track == "mtl":
        if edition not in MTL_EDITIONS:
            raise SubmissionError(
                f"no multi-task track in edition {edition}; it ran in: {', '.join(map(str, MTL_EDITIONS))}"
            )
        return TrackFormat("mtl", ed, MTL_HEADER, TASKS, per_video=False)
    return TrackFormat(track, ed, ed.header(track), (track,), per_video=True)


FORMATS = {(t, y): get_format(t, y) for y in EDITIONS for t in TRACKS if t != "mtl" or y in MTL_EDITIONS}
"""Every (track, edition) the writer and the validator know."""
