"""Write challenge files from a fused prediction table: gap-filled, decided, validated, zipped, atomic."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.contract import PredictionTable, check_label_set
from ensemble.errors import SubmissionError
from ensemble.frames import fill_missing_frames
from ensemble.io import atomic_dir, check_output
from submissions.formats import TrackFormat, get_format
from submissions.validator import validate_submission

FILES_DIR = "predictions"
ZIP_NAME = "submission.zip"


@dataclass
class SubmissionReport:
    videos: int
    lines: int
    filled: int
    zip_path: Path


def _ints_block(values: np.ndarray) -> str:
    """Lines of comma-separated single-digit ints (classes 0-7, AUs 0/1), built as bytes in one go."""
    n, k = values.shape
    chars = np.full((n, 2 * k), ord(","), dtype=np.uint8)
    chars[:, 0::2] = values.astype(np.uint8) + ord("0")
    chars[:, -1] = ord("\n")
    return chars.tobytes().decode("ascii")


def _va_lines(values: np.ndarray) -> str:
    return "".join(f"{v:.6f},{a:.6f}\n" for v, a in np.clip(values, -1, 1).tolist())


def decided_columns(fmt: TrackFormat, table: PredictionTable) -> dict[str, np.ndarray]:
    """Challenge values per task from the table's outputs: class index, clipped VA, 0/1 AUs at 0.5."""
    out = {}
    if "expr" in fmt.tasks:
        out["expr"] = table.outputs("expr").argmax(axis=1)[:, None]
    if "va" in fmt.tasks:
        out["va"] = np.clip(table.outputs("va"), -1, 1)
    if "au" in fmt.tasks:
        out["au"] = (table.outputs("au") >= 0.5).astype(np.int8)
    return out


def _write_per_video(folder: Path, fmt: TrackFormat, table: PredictionTable) -> None:
    values = decided_columns(fmt, table)[fmt.track]
    videos = table.data["video"].to_numpy()
    bounds = np.flatnonzero(videos[1:] != videos[:-1]) + 1
    for start, stop in zip(np.r_[0, bounds], np.r_[bounds, len(videos)]):
        block = _va_lines(values[start:stop]) if fmt.track == "va" else _ints_block(values[start:stop])
        (folder / fmt.file_name(videos[start])).write_text(fmt.header + "\n" + block)


def _write_mtl(folder: Path, fmt: TrackFormat, table: PredictionTable) -> None:
    d = decided_columns(fmt, table)
    images = table.data["video"] + "/" + table.data["frame"].map("{:05d}.jpg".format)
    va = pd.DataFrame(d["va"]).map("{:.6f}".format)
    aus = _ints_block(d["au"]).splitlines()
    lines = [f"{img},{v},{a},{e},{au}" for img, v, a, e, au in zip(images, va[0], va[1], d["expr"][:, 0], aus)]
    (folder / fmt.file_name("")).write_text(fmt.header + "\n" + "\n".join(lines) + "\n")


def _zip(folder: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.iterdir()):
            zf.write(path, path.name)


def write_submission(
    table: PredictionTable, track: str, edition: int, counts: dict[str, int], out: Path, *, force: bool = False
) -> SubmissionReport:
    """Challenge files under ``out/predictions/`` and ``out/submission.zip``, all or nothing."""
    fmt = get_format(track, edition)
    check_output(out, force)
    missing = [t for t in fmt.tasks if t not in table.meta.tasks]
    if missing:
        raise SubmissionError(
            f"the {track} track needs {', '.join(missing)} outputs; the table has {', '.join(table.meta.tasks)}"
        )
    check_label_set(table.meta, edition, "fused table")
    full, filled = fill_missing_frames(table, counts, "fused table")
    with atomic_dir(out) as tmp:
        files = tmp / FILES_DIR
        files.mkdir()
        (_write_per_video if fmt.per_video else _write_mtl)(files, fmt, full)
        problems = validate_submission(files, track, edition, counts)
        if problems:
            raise SubmissionError(f"written files failed validation: {problems[0]} ({len(problems)} problem(s))")
        _zip(files, tmp / ZIP_NAME)
    return SubmissionReport(len(counts), len(full.data), filled, out / ZIP_NAME)
