"""The temporal members' part of the training loop (``members.training.loop``): windows of cached features as
samples, a loss over every real frame of a window, validation over every frame of every video; and their
prediction tables."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ensemble.contract import PredictionTable, TableMeta
from ensemble.datasets import CLIPS
from ensemble.frames import read_manifest
from ensemble.tasks import get_edition
from members.base import PhaseProgress
from members.heads import masked_loss, probabilities
from members.training.datasets import pooled
from members.training.distributed import Launch, gather, gather_to_main, shard
from members.training.loop import Fit, task_scores, train_member
from members.training.runs import Run
from members.training.sequences import VideoSequence, load_sequences, temporal_statistics, windows


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
def predict_sequences(model, seqs, inputs, cfg, progress=None) -> list[dict[str, np.ndarray]]:
    """Per-frame outputs of every video: overlapping windows averaged frame by frame; ``progress(done,
    total)`` in frames after each video."""
    model.eval()
    device = next(model.parameters()).device
    result, done, total = [], 0, sum(len(s.features) for s in seqs)
    for i, seq in enumerate(seqs):
        sums: dict[str, np.ndarray] = {}
        count = np.zeros((len(seq.features), 1))
        for start, stop in windows(len(seq.features), cfg.window, cfg.stride):
            out = probabilities(model(torch.from_numpy(inputs[i][start:stop])[None].to(device)))
            for task, value in out.items():
                value = value[0].float().cpu().numpy()
                sums.setdefault(task, np.zeros((len(seq.features), value.shape[-1])))[start:stop] += value
            count[start:stop] += 1
        result.append({t: s / count for t, s in sums.items()})
        done += len(seq.features)
        if progress:
            progress(done, total)
    return result


def shared_predictions(model, seqs, inputs, cfg, launch: Launch, collect=gather, progress=None) -> list[dict] | None:
    """``predict_sequences`` with the videos shared among the processes: every video's outputs, in order, as
    ``collect`` brings them together (``gather``: on every rank; ``gather_to_main``: on rank 0, else None)."""
    mine = shard([len(s.features) for s in seqs], launch)
    parts = collect(launch, predict_sequences(model, seqs[mine], inputs[mine], cfg, progress))
    return None if parts is None else [p for part in parts for p in part]


def evaluate_sequences(model, seqs, inputs, cfg, edition, launch: Launch | None = None) -> dict[str, float]:
    """Challenge metrics over every labelled frame of every video (each process predicts a share of them)."""
    preds = shared_predictions(model, seqs, inputs, cfg, launch or Launch())
    truth = {t: np.concatenate([getattr(s, t).reshape(len(s.features), -1) for s in seqs]) for t in cfg.tasks}
    pred = {t: np.concatenate([p[t] for p in preds]) for t in cfg.tasks}
    return task_scores(truth, pred, cfg.tasks, edition)


def fit_scaler(model, inputs: list[np.ndarray]) -> None:
    stacked = np.concatenate(inputs)
    model.scale.mean.copy_(torch.from_numpy(stacked.mean(0)))
    model.scale.std.copy_(torch.from_numpy(stacked.std(0) + 1e-6))


class Windows(Dataset):
    """The training windows (video, start, stop) of every video; ``collate`` turns some into a padded batch."""

    def __init__(self, seqs: list[VideoSequence], inputs: list[np.ndarray], cfg):
        self.seqs, self.inputs = seqs, inputs
        self.items = [
            (i, a, b) for i, s in enumerate(seqs) for a, b in windows(len(s.features), cfg.window, cfg.stride)
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, int, int]:
        return self.items[i]

    def collate(self, items: list[tuple[int, int, int]]) -> tuple:
        return window_batch(self.seqs, self.inputs, items)


def window_loss(net, batch) -> torch.Tensor:
    x, pad, expr, va, au = batch
    return sequence_loss(net(x, pad), pad, expr, va, au)


def temporal_fit(member_cls, cfg, data_root: Path, launch: Launch) -> Fit:
    """Windows of the training cache, validated on every frame of the validation cache."""
    edition, feats, tasks = get_edition(cfg.edition), Path(cfg.features), tuple(cfg.tasks)
    train = load_sequences(feats / "train.npz", data_root, "train", tasks, edition)
    val = load_sequences(feats / "val.npz", data_root, "val", tasks, edition)
    x_train, x_val = model_inputs(train, cfg.stats), model_inputs(val, cfg.stats)
    model = member_cls(cfg).build_network({"in_dim": x_train[0].shape[1]})
    fit_scaler(model, x_train)
    samples = Windows(train, x_train, cfg)

    def evaluate(m, la):
        return evaluate_sequences(m, val, x_val, cfg, edition, la)

    return Fit(model, samples, window_loss, evaluate, samples.collate, {"in_dim": x_train[0].shape[1]})


def train_temporal(
    member_cls,
    cfg,
    data_root: Path,
    run_dir: Path,
    progress: PhaseProgress | None = None,
    *,
    launch: Launch | None = None,
) -> list[dict]:
    """Train (or resume, or extend) a temporal member on ``cfg.features``; returns the per-epoch history."""
    return train_member(member_cls, cfg, data_root, run_dir, progress, launch=launch, build=temporal_fit)


def predict_temporal(run: Run, split: str, *, frames: Path | None = None, progress=None, launch: Launch | None = None):
    """The ``Prediction`` for every frame of every video in ``<features>/<split>.npz``, or of every frame a
    ``frames`` manifest lists (frames past a video's last face take its last face's features, as the frames
    before its first face take the first's); the processes share the videos, rank 0 gets the table (the others
    an empty ``Prediction``)."""
    from members.training.prediction import Prediction

    cfg, launch = run.config, launch or Launch()
    edition, cache = get_edition(cfg.edition), Path(cfg.features) / f"{split}.npz"
    counts = read_manifest(frames) if frames is not None else None
    seqs = load_sequences(cache, None, split, tuple(cfg.tasks), edition, counts)
    model = run.load_network()
    preds = shared_predictions(model, seqs, model_inputs(seqs, cfg.stats), cfg, launch, gather_to_main, progress)
    if preds is None:
        return Prediction(None, 0)
    parts = []
    for seq, pred in zip(seqs, preds):
        cols = {c: pred[t][:, j] for t in cfg.tasks for j, c in enumerate(edition.output_columns(t))}
        parts.append(pd.DataFrame({"video": seq.video, "frame": np.arange(1, len(seq.features) + 1), **cols}))
    filled = sum(len(s.features) for s in seqs) - face_frames(cache, {s.video: len(s.features) for s in seqs})
    fill = "features of frames without a face interpolated from neighbouring frames"
    extra = {"config": asdict(cfg), "filled_frames": filled, "fill": fill}
    meta = TableMeta.of(tuple(cfg.tasks), edition, member=run.path.name, split=split, extra=extra)
    data = pd.concat(parts, ignore_index=True)
    if cfg.dataset.get("kind") == CLIPS:  # one row per clip: its frames' probabilities averaged
        keys, expr = pooled(data, data[edition.output_columns("expr")].to_numpy(np.float32))
        data = pd.concat([keys, pd.DataFrame(expr, columns=edition.output_columns("expr"))], axis=1)
    return Prediction(PredictionTable(data, meta), filled)


def face_frames(cache: Path, counts: dict[str, int]) -> int:
    """The cached (face) frames among the first ``counts[video]`` frames of each video."""
    with np.load(cache) as data:
        video, frame = data["video"], data["frame"]
    limit = pd.Series(counts).reindex(video).to_numpy(np.float64)
    return int(np.count_nonzero(frame <= np.nan_to_num(limit, nan=0)))
