"""Training loop for image members: reads top to bottom, checkpoints, resumes, validates each epoch.

Reproducible: the shuffling of epoch e comes from a generator seeded with ``seed + e``, and checkpoints
hold the model, optimiser, scheduler and RNG states, so a run resumed from a mid-epoch checkpoint
continues the same sequence of batches and random augmentations as an uninterrupted run.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ensemble.metrics import task_metrics
from ensemble.tasks import get_edition
from members.data import FrameDataset
from members.heads import masked_loss, probabilities

Progress = Callable[[str, int, int], None]  # (phase, done, total)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch)).tolist()


@dataclass
class Progression:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 0
    step: int = 0  # steps done inside ``epoch``
    best: float = float("-inf")
    history: list = field(default_factory=list)


def save_checkpoint(path: Path, model, opt, sched, at: Progression) -> None:
    state = {
        "model": model.state_dict(),
        "opt": opt.state_dict(),
        "sched": sched.state_dict(),
        "epoch": at.epoch,
        "step": at.step,
        "best": at.best,
        "history": at.history,
        "rng": rng_state(),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


@torch.no_grad()
def evaluate_member(model, dataset: FrameDataset, device, batch_size: int) -> dict[str, float]:
    """The edition's challenge metrics of each trained task on ``dataset``; 'score' is their sum."""
    model.eval()
    outs: dict[str, list] = {t: [] for t in dataset.tasks}
    for images, *_ in DataLoader(dataset, batch_size=batch_size, generator=torch.Generator()):
        for task, value in probabilities(model(images.to(device))).items():
            outs[task].append(value.float().cpu().numpy())
    lab, result = dataset.labels, {}
    truth = {"expr": lab.expr, "va": lab.va, "au": lab.au}
    for task, parts in outs.items():
        pred = np.concatenate(parts)
        keep = ~np.isnan(truth[task].reshape(len(pred), -1)[:, 0])
        metrics = task_metrics(
            task, dataset.edition, truth[task][keep].astype(np.float64 if task == "va" else int), pred[keep]
        )
        result.update({f"{task}_{k}": v for k, v in metrics.items()})
    result["score"] = sum(result[f"{t}_score"] for t in dataset.tasks)
    return result


def train_epoch(model, loader_indices, dataset, opt, sched, device, scaler, cfg, on_step) -> float:
    model.train()
    total, count = 0.0, 0
    # The last short batch is dropped: a batch of one breaks batch norm, and steps stay fixed per epoch.
    drop = len(dataset) >= cfg.batch_size
    # Its own generator: a loader otherwise draws its seed from the global RNG that resume restores.
    loader = DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=loader_indices, drop_last=drop, generator=torch.Generator()
    )
    for batch in loader:
        images, expr, va, au, mask = (t.to(device) for t in batch)
        with torch.autocast(device.type, enabled=scaler.is_enabled()):
            loss = masked_loss(model(images), expr, va, au, mask)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        total, count = total + loss.item() * len(images), count + len(images)
        on_step()
    return total / max(count, 1)


def resume(last: Path, model, opt, sched, device) -> Progression:
    """Restore model, optimiser, schedule and RNG from ``last`` if it exists."""
    if not last.exists():
        return Progression()
    state = torch.load(last, map_location=device, weights_only=False)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    set_rng_state(state["rng"])
    return Progression(state["epoch"], state["step"], state["best"], state["history"])


def train_member(member_cls, cfg, data_root: Path, run_dir: Path, progress: Progress | None = None) -> list[dict]:
    """Train (or resume) a member in ``run_dir``; returns the per-epoch history."""
    edition = get_edition(cfg.edition)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps({"member": member_cls.__name__, **asdict(cfg)}, indent=1))
    seed_everything(cfg.seed)
    device = pick_device()
    train_set = FrameDataset(data_root, "train", tuple(cfg.tasks), edition, cfg.image_size, train=True)
    val_set = FrameDataset(data_root, "val", tuple(cfg.tasks), edition, cfg.image_size, train=False)
    model = member_cls.network(cfg, edition).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = max(1, len(train_set) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * steps, pct_start=0.2)
    scaler = torch.amp.GradScaler(enabled=cfg.amp and device.type == "cuda")
    last = run_dir / "last.pt"
    at = resume(last, model, opt, sched, device)
    while at.epoch < cfg.epochs:

        def on_step(at=at):
            at.step += 1
            if progress:
                progress(f"epoch {at.epoch + 1}/{cfg.epochs}", at.step, steps)
            if cfg.checkpoint_every and at.step % cfg.checkpoint_every == 0 and at.step < steps:
                save_checkpoint(last, model, opt, sched, at)

        order = epoch_order(len(train_set), cfg.seed, at.epoch)[at.step * cfg.batch_size :]
        loss = train_epoch(model, order, train_set, opt, sched, device, scaler, cfg, on_step)
        metrics = evaluate_member(model, val_set, device, cfg.batch_size)
        at.history.append({"epoch": at.epoch + 1, "loss": loss, **metrics})
        if metrics["score"] > at.best:
            at.best = metrics["score"]
            torch.save({"model": model.state_dict(), "epoch": at.epoch + 1, "metrics": metrics}, run_dir / "best.pt")
        at.epoch, at.step = at.epoch + 1, 0
        save_checkpoint(last, model, opt, sched, at)
        (run_dir / "history.json").write_text(json.dumps(at.history, indent=1))
    return at.history
