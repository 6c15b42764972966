"""The one training loop of every member: epochs, schedule, checkpoints, exact resume, validation, history,
in one process or in several (torchrun, DistributedDataParallel).

A member brings a ``Fit``: its network, its training samples (face images, windows of frames), how a batch
becomes a loss and how the network scores on validation; the loop does the rest the same way for all.

Batches: ``batch_size`` is per process; a step takes ``batch_size x processes`` samples (the global batch).
Each epoch's order comes from a ``DistributedSampler`` seeded with the run's seed and ``set_epoch``; process r
takes every r-th sample of it, so step k covers the same global batch for any number of processes.

Reproducible without saved random states: augmentations are seeded per sample and epoch (``FrameDataset``)
and the random generator is reseeded before each step (dropout), so a run resumed from any checkpoint
continues exactly as the uninterrupted run would.

Schedule: one-cycle (``OneCycleLR``, 20 % warm-up, peak ``lr``) over the run's epochs. A finished run given a
larger ``epochs`` is extended by a new one-cycle over the added epochs (a warm restart: the first cycle
ended at a learning rate near zero), keeping the weights, the optimiser's moments, history and best score.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from ensemble.datasets import read_dataset
from ensemble.errors import DataError
from ensemble.metrics import task_metrics
from ensemble.tasks import Edition, get_edition
from members.base import PhaseProgress
from members.heads import masked_loss, probabilities
from members.training.data import FrameDataset, derived_seed
from members.training.datasets import ListedImages, is_listed, with_dataset
from members.training.distributed import Launch, gather, pick_device, split_range, sum_over_ranks
from members.training.runs import (
    BEST,
    HISTORY,
    LAST,
    TrainingRun,
    load_checkpoint,
    load_weights,
    make_run_folder,
    save_checkpoint,
    write_config,
    write_json,
)

__all__ = ["Fit", "evaluate_member", "pick_device", "train_member"]  # pick_device: members.face.predict


@dataclass
class Fit:
    """What a member brings to the loop."""

    model: nn.Module
    train: Dataset  # one item per training sample
    loss: Callable[[nn.Module, Any], torch.Tensor]  # (network, batch on the device) -> loss
    evaluate: Callable[[nn.Module, Launch], dict[str, float]]  # metrics over every validation frame, with 'score'
    collate: Callable | None = None  # samples -> batch (None: torch's default)
    extra: dict = field(default_factory=dict)  # saved beside the weights in best.pt


@dataclass
class Progression:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 0
    step: int = 0  # steps done inside ``epoch``
    best: float = float("-inf")
    history: list = field(default_factory=list)
    cycle: tuple[int, int] = (0, 0)  # first and end epoch of the current one-cycle schedule
    loss_sum: float = 0.0  # summed loss of the samples of ``epoch`` done before the last resume, all processes
    loss_count: int = 0


def seed_everything(seed: int) -> None:
    torch.manual_seed(derived_seed(seed))
    np.random.seed(derived_seed(seed))


def steps_per_epoch(samples: int, batch_size: int, launch: Launch) -> int:
    """Global steps of an epoch: every full global batch (one short step when the data is smaller)."""
    if samples < launch.world:
        raise DataError(f"the training split has {samples} sample(s), fewer than the {launch.world} processes")
    return max(1, samples // (batch_size * launch.world))


def prepare(model: nn.Module, launch: Launch) -> tuple[nn.Module, nn.Module]:
    """(network to train, module to save): on the device, with SyncBatchNorm, DDP and torch.compile as asked."""
    model = model.to(launch.device)
    if launch.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    net = model
    if launch.world > 1:
        net = DistributedDataParallel(model, device_ids=[launch.device.index] if launch.device.type == "cuda" else None)
    if launch.compile:
        net = torch.compile(net)
    return net, model


def one_cycle(opt, cfg, steps: int, cycle: tuple[int, int]) -> torch.optim.lr_scheduler.OneCycleLR:
    total = max(1, (cycle[1] - cycle[0]) * steps)
    warmup = 0.2 if 0.2 * total != 1 else 0.25  # torch divides by zero on a warm-up of exactly one step
    return torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=total, pct_start=warmup)


def resume(path: Path, model: nn.Module, opt, cfg, steps: int, device) -> tuple[Progression, Any]:
    """Progress and schedule from ``path``, the model and optimiser restored (a fresh start without it); a
    finished run given more epochs starts a new one-cycle over the added epochs."""
    if not path.exists():
        at = Progression(cycle=(0, cfg.epochs))
        return at, one_cycle(opt, cfg, steps, at.cycle)
    state = load_checkpoint(path, device)
    if not isinstance(state.get("progress"), dict):
        raise DataError(f"{path}: holds no training progress (an older affect-ens wrote it?); train into a new --out")
    at = Progression(**{**state["progress"], "cycle": tuple(state["progress"]["cycle"])})
    load_weights(model, state["model"], path)
    if at.epoch == at.cycle[1] < cfg.epochs:
        opt.load_state_dict(state["opt"])
        at.cycle = (at.epoch, cfg.epochs)
        return at, one_cycle(opt, cfg, steps, at.cycle)
    check_schedule(path, at, state["sched"], cfg, steps)
    sched = one_cycle(opt, cfg, steps, at.cycle)  # before loading: its constructor resets the learning rate
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    return at, sched


def check_schedule(path: Path, at: Progression, sched: dict, cfg, steps: int) -> None:
    if at.cycle[1] != cfg.epochs:
        raise DataError(
            f"{path}: the run stopped at epoch {at.epoch} of its {at.cycle[1]}-epoch schedule; resume it with "
            f"--epochs {at.cycle[1]} first, then extend it"
        )
    if sched["total_steps"] != max(1, (at.cycle[1] - at.cycle[0]) * steps):
        raise DataError(f"{path}: the training data changed since the run started ({steps} steps per epoch now)")


def epoch_loader(fit: Fit, cfg, launch: Launch, at: Progression) -> DataLoader:
    """This process's batches of epoch ``at.epoch`` from step ``at.step`` on."""
    sampler = DistributedSampler(fit.train, launch.world, launch.rank, shuffle=True, seed=cfg.seed, drop_last=True)
    sampler.set_epoch(at.epoch)
    if hasattr(fit.train, "set_epoch"):
        fit.train.set_epoch(at.epoch)  # the augmentations of this epoch
    return DataLoader(
        fit.train,
        batch_size=cfg.batch_size,
        sampler=list(sampler)[at.step * cfg.batch_size :],
        drop_last=len(fit.train) >= cfg.batch_size * launch.world,  # steps stay fixed; no batch of one for BN
        collate_fn=fit.collate,
        num_workers=launch.workers,
        pin_memory=launch.device.type == "cuda",
        generator=torch.Generator(),  # the loader's own: it would otherwise draw from the reseeded global one
    )


