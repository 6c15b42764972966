"""The face detectors by name, each ``detector(frame_rgb) -> list[Face]`` (largest first): ``mtcnn`` (the
default, facenet-pytorch's weights from its wheel), ``ssd`` (OpenCV's res10 SSD: a .caffemodel and its
.prototxt) and ``yunet`` (OpenCV Zoo's YuNet: one .onnx). The OpenCV models are files the user names, never
downloaded. Which options apply is checked here, once, so the CLI and a Python caller get the same errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ensemble.errors import DataError
from ensemble.registry import Registry
from members.face.detect import Face, FaceDetector

Detector = Callable[[np.ndarray], list[Face]]


@dataclass(frozen=True)
class DetectorKind:
    """A registered detector: its loader, the suffixes of its model and config files (none: it takes no such
    file) and what each file is usually called (for the error that asks for it)."""

    load: Callable[[DetectorChoice, int, int, str], Detector]  # (choice, min_face, threads, device)
    model: tuple[str, ...] = ()
    config: tuple[str, ...] = ()
    usual: tuple[str, str] = ("", "")


DETECTORS: Registry[DetectorKind] = Registry("face detector")


@dataclass(frozen=True)
class DetectorChoice:
    """A detector by name and the model files it reads (``config``: the SSD's prototxt only)."""

    name: str = "mtcnn"
    model: Path | None = None
    config: Path | None = None

    def check(self) -> DetectorChoice:
        """This choice, or a one-line error: an unknown name, a file it does not take, a missing one, a file
        of the wrong kind (by suffix; the content is checked when it is loaded)."""
        kind = DETECTORS.get(self.name)
        options = (
            ("model", self.model, kind.model, kind.usual[0]),
            ("config", self.config, kind.config, kind.usual[1]),
        )
        for option, path, suffixes, usual in options:
            if path is not None and not suffixes:
                raise DataError(f"--detector-{option} does not apply to --detector {self.name}{_takes(self.name)}")
            if path is not None and path.suffix.lower() not in suffixes:
                raise DataError(
                    f"--detector-{option} {path}: --detector {self.name} takes a {' or '.join(suffixes)} file"
                    f"{_other(option, path)}"
                )
            if path is None and suffixes:
                raise DataError(
                    f"--detector {self.name} needs --detector-{option}: {usual} (your own copy; see README)"
                )
        return self


def _takes(name: str) -> str:
    return "; its weights come with facenet-pytorch" if name == "mtcnn" else " (it reads one .onnx file)"


def _other(option: str, path: Path) -> str:
    """Which detector takes ``path`` instead, when one does."""
    for name in DETECTORS.names():
        if path.suffix.lower() in getattr(DETECTORS.get(name), option):
            return f" ({path.suffix} is {name}'s)"
    return ""


def open_detector(choice: DetectorChoice, min_face: int = 40, threads: int = 1, device: str = "cpu") -> Detector:
    """The detector ``choice`` names, its files read and checked (one-line errors naming the file). MTCNN runs
    on ``device``; OpenCV's detectors run on the CPU."""
    return DETECTORS.get(choice.check().name).load(choice, min_face, threads, device)


def _mtcnn(choice: DetectorChoice, min_face: int, threads: int, device: str) -> Detector:
    return FaceDetector(min_face, threads=threads, device=device)


def _ssd(choice: DetectorChoice, min_face: int, threads: int, device: str) -> Detector:
    from members.face.opencv_dnn import load_ssd

    return load_ssd(choice.model, choice.config, min_face)


def _yunet(choice: DetectorChoice, min_face: int, threads: int, device: str) -> Detector:
    from members.face.opencv_dnn import load_yunet

    return load_yunet(choice.model, min_face)


DETECTORS.register("mtcnn")(DetectorKind(_mtcnn))
DETECTORS.register("ssd")(
    DetectorKind(
        _ssd,
        (".caffemodel",),
        (".prototxt", ".txt"),  # tutorials name it deploy.prototxt.txt
        ("OpenCV's res10_300x300_ssd_iter_140000.caffemodel", "the deploy.prototxt that goes with its .caffemodel"),
    )
)
DETECTORS.register("yunet")(
    DetectorKind(_yunet, (".onnx",), (), ("OpenCV Zoo's face_detection_yunet_2023mar.onnx", ""))
)
