"""ABAW tasks and editions, in one table.

An edition is one ABAW competition (``ABAW10``, CVPR 2026): its label sets, score weightings, the submission
layout of its tracks, the tracks it ran on Aff-Wild2 and the names its data release uses. A year may hold two
competitions (2022: ABAW3, ABAW4; 2024: ABAW6, ABAW7; 2025: ABAW8, ABAW9); a year names one set of rules only
where its competitions agree (``year_rules``). A correction is a one-line change in ``EDITIONS``;
``DEFAULT_EDITION`` is the only place that names the default, and no other module writes a year.
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

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


def _by_track(expr: str, va: str, au: str) -> dict[str, str]:
    """A name for each of the expr, va and au tracks."""
    return {"expr": expr, "va": va, "au": au}


# Annotation folders of each release. 2020: EXPR_Set, VA_Set, AU_Set; 2022 and 2023 (ABAW3 to ABAW5):
# *_Classification_Challenge and so on; the 6th ABAW's release (2024) and every one since: EXPR_Recognition_Challenge
# ("6th ABAW Annotations/EXPR_Recognition_Challenge/Train_Set" in DresvyanskiyDenis/ABAW_2024
# src/video/post_processing/embeddings_extraction_dynamic.py; ABAW10: ora942878/ABAW_10_EXPR configs/paths.py).
FOLDERS_2020 = _by_track("EXPR_Set", "VA_Set", "AU_Set")
FOLDERS_2022 = _by_track("EXPR_Classification_Challenge", "VA_Estimation_Challenge", "AU_Detection_Challenge")
FOLDERS_2024 = {**FOLDERS_2022, "expr": "EXPR_Recognition_Challenge"}
RELEASE_FOLDERS = (FOLDERS_2024, FOLDERS_2022, FOLDERS_2020)
"""Every release's annotation folder names, newest first: labels are found under any of them."""
SPLIT_FOLDERS = {"train": "Train_Set", "val": "Validation_Set", "test": "Test_Set"}

# The test set's video-name lists (names_of_videos_in_each_test_set/): upczww/abaw5 EXPR/test.py (ABAW5:
# Expression_Classification_Challenge_...); DresvyanskiyDenis/ABAW_2024 src/video/post_processing/
# generate_test_predictions.py (ABAW6: Expression_Recognition_Challenge_..., Valence_Arousal_Estimation_...);
# leeyubin10/9th-ABAW generate_result.py (ABAW9 VA); Byeooon/cvpr_abaw_10th txt.py (ABAW10 EXPR).
LISTS_2022 = _by_track(
    "Expression_Classification_Challenge_test_set_release.txt",
    "Valence_Arousal_Estimation_Challenge_test_set_release.txt",
    "Action_Unit_Detection_Challenge_test_set_release.txt",
)
LISTS_2024 = {**LISTS_2022, "expr": "Expression_Recognition_Challenge_test_set_release.txt"}

PER_VIDEO = "per-video"
"""Submission layout: one ``<video>.txt`` per test video, a line for every frame (submissions/formats.py)."""
SINGLE_FILE = "single-file"
"""Submission layout: one file per track, a row ``video/00001.jpg,...`` per listed image."""
MTL_FILE = "multi-task"
"""Submission layout of the multi-task track: one file, a row per image of the organisers' list."""

SINGLE = ("expr", "va", "au")


def examples(pattern: str, words: tuple[str, str, str] = ("EXPR", "VA", "AU")) -> dict[str, str]:
    """The example files of the expr, va and au tracks: ``pattern`` with each track's word in it."""
    return {task: pattern.format(word) for task, word in zip(SINGLE, words)}


