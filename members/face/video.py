"""Frames in and out of videos: decoding files (PyAV), reading cameras (OpenCV), writing annotated MP4s.

Frames are RGB ``uint8`` arrays in decode order, turned upright when the file says it is displayed
rotated (phone recordings). The n-th decoded frame is frame n (1-based), as Aff-Wild2 numbers its
``cropped_aligned`` images.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import numpy as np

from ensemble.errors import DataError
from ensemble.outputs import STAMP, safe_name

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts")
DEFAULT_RATE = Fraction(30)
T = TypeVar("T")


@dataclass(frozen=True)
class VideoInfo:
    """What the container says before decoding: the frame rate, and a frame count that may be off."""

    rate: Fraction
    frames_hint: int  # 0 when the container does not say


def video_files(path: Path) -> dict[str, Path]:
    """Video ids (file names without the suffix) and files: ``path`` itself or the videos inside a folder."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        if not files:
            raise DataError(f"{path}: no video files in this folder (looked for {', '.join(VIDEO_SUFFIXES)})")
    elif path.is_file():
        files = [path]
    else:
        raise DataError(f"{path}: no such video file or folder")
    ids: dict[str, Path] = {}
    for file in files:
        video = safe_name(file.stem, "video id")
        if video in ids:
            raise DataError(f"{path}: two videos would share the id {video!r}: {ids[video].name} and {file.name}")
        ids[video] = file
    return ids


def video_collection(sources: list[Path]) -> dict[str, Path]:
    """Video ids and files of several sources (files or folders, as ``video_files``), in the order given; two
    files with one id, or one file named twice, is an error."""
    ids: dict[str, Path] = {}
    for source in sources:
        for video, file in video_files(source).items():
            if video in ids:
                raise DataError(f"{file}: two videos would share the id {video!r}: {ids[video]} and {file}")
            ids[video] = file
    return ids


def _open(path: Path):
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable video ({_reason(exc)})") from None
    if not container.streams.video:
        container.close()
        raise DataError(f"{path}: holds no video stream")
    return container


def _reason(exc: Exception) -> str:
    return " ".join(str(getattr(exc, "strerror", None) or exc).split())[:100]


def probe_video(path: Path) -> VideoInfo:
    """Frame rate, header frame count and size of a video file, without decoding it."""
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or DEFAULT_RATE
        return VideoInfo(Fraction(rate), int(stream.frames or 0))


def _upright(frame) -> np.ndarray:
    """The frame as displayed: rotated counter-clockwise by its display matrix's angle."""
    rgb = frame.to_ndarray(format="rgb24")
    quarter = round((frame.rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, quarter)) if quarter else rgb


def decode_frames(path: Path, limit: int | None = None) -> Iterator[np.ndarray]:
    """RGB frames of a video file in decode order (the first ``limit`` only, if given)."""
    import av

    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        done = 0
        try:
            for frame in container.decode(stream):
                if limit is not None and done >= limit:
                    return
                yield _upright(frame)
                done += 1
        except av.error.FFmpegError as exc:
            raise DataError(f"{path}: decoding failed after {done} frame(s) ({_reason(exc)})") from None
    if done == 0:
        raise DataError(f"{path}: no frame could be decoded")


def prefetched(items: Iterator[T], depth: int = 16) -> Iterator[T]:
    """``items`` produced by a background thread at most ``depth`` ahead, so decoding the next frames overlaps
    whatever the caller does with this one (PyAV and the search release the GIL). Errors reach the caller."""
    ahead: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    with contextlib.suppress(queue.Full):
                        ahead.put((True, item), timeout=0.1)
                        break
                if stop.is_set():
                    return
            ahead.put((False, None))
        except BaseException as exc:  # handed to the caller, raised there
            ahead.put((False, exc))
        finally:
            getattr(items, "close", lambda: None)()  # the decoder's file is closed by the thread that used it

    worker = threading.Thread(target=produce, name="decode", daemon=True)
    worker.start()
    try:
        while True:
            more, item = ahead.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                ahead.get_nowait()  # frees a producer blocked on a full queue
        worker.join()


def camera_frames(index: int, limit: int | None = None, size: tuple[int, int] = (640, 480)) -> Iterator[np.ndarray]:
    """RGB frames of camera ``index`` (OpenCV), asking it for ``size``, until it stops or ``limit``."""
    import cv2

    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # its warnings would break the one-line error
    try:
        capture = cv2.VideoCapture(index)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not capture.isOpened():
        raise DataError(f"camera {index}: cannot be opened (no such camera, or another program uses it)")
    capture.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
    capture.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
    try:
        done = 0
        while limit is None or done < limit:
            ok, bgr = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            done += 1
    finally:
        capture.release()


def parse_source(source: str) -> int | Path:
    """A camera index ('0', '1', ... up to 9999, ASCII digits) or a video file."""
    if source.isascii() and source.isdigit():
        if len(source) > 4:
            raise DataError(f"camera {source[:24]}: no such camera index (0 to 9999)")
        return int(source)
    path = Path(source)
    if not path.is_file():
        raise DataError(f"{source}: no such video file (give a file, or a camera index such as 0)")
    return path


def source_frames(source: int | Path, limit: int | None = None) -> tuple[Iterator[np.ndarray], Fraction]:
    """Frames and frame rate of a camera index or a video file: the one loop the webcam runs on both."""
    if isinstance(source, int):
        return camera_frames(source, limit), DEFAULT_RATE
    return decode_frames(source, limit), probe_video(source).rate


# --- writing -----------------------------------------------------------------------------------------------


class VideoWriter:
    """An H.264 MP4 (MPEG-4 part 2 where libx264 is missing) whose container carries the tool's stamp
    (``comment=affect-ens``), so ``--force`` may replace it later. Frames must all have one size."""

    def __init__(self, path: Path, rate: Fraction) -> None:
        import av

        self.container = av.open(str(path), mode="w", format="mp4")  # the temporary name has no suffix
        self.container.metadata["comment"] = STAMP
        self.rate = Fraction(rate).limit_denominator(100000)
        self.stream = None
        self._codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"

    def _start(self, height: int, width: int) -> None:
        self.stream = self.container.add_stream(self._codec, rate=self.rate)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        if self._codec == "libx264":
            self.stream.options = {"crf": "23", "preset": "veryfast"}

    def write(self, rgb: np.ndarray) -> None:
        """Append one frame (cropped to even sides, as 4:2:0 video needs)."""
        import av

        rgb = rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2]
        if self.stream is None:
            self._start(*rgb.shape[:2])
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        if self.stream is not None:
            self.container.mux(self.stream.encode(None))
        self.container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
