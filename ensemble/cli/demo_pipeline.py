"""The whole pipeline on built-in synthetic data: data, members, predictions, fusion, scores, submissions.

Every step writes under one folder and is skipped when its output already exists (training resumes
from its last checkpoint), so re-running the demo reuses finished work.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ensemble.align import align
from ensemble.check import check_members
from ensemble.cli.demo_layout import DemoLayout
from ensemble.contract import read_table, write_table
from ensemble.evaluate import truths_for
from ensemble.labels import read_labels
from ensemble.pipeline import fit_fusion, fused_table, member_rows, score_row
from ensemble.tasks import TASKS, get_edition
from members.cnn import CnnConfig, CnnMember
from members.committee import CommitteeConfig, CommitteeMember, train_committee
from members.synthetic.dataset import SyntheticConfig, make_dataset
from members.temporal import CnnRnnMember, CnnTransformerMember, TemporalConfig
from members.training.loop import train_member
from members.training.prediction import extract_features, predict_member, write_prediction
from members.training.temporal import train_temporal

Log = Callable[[str], None]


@dataclass
class DemoConfig:
    data: SyntheticConfig
    cnn_backbones: tuple[str, ...] = ("resnet10t", "test_resnet")
    cnn_epochs: int = 6
    temporal_epochs: int = 15
    image_size: int = 48
    fusions: tuple[tuple[str, dict], ...] = (("vote", {}), ("average", {"tune": True}), ("stack", {"context": 8}))
    committee: tuple[str, ...] = ("test_resnet", "test_efficientnet", "test_convnext")  # tiny stand-ins, first leads

    @classmethod
    def smallest(cls) -> DemoConfig:
        """CI-sized: a few short videos, one epoch, timm's tiny test backbone."""
        data = SyntheticConfig(train_videos=3, val_videos=3, test_videos=2, min_frames=40, max_frames=50, size=32)
        return cls(
            data, ("test_resnet",), 1, 2, 32, (("vote", {}), ("average", {"tune": True}), ("stack", {"folds": 3}))
        )


def train_members(layout: DemoLayout, cfg: DemoConfig, log: Log) -> list[Path]:
    """Image members, then temporal members on the first one's cached features; returns the runs."""
    runs = []
    for backbone in cfg.cnn_backbones:
        run = layout.run(f"cnn_{backbone}")
        log(f"training cnn {backbone}")
        cnn = CnnConfig(
            backbone=backbone, tasks=TASKS, image_size=cfg.image_size, epochs=cfg.cnn_epochs, lr=3e-3, batch_size=32
        )
        train_member(CnnMember, cnn, layout.data, run)
        runs.append(run)
    log(f"training the committee ({', '.join(cfg.committee)}; ties by {cfg.committee[0]})")
    committee = CommitteeConfig(
        backbones=cfg.committee,
        lead=cfg.committee[0],
        tasks=TASKS,
        image_size=cfg.image_size,
        epochs=cfg.cnn_epochs,
        lr=3e-3,
    )
    train_committee(CommitteeMember, committee, layout.data, layout.run("committee"))
    runs.append(layout.run("committee"))
    for split in ("train", "val", "test"):
        if not (layout.features / f"{split}.npz").exists():
            log(f"extracting features ({split})")
            extract_features(runs[0], layout.data, split, layout.features / f"{split}.npz")
    for name, member in (("cnn_rnn", CnnRnnMember), ("cnn_transformer", CnnTransformerMember)):
        log(f"training {name}")
        temporal = TemporalConfig(features=str(layout.features), tasks=TASKS, epochs=cfg.temporal_epochs, hidden=64)
        train_temporal(member, temporal, layout.data, layout.run(name))
        runs.append(layout.run(name))
    return runs


def predict_all(layout: DemoLayout, runs: list[Path], log: Log) -> dict[str, list[Path]]:
    paths: dict[str, list[Path]] = {"val": [], "test": []}
    for run in runs:
        for split in paths:
            target = layout.prediction(run.name, split)
            if not target.exists():
                log(f"predicting {run.name} ({split})")
                write_prediction(predict_member(run, layout.data, split), target)
            paths[split].append(target)
    return paths


