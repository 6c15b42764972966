"""Read Aff-Wild2 annotation folders into labels tables (video, frame, label columns).

One ``.txt`` per video: line 1 is the header of the edition's label set, line ``i + 1`` holds frame ``i``.
Frames marked with the task's sentinel are dropped, so no metric ever sees one.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.datasets import AFF_WILD2, check_label_names, detect_dataset, read_dataset
from ensemble.errors import ContractError, LabelsError
from ensemble.io import read_bounded
from ensemble.tasks import RELEASE_FOLDERS, SENTINELS, SPLIT_FOLDERS, Edition


def track_dir(root: Path, task: str, split: str, edition: Edition) -> Path:
    """The folder of ``task``'s annotations for ``split``, under ``root`` or one level below it: under the
    edition's folder name or any other release's (``EXPR_Set``, ``EXPR_Classification_Challenge``,
    ``EXPR_Recognition_Challenge``), else the one track folder whose files start with the task's header."""
    names = list(dict.fromkeys([edition.folders[task], *(f[task] for f in RELEASE_FOLDERS)]))
    split_name = SPLIT_FOLDERS[split]
    for name in names:
        for found in [root / name / split_name, *sorted(root.glob(f"*/{name}/{split_name}"))]:
            if found.is_dir():
                return found
    found = _by_content(root, task, split_name, edition)
    if found is None:
        raise LabelsError(
            f"{root}: no {task} annotations for split {split!r}: looked for {names[0]}/{split_name} "
            f"(or {', '.join(names[1:])}, or a folder whose files' header is {edition.header(task)!r})"
        )
    return found


def _by_content(root: Path, task: str, split_name: str, edition: Edition) -> Path | None:
    """The ``<track>/<split>`` folder (under ``root`` or one level below) whose first annotation file's header is
    ``task``'s; two such folders are an error naming both."""
    header, hits = edition.header(task), []
    for folder in sorted([*root.glob(f"*/{split_name}"), *root.glob(f"*/*/{split_name}")]):
        first = next(iter(sorted(folder.glob("*.txt"))), None)
        if first is not None and _header_line(first) == header:
            hits.append(folder)
    if len(hits) > 1:
        raise LabelsError(f"{root}: two folders hold {task} annotations for {split_name}: {hits[0]} and {hits[1]}")
    return hits[0] if hits else None