@dataclass(frozen=True)
class Release:
    """The names an edition's data release uses: annotation folders, the test set's video-name lists and the
    organisers' example file of each single-file track (files are recognised by content; the names are what
    ``make-demo-data`` writes and the README shows)."""

    folders: dict[str, str]
    lists: dict[str, str] = field(default_factory=lambda: dict(LISTS_2022))
    examples: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Edition:
    """What one ABAW competition fixes: label sets, scoring, submission layout, tracks and release names.

    A year's rules (``year_rules``) are an Edition too, covering the competitions in ``also`` as well."""

    number: int  # the ABAW number
    venue: str  # the conference: FG, CVPR, ICCV, ECCV
    year: int
    tracks: tuple[str, ...]  # tracks it ran on Aff-Wild2 (multi-task: on s-Aff-Wild2) that take prediction files
    expr_classes: tuple[str, ...]
    aus: tuple[str, ...]
    expr_weights: tuple[float, float]  # (F1, accuracy) weights of the EXPR score
    au_weights: tuple[float, float]  # (mean F1, mean accuracy) weights of the AU score
    layout: str  # submission layout of the expr, va and au tracks: PER_VIDEO or SINGLE_FILE
    release: Release
    sentinel_fill: bool = False  # participants wrote sentinel rows (-1, -5) for frames without a face
    also: tuple[int, ...] = ()  # a year's rules: the other competitions of the year they cover
    title: str = ""  # a label set of another challenge (``label_set``): its name in messages

    @property
    def numbers(self) -> tuple[int, ...]:
        return (self.number, *self.also)

    @property
    def key(self) -> str:
        """What names these rules in tables' metadata and run configs: ``'abaw10'``, or a year's ``'2025'``; a
        label set of another challenge: ``'classes-<crc32 of its names>'`` (``label_set``)."""
        if self.title:
            return label_set_key(self.expr_classes)
        return str(self.year) if self.also else f"abaw{self.number}"

    def __hash__(self) -> int:
        """An edition is named by its key (frozen, but the dicts it holds would make the generated hash fail)."""
        return hash(self.key)

    @property
    def name(self) -> str:
        """``'ABAW10 (CVPR 2026)'``; a year's rules: ``'2025 (ABAW8 CVPR, ABAW9 ICCV)'``."""
        if self.title:
            return self.title
        if not self.also:
            return f"ABAW{self.number} ({self.venue} {self.year})"
        return f"{self.year} ({', '.join(f'ABAW{n} {EDITIONS[n].venue}' for n in self.numbers)})"

    @property
    def folders(self) -> dict[str, str]:
        return self.release.folders

    def track_layout(self, track: str) -> str:
        """The submission layout of ``track``; a track the edition did not run is a one-line error."""
        if track not in TRACKS:
            raise SubmissionError(f"unknown track {track!r}; choose one of: {', '.join(TRACKS)}")
        if track not in self.tracks:
            ran = [ed.name for ed in EDITIONS.values() if track in ed.tracks]
            raise SubmissionError(
                f"no {track} track in edition {self.name}; it ran in: {', '.join(ran)} "
                f"(tracks of {self.name}: {', '.join(self.tracks)})"
            )
        return MTL_FILE if track == "mtl" else self.layout

    def rules(self) -> tuple:
        """What scores and submissions depend on, beside the tracks: equal rules score and submit alike."""
        return (self.expr_classes, self.aus, self.expr_weights, self.au_weights, self.sentinel_fill)

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


CLASSIC = (EXPR_7, (0.67, 0.33), (0.5, 0.5))  # 2020-2021: 7 classes; EXPR and AU scores weigh in accuracy
F1_ONLY = (EXPR_8, (1.0, 0.0), (1.0, 0.0))  # 2022 on: 8 classes (with Other); scores are F1
PER_VIDEO_2022 = Release(FOLDERS_2022)
ABAW5 = Release(FOLDERS_2022, LISTS_2022, examples("CVPR_5th_ABAW_{}_test_set_example.txt"))  # upczww/abaw5


def since_6th(example: str) -> Release:
    """A release of the 6th ABAW or later: its folders and lists, and example files named by ``example``
    (``CVPR_6th_ABAW_Expr_test_set_sample.txt``: DresvyanskiyDenis/ABAW_2024; ``ICCV_9th_ABAW_VA_...``:
    leeyubin10/9th-ABAW; ``ABAW_Expr_test_set_sample.txt``: ora942878/ABAW_10_EXPR; the other tracks' words by
    analogy)."""
    return Release(FOLDERS_2024, LISTS_2024, examples(example, ("Expr", "VA", "AU")) if example else {})


def _row(number: int, venue: str, year: int, tracks, labels, aus, layout: str, release: Release, fill=False):
    expr_classes, expr_weights, au_weights = labels
    return Edition(number, venue, year, tracks, expr_classes, aus, expr_weights, au_weights, layout, release, fill)