def fuse_all(layout: DemoLayout, cfg: DemoConfig, paths: dict[str, list[Path]], log: Log) -> tuple[dict, dict]:
    """Fit each fusion on validation (scores out-of-fold), apply to test, score everything on test; returns the
    score rows and, per task, the fusion with the best out-of-fold validation score with its post-processing."""
    edition = get_edition(cfg.data.edition)
    val, test = (align([read_table(p) for p in paths[s]]) for s in ("val", "test"))
    labels = {
        s: {t: read_labels(layout.data / ("test_labels" if s == "test" else ""), t, s, edition) for t in TASKS}
        for s in ("val", "test")
    }
    val_truth, test_truth = truths_for(val.keys, labels["val"], edition), truths_for(test.keys, labels["test"], edition)
    rows_val, rows_test = member_rows(val, val_truth), member_rows(test, test_truth)
    flagged = [f"{r.name} ({', '.join(r.tags)})" for r in check_members(val, test, val_truth) if r.flags]
    log(f"member check, validation vs test: {'; '.join(flagged) if flagged else 'no member flagged'}")
    tuned = {}
    for method, params in cfg.fusions:
        log(f"fusing: {method}")
        fusion = fit_fusion(val, val_truth, method, params, smooth=True, thresholds=True, folds=cfg.data.val_videos)
        fusion.save(layout.fusion(method))
        rows_val += fusion.scores[len(val.members) :]
        tuned[method] = next(row for row in fusion.scores if "post" in row)  # with its post-processing, out-of-fold
        table = fused_table(test, fusion.apply(test), fusion, "test")
        write_table(table, layout.fused(method, "test"))
        rows_test.append(score_row(f"{method} + post", test, test_truth, table.data[test.columns].to_numpy()))
    return {"val": rows_val, "test": rows_test}, best_fusions(tuned)


def best_fusions(tuned: dict[str, dict]) -> dict[str, str]:
    """Per task, the method whose tuned score row (out-of-fold, with post-processing) scores best."""
    return {task: max(tuned, key=lambda method: tuned[method][f"{task}_score"]) for task in TASKS}


def write_submissions(layout: DemoLayout, cfg: DemoConfig, best: dict[str, str], log: Log) -> dict[str, Path]:
    """Challenge files of each track from ``best[task]``, the fusion with the best out-of-fold validation score
    there, through the organisers' files of the test split (example file and video-name list), as a user
    submits them."""
    from ensemble.frames import read_frame_source, read_manifest
    from members.synthetic.dataset import organiser_files, write_organiser_files
    from submissions import write_submission

    edition, zips = get_edition(cfg.data.edition), {}
    files = organiser_files(layout.data, edition)
    if not all(f.exists() for pair in files.values() for f in pair if f is not None):  # a folder from an older demo
        write_organiser_files(layout.data, read_manifest(layout.data / "test_frames.csv"), edition)
    for task in TASKS:
        frames, videos = files[task]
        log(f"writing the {task} submission from {best[task]} ({frames.name}, {videos.name})")
        table = read_table(layout.fused(best[task], "test"))
        source = read_frame_source(frames, videos)
        zips[task] = write_submission(table, task, edition, source, layout.submission(task), force=True).zip_path
    return zips


def run_demo(out: str | Path, cfg: DemoConfig, log: Log = lambda message: None) -> dict:
    """The whole pipeline; returns the score tables (validation out-of-fold and test) and the zips."""
    layout = DemoLayout(Path(out))
    if not (layout.data / "dataset.json").exists():
        log("generating the synthetic dataset")
        make_dataset(layout.data, cfg.data)
    for folder in layout.folders():  # files inside are written with atomic_file
        folder.mkdir(exist_ok=True)
    runs = train_members(layout, cfg, log)
    paths = predict_all(layout, runs, log)
    scores, best = fuse_all(layout, cfg, paths, log)
    zips = write_submissions(layout, cfg, best, log)
    layout.scores.write_text(json.dumps(scores, indent=1))
    return {**scores, "zips": {k: str(v) for k, v in zips.items()}}
