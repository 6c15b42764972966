"""The faces of a whole video: found frame by frame, split into subjects by position, aligned, cropped.

A video is read twice: the first pass finds the faces (the slow part), which decides how many people it
shows and who is on the left; the second decodes it again and aligns each face. Frames are numbered by
their place in the video (1-based), and a subject's frames without a face are simply absent, as in
Aff-Wild2's ``cropped_aligned`` folders. Two subjects are ``<video>_left`` and ``<video>_right``, as
Aff-Wild2 names them; three or more are ``<video>_1``, ``<video>_2``, ... from left to right.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.errors import DataError
from ensemble.frames import FRAME_ROOT, face_file
from ensemble.outputs import safe_join
from members.base import Progress
from members.face.align import crop_face
from members.face.detect import Face
from members.face.detectors import DetectorChoice, open_detector
from members.face.track import FaceFollower
from members.face.video import decode_frames, probe_video

MIN_SHARE = 0.2
"""A video has k subjects when at least this share of its frames with a face show k faces."""


@dataclass(frozen=True)
class FaceSearch:
    """How faces are searched: the smallest face side in pixels, the most faces per frame, how often the
    detector runs (1: every frame; k: every k-th frame, tracking in between), on how many threads, and which
    detector (members.face.detectors: MTCNN by default, or OpenCV's SSD or YuNet from the user's files)."""

    min_face: int = 40
    max_faces: int = 2
    every: int = 1
    threads: int = 1  # torch threads of the search (see members.face.detect.torch_threads)
    detector_choice: DetectorChoice = DetectorChoice()  # which detector (members.face.detectors)

    def follower(self) -> FaceFollower:
        return FaceFollower(open_detector(self.detector_choice, self.min_face, self.threads), self.every)


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


def scan_video(path: Path, video: str, search: FaceSearch, progress: Progress | None = None) -> VideoFaces:
    """Find the faces of every frame of ``path`` and split them into subjects."""
    info = probe_video(path)
    follower = search.follower()
    per_frame: list[list[Face]] = []
    for number, frame in enumerate(decode_frames(path), 1):
        faces, _ = follower(frame)
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
    decoded: int = 0


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


def crop_faces(
    videos: dict[str, Path], out: Path, search: FaceSearch, size: int = 112, progress: Progress | None = None
) -> CropReport:
    """Aff-Wild2-style ``out/cropped_aligned/<subject>/NNNNN.jpg`` crops of every video and the manifest
    ``out/frames.csv`` (``video,frames``: each subject folder and its video's frame count)."""
    frames_dir = out / FRAME_ROOT
    frames_dir.mkdir()
    expected = sum(max(probe_video(p).frames_hint, 1) for p in videos.values())
    report, done = CropReport(), 0
    for video, path in videos.items():
        step = (lambda n, _, base=done: progress(base + n, max(expected, base + n))) if progress else None
        faces = scan_video(path, video, search, step)
        done += faces.frames
        report.decoded += faces.frames
        clash = [s for s in faces.subjects if s in report.frames]
        if clash:
            raise DataError(f"{path}: its face folder {clash[0]!r} is also another video's; rename one of the files")
        if not faces.subjects:
            report.faceless.append(video)
        report.frames.update(faces.counts())
        report.crops.update(write_crops(faces, frames_dir, size))
    rows = pd.DataFrame({"video": list(report.frames), "frames": list(report.frames.values())}, dtype=object)
    rows.to_csv(out / "frames.csv", index=False)  # inside the command's new folder; quotes ids with commas
    return report