# One row per competition. Layouts and label sets from participants' public code (sources beside each layout
# in submissions/formats.py and in the README's edition table). ABAW9 (ICCV 2025) ran VA on Aff-Wild2 as ABAW8
# did: one file `image_location,valence,arousal` for the images of ICCV_9th_ABAW_VA_test_set_sample.txt, videos
# in the order of Valence_Arousal_Estimation_Challenge_test_set_release.txt (leeyubin10/9th-ABAW
# generate_result.py). ABAW10 (CVPR 2026) ran VA, EXPR and AU in the same single-file layout
# (Byeooon/cvpr_abaw_10th txt.py: header image_location,Neutral,...,Other, rows video/00001.jpg,<0-7>;
# byeongjin1/abaw10th_imlab-va- inference_test.py: image_location,valence,arousal; ora942878/ABAW_10_EXPR
# pipeline_TEST/Inference_median101_5fold_ensamble.py fills the rows of ABAW_Expr_test_set_sample.txt).
# Their other tracks (compound expressions on C-EXPR-DB, mimicry, ambivalence/hesitancy, violence) are on other
# data: see the README.
EDITIONS: dict[int, Edition] = {
    1: _row(1, "FG", 2020, SINGLE, CLASSIC, AU_8, PER_VIDEO, Release(FOLDERS_2020)),
    2: _row(2, "ICCV", 2021, SINGLE, CLASSIC, AU_12, PER_VIDEO, Release(FOLDERS_2020), fill=True),
    3: _row(3, "CVPR", 2022, TRACKS, F1_ONLY, AU_12, PER_VIDEO, PER_VIDEO_2022),
    4: _row(4, "ECCV", 2022, ("mtl",), F1_ONLY, AU_12, PER_VIDEO, PER_VIDEO_2022),
    5: _row(5, "CVPR", 2023, SINGLE, F1_ONLY, AU_12, SINGLE_FILE, ABAW5),
    6: _row(6, "CVPR", 2024, SINGLE, F1_ONLY, AU_12, SINGLE_FILE, since_6th("CVPR_6th_ABAW_{}_test_set_sample.txt")),
    7: _row(7, "ECCV", 2024, ("mtl",), F1_ONLY, AU_12, SINGLE_FILE, since_6th("")),
    8: _row(8, "CVPR", 2025, SINGLE, F1_ONLY, AU_12, SINGLE_FILE, since_6th("CVPR_8th_ABAW_{}_test_set_sample.txt")),
    9: _row(9, "ICCV", 2025, ("va",), F1_ONLY, AU_12, SINGLE_FILE, since_6th("ICCV_9th_ABAW_{}_test_set_sample.txt")),
    10: _row(10, "CVPR", 2026, SINGLE, F1_ONLY, AU_12, SINGLE_FILE, since_6th("ABAW_{}_test_set_sample.txt")),
}
DEFAULT_EDITION = "abaw10"
"""The edition every command uses when neither ``--edition`` nor its input tables name one: the latest
competition whose file formats are confirmed from public code."""

YEARS = sorted({ed.year for ed in EDITIONS.values()})
_NAME = re.compile(r"^(?:abaw\s*(\d{1,2})|(\d{1,2})(?:st|nd|rd|th)(?:\s*abaw)?|(\d{4}))$", re.IGNORECASE)


LABEL_SETS: dict[str, Edition] = {}
"""The label sets of other challenges met in this process (``label_set``), by key; never in ``EDITIONS``."""


def label_set_key(classes: Iterable[str]) -> str:
    return f"classes-{zlib.crc32(chr(10).join(classes).encode()):08x}"


def label_set(classes: Iterable[str]) -> Edition:
    """The edition-like object of a challenge outside ABAW: an expression task over ``classes`` (in this order),
    scored by accuracy (macro F1 shown beside it), no ABAW track. Its key is derived from the names, so a table or
    run that stores the names (``TableMeta.extra['label_set']``, a config's ``label_set``) gets the same object
    back in any process.

    >>> label_set(["cat", "dog"]).name
    '2 classes (cat, dog)'
    """
    classes = tuple(str(c) for c in classes)
    if len(classes) < 2 or len(set(classes)) != len(classes) or not all(classes):
        raise ContractError(f"a label set needs two or more distinct, non-empty class names, got {list(classes)}")
    key = label_set_key(classes)
    known = LABEL_SETS.get(key)
    if known is not None and known.expr_classes != classes:
        raise ContractError(f"label sets {list(classes)} and {list(known.expr_classes)} share a key; rename one")
    title = f"{len(classes)} classes ({', '.join(classes)})"
    LABEL_SETS[key] = known or Edition(
        0, "", 0, (), classes, AU_12, (0.0, 1.0), (1.0, 0.0), SINGLE_FILE, PER_VIDEO_2022, title=title
    )
    return LABEL_SETS[key]


def editions_where(test) -> str:
    """Names of the competitions for which ``test(edition)`` holds, for help texts: ``'ABAW1 (FG 2020), ...'``."""
    return ", ".join(ed.name for ed in EDITIONS.values() if test(ed))


