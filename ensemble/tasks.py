"""ABAW tasks and editions, in one table.

An edition is one year of the challenge (a year may hold two ABAW competitions: 2022 is ABAW3 and ABAW4,
2024 is ABAW6 and ABAW7). It fixes the label sets, the score weightings, the submission layout of each
track and the tracks offered. A correction is a one-line change in ``EDITIONS``; ``DEFAULT_EDITION`` is the
only place that names the default, and no other module writes a year.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from ensemble.errors import AffectEnsError, ContractError, SubmissionError

TASKS = ("expr", "va", "au")
"""Single tasks. A member or table may hold several (the multi-task setting, ``mtl``)."""
POLICIES = ("strict", "intersect")
"""How members covering different frames are aligned: refuse (strict) or keep the frames all cover."""
TRACKS = TASKS + ("mtl",)
"""Challenge tracks: one per task, and the multi-task track that takes all three at once."""

EXPR_7 = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")
EXPR_8 = EXPR_7 + ("Other",)
AU_8 = ("AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU20", "AU25")
AU_12 = ("AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26")
VA = ("valence", "arousal")

SENTINELS = {"expr": -1, "va": -5, "au": -1}
"""Values marking unannotated frames in the annotation files; such frames are excluded from metrics."""

FOLDERS_2020 = {"expr": "EXPR_Set", "va": "VA_Set", "au": "AU_Set"}
FOLDERS_2022 = {
    "expr": "EXPR_Classification_Challenge",
    "va": "VA_Estimation_Challenge",
    "au": "AU_Detection_Challenge",
}
SPLIT_FOLDERS = {"train": "Train_Set", "val": "Validation_Set", "test": "Test_Set"}

PER_VIDEO = "per-video"
"""Submission layout: one ``<video>.txt`` per test video, a line for every frame (submissions/formats.py)."""
SINGLE_FILE = "single-file"
"""Submission layout: one file per track, a row ``video/00001.jpg,...`` per listed image."""
MTL_FILE = "multi-task"
"""Submission layout of the multi-task track: one file, a row per image of the organisers' list."""

SINGLE = ("expr", "va", "au")


@dataclass(frozen=True)
class Edition:
    """What one ABAW edition fixes: label sets, folder names, scoring, submission layout and tracks."""

    year: int
    abaw: dict[int, tuple[str, ...]]  # ABAW number -> the tracks that competition ran
    expr_classes: tuple[str, ...]
    aus: tuple[str, ...]
    folders: dict[str, str]
    expr_weights: tuple[float, float]  # (F1, accuracy) weights of the EXPR score
    au_weights: tuple[float, float]  # (mean F1, mean accuracy) weights of the AU score
    layout: str  # submission layout of the expr, va and au tracks: PER_VIDEO or SINGLE_FILE
    sentinel_fill: bool = False  # participants wrote sentinel rows (-1, -5) for frames without a face
    title: str = ""  # a label set of another challenge (``label_set``): its name in messages

    def __hash__(self) -> int:
        """An edition is named by its year (frozen, but its dict fields would make the generated hash fail)."""
        return hash(self.year)

    @property
    def name(self) -> str:
        """``'2024 (ABAW6, ABAW7)'``; a label set of another challenge: ``'9 classes (anger, ...)'``."""
        if self.title:
            return self.title
        return f"{self.year} ({', '.join(f'ABAW{n}' for n in self.abaw)})"

    @property
    def tracks(self) -> tuple[str, ...]:
        """The tracks offered by any competition of the year, in ``TRACKS`` order."""
        offered = {t for tracks in self.abaw.values() for t in tracks}
        return tuple(t for t in TRACKS if t in offered)

    def track_layout(self, track: str) -> str:
        """The submission layout of ``track``; a track the edition did not run is a one-line error."""
        if track not in TRACKS:
            raise SubmissionError(f"unknown track {track!r}; choose one of: {', '.join(TRACKS)}")
        if track not in self.tracks:
            ran = [ed.name for ed in EDITIONS.values() if track in ed.tracks]
            raise SubmissionError(
                f"no {track} track in edition {self.name}; it ran in: {', '.join(ran)} "
                f"(tracks of {self.year}: {', '.join(self.tracks)})"
            )
        return MTL_FILE if track == "mtl" else self.layout

    def header(self, task: str) -> str:
        """The first line of an annotation or per-video submission file of ``task``."""
        return ",".join(self.label_names(task))

    def label_names(self, task: str) -> tuple[str, ...]:
        check_task(task)
        return {"expr": self.expr_classes, "va": VA, "au": self.aus}[task]

    def output_columns(self, task: str) -> list[str]:
        """Prediction-table columns of ``task`` in the task's order."""
        check_task(task)
        if task == "expr":
            return [expr_column(c) for c in self.expr_classes]
        if task == "va":
            return list(VA)
        return [au.lower() for au in self.aus]

    def task_slices(self, tasks: Iterable[str]) -> dict[str, slice]:
        """Where each task's columns sit among the output columns of ``tasks`` side by side (prediction tables,
        aligned members, fused outputs): the one place that computes the offsets."""
        out, start = {}, 0
        for task in tasks:
            k = len(self.output_columns(task))
            out[task], start = slice(start, start + k), start + k
        return out

    def label_columns(self, task: str) -> list[str]:
        """Ground-truth columns of ``task`` in a labels table."""
        check_task(task)
        return ["expr"] if task == "expr" else self.output_columns(task)


