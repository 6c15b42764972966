"""Members on the faces of a raw video: a contract table with a row for every frame of every subject.

The faces are found and aligned exactly as ``crop-faces`` does (``members.video_faces``), kept in memory,
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

from ensemble.contract import KEY, PredictionTable, TableMeta
from ensemble.errors import DataError
from ensemble.frames import fill_missing_frames
from ensemble.tasks import TASKS, Edition, get_edition
from members.face_align import CROP_SIZE
from members.heads import probabilities
from members.predict import load_config, load_run
from members.registry import MEMBERS, registry_name
from members.video_faces import FaceSearch, VideoFaces, aligned_crops, scan_video

Progress = Callable[[str, int, int], None]  # (phase, done, total)
Outputs = dict[str, np.ndarray]  # task -> (faces, outputs) contract values


@dataclass
class ImageMember:
    """A finished run that predicts from face images: its name (the run folder's), config and network."""

    name: str
    cfg: object
    model: torch.nn.Module

    @property
    def edition(self) -> Edition:
        return get_edition(self.cfg.edition)


def load_member(run: Path) -> ImageMember:
    """A run of a member that predicts from images (cnn, keras); others are a one-line error."""
    member_cls, _ = load_config(run)
    kind = registry_name(member_cls)
    if member_cls.on_features:
        names = ", ".join(n for n in MEMBERS.names() if MEMBERS.get(n).reads_images)
        raise DataError(f"{run}: a {kind} member predicts from cached CNN features; use image members ({names})")
    if not member_cls.reads_images:
        raise DataError(
            f"{run}: a {kind} run votes over its backbones' runs; pass those (RUN/<backbone>) as members instead"
        )
    _, cfg, model = load_run(run)
    return ImageMember(run.name, cfg, model)


def load_members(runs: list[Path]) -> list[ImageMember]:
    """The members' networks; their tasks' label sets must be those of the first member's edition (the
    table's)."""
    if not runs:
        raise DataError("no member given: pass --member RUN (a run folder written by train-member)")
    members = [load_member(Path(run)) for run in runs]
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
    """Aligned RGB crops as a member's input: resized to ``size`` (antialiased, as PIL resizes the JPEG
    crops in training) and normalised like ``members.data.image_transform``."""
    import torch.nn.functional as F

    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (x - 0.5) / 0.5


@torch.no_grad()
def member_outputs(member: ImageMember, crops: list[np.ndarray]) -> Outputs:
    """Contract values (EXPR and AU probabilities, VA values) of one member on aligned crops."""
    device = next(member.model.parameters()).device
    out = probabilities(member.model(face_batch(crops, member.cfg.image_size).to(device)))
    return {task: value.float().cpu().numpy() for task, value in out.items()}


def average_outputs(outputs: list[Outputs]) -> Outputs:
    """Each task the mean over the members predicting it (tasks in canonical order)."""
    mean = {}
    for task in TASKS:
        values = [out[task] for out in outputs if task in out]
        if values:
            mean[task] = np.mean(values, axis=0)
    return mean


def outputs_frame(outputs: Outputs, edition: Edition) -> pd.DataFrame:
    """Contract columns of ``outputs`` (one row per face)."""
    return pd.DataFrame({c: outputs[t][:, j] for t in outputs for j, c in enumerate(edition.output_columns(t))}).astype(
        np.float32
    )


def run_on_video(
    members: list[ImageMember],
    faces: VideoFaces,
    size: int,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> tuple[pd.DataFrame, list[Outputs]]:
    """Keys of every face found and each member's outputs on them, in batches of ``batch_size`` crops of
    side ``size``."""
    keys: list[tuple[str, int]] = []
    batch: list[np.ndarray] = []
    parts: list[list[Outputs]] = [[] for _ in members]
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


def face_table(keys: pd.DataFrame, outputs: Outputs, edition: Edition, name: str, extra: dict) -> PredictionTable:
    """Rows of the frames with a face."""
    data = pd.concat([keys, outputs_frame(outputs, edition)], axis=1)
    return PredictionTable(data, TableMeta(tuple(outputs), edition.key, member=name, split="video", extra=extra))


def fuse_tables(tables: list[PredictionTable], fusion, source: Path) -> PredictionTable:
    """The members' tables fused and post-processed by a saved fusion."""
    from ensemble.align import align
    from ensemble.pipeline import fused_table

    stack = align(tables)
    try:
        outputs = fusion.apply(stack)
    except KeyError as exc:
        raise DataError(f"{source}: the fusion learned nothing for {exc.args[0]!r}; fit it on these tasks") from None
    return fused_table(stack, outputs, fusion, split="video")


@dataclass
class VideoPrediction:
    """The faces found on a video and the contract table of its every frame."""

    faces: VideoFaces
    table: PredictionTable
    filled: int  # frames without the subject's face, over all subjects


def _phase(progress: Progress | None, name: str) -> Callable[[int, int], None] | None:
    return (lambda done, total: progress(name, done, total)) if progress else None


def predict_video(
    path: Path,
    video: str,
    runs: list[Path],
    *,
    fusion_path: Path | None = None,
    search: FaceSearch = FaceSearch(),
    size: int = CROP_SIZE,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> VideoPrediction:
    """Find, align and predict every face of ``path``; a row for every frame of every subject."""
    from ensemble.pipeline import FittedFusion
    from members.train import pick_device

    members = load_members(runs)
    for member in members:
        member.model.to(pick_device())
    fusion = FittedFusion.load(fusion_path) if fusion_path else None
    faces = scan_video(path, video, search, _phase(progress, "finding faces"))
    if not faces.subjects:
        raise DataError(f"{path}: no face found on any of its {faces.frames} frames; nothing to predict")
    keys, outputs = run_on_video(members, faces, size, batch_size, _phase(progress, "predicting"))
    if fusion is None:
        name = members[0].name if len(members) == 1 else "mean(" + ",".join(m.name for m in members) + ")"
        extra = {"members": [m.name for m in members]}
        tables = [face_table(keys, average_outputs(outputs), members[0].edition, name, extra)]
    else:
        tables = [face_table(keys, out, m.edition, m.name, {}) for m, out in zip(members, outputs)]
    tables = [fill_missing_frames(t, faces.counts(), str(path))[0] for t in tables]
    table = tables[0] if fusion is None else fuse_tables(tables, fusion, fusion_path)
    table.meta.extra["source"] = str(path)
    filled = sum(faces.frames - len(track) for track in faces.subjects.values())
    return VideoPrediction(faces, table, filled)
