"""ABAW tasks and the label set of each edition, in one table.

A correction to a label set, a folder name or a score weighting is a one-line change in ``EDITIONS``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ensemble.errors import AffectEnsError

TASKS = ("expr", "va", "au")
"""Single tasks. A member or table may hold several (the multi-task setting, ``mtl``)."""

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


@dataclass(frozen=True)
class Edition:
    """What one ABAW edition fixes: label sets, folder names and how each track is scored."""

    year: int
    expr_classes: tuple[str, ...]
    aus: tuple[str, ...]
    folders: dict[str, str]
    expr_weights: tuple[float, float]  # (F1, accuracy) weights of the EXPR score
    au_weights: tuple[float, float]  # (mean F1, mean accuracy) weights of the AU score

    def header(self, task: str) -> str:
        """The first line of an annotation or submission file of ``task``."""
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

    def label_columns(self, task: str) -> list[str]:
        """Ground-truth columns of ``task`` in a labels table."""
        check_task(task)
        return ["expr"] if task == "expr" else self.output_columns(task)


def expr_column(name: str) -> str:
    return f"expr_{name.lower()}"


EDITIONS: dict[int, Edition] = {
    2020: Edition(2020, EXPR_7, AU_8, FOLDERS_2020, (0.67, 0.33), (0.5, 0.5)),
    # 2021 (verify): the 12 AUs of the later editions with the 2020 score weightings.
    2021: Edition(2021, EXPR_7, AU_12, FOLDERS_2020, (0.67, 0.33), (0.5, 0.5)),
    2022: Edition(2022, EXPR_8, AU_12, FOLDERS_2022, (1.0, 0.0), (1.0, 0.0)),
    2023: Edition(2023, EXPR_8, AU_12, FOLDERS_2022, (1.0, 0.0), (1.0, 0.0)),
    2024: Edition(2024, EXPR_8, AU_12, FOLDERS_2022, (1.0, 0.0), (1.0, 0.0)),
    2025: Edition(2025, EXPR_8, AU_12, FOLDERS_2022, (1.0, 0.0), (1.0, 0.0)),
}
DEFAULT_EDITION = 2025


def get_edition(year: int) -> Edition:
    if year not in EDITIONS:
        known = ", ".join(str(y) for y in EDITIONS)
        raise AffectEnsError(f"unknown ABAW edition {year}; choose one of: {known}")
    return EDITIONS[year]


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
