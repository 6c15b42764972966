"""Faces and their five landmarks on video frames: MTCNN from facenet-pytorch, whose weights ship inside its
wheel (``facenet_pytorch/data/{p,r,o}net.pt``), so nothing is downloaded.

facenet-pytorch pins an old torch, so it is installed without its dependencies
(``pip install --no-deps facenet-pytorch==2.6.0``) and imported only when a face must be found. Its
networks load their bundled state dicts with torch's default ``weights_only=True`` (torch >= 2.6).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ensemble.errors import DataError

INSTALL = "pip install --no-deps facenet-pytorch==2.6.0"
DETECT_SIDE = 640
"""Frames are searched at most this wide (or high): larger ones are scaled down for the search only."""


@dataclass(frozen=True)
class Face:
    """One face on one frame, in the frame's pixels."""

    box: np.ndarray  # x1, y1, x2, y2
    landmarks: np.ndarray | None  # (5, 2) x, y: eye, eye, nose, mouth corner, mouth corner (image left first);
    # None where the detector gives none (the SSD: members.face.opencv_dnn), aligned by its box (align.crop_face)
    score: float

    @property
    def centre_x(self) -> float:
        return float(self.box[0] + self.box[2]) / 2

    @property
    def area(self) -> float:
        return float(max(self.box[2] - self.box[0], 0) * max(self.box[3] - self.box[1], 0))


def load_mtcnn(min_face: float, device: str = "cpu"):
    """facenet-pytorch's MTCNN on ``device``, or a one-line error saying how to install it."""
    try:
        from facenet_pytorch import MTCNN
    except ImportError as exc:
        missing = exc.name or "facenet_pytorch"
        if missing.startswith("facenet_pytorch"):
            raise DataError(f"face detection needs facenet-pytorch (MTCNN); install it with: {INSTALL}") from None
        raise DataError(f"facenet-pytorch needs {missing!r}; install it with: pip install {missing}") from None
    return MTCNN(keep_all=True, min_face_size=max(float(min_face), 12.0), device=device)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` for the block. MTCNN runs many small operations: on two busy
    cores two threads wait on each other (benchmarks/bench_video.py: 0.5 frames/s against 7.8 with one
    thread, at a load of 10)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def search_image(frame: np.ndarray, side: int = DETECT_SIDE) -> tuple[np.ndarray, float]:
    """``frame`` scaled down to at most ``side`` pixels wide and high for a search, and the scale (1: as is)."""
    import cv2

    scale = min(1.0, side / max(frame.shape[:2]))
    if scale == 1.0:
        return frame, scale
    size = (round(frame.shape[1] * scale), round(frame.shape[0] * scale))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA), scale


class FaceDetector:
    """MTCNN on RGB frames: faces with a score of at least ``min_score``, the largest first.

    ``min_face`` is the smallest face side searched, in the frame's pixels; frames wider or higher than
    ``DETECT_SIDE`` are searched scaled down (MTCNN's cost grows with the pixels), and the boxes and
    landmarks are scaled back, so alignment still uses the full-resolution frame. The search runs on
    ``threads`` torch threads, on ``device`` (cpu, cuda).
    """

    def __init__(
        self, min_face: int = 40, min_score: float = 0.9, side: int = DETECT_SIDE, threads: int = 1, device: str = "cpu"
    ) -> None:
        self.min_face, self.min_score, self.side, self.threads = min_face, min_score, side, threads
        self.device = device
        self._nets: dict[float, object] = {}  # one MTCNN per minimum face size in the searched image

    def _net(self, min_face: float):
        key = round(min_face, 1)
        if key not in self._nets:
            self._nets[key] = load_mtcnn(key, self.device)
        return self._nets[key]

    def __call__(self, frame: np.ndarray) -> list[Face]:
        image, scale = search_image(frame, self.side)
        with torch_threads(self.threads):
            boxes, scores, points = self._net(self.min_face * scale).detect(image, landmarks=True)
        return self._faces(boxes, scores, points, scale)

    def detect_batch(self, frames: list[np.ndarray]) -> list[list[Face]]:
        """The faces of each of ``frames`` (of one size), searched as one batch (what a GPU wants)."""
        if len(frames) < 2 or any(f.shape != frames[0].shape for f in frames):
            return [self(frame) for frame in frames]
        searched = [search_image(frame, self.side) for frame in frames]
        scale = searched[0][1]
        with torch_threads(self.threads):
            found = self._net(self.min_face * scale).detect(np.stack([s[0] for s in searched]), landmarks=True)
        return [self._faces(boxes, scores, points, scale) for boxes, scores, points in zip(*found)]

    def _faces(self, boxes, scores, points, scale: float) -> list[Face]:
        """MTCNN's answer for one image as faces in the frame's pixels, the largest first."""
        if boxes is None:
            return []
        faces = [
            Face(np.asarray(b, np.float64) / scale, np.asarray(p, np.float64) / scale, float(s))
            for b, s, p in zip(boxes, scores, points)
            if s is not None and s >= self.min_score
        ]
        return sorted(faces, key=lambda f: -f.area)


def detect_batch(detect: Callable[[np.ndarray], list[Face]], frames: list[np.ndarray]) -> list[list[Face]]:
    """The faces of each frame: the detector's own ``detect_batch`` where it has one, else one frame at a time,
    so any detector (``__call__(frame) -> list[Face]``) serves."""
    batched = getattr(detect, "detect_batch", None)
    return batched(frames) if batched else [detect(frame) for frame in frames]