def train_epoch(net, fit: Fit, opt, sched, scaler, cfg, launch: Launch, at: Progression, on_step) -> torch.Tensor:
    """One epoch (the rest of it after a resume); returns this process's (summed loss, samples)."""
    net.train()
    done = torch.zeros(2, device=launch.device, dtype=torch.float64)
    for batch in epoch_loader(fit, cfg, launch, at):
        torch.manual_seed(derived_seed(cfg.seed, at.epoch, at.step, launch.rank))  # dropout draws, as uninterrupted
        batch = tuple(t.to(launch.device, non_blocking=True) for t in batch)
        with launch.autocast():
            loss = fit.loss(net, batch)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        done += torch.stack([loss.detach().double() * len(batch[0]), done.new_tensor(len(batch[0]))])
        on_step(done)
    return done


def epoch_loss(at: Progression, done: torch.Tensor, launch: Launch) -> tuple[float, int]:
    """(summed loss, samples) of the epoch so far over every process, including the steps before a resume."""
    total = sum_over_ranks(launch, done).tolist()
    return at.loss_sum + total[0], at.loss_count + int(total[1])


def checkpoint(path: Path, model, opt, sched, at: Progression, loss: tuple[float, int] | None = None) -> None:
    progress = asdict(at) if loss is None else {**asdict(at), "loss_sum": loss[0], "loss_count": loss[1]}
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "progress": progress}
    save_checkpoint(path, state)


def sync_buffers(model: nn.Module, launch: Launch) -> None:
    """Every process takes rank 0's buffers (BatchNorm statistics), so all validate the weights rank 0 saves."""
    if launch.world > 1:
        for buffer in model.buffers():
            torch.distributed.broadcast(buffer, 0)


def end_epoch(fit: Fit, model, opt, sched, run: Path, launch: Launch, at: Progression, row: dict) -> None:
    """Validate, record ``row`` (epoch, loss) with the scores, then (rank 0) save the best weights, the
    checkpoint and the history."""
    sync_buffers(model, launch)
    metrics = fit.evaluate(model, launch)
    at.history.append({**row, **metrics})
    at.epoch, at.step, at.loss_sum, at.loss_count = row["epoch"], 0, 0.0, 0
    improved, at.best = metrics["score"] > at.best, max(at.best, metrics["score"])
    if launch.main:
        if improved:
            best = {"model": model.state_dict(), "epoch": row["epoch"], "metrics": metrics, **fit.extra}
            save_checkpoint(run / BEST, best)
        checkpoint(run / LAST, model, opt, sched, at)
        write_json(run / HISTORY, at.history)


