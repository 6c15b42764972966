"""Frame counts of videos (manifests, frame folders) and filling frames a prediction table lacks.

A submission and a member's predictions need a row for every frame of every video, including frames
where no face was found. Missing rows are filled by linear interpolation between the neighbouring
predicted frames (the nearest one at either end), which keeps probabilities summing to 1.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.contract import KEY, PredictionTable, output_columns
from ensemble.errors import ContractError, DataError

FRAME_FILE = re.compile(r"^(\d{5})\.(jpg|png)$")


def read_manifest(path: str | Path) -> dict[str, int]:
    """Frames per video from a CSV with columns ``video,frames``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: frame manifest not found")
    try:
        data = pd.read_csv(path, dtype={"video": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        raise DataError(f"{path}: not a readable CSV manifest") from None
    if list(data.columns[:2]) != ["video", "frames"]:
        raise DataError(f"{path}: manifest header must be 'video,frames', got {','.join(map(str, data.columns))!r}")
    bad = ~pd.to_numeric(data["frames"], errors="coerce").fillna(0).gt(0)
    if bad.any():
        raise DataError(
            f"{path}: frame counts must be positive integers: {int(bad.sum())} row(s), first {data['video'][bad].iloc[0]!r}"
        )
    if data["video"].duplicated().any():
        raise DataError(f"{path}: video listed twice: {data['video'][data['video'].duplicated()].iloc[0]!r}")
    return dict(zip(data["video"], data["frames"].astype(int)))


def count_frame_folders(root: str | Path, videos: list[str] | None = None) -> dict[str, int]:
    """Frames per video from ``root/<video>/NNNNN.jpg``: the highest frame number present (frames after
    the last detected face cannot be seen this way; prefer a manifest)."""
    root = Path(root)
    names = videos if videos is not None else sorted(p.name for p in root.iterdir() if p.is_dir())
    counts = {}
    for video in names:
        numbers = [int(m.group(1)) for p in (root / video).glob("*") if (m := FRAME_FILE.match(p.name))]
        if not numbers:
            raise DataError(f"{root / video}: no frame images (expected 00001.jpg ...)")
        counts[video] = max(numbers)
    return counts


def frame_counts(source: str | Path) -> dict[str, int]:
    """A manifest CSV or a folder of frame folders."""
    return count_frame_folders(source) if Path(source).is_dir() else read_manifest(source)


def check_coverage(table: PredictionTable, counts: dict[str, int], source: str) -> None:
    """Every table video is in the manifest, every manifest video is in the table, no frame past the end."""
    videos = table.data["video"].unique()
    unknown = [v for v in videos if v not in counts]
    if unknown:
        raise ContractError(f"{source}: manifest misses {len(unknown)} video(s) of the table, first {unknown[0]!r}")
    absent = [v for v in counts if v not in set(videos)]
    if absent:
        raise ContractError(f"{source}: no predictions for {len(absent)} manifest video(s), first {absent[0]!r}")
    last = table.data.groupby("video", sort=False)["frame"].max()
    over = [v for v, f in last.items() if f > counts[v]]
    if over:
        raise ContractError(
            f"{source}: frames past the video's length in {len(over)} video(s), first {over[0]!r} "
            f"(frame {last[over[0]]} of {counts[over[0]]})"
        )


def fill_missing_frames(
    table: PredictionTable, counts: dict[str, int], source: str = "predictions"
) -> tuple[PredictionTable, int]:
    """A table with a row for frames 1..n of every video in ``counts``; returns it and the rows added."""
    check_coverage(table, counts, source)
    cols = output_columns(table.meta.tasks, table.edition)
    parts, added = [], 0
    for video, rows in table.data.groupby("video", sort=True):
        n = counts[video]
        have = rows["frame"].to_numpy()
        if len(have) == n:
            parts.append(rows)
            continue
        frames = np.arange(1, n + 1)
        values = rows[cols].to_numpy(np.float64)
        filled = np.column_stack([np.interp(frames, have, values[:, j]) for j in range(len(cols))])
        parts.append(
            pd.concat(
                [
                    pd.DataFrame({"video": video, "frame": frames}),
                    pd.DataFrame(filled.astype(np.float32), columns=cols),
                ],
                axis=1,
            )
        )
        added += n - len(have)
    data = pd.concat(parts, ignore_index=True)[KEY + cols]
    meta = table.meta
    meta.extra = {
        **meta.extra,
        "filled_frames": int(meta.extra.get("filled_frames", 0)) + added,
        "fill": "linear interpolation between neighbouring frames, nearest at the ends",
    }
    return PredictionTable(data, meta), added
