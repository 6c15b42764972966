"""Write challenge files from a fused prediction table: rows in the frame source's order, gaps filled by a
named policy, values decided, files validated, zipped, all or nothing."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ensemble.contract import PredictionTable, check_label_set
from ensemble.errors import SubmissionError
from ensemble.frames import MANIFEST, FrameSource, from_counts, video_runs
from ensemble.metrics import decide
from ensemble.outputs import Outputs, safe_join
from ensemble.tasks import PER_VIDEO, SENTINELS, Edition
from submissions.fill import DEFAULT_FILL, check_fill, fill, place
from submissions.formats import TrackFormat, check_source, get_format
from submissions.validator import validate_submission

FILES_DIR = "predictions"
ZIP_NAME = "submission.zip"


@dataclass
class SubmissionReport:
    """What was written: files, rows, frames filled (and how), table videos the frame source did not list."""

    track: str
    edition: str
    layout: str
    files: int
    rows: int
    filled: int
    fill: str
    dropped: int
    zip_path: Path


def as_source(frames: FrameSource | dict[str, int]) -> FrameSource:
    """A frame source, or frames 1..n of each video of a ``{video: n}`` dict."""
    return frames if isinstance(frames, FrameSource) else from_counts(MANIFEST, Path("frame counts"), frames)


# --- values as text ------------------------------------------------------------------------------------------


def _class_strings(index: np.ndarray, k: int) -> list[str]:
    names = np.array([str(i) for i in range(-1, k)])
    return names[index.astype(np.int64) + 1].tolist()


def _bit_strings(bits: np.ndarray) -> list[str]:
    """Rows of 0/1 bits as ``'1,0,...'``, built as bytes in one go."""
    n, k = bits.shape
    chars = np.full((n, 2 * k), ord(","), dtype=np.uint8)
    chars[:, 0::2] = bits.astype(np.uint8) + ord("0")
    chars[:, -1] = ord("\n")
    return chars.tobytes().decode("ascii").split("\n")[:n]


def _fixed6_strings(values: np.ndarray) -> list[str]:
    """Rows of values in [-1, 1] with six decimals (``'-0.250000,1.000000'``), built as bytes in one go."""
    n, k = values.shape
    q = np.rint(np.clip(values, -1, 1) * 1e6).astype(np.int64)
    digits = np.abs(q)
    chars = np.empty((n, k, 10), dtype=np.uint8)
    chars[:, :, 0] = ord("-")
    chars[:, :, 1] = digits // 1_000_000 + ord("0")
    chars[:, :, 2] = ord(".")
    for power in range(6):
        chars[:, :, 8 - power] = (digits // 10**power) % 10 + ord("0")
    chars[:, :, 9] = ord(",")
    chars[:, -1, 9] = ord("\n")
    keep = np.ones((n, k, 10), dtype=bool)
    keep[:, :, 0] = q < 0
    return chars[keep].tobytes().decode("ascii").split("\n")[:n]


def decided(fmt: TrackFormat, table: PredictionTable, placement, policy: str) -> dict[str, np.ndarray]:
    """Challenge values per task on the source rows (``metrics.decide``: class index, VA in [-1, 1], 0/1 AUs)."""
    return {task: decide(task, fill(table.outputs(task), placement, policy)) for task in fmt.tasks}


def _sentinel(task: str, edition: Edition) -> str:
    width = {"expr": 1, "va": 2, "au": len(edition.aus)}[task]
    return ",".join([str(SENTINELS[task])] * width)


def value_strings(fmt: TrackFormat, values: dict[str, np.ndarray], sentinel_rows: np.ndarray | None) -> list[str]:
    """One ``'v1,v2,...'`` string per row, tasks in the format's order; ``sentinel_rows`` get sentinels."""
    parts = []
    for task in fmt.tasks:
        if task == "expr":
            text = _class_strings(values[task], len(fmt.edition.expr_classes))
        elif task == "va":
            text = _fixed6_strings(values[task])
        else:
            text = _bit_strings(values[task])
        if sentinel_rows is not None:
            mark = _sentinel(task, fmt.edition)
            for row in np.flatnonzero(sentinel_rows).tolist():
                text[row] = mark
        parts.append(text)
    return parts[0] if len(parts) == 1 else list(map(",".join, zip(*parts)))


# --- files ---------------------------------------------------------------------------------------------------


def _write_text(path: Path, header: str, lines) -> None:
    path.write_bytes((header + "\n" + "\n".join(lines) + "\n").encode("utf-8"))


def _write_per_video(folder: Path, fmt: TrackFormat, source: FrameSource, rows: list[str]) -> int:
    runs = video_runs(source.codes)
    for start, stop in runs:
        video = source.videos[source.codes[start]]
        _write_text(safe_join(folder, video, ".txt", what="video id"), fmt.header, rows[start:stop])
    return len(runs)


def _write_single(folder: Path, fmt: TrackFormat, source: FrameSource, rows: list[str]) -> int:
    keyed = map(",".join, zip(source.image_names(), rows))
    _write_text(folder / fmt.file_name(), fmt.header, keyed)
    return 1


def _zip(folder: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for path in sorted(folder.iterdir()):
            zf.write(path, path.name)


def _check_inputs(fmt: TrackFormat, table: PredictionTable, source: FrameSource, policy: str) -> None:
    missing = [t for t in fmt.tasks if t not in table.meta.tasks]
    if missing:
        raise SubmissionError(
            f"the {fmt.track} track needs {', '.join(missing)} outputs; the table has {', '.join(table.meta.tasks)}"
        )
    check_label_set(table.meta, fmt.edition.key, "fused table", fmt.tasks)
    check_fill(policy, fmt.edition)
    check_source(fmt, source)


def write_files(
    table: PredictionTable, fmt: TrackFormat, source: FrameSource, folder: Path, policy: str = DEFAULT_FILL
) -> SubmissionReport:
    """Challenge files of ``fmt`` under ``folder/predictions/`` and ``folder/submission.zip``."""
    _check_inputs(fmt, table, source, policy)
    placement = place(table, source)
    values = decided(fmt, table, placement, policy)
    rows = value_strings(fmt, values, ~placement.exact if policy == "sentinel" else None)
    files = folder / FILES_DIR
    files.mkdir()
    count = (_write_per_video if fmt.layout == PER_VIDEO else _write_single)(files, fmt, source, rows)
    check = validate_submission(files, fmt, source)
    if check.problems:
        raise SubmissionError(
            f"written files failed validation: {check.problems[0]} ({len(check.problems)} problem(s))"
        )
    _zip(files, folder / ZIP_NAME)
    name = fmt.edition.name
    return SubmissionReport(
        fmt.track, name, fmt.layout, count, len(rows), placement.filled, policy, placement.dropped, folder / ZIP_NAME
    )


def write_submission(
    table: PredictionTable,
    track: str,
    edition: Edition | int | str,
    frames: FrameSource | dict[str, int],
    out: str | Path,
    *,
    fill: str = DEFAULT_FILL,
    force: bool = False,
    inputs: tuple = (),
) -> SubmissionReport:
    """Challenge files under ``out/predictions/`` and ``out/submission.zip``, all or nothing (``inputs`` are
    the command's input paths, which ``out`` must not replace)."""
    fmt = get_format(track, edition)
    out = Path(out)
    with Outputs(force=force, inputs=inputs) as outs:
        report = write_files(table, fmt, as_source(frames), outs.folder(out, kind="submission"), fill)
    return replace(report, zip_path=out / ZIP_NAME)
