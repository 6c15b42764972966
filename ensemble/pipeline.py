"""Fit a fusion on validation, score it honestly (out-of-fold by video), save it, apply it to any split."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ensemble.align import Aligned, align
from ensemble.contract import PredictionTable
from ensemble.errors import AffectEnsError, DataError
from ensemble.evaluate import Truth, score, video_folds
from ensemble.fusion import FUSERS, Fuser, create_fuser
from ensemble.io import read_json_object
from ensemble.metrics import mtl_score
from ensemble.outputs import STAMP, atomic_file
from ensemble.postprocess import PostProcess
from ensemble.tasks import TASKS, scores_mtl


def restrict(truth: Truth, rows: np.ndarray, n: int) -> Truth:
    """``truth`` on the frames ``rows`` of a stack of ``n`` frames, re-indexed to the subset."""
    where = np.full(n, -1)
    where[rows] = np.arange(len(rows))
    new = where[truth.rows]
    return Truth(new[new >= 0], truth.values[new >= 0])


def out_of_fold(method: str, params: dict, stack: Aligned, truths: dict[str, Truth], folds: int) -> np.ndarray:
    """Fused outputs on every frame, each video's from a fusion fitted without that video."""
    out = np.full((len(stack.keys), len(stack.columns)), np.nan, dtype=np.float32)
    codes = stack.video_codes()
    for train, held in video_folds(codes, folds):
        sub = {t: restrict(tr, train, len(codes)) for t, tr in truths.items()}
        out[held] = create_fuser(method, **params).fit(stack.take(train), sub).predict(stack.take(held))
    return out


@dataclass
class FittedFusion:
    """A fitted fuser with its optional post-processing, ready to apply to another split."""

    fuser: Fuser
    post: PostProcess | None = None
    scores: list[dict[str, Any]] = field(default_factory=list)
    edition: int | None = None  # the edition it was fitted on (None in files of earlier versions)
    loaded: bool = False  # read from a file: checked against the stack before it is applied

    def apply(self, stack: Aligned) -> np.ndarray:
        if self.loaded:
            self.check_applies(stack)
        outputs = self.fuser.predict(stack)
        if self.post is not None:
            codes = stack.video_codes()
            for task, s in stack.slices.items():
                outputs[:, s] = self.post.apply(task, outputs[:, s], codes)
        return outputs.astype(np.float32)

    def save(self, path: str | Path) -> Path:
        post = (
            None
            if self.post is None
            else {
                "smooth": self.post.smooth,
                "thresholds": self.post.thresholds,
                "windows_": self.post.windows_,
                "thresholds_": self.post.thresholds_,
                "decisions_": self.post.decisions_,
            }
        )
        doc = {"generator": STAMP, "edition": self.edition, "fuser": self.fuser.to_dict(), "post": post}
        doc["scores"] = self.scores
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(doc, indent=1))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> FittedFusion:
        """A fusion saved by ``save``; any other file is a one-line error."""
        doc = read_json_object(path, "fusion file")
        try:
            fuser = FUSERS.get(doc["fuser"]["method"]).from_dict(doc["fuser"])
            post = None
            if doc["post"]:
                p = doc["post"]
                windows = {t: [tuple(w) for w in ws] for t, ws in p["windows_"].items()}
                post = PostProcess(p["smooth"], p["thresholds"], windows, p["thresholds_"], p.get("decisions_", []))
            check_saved(doc, post)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise DataError(f"{path}: not a fusion file saved by affect-ens fuse --save-fusion") from None
        except AffectEnsError as exc:
            raise DataError(f"{path}: {exc}") from None
        return cls(fuser, post, doc.get("scores", []), doc.get("edition"), loaded=True)

    def check_applies(self, stack: Aligned) -> None:
        """A loaded fusion against the stack it is applied to: same edition, its fuser's learned values
        (types, shapes, ranges) and its post-processing for these tasks."""
        if self.edition is not None and self.edition != stack.edition.year:
            raise AffectEnsError(
                f"the fusion was fitted on edition {self.edition}, the predictions are of edition "
                f"{stack.edition.year}; fit a fusion on this edition's validation predictions"
            )
        self.fuser.check_loaded(stack)
        if self.post is not None:
            self.post.check_loaded(stack.tasks, stack.edition)