def score_columns(edition: Edition, tasks: Iterable[str]) -> list[tuple[str, str]]:
    """(score key, header) of every score table (``evaluate``, ``fuse``, the report): each task's metrics once.
    Where the edition's score is F1 alone it is shown once, as F1; where it mixes F1 and accuracy, all three.
    The multi-task score comes last where the edition ran that track and all three tasks are scored.

    >>> [header for _, header in score_columns(get_edition("abaw10"), ("expr", "va"))]
    ['EXPR F1', 'CCC V', 'CCC A', 'VA CCC']
    >>> [key for key, _ in score_columns(get_edition("abaw2"), ("au",))]
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


def _disagreement(competitions: list[Edition]) -> str:
    """What the competitions of one year disagree on ('' when they agree): their label sets and scores, and the
    layout of the single-task tracks where more than one ran such a track. Tracks only one of them ran differ
    by nature and are kept apart in the year's rules by ``tracks``."""
    if len({ed.rules() for ed in competitions}) > 1:
        return "label sets or scores"
    if len({ed.layout for ed in competitions if set(ed.tracks) & set(SINGLE)}) > 1:
        return "submission layout"
    return ""


@functools.cache
def year_rules(year: int) -> Edition:
    """The rules a year names: its one competition, or the rules of all its competitions where they agree on
    every track they share (label sets, scores, layouts; ``_disagreement``), their tracks together. Otherwise a
    one-line error listing the competitions of the year.

    >>> year_rules(2025).name, year_rules(2025).tracks
    ('2025 (ABAW8 CVPR, ABAW9 ICCV)', ('expr', 'va', 'au'))
    """
    competitions = [ed for ed in EDITIONS.values() if ed.year == year]
    if not competitions:
        raise AffectEnsError(f"no ABAW competition in {year}; years: {YEARS[0]} ... {YEARS[-1]}")
    if len(competitions) == 1:
        return competitions[0]
    differ = _disagreement(competitions)
    if differ:
        named = " or ".join(f"abaw{ed.number} ({ed.name})" for ed in competitions)
        raise AffectEnsError(f"{year} held competitions whose {differ} differ: name one, {named}")
    first, ran = competitions[0], {t for ed in competitions for t in ed.tracks}
    layout = next((ed.layout for ed in competitions if set(ed.tracks) & set(SINGLE)), first.layout)
    tracks = tuple(t for t in TRACKS if t in ran)
    return replace(first, tracks=tracks, layout=layout, also=tuple(ed.number for ed in competitions[1:]))


def get_edition(name: int | str) -> Edition:
    """The competition named by its ABAW number (``'abaw10'``, ``'ABAW10'``, ``'10th'``) or the rules a year
    names (``2022``, ``'2025'``: ``year_rules``).

    >>> get_edition("abaw7").year, get_edition("ABAW10") is get_edition("10th")
    (2024, True)
    """
    if str(name) in LABEL_SETS:
        return LABEL_SETS[str(name)]  # a label set met by ``label_set``
    match = _NAME.match(str(name).strip())
    if match and match.group(3) and int(match.group(3)) in YEARS:
        return year_rules(int(match.group(3)))
    number = int(match.group(1) or match.group(2)) if match and not match.group(3) else None
    if number not in EDITIONS:
        raise AffectEnsError(
            f"unknown ABAW edition {str(name).strip()!r}; name a competition, abaw1 ... abaw{max(EDITIONS)} "
            f"(or 1st ... {max(EDITIONS)}th), or a year, {YEARS[0]} ... {YEARS[-1]}"
        )
    return EDITIONS[number]


def resolve_edition(given: int | str | None, found: Iterable[tuple[str, int | str]] = ()) -> tuple[Edition, str]:
    """The edition a command uses and where it came from: ``given`` (the command line), else the one all
    ``found`` (source, edition key) pairs name (tables' metadata), else ``DEFAULT_EDITION``.

    Tables naming different editions are an error unless ``given`` settles it; whether each table's label set
    fits the chosen edition is for the caller to check (``contract.check_label_set``).

    >>> edition, how = resolve_edition(None, [("a.parquet", 2021), ("b.parquet", "abaw2")])
    >>> edition.name, how
    ('ABAW2 (ICCV 2021)', "from the tables' metadata")
    """
    if given is not None and str(given).strip() != "":
        return get_edition(given), "given"
    found = [(source, get_edition(key)) for source, key in found]
    named = sorted({ed.key for _, ed in found})
    if len(named) > 1:
        first = {ed.key: source for source, ed in reversed(found)}
        listed = ", ".join(f"{first[k]} says {get_edition(k).name}" for k in named)
        raise ContractError(f"the tables name different editions ({listed}); pass --edition to choose one")
    if named:
        return get_edition(named[0]), "from the tables' metadata"
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
