"""Training and prediction of temporal members on cached features (same checkpoints and resume as
the image members: ``members.train``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ensemble.contract import PredictionTable, TableMeta
from ensemble.metrics import task_metrics
from ensemble.tasks import get_edition
from members.heads import masked_loss, probabilities
from members.sequences import VideoSequence, load_sequences, temporal_statistics, windows
from members.train import Progress, epoch_order, resume, save_checkpoint, seed_everything


def model_inputs(seqs: list[VideoSequence], stats: int) -> list[np.ndarray]:
    return [np.hstack([s.features, temporal_statistics(s.features, stats)]) if stats else s.features for s in seqs]


def window_batch(seqs, inputs, items) -> tuple:
    """Padded (batch, window, dim) inputs, padding mask and per-frame targets of ``items``."""
    size = max(stop - start for _, start, stop in items)
    dim, units = inputs[0].shape[1], seqs[0].au.shape[1]
    x = torch.zeros(len(items), size, dim)
    pad = torch.ones(len(items), size, dtype=torch.bool)
    expr = torch.full((len(items), size), np.nan)
    va, au = torch.full((len(items), size, 2), np.nan), torch.full((len(items), size, units), np.nan)
    for b, (i, start, stop) in enumerate(items):
        n = stop - start
        x[b, :n] = torch.from_numpy(inputs[i][start:stop])
        pad[b, :n] = False
        expr[b, :n] = torch.from_numpy(seqs[i].expr[start:stop])
        va[b, :n], au[b, :n] = torch.from_numpy(seqs[i].va[start:stop]), torch.from_numpy(seqs[i].au[start:stop])
    return x, pad, expr, va, au


def sequence_loss(outputs, pad, expr, va, au) -> torch.Tensor:
    """The members' masked loss over every real (not padded) frame of the batch."""
    flat = {t: v.reshape(-1, v.shape[-1]) for t, v in outputs.items()}
    keep = ~pad.reshape(-1)
    e, v, a = expr.reshape(-1), va.reshape(-1, 2), au.reshape(-1, au.shape[-1])
    mask = torch.stack([~torch.isnan(e), ~torch.isnan(v[:, 0]), ~torch.isnan(a[:, 0])], dim=1) & keep[:, None]
    return masked_loss(flat, torch.nan_to_num(e).long(), torch.nan_to_num(v), torch.nan_to_num(a), mask)


@torch.no_grad()
def predict_sequences(model, seqs, inputs, cfg) -> list[dict[str, np.ndarray]]:
    """Per-frame outputs of every video: overlapping windows averaged frame by frame."""
    model.eval()
    result = []
    for i, seq in enumerate(seqs):
        sums: dict[str, np.ndarray] = {}
        count = np.zeros((len(seq.features), 1))
        for start, stop in windows(len(seq.features), cfg.window, cfg.stride):
            out = probabilities(model(torch.from_numpy(inputs[i][start:stop])[None]))
            for task, value in out.items():
                sums.setdefault(task, np.zeros((len(seq.features), value.shape[-1])))[start:stop] += value[0].numpy()
            count[start:stop] += 1
        result.append({t: s / count for t, s in sums.items()})
    return result


def evaluate_sequences(model, seqs, inputs, cfg, edition) -> dict[str, float]:
    preds = predict_sequences(model, seqs, inputs, cfg)
    result = {}
    for task in cfg.tasks:
        truth = np.concatenate([getattr(s, task).reshape(len(s.features), -1) for s in seqs])
        pred = np.concatenate([p[task] for p in preds])
        keep = ~np.isnan(truth[:, 0])
        y = truth[keep].reshape(-1) if task == "expr" else truth[keep]
        metrics = task_metrics(task, edition, y.astype(int) if task != "va" else y, pred[keep])
        result.update({f"{task}_{k}": v for k, v in metrics.items()})
    result["score"] = sum(result[f"{t}_score"] for t in cfg.tasks)
    return result


