"""Datasets of challenges other than Aff-Wild2, recognised by their layout: which samples each split holds,
keyed as prediction tables are, with their labels.

Kinds (``detect_dataset``):
- ``class folders``: ``train/<class>/<image>``, optional ``val/<class>/`` (else a seeded, stratified hold-out of
  train: ``HOLDOUT``), ``test/`` flat (unlabelled) or per class; without ``test/`` a single flat ``test*`` folder
  (Kaggle's ``test_kaggle/``, as lugrenl/Emotion-Recognition_model's ``make_submission`` reads it) is the test split.
- ``clips``: ``<split>/<class>/<clip>/<frames>``, one label per clip (EmotiW's face folders as
  XiaoYee/emotion_classification's ``VGG_GRU/TrainTestlist/Emotiw/getTraintest_Emotiw.py`` lists them);
  ``test/<clip>/<frames>`` is unlabelled.
- ``csv list``: ``train.csv`` (``image_path,label``, paths relative to the dataset folder), optional ``val.csv``
  (else the hold-out) and ``test.csv`` (``label`` optional).
- ``aff-wild2``: anything else (``ensemble.labels`` and ``ensemble.frames`` read it).

Classes are the folder names (or the list's labels) sorted, as torchvision's ``ImageFolder`` and XiaoYee's lists
order them; a sample is keyed ``(video, frame)`` with ``video`` its path relative to the dataset folder (an
image, or a clip's folder) and ``frame`` 1 (an image, a clip's label row) or the frame's place in its clip.
Reading is by names only: images are opened (and an unreadable one named) by the member that reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.errors import DataError, LabelsError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
AFF_WILD2, CLASS_FOLDERS, CLIPS, CSV_LIST = "aff-wild2", "class folders", "clips", "csv list"
HOLDOUT = 0.2
"""Share of each class of train held out for validation when the dataset has no val split (seed ``HOLDOUT_SEED``,
at least one sample of every class with two or more)."""
HOLDOUT_SEED = 0
UNLABELLED = -1
COLUMNS = ["video", "frame", "path", "expr"]


@dataclass
class Dataset:
    """A dataset's kind, its classes in order, and each split's frames: ``video``, ``frame``, ``path`` (relative to
    ``root``) and ``expr`` (class index, ``UNLABELLED`` in an unlabelled test split)."""

    root: Path
    kind: str
    classes: tuple[str, ...]
    splits: dict[str, pd.DataFrame]
    holdout: dict = field(default_factory=dict)  # how val was held out of train, when it was

    def frames(self, split: str) -> pd.DataFrame:
        if split not in self.splits:
            raise DataError(
                f"{self.root}: the {self.kind} dataset has no {split} split (has: {', '.join(self.splits)})"
            )
        return self.splits[split]

    def labels(self, split: str) -> pd.DataFrame:
        """One row per image or clip (``video``, ``frame`` 1, ``expr``); an unlabelled split is an error."""
        rows = self.frames(split).drop_duplicates("video")[["video", "expr"]]
        if (rows["expr"] == UNLABELLED).any():
            raise LabelsError(f"{self.root}: the {split} split of this {self.kind} dataset has no labels")
        return rows.assign(frame=np.int64(1))[["video", "frame", "expr"]].reset_index(drop=True)

    def describe(self) -> str:
        counts = ", ".join(f"{s} {self.splits[s]['video'].nunique()}" for s in self.splits)
        held = f"; val: {self.holdout['rule']}" if self.holdout else ""
        unit = "clips" if self.kind == CLIPS else "images"
        return f"{self.kind} dataset, {len(self.classes)} classes ({', '.join(self.classes)}); {unit}: {counts}{held}"


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    return [p for p in _visible(folder) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]


def detect_dataset(root: str | Path) -> str:
    """The kind of the dataset at ``root`` (see the module's docstring)."""
    root = Path(root)
    train = root / "train"
    if (root / "train.csv").is_file():
        return CSV_LIST
    if not train.is_dir():
        return AFF_WILD2
    classes = [p for p in _visible(train) if p.is_dir()]
    if not classes:
        raise DataError(f"{train}: no class folders (expected train/<class>/<images> or train/<class>/<clip>/)")
    return CLIPS if any(p.is_dir() for c in classes for p in _visible(c)) else CLASS_FOLDERS


def _class_names(folder: Path) -> tuple[str, ...]:
    names = tuple(p.name for p in _visible(folder) if p.is_dir())
    if len(names) < 2:
        raise DataError(f"{folder}: {len(names)} class folder(s); a classification dataset needs two or more")
    return names


def _check_class(folder: Path, classes: tuple[str, ...]) -> int:
    if folder.name not in classes:
        raise DataError(f"{folder}: label {folder.name!r} is not one of the classes: {', '.join(classes)}")
    return classes.index(folder.name)


def _image_rows(root: Path, folder: Path, label: int) -> list[tuple]:
    files = _images(folder)
    if not files and label != UNLABELLED:
        raise DataError(f"{folder}: empty class folder (no {'/'.join(IMAGE_SUFFIXES)} images)")
    return [(p.relative_to(root).as_posix(), 1, p.relative_to(root).as_posix(), label) for p in files]


def _clip_rows(root: Path, clip: Path, label: int) -> list[tuple]:
    frames = _images(clip)
    if not frames:
        raise DataError(f"{clip}: clip folder without frames (no {'/'.join(IMAGE_SUFFIXES)} images)")
    key = clip.relative_to(root).as_posix()
    return [(key, i + 1, p.relative_to(root).as_posix(), label) for i, p in enumerate(frames)]


def _labelled_split(root: Path, folder: Path, classes: tuple[str, ...], clips: bool) -> pd.DataFrame:
    rows: list[tuple] = []
    for sub in (p for p in _visible(folder) if p.is_dir()):
        label = _check_class(sub, classes)
        if clips:
            found = [p for p in _visible(sub) if p.is_dir()]
            if not found:
                raise DataError(f"{sub}: empty class folder (no clip folders)")
            rows += [r for clip in found for r in _clip_rows(root, clip, label)]
        else:
            rows += _image_rows(root, sub, label)
    return pd.DataFrame(rows, columns=COLUMNS)


def _test_split(root: Path, folder: Path, classes: tuple[str, ...], clips: bool) -> pd.DataFrame:
    """Per class (labelled) if its folders are class names, else flat: images, or (clip sets) clip folders."""
    subs = [p for p in _visible(folder) if p.is_dir()]
    if subs and (not clips or all(any(q.is_dir() for q in _visible(s)) for s in subs)):
        return _labelled_split(root, folder, classes, clips)
    rows = [r for c in subs for r in _clip_rows(root, c, UNLABELLED)] if clips else _image_rows(root, folder, -1)
    if not rows:
        raise DataError(f"{folder}: test folder without {'clips' if clips else 'images'}")
    return pd.DataFrame(rows, columns=COLUMNS)


def test_folder(root: Path) -> Path | None:
    """``test/``, else the single folder whose name starts with ``test`` (Kaggle's ``test_kaggle/``)."""
    if (root / "test").is_dir():
        return root / "test"
    found = [p for p in _visible(root) if p.is_dir() and p.name.lower().startswith("test")]
    if len(found) > 1:
        raise DataError(f"{root}: several test folders ({', '.join(p.name for p in found)}); name one test/")
    return found[0] if found else None


def hold_out(
    train: pd.DataFrame, share: float = HOLDOUT, seed: int = HOLDOUT_SEED
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, val): ``share`` of each class's images (or clips), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    units = train.drop_duplicates("video")[["video", "expr"]]
    held: list[str] = []
    for label in sorted(units["expr"].unique()):
        videos = units.loc[units["expr"] == label, "video"].to_numpy()
        n = max(1, round(share * len(videos))) if len(videos) >= 2 else 0
        held += list(rng.choice(videos, size=n, replace=False)) if n else []
    mask = train["video"].isin(set(held)).to_numpy()
    return train[~mask].reset_index(drop=True), train[mask].reset_index(drop=True)


def _holdout_rule(splits: dict[str, pd.DataFrame], have_val: bool) -> dict:
    if have_val:
        return {}
    splits["train"], splits["val"] = hold_out(splits["train"])
    rule = f"{HOLDOUT:.0%} of each class of train held out (seed {HOLDOUT_SEED})"
    return {"rule": rule, "share": HOLDOUT, "seed": HOLDOUT_SEED, "val": int(splits["val"]["video"].nunique())}


def read_folders(root: Path, kind: str) -> Dataset:
    clips = kind == CLIPS
    classes = _class_names(root / "train")
    splits = {"train": _labelled_split(root, root / "train", classes, clips)}
    if (root / "val").is_dir():
        splits["val"] = _labelled_split(root, root / "val", classes, clips)
    holdout = _holdout_rule(splits, "val" in splits)
    test = test_folder(root)
    if test is not None:
        splits["test"] = _test_split(root, test, classes, clips)
    return Dataset(root, kind, classes, {s: splits[s] for s in ("train", "val", "test") if s in splits}, holdout)


def _read_list(root: Path, path: Path, classes: tuple[str, ...]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not a readable CSV list ({type(exc).__name__})") from None
    if "image_path" not in table.columns:
        raise DataError(f"{path}: a list needs the columns image_path,label (found: {', '.join(table.columns)})")
    labels = table["label"] if "label" in table.columns else pd.Series([""] * len(table))
    rows = []
    for i, (name, label) in enumerate(zip(table["image_path"], labels)):
        if not (root / name).is_file() or Path(name).is_absolute() or ".." in Path(name).parts:
            raise DataError(f"{path}: line {i + 2}: image {name!r} not found inside {root}")
        if label and label not in classes:
            raise DataError(f"{path}: line {i + 2}: label {label!r} is not one of the classes: {', '.join(classes)}")
        rows.append((name, 1, name, classes.index(label) if label else UNLABELLED))
    if not rows:
        raise DataError(f"{path}: empty list")
    return pd.DataFrame(rows, columns=COLUMNS)


def read_list(root: Path) -> Dataset:
    train_csv = root / "train.csv"
    try:
        labels = pd.read_csv(train_csv, dtype=str, keep_default_na=False).get("label", pd.Series(dtype=str))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{train_csv}: not a readable CSV list ({type(exc).__name__})") from None
    classes = tuple(sorted(labels.unique()))
    if len(classes) < 2 or "" in classes:
        raise DataError(f"{train_csv}: needs the columns image_path,label, two or more classes, a label on every line")
    splits = {"train": _read_list(root, train_csv, classes)}
    if (root / "val.csv").is_file():
        splits["val"] = _read_list(root, root / "val.csv", classes)
    holdout = _holdout_rule(splits, "val" in splits)
    if (root / "test.csv").is_file():
        splits["test"] = _read_list(root, root / "test.csv", classes)
    return Dataset(root, CSV_LIST, classes, {s: splits[s] for s in ("train", "val", "test") if s in splits}, holdout)


def read_dataset(root: str | Path) -> Dataset:
    """The class-folder, clip or list dataset at ``root``; an Aff-Wild2 root is an error here."""
    root = Path(root)
    kind = detect_dataset(root)
    if kind == AFF_WILD2:
        raise DataError(f"{root}: not a class-folder, clip or list dataset (no train/ folder or train.csv)")
    return read_list(root) if kind == CSV_LIST else read_folders(root, kind)


def check_label_names(dataset: Dataset, names: tuple[str, ...], source: str) -> None:
    """``names`` (a table's or run's classes) label ``dataset``: the same names, or as many names for folders
    named by digits (FER2013's ``0``..``6``, named with ``--classes``)."""
    if tuple(names) == dataset.classes:
        return
    if len(names) == len(dataset.classes) and all(c.isdigit() for c in dataset.classes):
        return
    raise LabelsError(
        f"{source}: classes {', '.join(names)} do not label {dataset.root} (classes: {', '.join(dataset.classes)})"
    )
