"""Members on the faces of a raw video: a contract table with a row for every frame of every subject.

The faces are found and aligned exactly as ``crop-faces`` does (``members.face.crop``), kept in memory,
and run through every member in batches. Without a fusion, each task is the mean of the members that
predict it; with one (``fuse --save-fusion``), the members' tables are fused and post-processed by it.
Frames where a subject's face was not found are filled from the neighbouring frames, as everywhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ensemble.contract import KEY, PredictionTable, TableMeta, read_table, write_table
from ensemble.errors import DataError
from ensemble.frames import fill_missing_frames
from ensemble.outputs import WorkFolder, safe_join
from ensemble.tasks import TASKS, Edition, get_edition
from members.base import PhaseProgress, Progress
from members.face.align import CROP_SIZE
from members.face.crop import CollectionProgress, FaceSearch, VideoFaces, aligned_crops, scan_video, source_identity
from members.face.video import probe_video
from members.heads import probabilities
from members.registry import MEMBERS
from members.training.runs import Run

TaskOutputs = dict[str, np.ndarray]  # task -> (faces, outputs) contract values


@dataclass
class RunNetwork:
    """A finished image-member run ready to predict: its name (the run folder's), config and network."""

    name: str
    cfg: object
    model: torch.nn.Module

    @property
    def edition(self) -> Edition:
        return get_edition(self.cfg.edition)


def open_image_run(path: Path) -> RunNetwork:
    """A run of a member that predicts from images (cnn, keras); others are a one-line error."""
    run = Run.open(path)
    if run.member_cls.on_features:
        names = ", ".join(n for n in MEMBERS.names() if MEMBERS.get(n).reads_images)
        raise DataError(f"{path}: a {run.name} member predicts from cached CNN features; use image members ({names})")
    if not run.member_cls.reads_images:
        raise DataError(
            f"{path}: a {run.name} run votes over its backbones' runs; pass those (RUN/<backbone>) as members instead"
        )
    return RunNetwork(run.path.name, run.config, run.load_network())


def open_image_runs(runs: list[Path]) -> list[RunNetwork]:
    """The members' networks; their tasks' label sets must be those of the first member's edition (the
    table's)."""
    if not runs:
        raise DataError("no member given: pass --member RUN (a run folder written by train-member)")
    members = [open_image_run(Path(run)) for run in runs]
    first = members[0]
    for member in members[1:]:
        for task in member.cfg.tasks:
            if member.edition.output_columns(task) != first.edition.output_columns(task):
                raise DataError(
                    f"member {member.name!r} predicts {task} with the label set of edition {member.cfg.edition}, "
                    f"not that of {first.name!r}'s edition {first.cfg.edition}"
                )
    return members


def face_batch(crops: list[np.ndarray], size: int) -> torch.Tensor:
    """Aligned RGB crops as a member's input: exactly the transform its face images had in training
    (``members.training.data.image_transform``: resized by PIL, normalised)."""
    from PIL import Image

    from members.training.data import image_transform

    transform = image_transform(size, train=False)
    return torch.stack([transform(Image.fromarray(crop)) for crop in crops])


@torch.no_grad()
def member_outputs(member: RunNetwork, crops: list[np.ndarray]) -> TaskOutputs:
    """Contract values (EXPR and AU probabilities, VA values) of one member on aligned crops."""
    device = next(member.model.parameters()).device
    out = probabilities(member.model(face_batch(crops, member.cfg.image_size).to(device)))
    return {task: value.float().cpu().numpy() for task, value in out.items()}


def average_outputs(outputs: list[TaskOutputs]) -> TaskOutputs:
    """Each task the mean over the members predicting it (tasks in canonical order)."""
    mean = {}
    for task in TASKS:
        values = [out[task] for out in outputs if task in out]
        if values:
            mean[task] = np.mean(values, axis=0)
    return mean


def outputs_frame(outputs: TaskOutputs, edition: Edition) -> pd.DataFrame:
    """Contract columns of ``outputs`` (one row per face)."""
    return pd.DataFrame({c: outputs[t][:, j] for t in outputs for j, c in enumerate(edition.output_columns(t))}).astype(
        np.float32
    )


def run_on_video(
    members: list[RunNetwork],
    faces: VideoFaces,
    size: int,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> tuple[pd.DataFrame, list[TaskOutputs]]:
    """Keys of every face found and each member's outputs on them, in batches of ``batch_size`` crops of
    side ``size``."""
    keys: list[tuple[str, int]] = []
    batch: list[np.ndarray] = []
    parts: list[list[TaskOutputs]] = [[] for _ in members]
    total = sum(len(track) for track in faces.subjects.values())
    for subject, number, crop in aligned_crops(faces, size):
        keys.append((subject, number))
        batch.append(crop)
        if len(batch) == batch_size or len(keys) == total:
            for member, part in zip(members, parts):
                part.append(member_outputs(member, batch))
            batch = []
            if progress:
                progress(len(keys), total)
    outputs = [{task: np.concatenate([p[task] for p in part]) for task in part[0]} for part in parts]
    return pd.DataFrame(keys, columns=KEY), outputs


def face_table(keys: pd.DataFrame, outputs: TaskOutputs, edition: Edition, name: str, extra: dict) -> PredictionTable:
    """Rows of the frames with a face."""
    data = pd.concat([keys, outputs_frame(outputs, edition)], axis=1)
    return PredictionTable(data, TableMeta(tuple(outputs), edition.key, member=name, split="video", extra=extra))


@dataclass
class VideoPrediction:
    """The faces found on a video and the contract table of its every frame."""

    faces: VideoFaces
    table: PredictionTable
    filled: int  # frames without the subject's face, over all subjects


def _phase(progress: PhaseProgress | None, name: str) -> Progress | None:
    return (lambda done, total: progress(name, done, total)) if progress else None


def open_members(runs: list[Path], device: torch.device | str | None = None) -> list[RunNetwork]:
    """The members' networks (``open_image_runs``) on ``device`` (default: the GPU when there is one)."""
    from members.training.distributed import pick_device

    members = open_image_runs(runs)
    for member in members:
        member.model.to(device or pick_device())
    return members


def video_tables(
    members: list[RunNetwork],
    faces: VideoFaces,
    size: int,
    batch_size: int,
    per_member: bool,
    progress: Progress | None = None,
) -> list[PredictionTable]:
    """One video's rows of the frames with a face: each task the mean of the members predicting it, or with
    ``per_member`` (a fusion comes next) one table per member."""
    keys, outputs = run_on_video(members, faces, size, batch_size, progress)
    if per_member:
        return [face_table(keys, out, m.edition, m.name, {}) for m, out in zip(members, outputs)]
    name = members[0].name if len(members) == 1 else "mean(" + ",".join(m.name for m in members) + ")"
    extra = {"members": [m.name for m in members]}
    return [face_table(keys, average_outputs(outputs), members[0].edition, name, extra)]


def whole_table(
    parts: list[list[PredictionTable]],
    counts: dict[str, int],
    fuse: Callable[[list[PredictionTable]], PredictionTable] | None,
    source: str,
) -> PredictionTable:
    """The videos' tables (``video_tables`` of each) joined, the frames without a face filled (``counts``: each
    subject's frames) and, with ``fuse``, fused into one."""
    tables = []
    for same in zip(*parts):
        data = pd.concat([t.data for t in same], ignore_index=True)
        tables.append(fill_missing_frames(PredictionTable(data, same[0].meta), counts, source)[0])
    table = tables[0] if fuse is None else fuse(tables)
    table.meta.extra["source"] = source
    return table


def predict_video(
    path: Path,
    video: str,
    runs: list[Path],
    *,
    fuse: Callable[[list[PredictionTable]], PredictionTable] | None = None,
    search: FaceSearch = FaceSearch(),
    size: int = CROP_SIZE,
    batch_size: int = 64,
    progress: PhaseProgress | None = None,
    device: torch.device | str | None = None,
) -> VideoPrediction:
    """Find, align and predict every face of ``path``; a row for every frame of every subject. Without ``fuse``
    each task is the mean of the members predicting it; ``fuse`` (a saved fusion, ``ensemble.pipeline.
    saved_fusion``) turns the members' tables into one."""
    members = open_members(runs, device)
    faces = scan_video(path, video, search, _phase(progress, "finding faces"))
    if not faces.subjects:
        raise DataError(f"{path}: no face found on any of its {faces.frames} frames; nothing to predict")
    tables = video_tables(members, faces, size, batch_size, fuse is not None, _phase(progress, "predicting"))
    table = whole_table([tables], faces.counts(), fuse, str(path))
    filled = sum(faces.frames - len(track) for track in faces.subjects.values())
    return VideoPrediction(faces, table, filled)


# --- many videos -------------------------------------------------------------------------------------------

TABLES = "tables"
"""In the work folder: ``tables/<video>/<n>.parquet``, each video's tables (one, or one per member)."""


def write_video_tables(faces: VideoFaces, tables: list[PredictionTable], work: WorkFolder) -> None:
    """One video's tables, staged and committed whole to ``work``."""
    staged = work.stage(faces.video)
    folder = safe_join(staged / TABLES, faces.video, what="video id")
    folder.mkdir(parents=True)
    for n, table in enumerate(tables):
        write_table(table, folder / f"{n}.parquet", name=f"{faces.path} ({n})")
    found = {subject: len(track) for subject, track in faces.subjects.items()}
    subjects = [[subject, faces.frames, found[subject]] for subject in faces.subjects]
    work.commit(faces.video, staged, {**source_identity(faces.path), "frames": faces.frames, "subjects": subjects})


def predict_collection(
    videos: dict[str, Path],
    members: list[RunNetwork],
    work: WorkFolder,
    search: FaceSearch,
    *,
    size: int = CROP_SIZE,
    batch_size: int = 64,
    per_member: bool = False,
    progress: CollectionProgress | None = None,
) -> None:
    """Each video's faces found and predicted (``video_tables``), committed to ``work`` when whole."""
    detector = search.detector()
    total, frames = sum(probe_video(p).frames_hint for p in videos.values()), 0
    for n, (video, path) in enumerate(videos.items()):
        step = (
            (lambda d, _, n=n, base=frames: progress(n, len(videos), base + d, max(total, base + d)))
            if progress
            else None
        )
        faces = scan_video(path, video, search, step, detector)
        frames += faces.frames
        tables = video_tables(members, faces, size, batch_size, per_member) if faces.subjects else []
        write_video_tables(faces, tables, work)
        if progress:
            progress(n + 1, len(videos), frames, max(total, frames))


@dataclass
class CollectionPrediction:
    """The table of every video, the frames filled, and the videos where no face was found."""

    table: PredictionTable
    filled: int
    faceless: list[str]


def collected_table(
    videos: dict[str, Path], work: WorkFolder, fuse: Callable[[list[PredictionTable]], PredictionTable] | None
) -> CollectionPrediction:
    """One table of every video whose every video is done in ``work``: joined, filled, fused."""
    records, parts, counts, found, faceless = work.done(), [], {}, 0, []
    for video in videos:
        subjects = records[video]["subjects"]
        if not subjects:
            faceless.append(video)
            continue
        folder = work.root / TABLES / video
        parts.append([read_table(path) for path in sorted(folder.glob("*.parquet"), key=lambda p: int(p.stem))])
        counts.update({subject: frames for subject, frames, _ in subjects})
        found += sum(n for _, _, n in subjects)
    if not parts:
        raise DataError(f"no face found on any frame of the {len(videos)} videos; nothing to predict")
    table = whole_table(parts, counts, fuse, ", ".join(str(p) for p in videos.values()))
    return CollectionPrediction(table, sum(counts.values()) - found, faceless)
