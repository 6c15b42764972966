"""Check a submission (ours or anyone's) against a track's format and the frame counts of the videos.

Every problem is listed: missing or extra videos, wrong header, wrong line count, unparsable or
out-of-range values.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.errors import SubmissionError
from submissions.formats import MTL_FILE, TrackFormat, get_format


def _read_texts(source: Path) -> dict[str, str]:
    """File name -> text of every .txt in a folder (or its predictions/ subfolder) or a zip."""
    if source.is_file() and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as zf:
            return {Path(n).name: zf.read(n).decode("utf-8", "replace") for n in zf.namelist() if n.endswith(".txt")}
    if source.is_dir():
        folder = source / "predictions" if (source / "predictions").is_dir() else source
        return {p.name: p.read_text(errors="replace") for p in sorted(folder.glob("*.txt"))}
    raise SubmissionError(f"{source}: not a submission folder or zip file")


def _parse(name: str, text: str, fmt: TrackFormat) -> tuple[np.ndarray | None, list[str]]:
    """Values of a per-video file and its problems."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != fmt.header:
        got = lines[0][:60] if lines else "(empty file)"
        return None, [f"{name}: wrong header: expected {fmt.header!r}, got {got!r}"]
    try:
        values = (
            pd.read_csv(io.StringIO(text), header=None, skiprows=1, dtype=np.float64).to_numpy()
            if len(lines) > 1
            else np.empty((0, fmt.width))
        )
    except (ValueError, pd.errors.ParserError):
        return None, [f"{name}: unparsable values"]
    if values.shape[1] != fmt.width:
        return None, [f"{name}: expected {fmt.width} value(s) per line, got {values.shape[1]}"]
    if np.isnan(values).any():
        row = int(np.flatnonzero(np.isnan(values).any(axis=1))[0])
        return None, [f"{name}: unparsable or empty value on line {row + 2}"]
    return values, []


def _range_problems(name: str, values: np.ndarray, fmt: TrackFormat) -> list[str]:
    if fmt.track == "va":
        bad = (np.abs(values) > 1).any(axis=1)
        rule = "values outside [-1, 1]"
    elif fmt.track == "expr":
        bad = ~np.isin(values[:, 0], np.arange(len(fmt.edition.expr_classes)))
        rule = f"class indices outside 0..{len(fmt.edition.expr_classes) - 1}"
    else:
        bad = ~np.isin(values, (0, 1)).all(axis=1)
        rule = "AU values other than 0/1"
    if bad.any():
        return [f"{name}: {rule}: {int(bad.sum())} line(s), first line {int(np.flatnonzero(bad)[0]) + 2}"]
    return []


def _per_video_problems(texts: dict[str, str], fmt: TrackFormat, counts: dict[str, int]) -> list[str]:
    problems = []
    expected = {fmt.file_name(v): v for v in counts}
    missing = [n for n in expected if n not in texts]
    extra = [n for n in texts if n not in expected]
    if missing:
        problems.append(
            f"missing videos: {len(missing)} ({', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''})"
        )
    if extra:
        problems.append(f"extra videos: {len(extra)} ({', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''})")
    for name in sorted(set(texts) & set(expected)):
        values, found = _parse(name, texts[name], fmt)
        problems += found
        if values is None:
            continue
        if len(values) != counts[expected[name]]:
            problems.append(
                f"{name}: wrong line count: {len(values)} frame line(s), the video has {counts[expected[name]]}"
            )
        problems += _range_problems(name, values, fmt)
    return problems


def _mtl_problems(texts: dict[str, str], fmt: TrackFormat, counts: dict[str, int]) -> list[str]:
    if MTL_FILE not in texts:
        return [f"missing file {MTL_FILE}"]
    lines = texts[MTL_FILE].splitlines()
    if not lines or lines[0].strip() != fmt.header:
        return [f"{MTL_FILE}: wrong header: expected {fmt.header!r}"]
    rows = [ln.split(",") for ln in lines[1:] if ln.strip()]
    problems = [
        f"{MTL_FILE}: line {i + 2}: expected {fmt.width} fields" for i, r in enumerate(rows) if len(r) != fmt.width
    ][:5]
    if problems:
        return problems
    expected = {f"{v}/{f:05d}.jpg" for v, n in counts.items() for f in range(1, n + 1)}
    images = [r[0] for r in rows]
    if set(images) != expected or len(images) != len(expected):
        problems.append(
            f"{MTL_FILE}: {len(expected - set(images))} image(s) missing, {len(set(images) - expected)} unexpected, "
            f"{len(images) - len(set(images))} duplicated"
        )
    values = pd.DataFrame([r[1:] for r in rows]).apply(pd.to_numeric, errors="coerce").to_numpy()
    if np.isnan(values).any():
        return problems + [f"{MTL_FILE}: unparsable values on {int(np.isnan(values).any(axis=1).sum())} line(s)"]
    ed = fmt.edition
    for name, part, track in (
        ("va", values[:, :2], "va"),
        ("expr", values[:, 2:3], "expr"),
        ("au", values[:, 3:], "au"),
    ):
        problems += _range_problems(f"{MTL_FILE} ({name})", part, get_format(track, ed.year))
    return problems


def validate_submission(source: str | Path, track: str, edition: int, counts: dict[str, int]) -> list[str]:
    """Every problem of the submission at ``source`` (folder or zip); an empty list means it is valid."""
    fmt = get_format(track, edition)
    texts = _read_texts(Path(source))
    return (_per_video_problems if fmt.per_video else _mtl_problems)(texts, fmt, counts)
