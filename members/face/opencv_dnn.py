"""OpenCV's DNN face detectors, from model files the user names (nothing is downloaded): the res10 SSD of
OpenCV's samples and YuNet (OpenCV Zoo), each as ``detector(frame_rgb) -> list[Face]``, the largest first.

res10 SSD (``res10_300x300_ssd_iter_140000.caffemodel`` with its ``deploy.prototxt``): the frame resized to
300 x 300, BGR minus the means (104, 177, 123), one forward; the output is (1, 1, N, 7), each row
``[image, class, confidence, x1, y1, x2, y2]`` with corners as fractions of the frame. This is how webcam
set-ups load and read it (e.g. Crisiroid/CompanyManagementSystem ``test.py``, satwire/face-recognition
``main.py``: ``readNetFromCaffe``, ``blobFromImage(resize(image, (300, 300)), 1.0, (300, 300), (104.0, 177.0,
123.0))``, ``detections[0, 0, i, 2]`` and ``detections[0, 0, i, 3:7] * [w, h, w, h]``). It gives no landmarks.

YuNet (``face_detection_yunet_2023mar.onnx``): ``cv2.FaceDetectorYN`` as OpenCV Zoo's
``models/face_detection_yunet/yunet.py`` creates it, its input size set to each frame's size. Each row is
``[x, y, w, h, right eye, left eye, nose tip, right mouth corner, left mouth corner (x, y each), score]``
(opencv ``modules/objdetect/src/face_detect.cpp``). "Right eye" is the person's, on the image's left: OpenCV's
own ``FaceRecognizerSF::alignCrop`` (``face_recognize.cpp``) maps the five points, in this order, onto
ArcFace's template, whose first point is the eye on the image's left, so they are ``Face.landmarks`` as they
come. ``FaceDetectorYN`` reads its outputs without checking their sizes, so the model is first run on a 64 x 64
input and again at each new frame size, every output's size checked (a crafted model cannot make it read past
them).

Model files are read bounded (``ensemble.io`` caps) and handed to OpenCV as bytes, so OpenCV never opens a
path itself; anything OpenCV cannot read is a one-line error naming the file.
"""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path

import numpy as np

from ensemble.errors import DataError
from ensemble.io import read_bounded
from members.face.detect import DETECT_SIDE, Face, search_image

SSD_SIDE = 300
SSD_MEAN = (104.0, 177.0, 123.0)  # BGR
SSD_MIN_SCORE = 0.5  # the confidence the webcam set-ups above keep
YUNET_MIN_SCORE, YUNET_NMS, YUNET_TOP_K = 0.9, 0.3, 5000  # OpenCV Zoo's demo.py defaults
YUNET_STRIDES = (8, 16, 32)
YUNET_VALUES = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}  # values per grid cell of each output
YUNET_OUTPUTS = [f"{kind}_{stride}" for kind in YUNET_VALUES for stride in YUNET_STRIDES]
PROBE = 64  # side of the input a YuNet model is checked on


def _reason(exc: Exception) -> str:
    """OpenCV's message without its source path and version, on one line."""
    text = " ".join(str(getattr(exc, "err", None) or exc).split())
    return text[:200] + ("..." if len(text) > 200 else "")


def _quiet_cv2(call, label: object, what: str):
    """``call()`` with OpenCV's log silenced (its lines would break the one-line error); a ``cv2.error`` is a
    one-line ``DataError`` naming the file."""
    import cv2

    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        return call()
    except cv2.error as exc:
        raise DataError(f"{label}: {what} ({_reason(exc)})") from None
    finally:
        cv2.utils.logging.setLogLevel(level)


def _buffer(path: Path, what: str) -> np.ndarray:
    return np.frombuffer(read_bounded(path, what), np.uint8)


def _sized(faces: list[Face], min_face: float) -> list[Face]:
    """Faces whose box is at least ``min_face`` pixels on its shorter side, the largest first."""
    kept = [f for f in faces if min(f.box[2] - f.box[0], f.box[3] - f.box[1]) >= min_face]
    return sorted(kept, key=lambda f: -f.area)


# --- res10 SSD -----------------------------------------------------------------------------------------------


def ssd_faces(out: np.ndarray, width: int, height: int, min_score: float, min_face: float = 0) -> list[Face]:
    """The faces of an SSD output (1, 1, N, 7) on a ``width`` x ``height`` frame (corners clipped to it)."""
    out = np.asarray(out, np.float64)
    if out.ndim != 4 or out.shape[:2] != (1, 1) or out.shape[3] != 7:
        raise DataError(f"the model's output has shape {tuple(out.shape)}, not an SSD detector's (1, 1, N, 7)")
    rows = out[0, 0]
    rows = rows[rows[:, 2] >= min_score]  # NaN scores fail the comparison
    boxes = np.clip(rows[:, 3:7], 0.0, 1.0) * [width, height, width, height]
    return _sized([Face(b, None, float(s)) for b, s in zip(boxes, rows[:, 2])], min_face)


