"""A synthetic Aff-Wild2: face-like frames and ABAW annotation files in the real layout.

Labels evolve smoothly in time within a video (expression segments, slowly drifting valence and arousal,
action units with onsets and offsets), some frames are unannotated (sentinel values) and some have no
face image, exactly the irregularities the real data has. Deterministic for a seed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.frames import FRAME_ROOT, face_file, face_images, video_folders
from ensemble.tasks import (
    DEFAULT_EDITION,
    MTL_FILE,
    PER_VIDEO,
    SENTINELS,
    SPLIT_FOLDERS,
    TASKS,
    Edition,
    get_edition,
)
from members.synthetic.faces import AUS_ALL, FaceState, Identity, draw_face

# Per expression: (valence, arousal) centre and the AUs it tends to activate (FACS prototypes).
EXPR_PROFILE: dict[str, tuple[float, float, dict[str, float]]] = {
    "Neutral": (0.0, -0.2, {}),
    "Anger": (-0.6, 0.6, {"AU4": 0.95, "AU7": 0.8, "AU23": 0.7, "AU24": 0.6, "AU10": 0.3}),
    "Disgust": (-0.55, 0.2, {"AU10": 0.9, "AU4": 0.5, "AU15": 0.5, "AU7": 0.3}),
    "Fear": (-0.5, 0.7, {"AU1": 0.85, "AU2": 0.7, "AU4": 0.6, "AU20": 0.8, "AU25": 0.7, "AU26": 0.3}),
    "Happiness": (0.7, 0.35, {"AU6": 0.85, "AU12": 0.95, "AU25": 0.6, "AU7": 0.3}),
    "Sadness": (-0.6, -0.45, {"AU1": 0.75, "AU4": 0.6, "AU15": 0.85, "AU6": 0.2}),
    "Surprise": (0.25, 0.75, {"AU1": 0.9, "AU2": 0.9, "AU25": 0.85, "AU26": 0.85}),
    "Other": (0.05, 0.1, {"AU12": 0.3, "AU15": 0.3, "AU20": 0.3, "AU24": 0.3}),
}
EXPR_WEIGHTS = {"Neutral": 3.0, "Other": 1.0}  # neutral dominates real data; the rest get weight 1.5


@dataclass
class SyntheticConfig:
    seed: int = 0
    train_videos: int = 8
    val_videos: int = 6
    test_videos: int = 4
    min_frames: int = 120  # frames per video are drawn uniformly in [min_frames, max_frames]
    max_frames: int = 200
    size: int = 48  # image side in pixels
    edition: int | str = DEFAULT_EDITION  # the label sets and release names written (7 or 8 classes, 8 or 12 AUs)
    unannotated: float = 0.05  # share of frames in unannotated stretches, per task
    missing_faces: float = 0.03  # share of frames with no face image


@dataclass
class VideoLabels:
    """Per-frame ground truth of one video: class index, (valence, arousal), AU intensities in [0, 1]."""

    expr: np.ndarray
    va: np.ndarray
    au: np.ndarray  # (frames, len(AUS_ALL)); a unit is active where intensity >= 0.5
    other: np.ndarray


def smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 with edge padding (labels ramp instead of jumping)."""
    radius = int(3 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    pad = np.pad(x, [(radius, radius)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    if x.ndim == 1:
        return np.convolve(pad, kernel, mode="valid")
    return np.stack([np.convolve(pad[:, j], kernel, mode="valid") for j in range(x.shape[1])], axis=1)


def expression_segments(n: int, classes: tuple[str, ...], rng: np.random.Generator) -> np.ndarray:
    weights = np.array([EXPR_WEIGHTS.get(c, 1.5) for c in classes])
    out = np.empty(n, dtype=np.int64)
    start = 0
    while start < n:
        length = int(rng.integers(15, 55))
        out[start : start + length] = rng.choice(len(classes), p=weights / weights.sum())
        start += length
    return out


def video_labels(n: int, classes: tuple[str, ...], rng: np.random.Generator) -> VideoLabels:
    """Smooth affect trajectories for a video of ``n`` frames."""
    expr = expression_segments(n, classes, rng)
    centre = np.array([EXPR_PROFILE[classes[k]][:2] for k in expr])
    drift = smooth(rng.normal(0, 1.0, (n, 2)), 8.0) * 2.0
    va = np.clip(smooth(centre, 8.0) + 0.35 * drift, -1, 1)
    proto = np.array([[EXPR_PROFILE[classes[k]][2].get(a, 0.05) for a in AUS_ALL] for k in expr])
    au = np.clip(smooth(proto, 2.0) + 0.9 * smooth(rng.normal(0, 1.0, proto.shape), 3.0), 0, 1)
    other = smooth((np.array(classes)[expr] == "Other").astype(float), 2.0)
    return VideoLabels(expr, va.astype(np.float32), au.astype(np.float32), other)


def frame_state(lab: VideoLabels, i: int, rng: np.random.Generator, pose: np.ndarray) -> FaceState:
    au = dict(zip(AUS_ALL, lab.au[i].tolist()))
    dx, dy, angle, light = pose[i]
    return FaceState(float(lab.va[i, 0]), float(lab.va[i, 1]), au, float(lab.other[i]), dx, dy, angle, light)


def stretches(n: int, share: float, min_len: int, max_len: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask of about ``share * n`` frames in random stretches."""
    mask = np.zeros(n, dtype=bool)
    while mask.mean() < share:
        start, length = int(rng.integers(0, n)), int(rng.integers(min_len, max_len + 1))
        mask[start : start + length] = True
    return mask


def annotation_values(lab: VideoLabels, task: str, edition: Edition) -> np.ndarray:
    if task == "expr":
        return lab.expr[:, None]
    if task == "va":
        return lab.va
    cols = [AUS_ALL.index(a) for a in edition.aus]
    return (lab.au[:, cols] >= 0.5).astype(np.int64)


def write_annotation(path: Path, values: np.ndarray, task: str, edition: Edition, unannotated: np.ndarray) -> None:
    fmt = "{:.3f}" if task == "va" else "{:d}"
    lines = [edition.header(task)]
    for row, skip in zip(values.tolist(), unannotated):
        row = [SENTINELS[task]] * len(row) if skip else row
        lines.append(",".join(fmt.format(v) if not skip else str(v) for v in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def video_names(cfg: SyntheticConfig) -> dict[str, list[str]]:
    """Aff-Wild2-style names (hyphens, resolutions, a _left/_right pair), stable for a config."""
    names, k = {}, 1
    for split in ("train", "val", "test"):
        count = getattr(cfg, f"{split}_videos")
        names[split] = [f"{k + i}-30-640x360" if (k + i) % 5 else f"video{k + i}_left" for i in range(count)]
        k += count
    return names


def write_video(
    root: Path, split: str, video: str, cfg: SyntheticConfig, rng: np.random.Generator, frame_root: str = FRAME_ROOT
) -> int:
    """Frames (under ``frame_root``) and annotation files of one video; returns its number of frames."""
    edition = get_edition(cfg.edition)
    n = int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
    lab = video_labels(n, edition.expr_classes, rng)
    who = Identity.sample(rng)
    pose = np.column_stack([smooth(rng.normal(0, 1, (n, 3)), 5.0) * [6, 5, 14], np.full(n, rng.uniform(-1, 1))])
    missing = stretches(n, cfg.missing_faces, 1, 4, rng)
    folder = root / frame_root / video
    folder.mkdir(parents=True, exist_ok=True)
    for i in np.flatnonzero(~missing):
        draw_face(frame_state(lab, i, rng, pose), who, cfg.size, rng).save(folder / face_file(i + 1), quality=90)
    labels_root = root / "test_labels" if split == "test" else root
    for task in TASKS:
        path = labels_root / edition.folders[task] / SPLIT_FOLDERS[split] / f"{video}.txt"
        unannotated = stretches(n, cfg.unannotated, 5, 20, rng)
        write_annotation(path, annotation_values(lab, task, edition), task, edition, unannotated)
    return n


# The organisers' test-set files, in the folders participants' scripts open them from: upczww/abaw5 and
# upczww/abaw6 EXPR/test.py (test_set_examples/, names_of_videos_in_each_test_set/); khanhnd185/MTL-ABAW4 test.py
# (MTL_Challenge_test_set_release.txt: a header line, then video/00001.jpg). The files' names are the edition's
# (``Edition.release`` in ensemble/tasks.py).
TEST_SET = "test_set"
NAMES_DIR = "names_of_videos_in_each_test_set"
EXAMPLES_DIR = "test_set_examples"
MTL_LIST = "MTL_Challenge_test_set_release.txt"
SECOND_FRAME_ROOT = FRAME_ROOT + "_new_50_vids"
"""Where recent test releases put the frames of their later test videos (Byeooon/cvpr_abaw_10th txt.py)."""


def example_name(track: str, edition: Edition) -> str:
    """The organisers' example file of ``track``: ``ABAW_Expr_test_set_sample.txt`` (ABAW10)."""
    return edition.release.examples[track]


def track_order(videos: list[str], track: str) -> list[str]:
    """Each track lists the test videos in its own order (the organisers' lists differ per track)."""
    if track == "va":
        return videos[::-1]
    if track == "au":
        return videos[1:] + videos[:1]
    return list(videos)


def organiser_files(root: str | Path, edition: Edition) -> dict[str, tuple[Path, Path | None]]:
    """Per track the edition offers: (frame source, video-name list) as ``submit --frames --videos`` take them:
    the example file (2023 on) or the test manifest (per-video editions); the image list for ``mtl``."""
    folder = Path(root) / TEST_SET
    files = {}
    for track in edition.tracks:
        names = folder / NAMES_DIR / edition.release.lists.get(track, "")
        if edition.track_layout(track) == MTL_FILE:
            files[track] = (folder / MTL_LIST, None)
        elif edition.layout == PER_VIDEO:
            files[track] = (Path(root) / "test_frames.csv", names)
        else:
            files[track] = (folder / EXAMPLES_DIR / example_name(track, edition), names)
    return files


def _faces(root: Path, video: str) -> list[int]:
    return sorted(face_images(video_folders(root)[video]))


def write_organiser_files(root: Path, counts: dict[str, int], edition: Edition) -> None:
    """The organisers' files of the test split: a video-name list and an example file per track (a row for
    every frame, faces or not), and the multi-task image list (every third frame with a face)."""
    for track, (frames, names) in organiser_files(root, edition).items():
        videos = track_order(list(counts), track)
        for folder in (frames.parent, names.parent if names else frames.parent):
            folder.mkdir(parents=True, exist_ok=True)
        if names is not None:
            names.write_text("".join(f"{v}\n" for v in videos))
        if frames.name == MTL_LIST:
            rows = [f"{v}/{f:05d}.jpg" for v in videos for f in _faces(root, v) if f % 3 == 1]
            frames.write_text("image\n" + "".join(f"{r}\n" for r in rows))
        elif frames.suffix == ".txt":
            rows = [f"{v}/{f:05d}.jpg," for v in videos for f in range(1, counts[v] + 1)]
            frames.write_text(f"image_location,{edition.header(track)}\n" + "".join(f"{r}\n" for r in rows))


def make_dataset(
    out: str | Path, cfg: SyntheticConfig | None = None, progress: Callable[[int, int], None] | None = None
) -> dict:
    """Write the whole dataset under ``out``; returns a summary (also saved as ``dataset.json``)."""
    cfg = cfg or SyntheticConfig()
    root = Path(out)
    rng = np.random.default_rng(cfg.seed)
    names = video_names(cfg)
    total = sum(len(v) for v in names.values())
    counts: dict[str, dict[str, int]] = {}
    for split, videos in names.items():
        counts[split] = {}
        for i, video in enumerate(videos):
            frame_root = SECOND_FRAME_ROOT if split == "test" and 2 * i >= len(videos) > 1 else FRAME_ROOT
            counts[split][video] = write_video(root, split, video, cfg, rng, frame_root)
            if progress:
                progress(sum(len(c) for c in counts.values()), total)
        manifest = pd.DataFrame({"video": list(counts[split]), "frames": list(counts[split].values())})
        manifest.to_csv(root / f"{split}_frames.csv", index=False)
    write_organiser_files(root, counts["test"], get_edition(cfg.edition))
    summary = {"config": asdict(cfg), "frames": counts}
    (root / "dataset.json").write_text(json.dumps(summary, indent=1))
    return summary