def expr_column(name: str) -> str:
    return f"expr_{name.lower()}"


# Layouts and label sets from participants' public code (sources beside each layout in submissions/formats.py
# and in the README's edition table); ABAW9 (ICCV 2025) is left out: its tracks are not confirmed.
EDITIONS: dict[int, Edition] = {
    2020: Edition(2020, {1: SINGLE}, EXPR_7, AU_8, FOLDERS_2020, (0.67, 0.33), (0.5, 0.5), PER_VIDEO),
    2021: Edition(2021, {2: SINGLE}, EXPR_7, AU_12, FOLDERS_2020, (0.67, 0.33), (0.5, 0.5), PER_VIDEO, True),
    2022: Edition(2022, {3: TRACKS, 4: ("mtl",)}, EXPR_8, AU_12, FOLDERS_2022, (1.0, 0.0), (1.0, 0.0), PER_VIDEO),
    2023: Edition(2023, {5: SINGLE}, EXPR_8, AU_12, FOLDERS_2022, (1.0, 0.0), (1.0, 0.0), SINGLE_FILE),
    2024: Edition(2024, {6: SINGLE, 7: ("mtl",)}, EXPR_8, AU_12, FOLDERS_2022, (1.0, 0.0), (1.0, 0.0), SINGLE_FILE),
    2025: Edition(2025, {8: SINGLE}, EXPR_8, AU_12, FOLDERS_2022, (1.0, 0.0), (1.0, 0.0), SINGLE_FILE),
}
DEFAULT_EDITION = 2025
"""The edition every command uses when neither ``--edition`` nor its input tables name one."""
LABEL_SET_BASE = 100_000
"""Label sets of other challenges (class folders, clip sets) are numbered from here, far above every year."""
LABEL_SETS: dict[int, Edition] = {}
"""The label sets of other challenges met in this process (``label_set``), by number; never in ``EDITIONS``."""


def label_set(classes: Iterable[str]) -> Edition:
    """The edition-like object of a challenge outside ABAW: an expression task over ``classes`` (in this order),
    scored by accuracy (macro F1 shown beside it), no ABAW track. Its number is derived from the names, so a
    table or run that stores the names (``TableMeta.extra['label_set']``, a config's ``label_set``) gets the
    same object back in any process.

    >>> label_set(["cat", "dog"]).name
    '2 classes (cat, dog)'
    """
    classes = tuple(str(c) for c in classes)
    if len(classes) < 2 or len(set(classes)) != len(classes) or not all(classes):
        raise ContractError(f"a label set needs two or more distinct, non-empty class names, got {list(classes)}")
    year = LABEL_SET_BASE + zlib.crc32("\n".join(classes).encode()) % 900_000_000
    known = LABEL_SETS.get(year)
    if known is not None and known.expr_classes != classes:
        raise ContractError(f"label sets {list(classes)} and {list(known.expr_classes)} share a number; rename one")
    title = f"{len(classes)} classes ({', '.join(classes)})"
    LABEL_SETS[year] = known or Edition(
        year, {}, classes, AU_12, FOLDERS_2022, (0.0, 1.0), (1.0, 0.0), SINGLE_FILE, title=title
    )
    return LABEL_SETS[year]


ABAW_NUMBERS = {n: year for year, ed in EDITIONS.items() for n in ed.abaw}
_NAME = re.compile(r"^\s*(?:abaw\s*(\d+)|(\d{4}))\s*$", re.IGNORECASE)


def editions_where(test) -> str:
    """Names of the editions for which ``test(edition)`` holds, for help texts: ``'2022 (ABAW3, ABAW4), ...'``."""
    return ", ".join(ed.name for ed in EDITIONS.values() if test(ed))


