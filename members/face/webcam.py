"""The live loop: faces searched every k frames and tracked in between, aligned, predicted by the members
and drawn with the frame rate, on a camera or on a video file (the same loop, so it runs without one).

Members' outputs are averaged per task, as ``predict-video`` does without a fusion; a saved fusion's
smoothing needs whole videos, so it has no place in a live loop.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ensemble.errors import DataError
from members.face.align import crop_face
from members.face.crop import FaceSearch
from members.face.overlay import draw_frame
from members.face.predict import RunNetwork, average_outputs, member_outputs
from members.face.video import VideoWriter, source_frames


@dataclass
class LiveReport:
    """What the loop did: frames shown, seconds taken, frames searched by the detector, frames with a face."""

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    frames: int = 0
    seconds: float = 0.0
    searched: int = 0
    with_face: int = 0


def live_predictions(members: list[RunNetwork], crops: list[np.ndarray]) -> list[Mapping[str, float]]:
    """One prediction (contract columns to values) per crop: the members' mean per task."""
    if not members or not crops:
        return [{} for _ in crops]
    mean = average_outputs([member_outputs(m, crops) for m in members])
    columns = [(c, t, j) for t in mean for j, c in enumerate(members[0].edition.output_columns(t))]
    return [{c: float(mean[t][i, j]) for c, t, j in columns} for i in range(len(crops))]  # no pandas per frame


def run_live(
    source: int | Path,
    members: list[RunNetwork],
    search: FaceSearch,
    *,
    limit: int | None = None,
    show: Callable[[np.ndarray], bool] | None = None,
    record: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LiveReport:
    """Run until the source ends, ``limit`` frames, the window closes (``show`` returns False) or Ctrl+C.
    ``record`` writes the drawn frames as an MP4."""
    frames, rate = source_frames(source, limit)
    follower, report = search.follower(), LiveReport()
    writer = VideoWriter(record, rate) if record else None
    start = time.perf_counter()
    try:
        for frame in frames:
            faces, searched = follower(frame)
            faces = sorted(faces[: search.max_faces], key=lambda f: f.centre_x)
            predictions = live_predictions(members, [crop_face(frame, f) for f in faces])
            image = draw_frame(frame, [(f.box, p) for f, p in zip(faces, predictions)], report.fps)
            report.frames, report.searched = report.frames + 1, report.searched + searched
            report.with_face += bool(faces)
            report.seconds = time.perf_counter() - start
            if writer:
                writer.write(image)
            if progress:
                progress(report.frames, limit or 0)
            if show and not show(image):
                break
    except KeyboardInterrupt:  # the usual way to stop a camera: keep what was recorded
        pass
    finally:
        if writer:
            writer.close()
    return report


# --- the window --------------------------------------------------------------------------------------------


def display_available() -> bool:
    """False on a Linux machine without an X or Wayland display (a server, CI)."""
    return not sys.platform.startswith("linux") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _opencv_window(title: str) -> Callable[[np.ndarray], bool] | None:
    import cv2

    try:
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)
    except cv2.error:  # opencv-python-headless has no GUI
        return None

    def show(rgb: np.ndarray) -> bool:
        cv2.imshow(title, rgb[:, :, ::-1])
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27) and cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) >= 1

    return show


def _matplotlib_window(title: str) -> Callable[[np.ndarray], bool] | None:
    import matplotlib

    if matplotlib.get_backend().lower() in ("agg", "pdf", "pgf", "ps", "svg", "cairo", "template"):
        return None
    import matplotlib.pyplot as plt

    plt.ion()
    fig = plt.figure(title)
    state: dict = {}

    def show(rgb: np.ndarray) -> bool:
        if "image" not in state:
            state["image"] = fig.add_axes((0, 0, 1, 1)).imshow(rgb)
            fig.axes[0].axis("off")
        state["image"].set_data(rgb)
        fig.canvas.draw_idle()
        fig.canvas.flush_events()
        return plt.fignum_exists(fig.number)

    return show


def open_window(title: str = "affect-ens") -> Callable[[np.ndarray], bool]:
    """A window showing RGB frames: OpenCV's, or matplotlib's where OpenCV is the headless build."""
    show = _opencv_window(title) if display_available() else None
    show = show or (_matplotlib_window(title) if display_available() else None)
    if show is None:
        raise DataError("no window can be opened here (no display, or no GUI toolkit); pass --no-window")
    return show