def check_saved(doc: dict, post: PostProcess | None) -> None:
    """The parts of a fusion file that are read without a stack: its edition, scores and decisions."""
    edition = doc.get("edition")
    if edition is not None and (not isinstance(edition, int) or isinstance(edition, bool)):
        raise AffectEnsError(f"edition must be a year, got {str(edition)[:20]!r}")
    if not isinstance(doc.get("scores", []), list) or not all(isinstance(r, dict) for r in doc.get("scores", [])):
        raise AffectEnsError("scores must be a list of rows")
    if post is not None:
        post.check_saved()


def score_row(name: str, stack: Aligned, truths: dict[str, Truth], outputs: np.ndarray) -> dict[str, Any]:
    """One row of the score table: every metric of every task of ``outputs`` (frames, columns), and the
    multi-task score where the edition has that track and all three tasks are scored."""
    row: dict[str, Any] = {"name": name}
    for task, s in stack.slices.items():
        if task in truths:
            for metric, value in score(task, stack.edition, truths[task], outputs[:, s]).items():
                row[f"{task}_{metric}"] = value
    if scores_mtl(stack.edition, [task for task in TASKS if f"{task}_score" in row]):
        row["mtl_score"] = mtl_score(row["va_score"], row["expr_f1"], row["au_f1"])
    return row


def member_rows(stack: Aligned, truths: dict[str, Truth]) -> list[dict[str, Any]]:
    flat = stack.values
    return [score_row(name, stack, truths, flat[m]) for m, name in enumerate(stack.members)]


def fit_fusion(
    stack: Aligned,
    truths: dict[str, Truth],
    method: str,
    params: dict | None = None,
    *,
    smooth: bool = False,
    thresholds: bool = False,
    folds: int = 5,
) -> FittedFusion:
    """Fit ``method`` on validation; score members, the fusion and its post-processing out-of-fold."""
    params = params or {}
    fuser = create_fuser(method, **params).fit(stack, truths)
    oof = fuser.oof_ if fuser.oof_ is not None else out_of_fold(method, params, stack, truths, folds)
    scores = member_rows(stack, truths) + [score_row(f"{method} (out-of-fold)", stack, truths, oof)]
    post = None
    if smooth or thresholds:
        slices = stack.slices
        post = PostProcess(smooth, thresholds)
        post.fit({t: oof[:, s] for t, s in slices.items()}, stack.video_codes(), truths, stack.edition, folds)
        post_oof = oof.copy()
        for task, s in slices.items():
            post_oof[:, s] = post.oof_[task]
        row = score_row(f"{method} + post (out-of-fold)", stack, truths, post_oof)
        scores.append({**row, "post": post.summary()})
    return FittedFusion(fuser, post, scores, stack.edition.year)


def fused_table(stack: Aligned, outputs: np.ndarray, fusion: FittedFusion, split: str = "") -> PredictionTable:
    extra = {"method": fusion.fuser.name, "members": stack.members, "post": fusion.post is not None}
    return stack.table(outputs, f"fused-{fusion.fuser.name}", split, extra)


def saved_fusion(path: Path, split: str = "") -> Callable[[list[PredictionTable]], PredictionTable]:
    """The fusion saved at ``path`` (read now: a bad file fails first) as a function of the members' tables:
    aligned, fused and post-processed into one table of ``split``."""
    fusion = FittedFusion.load(path)

    def fuse(tables: list[PredictionTable]) -> PredictionTable:
        stack = align(tables)
        try:
            outputs = fusion.apply(stack)
        except KeyError as exc:
            raise DataError(f"{path}: the fusion learned nothing for {exc.args[0]!r}; fit it on these tasks") from None
        return fused_table(stack, outputs, fusion, split=split)

    return fuse