def fit_scaler(model, inputs: list[np.ndarray]) -> None:
    stacked = np.concatenate(inputs)
    model.scale.mean.copy_(torch.from_numpy(stacked.mean(0)))
    model.scale.std.copy_(torch.from_numpy(stacked.std(0) + 1e-6))


def train_temporal(member_cls, cfg, data_root: Path, run_dir: Path, progress: Progress | None = None) -> list[dict]:
    """Train (or resume) a temporal member on ``cfg.features``; returns the per-epoch history."""
    edition, feats = get_edition(cfg.edition), Path(cfg.features)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps({"member": member_cls.__name__, **asdict(cfg)}, indent=1))
    seed_everything(cfg.seed)
    train = load_sequences(feats / "train.npz", data_root, "train", tuple(cfg.tasks), edition)
    val = load_sequences(feats / "val.npz", data_root, "val", tuple(cfg.tasks), edition)
    x_train, x_val = model_inputs(train, cfg.stats), model_inputs(val, cfg.stats)
    items = [(i, a, b) for i, s in enumerate(train) for a, b in windows(len(s.features), cfg.window, cfg.stride)]
    model = member_cls.network(cfg, edition, x_train[0].shape[1])
    fit_scaler(model, x_train)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = max(1, len(items) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * steps, pct_start=0.2)
    last = run_dir / "last.pt"
    at = resume(last, model, opt, sched, "cpu")
    while at.epoch < cfg.epochs:
        order = epoch_order(len(items), cfg.seed, at.epoch)
        model.train()
        losses = []
        for b in range(at.step, steps):
            batch = window_batch(
                train, x_train, [items[j] for j in order[b * cfg.batch_size : (b + 1) * cfg.batch_size]]
            )
            loss = sequence_loss(model(batch[0], batch[1]), *batch[1:])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            at.step = b + 1
            if progress:
                progress(f"epoch {at.epoch + 1}/{cfg.epochs}", at.step, steps)
            if cfg.checkpoint_every and at.step % cfg.checkpoint_every == 0 and at.step < steps:
                save_checkpoint(last, model, opt, sched, at)
        metrics = evaluate_sequences(model, val, x_val, cfg, edition)
        at.history.append(
            {"epoch": at.epoch + 1, "loss": float(np.mean(losses)) if losses else float("nan"), **metrics}
        )
        if metrics["score"] > at.best:
            at.best = metrics["score"]
            torch.save(
                {"model": model.state_dict(), "epoch": at.epoch + 1, "metrics": metrics, "in_dim": x_train[0].shape[1]},
                run_dir / "best.pt",
            )
        at.epoch, at.step = at.epoch + 1, 0
        save_checkpoint(last, model, opt, sched, at)
        (run_dir / "history.json").write_text(json.dumps(at.history, indent=1))
    return at.history


def predict_temporal(member_cls, cfg, run_dir: Path, split: str):
    """Prediction table for every frame of every video in ``<features>/<split>.npz``."""
    edition = get_edition(cfg.edition)
    state = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=False)
    model = member_cls.network(cfg, edition, state["in_dim"])
    model.load_state_dict(state["model"])
    cache = Path(cfg.features) / f"{split}.npz"
    seqs = load_sequences(cache, None, split, tuple(cfg.tasks), edition)
    preds = predict_sequences(model, seqs, model_inputs(seqs, cfg.stats), cfg)
    parts = []
    for seq, pred in zip(seqs, preds):
        cols = {c: pred[t][:, j] for t in cfg.tasks for j, c in enumerate(edition.output_columns(t))}
        parts.append(pd.DataFrame({"video": seq.video, "frame": np.arange(1, len(seq.features) + 1), **cols}))
    faces = len(np.load(cache)["frame"])
    total = sum(len(s.features) for s in seqs)
    meta = TableMeta(
        tuple(cfg.tasks),
        cfg.edition,
        member=run_dir.name,
        split=split,
        extra={
            "config": asdict(cfg),
            "filled_frames": total - faces,
            "fill": "features of frames without a face interpolated from neighbouring frames",
        },
    )
    from members.predict import Prediction

    return Prediction(PredictionTable(pd.concat(parts, ignore_index=True), meta), total - faces)
