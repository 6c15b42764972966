"""``demo --kind images``: a Kaggle image challenge end to end on drawn faces.

Nine classes in ``train/<class>/``, a flat unlabelled ``test_kaggle/`` and the organisers' ``sample_submission.csv``
(``members.synthetic.images``); three cnn members, a committee of them led by the first (ties by it, as the
skillbox teams broke ties by their VGG-Face model), vote and tuned average fitted on the validation hold-out,
applied to the test images, the submission CSV, its accuracy against the hidden truth, the HTML report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ensemble.align import align
from ensemble.contract import read_table, write_table
from ensemble.evaluate import truths_for
from ensemble.labels import read_labels
from ensemble.metrics import accuracy_score
from ensemble.pipeline import fit_fusion, fused_table
from members.cnn import CnnConfig, CnnMember
from members.committee import assemble_committee
from members.synthetic.images import make_image_dataset
from members.training.loop import train_member
from members.training.prediction import predict_member, write_prediction
from submissions.classes import read_sample, write_class_submission

Log = Callable[[str], None]


@dataclass
class ImageDemoConfig:
    backbones: tuple[str, ...] = ("test_resnet", "test_efficientnet", "resnet10t")  # the first leads the committee
    per_class: int = 24
    test: int = 90
    size: int = 32
    epochs: int = 8
    batch_size: int = 16
    fusions: tuple[tuple[str, dict], ...] = (("vote", {"tie_break": "lead"}), ("average", {"tune": True}))
    # vote's lead is the first member (its table is named after its run)

    @classmethod
    def smallest(cls) -> ImageDemoConfig:
        return cls(("test_resnet", "test_efficientnet"), 8, 27, 32, 2)


def train_runs(out: Path, cfg: ImageDemoConfig, log: Log) -> list[Path]:
    """The cnn members, then the committee assembled from them (ties by the first)."""
    runs = []
    for backbone in cfg.backbones:
        run = out / "runs" / f"cnn_{backbone}"
        log(f"training cnn {backbone}")
        config = CnnConfig(
            backbone=backbone, image_size=cfg.size, epochs=cfg.epochs, lr=5e-3, batch_size=cfg.batch_size
        )
        train_member(CnnMember, config, out / "data", run)
        runs.append(run)
    committee = out / "runs" / "committee"
    if not (committee / "best.pt").exists():
        log(f"assembling the committee of {', '.join(r.name for r in runs)} (ties by {runs[0].name})")
        committee.mkdir(parents=True, exist_ok=True)
        assemble_committee(runs, runs[0], committee)
    return [*runs, committee]


def predict_runs(out: Path, runs: list[Path], log: Log) -> dict[str, list[Path]]:
    paths: dict[str, list[Path]] = {"val": [], "test": []}
    for run in runs:
        for split in paths:
            target = out / "predictions" / f"{run.name}_{split}.parquet"
            if not target.exists():
                log(f"predicting {run.name} ({split})")
                write_prediction(predict_member(run, out / "data", split), target)
            paths[split].append(target)
    return paths


def hidden_accuracy(out: Path, table) -> float:
    """Accuracy of a test table against the drawn faces' truth (``test_truth.csv``, bare file names)."""
    truth = pd.read_csv(out / "data" / "test_truth.csv")
    labels = pd.Series(
        [table.edition.expr_classes[i] for i in table.outputs("expr").argmax(1)],
        index=[v.split("/", 1)[1] for v in table.data["video"]],
    )
    return accuracy_score(truth["emotion"].to_numpy(), labels.loc[truth["image_path"]].to_numpy())


def fuse_and_score(out: Path, cfg: ImageDemoConfig, paths: dict[str, list[Path]], log: Log) -> dict:
    """Each fusion fitted on validation (rows out-of-fold), applied to test; test accuracy from the hidden truth."""
    val, test = (align([read_table(p) for p in paths[s]]) for s in ("val", "test"))
    truths = truths_for(val.keys, {"expr": read_labels(out / "data", "expr", "val", val.edition)}, val.edition)
    rows, test_rows, best = [], [], ("", -1.0)
    for method, params in cfg.fusions:
        log(f"fusing: {method}")
        params = {**params, "lead": val.members[0]} if params.get("tie_break") == "lead" else params
        fusion = fit_fusion(val, truths, method, params, smooth=False, thresholds=False, folds=3)
        fusion.save(out / "fusions" / f"{method}.json")
        rows = rows or fusion.scores[: len(val.members)]
        rows += fusion.scores[len(val.members) :]
        table = fused_table(test, fusion.apply(test), fusion, "test")
        write_table(table, out / "fused" / f"{method}_test.parquet")
        score = fusion.scores[-1]["expr_score"]
        best = max(best, (method, score), key=lambda b: b[1])
    for path in [*paths["test"], *(out / "fused" / f"{m}_test.parquet" for m, _ in cfg.fusions)]:
        test_rows.append({"name": path.stem.removesuffix("_test"), "accuracy": hidden_accuracy(out, read_table(path))})
    return {"val": rows, "test": test_rows, "best": best[0]}


def run_image_demo(out: str | Path, cfg: ImageDemoConfig, log: Log = lambda message: None) -> dict:
    """Data, members, committee, fusions, submission; returns the scores and the submission's path."""
    out = Path(out)
    if not (out / "data" / "sample_submission.csv").exists():
        log("drawing the image challenge's faces")
        make_image_dataset(out / "data", "images", per_class=cfg.per_class, test=cfg.test, size=cfg.size)
    for folder in ("predictions", "fusions", "fused", "submissions"):
        (out / folder).mkdir(exist_ok=True)
    paths = predict_runs(out, train_runs(out, cfg, log), log)
    scores = fuse_and_score(out, cfg, paths, log)
    log(f"writing the submission from {scores['best']} (best on validation, out-of-fold)")
    target = out / "submissions" / "submission.csv"
    fused = read_table(out / "fused" / f"{scores['best']}_test.parquet")
    write_class_submission(fused, target, read_sample(out / "data" / "sample_submission.csv"), force=True)
    return {**scores, "submission": str(target), "val_paths": [str(p) for p in paths["val"]]}