def _header_line(path: Path) -> str:
    """The first line of a regular file, spaces removed (at most 4 kB read); "" for anything else (a FIFO is
    not waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as file:
        head = file.read(4096) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    return head.decode("utf-8-sig", "replace").split("\n", 1)[0].strip().replace(" ", "")


def annotation_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise LabelsError(f"{folder}: no annotation .txt files")
    return files


def read_lines(path: Path) -> list[str]:
    """Lines of an annotation file (UTF-8, a byte-order mark ignored) without trailing blank lines; a blank
    line inside the file is an error, since every line after the header is one frame."""
    try:
        lines = read_bounded(path, "annotation file").decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise LabelsError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    blank = [i for i, ln in enumerate(lines) if not ln.strip()]
    if blank:
        raise LabelsError(
            f"{path}: blank line inside the file: {len(blank)} line(s), first line {blank[0] + 1} "
            "(every line after the header is one frame; a blank line would shift the frames after it)"
        )
    return lines


def _parse_values(path: Path, task: str, edition: Edition) -> np.ndarray:
    lines = read_lines(path)
    expected = edition.header(task)
    if not lines or lines[0].strip().replace(" ", "") != expected:
        got = lines[0].strip()[:80] if lines else "(empty file)"
        raise LabelsError(
            f"{path}: header does not match edition {edition.name} {task}: expected {expected!r}, got {got!r}"
        )
    width = 1 if task == "expr" else len(edition.label_names(task))
    rows = lines[1:]
    for i, ln in enumerate(rows):
        if ln.count(",") != width - 1:
            raise LabelsError(
                f"{path}: expected {width} value(s) per line for {task}, line {i + 2} has {ln.count(',') + 1}"
            )
    try:
        return np.array([[float(v) for v in ln.split(",")] for ln in rows], dtype=np.float64).reshape(-1, width)
    except ValueError:
        bad = next(i for i, ln in enumerate(rows) if not _is_numbers(ln))
        raise LabelsError(f"{path}: unparsable value on line {bad + 2}: {rows[bad][:60]!r}") from None


def _is_numbers(line: str) -> bool:
    try:
        [float(v) for v in line.split(",")]
        return True
    except ValueError:
        return False


def _valid_mask(values: np.ndarray, task: str, edition: Edition, path: Path) -> np.ndarray:
    """True on annotated frames; values neither valid nor the sentinel are an error."""
    sentinel = SENTINELS[task]
    if task == "expr":
        ok = np.isin(values[:, 0], np.arange(-1, len(edition.expr_classes)))
        annotated = values[:, 0] != sentinel
    elif task == "va":
        annotated = (values != sentinel).all(axis=1)
        ok = ~annotated | ((values >= -1) & (values <= 1)).all(axis=1)
    else:
        ok = np.isin(values, (0, 1, sentinel)).all(axis=1)
        annotated = (values != sentinel).all(axis=1)
    if not ok.all():
        first = int(np.flatnonzero(~ok)[0])
        raise LabelsError(f"{path}: invalid {task} values: {int((~ok).sum())} line(s), first on line {first + 2}")
    return annotated


def read_annotation_file(path: Path, task: str, edition: Edition) -> tuple[pd.DataFrame, int]:
    """Annotated frames of one video file, and the number of frames the file covers."""
    values = _parse_values(path, task, edition)
    annotated = _valid_mask(values, task, edition, path)
    cols = edition.label_columns(task)
    frames = np.flatnonzero(annotated) + 1
    data = pd.DataFrame(values[annotated], columns=cols)
    data = data.astype(np.int64 if task in ("expr", "au") else np.float32)
    data.insert(0, "frame", frames.astype(np.int64))
    data.insert(0, "video", path.stem)
    return data, len(values)


def read_labels(
    root: str | Path, task: str, split: str, edition: Edition, videos: Iterable[str] | None = None
) -> pd.DataFrame:
    """Labels table of ``task`` for ``split`` ('train', 'val' or 'test') with sentinel frames dropped; from a
    class-folder, clip or list dataset (``ensemble.datasets``), one row per image or clip. With ``videos``
    (those the predictions name) only their annotation files are opened (``read_label_folder``)."""
    if detect_dataset(root) != AFF_WILD2:
        return dataset_labels(Path(root), task, split, edition)
    folder = track_dir(Path(root), task, split, edition)
    return read_label_folder(folder, task, edition, videos)


def read_label_folder(
    folder: str | Path, task: str, edition: Edition, videos: Iterable[str] | None = None
) -> pd.DataFrame:
    """Labels table from a folder of per-video annotation files. With ``videos`` only their files are read:
    the file of any other video is an error found from its name alone, never opened (the predictions miss an
    annotated video, as ``evaluate.match_labels`` says of a labelled frame)."""
    files = annotation_files(Path(folder))
    if videos is not None:
        files = _files_of(files, set(videos), task)
    parts = [read_annotation_file(p, task, edition)[0] for p in files]
    return pd.concat(parts, ignore_index=True)


def _files_of(files: list[Path], videos: set[str], task: str) -> list[Path]:
    others = [p for p in files if p.stem not in videos]
    if others:
        raise ContractError(
            f"predictions miss {len(others)} video(s) with {task} annotations, first {others[0].stem!r} "
            f"({others[0]}); every annotated video must be predicted"
        )
    return files


def annotation_frame_counts(folder: str | Path, task: str, edition: Edition) -> dict[str, int]:
    """Frames per video as the annotation files count them (one line per frame of the video)."""
    return {p.stem: read_annotation_file(p, task, edition)[1] for p in annotation_files(Path(folder))}


def dataset_labels(root: Path, task: str, split: str, edition: Edition) -> pd.DataFrame:
    """Labels of a class-folder, clip or list dataset, whose classes ``edition`` (a label set) must name."""
    if task != "expr":
        raise LabelsError(f"{root}: a classification dataset has expression labels only, not {task}")
    dataset = read_dataset(root)
    check_label_names(dataset, edition.expr_classes, f"label set {edition.name}")
    return dataset.labels(split)
