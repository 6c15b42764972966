"""The faces of a whole video: found frame by frame, split into subjects by position, aligned, cropped.

A video is read twice: the first pass finds the faces (the slow part), which decides how many people it
shows and who is on the left; the second decodes it again and aligns each face. In a collection the passes
overlap: frames are decoded in a background thread and searched on several threads (or in batches on a
GPU), and while one video's crops are written the next one's faces are searched. Frames are numbered by
their place in the video (1-based), and a subject's frames without a face are simply absent, as in
Aff-Wild2's ``cropped_aligned`` folders. Two subjects are ``<video>_left`` and ``<video>_right``, as
Aff-Wild2 names them; three or more are ``<video>_1``, ``<video>_2``, ... from left to right.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.errors import DataError
from ensemble.frames import FRAME_ROOT, face_file
from ensemble.outputs import WorkFolder, safe_join
from members.base import Progress
from members.face.align import crop_face
from members.face.detect import Face, detect_batch
from members.face.detectors import Detector, DetectorChoice, open_detector
from members.face.track import FaceFollower
from members.face.video import decode_frames, prefetched, probe_video

MIN_SHARE = 0.2
"""A video has k subjects when at least this share of its frames with a face show k faces."""


GPU_BATCH = 16
"""Frames per MTCNN call on a GPU. On a CPU one frame per call is faster (benchmarks/bench_video.py): frames
are searched on several threads instead."""


@dataclass(frozen=True)
class FaceSearch:
    """How faces are searched: the smallest face side in pixels, the most faces per frame, how often the
    detector runs (1: every frame; k: every k-th frame, tracking in between), which detector
    (members.face.detectors: MTCNN by default, or OpenCV's SSD or YuNet from the user's files), on how many
    torch threads, on which device, how many frames at once (``workers`` threads) and how many frames per
    detector call."""

    min_face: int = 40
    max_faces: int = 2
    every: int = 1
    threads: int = 1  # torch threads of each search (see members.face.detect.torch_threads)
    detector_choice: DetectorChoice = DetectorChoice()  # which detector (members.face.detectors)
    device: str = "cpu"
    workers: int = 1
    batch: int = 1

    def detector(self) -> Detector:
        return open_detector(self.detector_choice, self.min_face, self.threads, self.device)

    def follower(self, detector: Detector | None = None) -> FaceFollower:
        return FaceFollower(detector or self.detector(), self.every)


def parallel_search(device: str, processes: int = 1) -> dict[str, int]:
    """``workers`` and ``batch`` for a search on ``device``: a GPU takes batches on one thread; on a CPU each
    of this process's share of the cores searches its own frames, one per call."""
    if device.startswith("cuda"):
        return {"workers": 1, "batch": GPU_BATCH}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return {"workers": max(1, cores // max(processes, 1)), "batch": 1}


@dataclass
class VideoFaces:
    """One video's frame count and, per subject id, the face on each frame where it was found."""

    video: str
    path: Path
    frames: int
    rate: Fraction
    subjects: dict[str, dict[int, Face]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Frames per subject id: the video's, since every subject's folder stands for the whole video."""
        return {subject: self.frames for subject in self.subjects}


def subject_ids(video: str, n: int) -> list[str]:
    if n == 1:
        return [video]
    if n == 2:
        return [f"{video}_left", f"{video}_right"]
    return [f"{video}_{i}" for i in range(1, n + 1)]


def count_subjects(per_frame: list[list[Face]], max_faces: int) -> int:
    """The most faces seen together on at least ``MIN_SHARE`` of the frames with a face (0: no face)."""
    seen = np.array([len(faces) for faces in per_frame if faces])
    if len(seen) == 0:
        return 0
    return max(k for k in range(1, max_faces + 1) if (seen >= k).mean() >= MIN_SHARE or k == 1)


def _slots(faces: list[Face], centres: np.ndarray) -> tuple[int, ...]:
    """The subjects (left to right) of fewer faces than subjects: the order-keeping choice nearest in x."""
    xs = np.array([f.centre_x for f in faces])
    options = combinations(range(len(centres)), len(faces))
    return min(options, key=lambda slots: float(np.abs(centres[list(slots)] - xs).sum()))


def assign_subjects(per_frame: list[list[Face]], n: int) -> list[dict[int, Face]]:
    """Per subject, left to right, its face on each frame (frame numbers 1-based). Frames showing ``n``
    faces order them by position; a frame with fewer gives each to the subject usually nearest in x."""
    if n == 0:
        return []
    ordered = [sorted(faces[:n], key=lambda f: f.centre_x) for faces in per_frame]
    centres = np.mean([[f.centre_x for f in faces] for faces in ordered if len(faces) == n], axis=0)
    tracks: list[dict[int, Face]] = [{} for _ in range(n)]
    for number, faces in enumerate(ordered, 1):
        slots = range(n) if len(faces) == n else _slots(faces, centres)
        for slot, face in zip(slots, faces):
            tracks[slot][number] = face
    return tracks


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def ordered_map(fn: Callable, items: Iterable, workers: int) -> Iterator:
    """``fn`` of each item on ``workers`` threads, in the items' order, a few items ahead at most."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="search") as pool:
        running: deque = deque()
        for item in items:
            running.append(pool.submit(fn, item))
            if len(running) >= 2 * workers:
                yield running.popleft().result()
        while running:
            yield running.popleft().result()


def search_frames(path: Path, search: FaceSearch, detector: Detector) -> Iterator[list[Face]]:
    """The faces of each frame of ``path`` in order, decoded in a background thread. Searching every frame,
    batches of ``search.batch`` frames go to ``search.workers`` threads (each frame's faces do not depend on
    how the frames were split); with tracking (``every`` > 1) frames are followed one after another."""
    frames = prefetched(decode_frames(path))
    if search.every > 1:
        follower = search.follower(detector)
        yield from (follower(frame)[0] for frame in frames)
        return
    for found in ordered_map(lambda b: detect_batch(detector, b), _chunks(frames, search.batch), search.workers):
        yield from found


def scan_video(
    path: Path,
    video: str,
    search: FaceSearch,
    progress: Progress | None = None,
    detector: Detector | None = None,
) -> VideoFaces:
    """Find the faces of every frame of ``path`` and split them into subjects."""
    info = probe_video(path)
    per_frame: list[list[Face]] = []
    for number, faces in enumerate(search_frames(path, search, detector or search.detector()), 1):
        per_frame.append(faces[: search.max_faces])  # the largest
        if progress:
            progress(number, max(info.frames_hint, number))
    tracks = assign_subjects(per_frame, count_subjects(per_frame, search.max_faces))
    return VideoFaces(video, path, len(per_frame), info.rate, dict(zip(subject_ids(video, len(tracks)), tracks)))


def aligned_crops(faces: VideoFaces, size: int) -> Iterator[tuple[str, int, np.ndarray]]:
    """(subject id, frame number, aligned crop) of every face found, in frame order (decodes the video again)."""
    for number, frame in enumerate(decode_frames(faces.path, faces.frames), 1):
        for subject, track in faces.subjects.items():
            face = track.get(number)
            if face is not None:
                yield subject, number, crop_face(frame, face, size)


# --- crop-faces --------------------------------------------------------------------------------------------


@dataclass
class CropReport:
    """What ``crop_faces`` wrote: frames per subject folder, crops, and the videos where no face was found."""

    frames: dict[str, int] = field(default_factory=dict)
    crops: dict[str, int] = field(default_factory=dict)
    faceless: list[str] = field(default_factory=list)
    decoded: int = 0  # frames of the videos
    videos: int = 0


def write_crops(faces: VideoFaces, frames_dir: Path, size: int) -> dict[str, int]:
    """JPEGs ``<subject>/00001.jpg`` of every face of the video; returns the crops per subject."""
    from PIL import Image

    folders = {s: safe_join(frames_dir, s, what="video id") for s in faces.subjects}
    for folder in folders.values():
        folder.mkdir()
    written = dict.fromkeys(folders, 0)
    for subject, number, crop in aligned_crops(faces, size):
        Image.fromarray(crop).save(folders[subject] / face_file(number), quality=95)
        written[subject] += 1
    return written


CollectionProgress = Callable[[int, int, int, int], None]
"""``progress(videos done, videos, frames done, frames)`` of a collection (a total of 0: unknown)."""


def source_identity(path: Path) -> dict:
    """What tells a video file apart from an edited or replaced one: its path, size and modification time."""
    stat = path.stat()
    return {"source": str(path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def same_source(videos: dict[str, Path]) -> Callable[[str, dict], bool]:
    """Whether a finished video's record still stands for one of ``videos``, unchanged."""

    def keep(video: str, record: dict) -> bool:
        return video in videos and all(record.get(k) == v for k, v in source_identity(videos[video]).items())

    return keep


def write_video(faces: VideoFaces, work: WorkFolder, size: int) -> None:
    """One video's face folders, written in a staging folder and committed whole to ``work``."""
    taken = next((s for s in faces.subjects if (work.root / FRAME_ROOT / s).exists()), None)
    if taken is not None:
        raise DataError(f"{faces.path}: its face folder {taken!r} is also another video's; rename one of the files")
    staged = work.stage(faces.video)
    (staged / FRAME_ROOT).mkdir()
    crops = write_crops(faces, staged / FRAME_ROOT, size)
    subjects = [[subject, faces.frames, crops[subject]] for subject in faces.subjects]
    work.commit(faces.video, staged, {**source_identity(faces.path), "frames": faces.frames, "subjects": subjects})


@dataclass
class _Tally:
    """Progress of a collection over the threads that work on it."""

    videos: int
    frames: int
    progress: CollectionProgress | None
    videos_done: int = 0
    frames_done: int = 0

    def show(self) -> None:
        if self.progress:
            self.progress(self.videos_done, self.videos, self.frames_done, max(self.frames, self.frames_done))


def crop_collection(
    videos: dict[str, Path], work: WorkFolder, search: FaceSearch, size: int, progress: CollectionProgress | None = None
) -> int:
    """Crop the faces of ``videos`` into ``work``, each video committed when whole; while one video's crops are
    written (a second decode, alignment, JPEG) the next one's faces are searched. Returns the frames decoded."""
    detector = search.detector()
    tally = _Tally(len(videos), sum(probe_video(p).frames_hint for p in videos.values()), progress)
    writing = None

    def step(n: int, _: int, base: list[int]) -> None:
        tally.frames_done = base[0] + n
        tally.show()

    def write(faces: VideoFaces) -> None:
        write_video(faces, work, size)
        tally.videos_done += 1
        tally.show()

    with ThreadPoolExecutor(1, thread_name_prefix="write") as writer:
        for video, path in videos.items():
            base = [tally.frames_done]
            faces = scan_video(path, video, search, lambda n, t, base=base: step(n, t, base), detector)
            tally.frames_done = base[0] + faces.frames
            if writing is not None:
                writing.result()
            writing = writer.submit(write, faces)
        if writing is not None:
            writing.result()
    return tally.frames_done


def finish_dataset(videos: dict[str, Path], work: WorkFolder) -> CropReport:
    """The manifest ``frames.csv`` (``video,frames``: each face folder and its video's frame count, in the
    videos' order) of a collection whose every video is done, and what was written."""
    records, report = work.done(), CropReport(videos=len(videos))
    for video in videos:
        subjects = records[video]["subjects"]
        report.decoded += records[video]["frames"]
        if not subjects:
            report.faceless.append(video)
        for subject, frames, crops in subjects:
            report.frames[subject], report.crops[subject] = frames, crops
    (work.root / FRAME_ROOT).mkdir(exist_ok=True)
    rows = pd.DataFrame({"video": list(report.frames), "frames": list(report.frames.values())}, dtype=object)
    rows.to_csv(work.root / "frames.csv", index=False)  # inside the command's new folder; quotes ids with commas
    return report


def crop_faces(
    videos: dict[str, Path],
    out: Path,
    search: FaceSearch,
    size: int = 112,
    progress: CollectionProgress | None = None,
) -> CropReport:
    """Aff-Wild2-style ``out/cropped_aligned/<subject>/NNNNN.jpg`` crops of every video and the manifest
    ``out/frames.csv``, in the existing empty folder ``out`` (the CLI resumes through ``Outputs.resumable_folder``)."""
    work = WorkFolder(out)
    work.begin()
    crop_collection(videos, work, search, size, progress)
    report = finish_dataset(videos, work)
    work.tidy()
    return report