def fit_member(
    member_cls, fit: Fit, cfg, run: Path, launch: Launch, progress: PhaseProgress | None = None
) -> list[dict]:
    """Train ``fit`` for ``cfg.epochs`` (resuming ``run/last.pt``); ``epochs`` 0 scores the model as it is."""
    net, model = prepare(fit.model, launch)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = steps_per_epoch(len(fit.train), cfg.batch_size, launch)
    at, sched = resume(run / LAST, model, opt, cfg, steps, launch.device)
    if launch.main:
        write_config(run, member_cls, cfg, launch)
    scaler = torch.amp.GradScaler(launch.device.type, enabled=launch.precision == "fp16")
    if not at.history and cfg.epochs == 0:
        end_epoch(fit, model, opt, sched, run, launch, at, {"epoch": 0})
    while at.epoch < cfg.epochs:

        def on_step(done, at=at):
            at.step += 1
            if progress:
                progress(f"epoch {at.epoch + 1}/{cfg.epochs}", at.step, steps)
            if cfg.checkpoint_every and at.step % cfg.checkpoint_every == 0 and at.step < steps:
                loss = epoch_loss(at, done, launch)  # every process takes part in the sum
                if launch.main:
                    checkpoint(run / LAST, model, opt, sched, at, loss)

        done = train_epoch(net, fit, opt, sched, scaler, cfg, launch, at, on_step)
        loss, samples = epoch_loss(at, done, launch)
        end_epoch(fit, model, opt, sched, run, launch, at, {"epoch": at.epoch + 1, "loss": loss / max(samples, 1)})
    return at.history


# --- image members ------------------------------------------------------------------------------------------


def task_scores(truth: dict, pred: dict, tasks, edition: Edition) -> dict[str, float]:
    """Challenge metrics of each task over the frames that have its label; 'score' is the sum of task scores."""
    result = {}
    for task in tasks:
        y = truth[task].reshape(len(pred[task]), -1)
        keep = ~np.isnan(y[:, 0])
        y = y[keep] if task != "expr" else y[keep, 0]
        metrics = task_metrics(task, edition, y if task == "va" else y.astype(int), pred[task][keep])
        result.update({f"{task}_{k}": v for k, v in metrics.items()})
    result["score"] = sum(result[f"{t}_score"] for t in tasks)
    return result


@torch.no_grad()
def evaluate_member(model, dataset: FrameDataset, batch_size: int, launch: Launch | None = None) -> dict[str, float]:
    """The edition's challenge metrics of each trained task over every frame of ``dataset``: each process
    predicts its share, the scores are computed on all of them; 'score' is the sum of the task scores."""
    launch = launch or Launch()
    model.eval()
    outs: dict[str, list] = {t: [] for t in dataset.tasks}
    mine = Subset(dataset, split_range(len(dataset), launch))
    for images, *_ in DataLoader(mine, batch_size=batch_size, num_workers=launch.workers):
        for task, value in probabilities(model(images.to(launch.device))).items():
            outs[task].append(value.float().cpu().numpy())
    parts = gather(launch, {t: np.concatenate(v) for t, v in outs.items() if v})
    pred = {t: np.concatenate([p[t] for p in parts if t in p]) for t in dataset.tasks}
    lab = dataset.labels
    return task_scores({"expr": lab.expr, "va": lab.va, "au": lab.au}, pred, dataset.tasks, dataset.edition)


def image_loss(net, batch) -> torch.Tensor:
    images, expr, va, au, mask = batch
    return masked_loss(net(images), expr, va, au, mask)


def image_fit(member_cls, cfg, data_root: Path, launch: Launch, model: nn.Module | None = None) -> Fit:
    """Face images of the training split, validated on every labelled face image of the validation split; a
    class-folder, clip or list dataset's images likewise (``members.training.datasets``)."""
    if is_listed(data_root):
        return listed_fit(member_cls, cfg, data_root, launch, model)
    edition, tasks = get_edition(cfg.edition), tuple(cfg.tasks)
    train_set = FrameDataset(data_root, "train", tasks, edition, cfg.image_size, train=True, seed=cfg.seed)
    val_set = FrameDataset(data_root, "val", tasks, edition, cfg.image_size, train=False)
    model = member_cls(cfg).build_network({}) if model is None else model
    return Fit(model, train_set, image_loss, lambda m, la: evaluate_member(m, val_set, cfg.batch_size, la))


def listed_fit(member_cls, cfg, data_root: Path, launch, model=None):
    """The loop's ``Fit`` on a dataset's train images, validated on its val images (or the hold-out)."""
    dataset, edition = read_dataset(data_root), get_edition(cfg.edition)
    train_set = ListedImages(dataset, "train", edition, cfg.image_size, train=True, seed=cfg.seed)
    val_set = ListedImages(dataset, "val", edition, cfg.image_size, train=False)
    model = member_cls(cfg).build_network({}) if model is None else model
    return Fit(model, train_set, image_loss, lambda m, la: evaluate_member(m, val_set, cfg.batch_size, la))


def train_member(
    member_cls,
    cfg,
    data_root: Path,
    run_dir: Path | TrainingRun,
    progress: PhaseProgress | None = None,
    *,
    launch=None,
    build=image_fit,
) -> list[dict]:
    """Train (or resume, or extend) a member in ``run_dir`` (a folder, or the ``TrainingRun`` its caller opened:
    config.json is then not read again); returns the per-epoch history. ``build`` makes the member's ``Fit``
    (image members by default); ``launch`` is this process's part (one process by default)."""
    launch = launch or Launch()
    run = TrainingRun.of(run_dir, member_cls)
    cfg = run.resume(with_dataset(cfg, data_root), launch)
    if launch.main:
        make_run_folder(run.path)
    seed_everything(cfg.seed)
    return fit_member(member_cls, build(member_cls, cfg, data_root, launch), cfg, run.path, launch, progress)
