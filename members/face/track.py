"""Faces on consecutive frames: the detector every ``every`` frames, optical-flow tracking in between.

Between detections each face follows the corners (Shi-Tomasi) inside its box, tracked by pyramidal
Lucas-Kanade; the similarity transform of their motion (RANSAC) moves the box and the five landmarks (a
detector without landmarks, the SSD, has only its box moved).
A face that loses its corners ends the tracking and the next frame is searched again, so tracking never
invents a face for long. ``every=1`` searches every frame (what ``crop-faces`` and ``predict-video``
do by default).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from members.face.detect import Face

MIN_POINTS = 8


def _corners(grey: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    import cv2

    h, w = grey.shape
    x1, y1 = max(int(box[0]), 0), max(int(box[1]), 0)
    x2, y2 = min(int(box[2]), w), min(int(box[3]), h)
    if x2 - x1 < 8 or y2 - y1 < 8:
        return None
    mask = np.zeros_like(grey)
    mask[y1:y2, x1:x2] = 255
    return cv2.goodFeaturesToTrack(grey, maxCorners=40, qualityLevel=0.01, minDistance=4, mask=mask)


def _moved(face: Face, matrix: np.ndarray) -> Face:
    """``face`` carried by a 2 x 3 similarity transform: landmarks moved, box re-centred and rescaled."""
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    centre = matrix[:, :2] @ ((face.box[:2] + face.box[2:]) / 2) + matrix[:, 2]
    half = (face.box[2:] - face.box[:2]) / 2 * scale
    landmarks = None if face.landmarks is None else face.landmarks @ matrix[:, :2].T + matrix[:, 2]
    return Face(np.concatenate([centre - half, centre + half]), landmarks, face.score)


def track_face(before: np.ndarray, after: np.ndarray, face: Face) -> Face | None:
    """``face`` of the grey frame ``before`` on the grey frame ``after``, or None when it cannot be followed."""
    import cv2

    points = _corners(before, face.box)
    if points is None or len(points) < MIN_POINTS:
        return None
    moved, status, _ = cv2.calcOpticalFlowPyrLK(before, after, points, None, winSize=(21, 21), maxLevel=3)
    ok = status.ravel() == 1
    if ok.sum() < MIN_POINTS:
        return None
    matrix, inliers = cv2.estimateAffinePartial2D(points[ok], moved[ok], method=cv2.RANSAC)
    if matrix is None or inliers.sum() < MIN_POINTS:
        return None
    return _moved(face, matrix)


class FaceFollower:
    """Call it on each frame in order; returns that frame's faces (largest first) and whether they were
    searched (True) or tracked from the previous frame (False)."""

    def __init__(self, detect: Callable[[np.ndarray], list[Face]], every: int = 1) -> None:
        self.detect, self.every = detect, max(int(every), 1)
        self._grey: np.ndarray | None = None
        self._faces: list[Face] = []
        self._since = 0  # frames since the last search (0: never searched)

    def __call__(self, frame: np.ndarray) -> tuple[list[Face], bool]:
        import cv2

        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if self.every > 1 else None
        faces: list[Face] | None = None
        if self._since < self.every and self._grey is not None:
            followed = [track_face(self._grey, grey, f) for f in self._faces]  # no face: none until the next search
            faces = None if any(f is None for f in followed) else followed
        searched = faces is None
        if searched:
            faces = self.detect(frame)
        self._since = 1 if searched else self._since + 1
        self._grey, self._faces = grey, faces
        return faces, searched