class SsdDetector:
    """The res10 SSD on RGB frames: faces of at least ``min_score`` confidence and ``min_face`` pixels. Safe to
    call from several threads (an OpenCV net holds its input: one forward at a time)."""

    def __init__(self, net, min_face: float = 0, min_score: float = SSD_MIN_SCORE, label: object = "") -> None:
        self.net, self.min_face, self.min_score, self.label = net, min_face, min_score, label
        self._lock = threading.Lock()

    def forward(self, bgr: np.ndarray) -> np.ndarray:
        import cv2

        blob = cv2.dnn.blobFromImage(cv2.resize(bgr, (SSD_SIDE, SSD_SIDE)), 1.0, (SSD_SIDE, SSD_SIDE), SSD_MEAN)
        with self._lock:
            self.net.setInput(blob)
            return _quiet_cv2(self.net.forward, self.label, "the SSD face detector failed")

    def __call__(self, frame: np.ndarray) -> list[Face]:
        out = self.forward(np.ascontiguousarray(frame[:, :, ::-1]))
        try:
            return ssd_faces(out, frame.shape[1], frame.shape[0], self.min_score, self.min_face)
        except DataError as exc:
            raise DataError(f"{self.label}: {exc}") from None


def load_ssd(model: Path, config: Path, min_face: float = 0) -> SsdDetector:
    """The SSD of ``model`` (.caffemodel) and ``config`` (.prototxt), run once on a black frame to check it."""
    import cv2

    weights, text = _buffer(model, "face detector model"), _buffer(config, "face detector config")
    read = partial(cv2.dnn.readNetFromCaffe, text, weights)
    net = _quiet_cv2(read, f"{config} and {model}", "OpenCV cannot read them as a Caffe network")
    detector = SsdDetector(net, min_face, label=model)
    detector(np.zeros((SSD_SIDE, SSD_SIDE, 3), np.uint8))
    return detector


# --- YuNet ---------------------------------------------------------------------------------------------------


def yunet_faces(rows: np.ndarray | None, scale: float = 1.0, min_face: float = 0) -> list[Face]:
    """The faces of ``FaceDetectorYN.detect``'s rows (x, y, w, h, 5 landmarks, score) found on a frame
    scaled by ``scale``, in the frame's pixels."""
    if rows is None:
        return []
    rows = np.asarray(rows, np.float64).reshape(-1, 15)
    boxes = np.column_stack([rows[:, :2], rows[:, :2] + rows[:, 2:4]]) / scale
    points = rows[:, 4:14].reshape(-1, 5, 2) / scale
    return _sized([Face(b, p, float(s)) for b, p, s in zip(boxes, points, rows[:, 14])], min_face)


class YuNetDetector:
    """YuNet on RGB frames: frames larger than ``side`` are searched scaled down, as MTCNN's are. The model's
    outputs are checked again at each new input size before ``FaceDetectorYN`` reads them (``weights``: the
    model's bytes). Safe to call from several threads (the detector holds its input size: one at a time)."""

    def __init__(self, detector, weights: np.ndarray, min_face: float = 0, side: int = DETECT_SIDE, label=""):
        self.detector, self.weights, self.min_face, self.side, self.label = detector, weights, min_face, side, label
        self._size: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def __call__(self, frame: np.ndarray) -> list[Face]:
        image, scale = search_image(frame, self.side)
        bgr = np.ascontiguousarray(image[:, :, ::-1])  # FaceDetectorYN passes the image as it is: BGR
        with self._lock:
            if self._size != (bgr.shape[1], bgr.shape[0]):
                check_yunet_outputs(self.weights, self.label, (bgr.shape[1], bgr.shape[0]))
                self._size = (bgr.shape[1], bgr.shape[0])
                self.detector.setInputSize(self._size)
            _, rows = _quiet_cv2(lambda: self.detector.detect(bgr), self.label, "the YuNet face detector failed")
        return yunet_faces(rows, scale, self.min_face)


def check_yunet_outputs(model: np.ndarray, label: object, size: tuple[int, int] = (PROBE, PROBE)) -> None:
    """The ONNX model ``model`` has YuNet's twelve outputs, each of the size ``FaceDetectorYN`` reads for an
    image of ``size`` (width, height; padded to multiples of 32 as it pads them); anything else is a one-line
    error naming the file."""
    import cv2

    width, height = (-(-side // YUNET_STRIDES[-1]) * YUNET_STRIDES[-1] for side in size)

    def run():
        net = cv2.dnn.readNet("onnx", model)
        net.setInput(np.zeros((1, 3, height, width), np.float32))
        return net.forward(YUNET_OUTPUTS)

    outputs = _quiet_cv2(run, label, "OpenCV cannot run it as a YuNet face detector")
    for name, out in zip(YUNET_OUTPUTS, outputs):
        kind, stride = name.split("_")
        expected = (width // int(stride)) * (height // int(stride)) * YUNET_VALUES[kind]
        if out.size != expected:
            raise DataError(
                f"{label}: not a YuNet face detector (output {name} holds {out.size} values on a "
                f"{width}x{height} input, YuNet's {expected})"
            )


def load_yunet(model: Path, min_face: float = 0, min_score: float = YUNET_MIN_SCORE) -> YuNetDetector:
    """YuNet from ``model`` (.onnx) through ``cv2.FaceDetectorYN``, its outputs checked first."""
    import cv2

    weights = _buffer(model, "face detector model")
    check_yunet_outputs(weights, model)
    empty = np.zeros(0, np.uint8)
    create = partial(
        cv2.FaceDetectorYN.create, "onnx", weights, empty, (PROBE, PROBE), min_score, YUNET_NMS, YUNET_TOP_K
    )
    return YuNetDetector(_quiet_cv2(create, model, "OpenCV cannot read it as YuNet"), weights, min_face, label=model)
