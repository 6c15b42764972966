"""Submissions of classification challenges outside ABAW: one CSV row per test image or clip with its class name.

- Kaggle image challenges: the organisers' ``sample_submission.csv`` fixes the file: its columns (for the skillbox
  challenge ``image_path,emotion``), its rows in its order (bare test file names), a class name in the label
  column. lugrenl/Emotion-Recognition_model (``Models_Training.ipynb``, ``make_submission`` and the committee cell)
  writes exactly that: ``image_path`` the file name inside ``test_kaggle/``, ``emotion`` the class name.
- Clip challenges: no participant's public clip-level file was found (XiaoYee/emotion_classification scores its
  lists itself), so without a sample file the file is ``clip,label``: one row per test clip (its folder relative
  to the dataset), in sorted order.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.contract import PredictionTable
from ensemble.errors import SubmissionError
from ensemble.outputs import STAMP, Outputs

CLIP_HEADER = ("clip", "label")
MAX_SAMPLE_BYTES = 64 * 2**20


@dataclass
class Sample:
    """The organisers' sample file: its two columns (key, label) and its keys in order."""

    path: Path
    columns: tuple[str, str]
    keys: list[str]


def _rows(path: Path, what: str) -> list[list[str]]:
    if not path.is_file():
        raise SubmissionError(f"{path}: {what} not found")
    if path.stat().st_size > MAX_SAMPLE_BYTES:
        raise SubmissionError(f"{path}: {what} larger than {MAX_SAMPLE_BYTES // 2**20} MiB")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SubmissionError(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from None
    try:
        rows = [r for r in csv.reader(io.StringIO(text)) if r]
    except csv.Error as exc:
        raise SubmissionError(f"{path}: {what} is not readable CSV ({exc})") from None
    if not rows:
        raise SubmissionError(f"{path}: {what} is empty")
    return rows


def read_sample(path: str | Path) -> Sample:
    """The sample submission: a header of two columns, then one row per test item; keys must be unique."""
    path = Path(path)
    rows = _rows(path, "sample submission")
    bad = next((i for i, r in enumerate(rows) if len(r) != 2), None)
    if bad is not None:
        raise SubmissionError(f"{path}: line {bad + 1}: expected 2 columns (key,label), found {len(rows[bad])}")
    keys = [r[0] for r in rows[1:]]
    if not keys:
        raise SubmissionError(f"{path}: sample submission lists no rows")
    seen: set[str] = set()
    twice = next((k for k in keys if k in seen or seen.add(k)), None)
    if twice is not None:
        raise SubmissionError(f"{path}: key {twice!r} listed twice")
    return Sample(path, (rows[0][0], rows[0][1]), keys)


def table_labels(table: PredictionTable) -> pd.Series:
    """Each row's class name (the most probable), indexed by the row's key (``video``)."""
    classes = np.array(table.edition.expr_classes, dtype=object)
    return pd.Series(classes[np.argmax(table.outputs("expr"), axis=1)], index=table.data["video"].to_numpy())


def match_keys(sample_keys: list[str], table_keys: list[str], source: str) -> list[str]:
    """The table key of each sample key: the same path, or the one path ending in ``/<key>`` (the sample's bare
    file names against keys relative to the dataset folder, ``test_kaggle/<name>``)."""
    by_tail: dict[str, list[str]] = {}
    for key in table_keys:
        parts = key.split("/")
        for i in range(len(parts)):
            by_tail.setdefault("/".join(parts[i:]), []).append(key)
    out, missing = [], []
    for key in sample_keys:
        found = by_tail.get(key, [])
        if len(found) > 1:
            raise SubmissionError(f"{source}: sample key {key!r} matches {len(found)} table rows ({found[0]}, ...)")
        (out.append(found[0]) if found else missing.append(key))
    if missing:
        raise SubmissionError(f"{source}: no prediction for {len(missing)} sample row(s), first {missing[0]!r}")
    return out


def submission_rows(table: PredictionTable, sample: Sample | None) -> tuple[tuple[str, str], list[tuple[str, str]]]:
    """(header, rows) of the file: the sample's columns and rows with the table's class names, or ``clip,label``
    with every row of the table in key order."""
    labels = table_labels(table)
    if sample is None:
        labels = labels.sort_index()
        return CLIP_HEADER, list(zip(labels.index, labels.to_numpy()))
    keys = match_keys(sample.keys, list(labels.index), str(sample.path))
    return sample.columns, list(zip(sample.keys, labels.loc[keys].to_numpy()))


def _csv_text(header: tuple[str, str], rows: list[tuple[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_class_submission(
    table: PredictionTable, out: str | Path, sample: Sample | None, *, force: bool = False, inputs: tuple = ()
) -> int:
    """Write the CSV at ``out`` (and ``<out>.json`` saying where it came from: the tool's mark for ``--force``);
    returns the number of rows. The file is checked against its source before it is moved into place."""
    out = Path(out)
    if out.suffix.lower() != ".csv":
        raise SubmissionError(f"{out}: a classification submission is a .csv file")
    header, rows = submission_rows(table, sample)
    with Outputs(force=force, inputs=inputs) as outs:
        tmp = outs.file(out)
        tmp.write_text(_csv_text(header, rows), encoding="utf-8")
        problems = check_class_submission(tmp, table.edition.expr_classes, sample, [r[0] for r in rows])
        if problems:
            raise SubmissionError(f"written file failed validation: {problems[0]}")
        doc = {"generator": STAMP, "sample": str(sample.path) if sample else None, "rows": len(rows)}
        outs.file(out.with_name(out.name + ".json")).write_text(json.dumps(doc))
    return len(rows)


def check_class_submission(
    path: str | Path, classes: tuple[str, ...], sample: Sample | None, keys: list[str] | None = None
) -> list[str]:
    """Every problem of a classification submission: its header (the sample's, else ``clip,label``), its rows
    (the sample's keys in their order, else ``keys`` when given), labels that are not class names."""
    path = Path(path)
    rows = _rows(path, "submission")
    header = tuple(sample.columns) if sample else CLIP_HEADER
    problems = []
    if tuple(rows[0]) != header:
        problems.append(f"{path}: line 1: header {','.join(rows[0])!r}, expected {','.join(header)!r}")
    body = rows[1:]
    wrong = [i for i, r in enumerate(body) if len(r) != 2]
    if wrong:
        problems.append(f"{path}: {len(wrong)} row(s) without 2 columns, first line {wrong[0] + 2}")
    expected = sample.keys if sample else keys
    got = [r[0] for r in body]
    if expected is not None and got != expected:
        first = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
        problems.append(
            f"{path}: rows differ from {'the sample' if sample else 'the test split'} "
            f"({len(got)} rows, expected {len(expected)}; first difference on line {first + 2})"
        )
    names = set(classes)
    bad = [i for i, r in enumerate(body) if len(r) == 2 and r[1] not in names]
    if bad:
        problems.append(
            f"{path}: {len(bad)} label(s) not a class name, first {body[bad[0]][1]!r} on line {bad[0] + 2} "
            f"(classes: {', '.join(classes)})"
        )
    return problems