def score_columns(edition: Edition, tasks: Iterable[str]) -> list[tuple[str, str]]:
    """(score key, header) of every score table (``evaluate``, ``fuse``, the report): each task's metrics once.
    Where the edition's score is F1 alone it is shown once, as F1; where it mixes F1 and accuracy, all three.
    The multi-task score comes last where the edition ran that track and all three tasks are scored.

    >>> [header for _, header in score_columns(get_edition(2025), ("expr", "va"))]
    ['EXPR F1', 'CCC V', 'CCC A', 'VA CCC']
    >>> [key for key, _ in score_columns(get_edition(2021), ("au",))]
    ['au_f1', 'au_accuracy', 'au_score']
    """
    columns = []
    for task in tasks:
        if task == "va":
            columns += [("va_ccc_valence", "CCC V"), ("va_ccc_arousal", "CCC A"), ("va_score", "VA CCC")]
            continue
        name, (w_f1, w_acc) = task.upper(), edition.expr_weights if task == "expr" else edition.au_weights
        if w_f1 == 0:  # scored by accuracy alone (other challenges' label sets): macro F1 shown beside it
            columns += [(f"{task}_f1", f"{name} F1"), (f"{task}_score", f"{name} acc")]
        elif w_acc == 0:
            columns.append((f"{task}_score", f"{name} F1"))
        else:
            columns += [
                (f"{task}_f1", f"{name} F1"),
                (f"{task}_accuracy", f"{name} acc"),
                (f"{task}_score", f"{name} score"),
            ]
    if scores_mtl(edition, tasks):
        columns.append(("mtl_score", "MTL score"))
    return columns


def scores_mtl(edition: Edition, tasks: Iterable[str]) -> bool:
    """Whether a score row carries the multi-task score: the edition ran that track and all three tasks are scored."""
    return "mtl" in edition.tracks and set(TASKS) <= set(tasks)


def score_formulas(edition: Edition, tasks: Iterable[str]) -> list[str]:
    """How each mixed score is made, for captions: ``['AU score = 0.5 F1 + 0.5 acc']`` (none from 2022 on)."""
    weights = {"expr": edition.expr_weights, "au": edition.au_weights}
    return [
        f"{t.upper()} score = {weights[t][0]:g} F1 + {weights[t][1]:g} acc"
        for t in tasks
        if t in weights and all(weights[t])
    ]


def get_edition(name: int | str) -> Edition:
    """The edition named by a year (``2025``, ``'2025'``) or an ABAW number (``'abaw8'``, ``'ABAW8'``).

    >>> get_edition("abaw7").year, get_edition("ABAW3") is get_edition(2022)
    (2024, True)
    """
    if isinstance(name, int) and name in LABEL_SETS:
        return LABEL_SETS[name]  # a label set met by ``label_set``
    match = _NAME.match(str(name))
    year = None
    if match and match.group(1):
        year = ABAW_NUMBERS.get(int(match.group(1)))
    elif match:
        year = int(match.group(2))
    if year not in EDITIONS:
        known = ", ".join(str(y) for y in EDITIONS)
        raise AffectEnsError(
            f"unknown ABAW edition {name}; choose one of: {known} (or abaw1 ... abaw{max(ABAW_NUMBERS)})"
        )
    return EDITIONS[year]


def resolve_edition(given: int | str | None, found: Iterable[tuple[str, int]] = ()) -> tuple[Edition, str]:
    """The edition a command uses and where it came from: ``given`` (the command line), else the one all
    ``found`` (source, year) pairs name (tables' metadata), else ``DEFAULT_EDITION``.

    Tables naming different editions are an error unless ``given`` settles it; whether each table's label set
    fits the chosen edition is for the caller to check (``contract.check_label_set``).

    >>> edition, how = resolve_edition(None, [("a.parquet", 2021), ("b.parquet", 2021)])
    >>> edition.year, how
    (2021, "from the tables' metadata")
    """
    if given is not None and str(given).strip() != "":
        return get_edition(given), "given"
    found = list(found)
    years = sorted({year for _, year in found})
    if len(years) > 1:
        first = {year: source for source, year in reversed(found)}
        named = ", ".join(f"{first[y]} says {y}" for y in years)
        raise ContractError(f"the tables name different editions ({named}); pass --edition to choose one")
    if years:
        return get_edition(years[0]), "from the tables' metadata"
    return get_edition(DEFAULT_EDITION), "the default"


def tuned_groups(task: str, k: int) -> list[tuple[str, slice]]:
    """The columns of ``task`` (``k`` of them) tuned together, named: each VA dimension on its own CCC, EXPR and
    AU as a whole. Fusion weights and post-processing windows are tuned by the same groups."""
    if task == "va":
        return [(name, slice(d, d + 1)) for d, name in enumerate(VA)]
    return [(task.upper(), slice(0, k))]


def check_task(task: str) -> str:
    if task not in TASKS:
        raise AffectEnsError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    return task


def check_split(split: str) -> str:
    if split not in SPLIT_FOLDERS:
        raise AffectEnsError(f"unknown split {split!r}; choose one of: {', '.join(SPLIT_FOLDERS)}")
    return split


def parse_tasks(spec: str) -> tuple[str, ...]:
    """``"expr"``, ``"va,au"`` or ``"mtl"`` (all three) as a tuple of tasks in canonical order."""
    names = TASKS if spec == "mtl" else tuple(s.strip() for s in spec.split(",") if s.strip())
    for name in names:
        check_task(name)
    if not names:
        raise AffectEnsError("no task given; choose from: expr, va, au, mtl")
    return tuple(t for t in TASKS if t in names)
