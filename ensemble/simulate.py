"""Simulated members with known structure (truth + member bias + independent noise), for tests,
benchmarks and the fusion walk-through. No images: labels and prediction tables directly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

from ensemble.contract import PredictionTable, TableMeta
from ensemble.frames import run_bounds
from ensemble.tasks import DEFAULT_EDITION, TASKS, get_edition


@dataclass
class MemberSpec:
    """How a simulated member errs (noise scale per task, a constant VA bias) and how it is calibrated: the
    same on every split, as a model is."""

    noise: float = 1.0
    bias: float = 0.0
    temporal: float = 0.0  # sigma (frames) of noise smoothing: 0 gives temporally independent noise
    signal: float = 1.0  # how strongly its outputs follow the truth: above 1 sharp, below 1 flat
    offset: float = 0.0  # added to its AU logits and its Neutral logit: it says yes (Neutral) more often when > 0


CALIBRATIONS = {"plain": (1.0, 0.0), "sharp": (1.6, 0.0), "flat": (0.5, 0.0), "eager": (1.0, 1.2), "shy": (1.0, -1.2)}
"""(signal, offset) of members of different calibration: sharp, flat, biased towards yes or towards no."""


@dataclass
class Prevalence:
    """The label distribution of one split (other videos, other subjects: other shares): EXPR class shares
    (uniform when None), a VA offset added to valence and arousal (clipped to [-1, 1]), the rate of each AU
    (0.5 when None)."""

    expr: np.ndarray | None = None
    va: tuple[float, float] = (0.0, 0.0)
    au: np.ndarray | None = None


def random_prevalences(
    rng: np.random.Generator, edition: int | str = DEFAULT_EDITION, shift: float = 0.3
) -> tuple[Prevalence, Prevalence]:
    """(fit split, apply split) label distributions as two sets of videos have them: EXPR class shares drawn
    for each split, AU rates between 0.05 and 0.6 on the fit split and each moved by up to ``shift`` on the
    apply split, VA offsets moved by up to ``shift``."""
    ed = get_edition(edition)
    k, units = len(ed.expr_classes), len(ed.aus)
    au = rng.uniform(0.05, 0.6, units)
    va = rng.uniform(-0.15, 0.15, 2)
    moved_va = va + rng.uniform(-shift, shift, 2)
    fit = Prevalence(rng.dirichlet(np.full(k, 2.0)), (float(va[0]), float(va[1])), au)
    moved_au = np.clip(au + rng.uniform(-shift, shift, units), 0.02, 0.9)
    return fit, Prevalence(rng.dirichlet(np.full(k, 2.0)), (float(moved_va[0]), float(moved_va[1])), moved_au)


def _segments(
    n: int, k: int, rng: np.random.Generator, low: int = 20, high: int = 80, p: np.ndarray | None = None
) -> np.ndarray:
    lengths = rng.integers(low, high, size=n // low + 2)
    values = rng.integers(0, k, size=len(lengths)) if p is None else rng.choice(k, size=len(lengths), p=p)
    return np.repeat(values, lengths)[:n]


def _au_segments(frames: int, rates: np.ndarray | None, units: int, rng: np.random.Generator) -> np.ndarray:
    if rates is None:
        return np.column_stack([_segments(frames, 2, rng, 5, 40) for _ in range(units)])
    return np.column_stack([_segments(frames, 2, rng, 5, 40, np.array([1 - r, r])) for r in rates])


def simulate_labels(
    videos: int, frames: int, edition: int | str = DEFAULT_EDITION, seed: int = 0, prevalence: Prevalence | None = None
) -> dict[str, pd.DataFrame]:
    """Labels tables (video, frame, label columns) with smooth trajectories, keyed by task, distributed as
    ``prevalence`` says (the default: uniform classes, VA around 0, AU rates 0.5)."""
    rng = np.random.default_rng(seed)
    ed = get_edition(edition)
    prev = prevalence or Prevalence()
    keys = pd.DataFrame(
        {
            "video": np.repeat([f"v{i:04d}" for i in range(videos)], frames),
            "frame": np.tile(np.arange(1, frames + 1), videos),
        }
    )
    va = np.concatenate([np.tanh(gaussian_filter1d(rng.normal(0, 6, (frames, 2)), 15, axis=0)) for _ in range(videos)])
    if prev.va != (0.0, 0.0):
        va = np.clip(va + np.asarray(prev.va), -1, 1)
    expr = np.concatenate([_segments(frames, len(ed.expr_classes), rng, p=prev.expr) for _ in range(videos)])
    au = np.concatenate([_au_segments(frames, prev.au, len(ed.aus), rng) for _ in range(videos)])
    return {
        "expr": keys.assign(expr=expr),
        "va": keys.assign(valence=va[:, 0].astype(np.float32), arousal=va[:, 1].astype(np.float32)),
        "au": pd.concat([keys, pd.DataFrame(au, columns=ed.label_columns("au"))], axis=1),
    }


def _noise(rng: np.random.Generator, shape: tuple, spec: MemberSpec, frames: int) -> np.ndarray:
    noise = rng.normal(0, 1, shape)
    if spec.temporal > 0:
        noise = gaussian_filter1d(noise.reshape(-1, frames, *shape[1:]), spec.temporal, axis=1).reshape(shape)
        noise /= noise.std()
    return noise


def simulate_member(
    labels: dict[str, pd.DataFrame],
    spec: MemberSpec,
    *,
    name: str,
    seed: int,
    edition: int | str = DEFAULT_EDITION,
    tasks: tuple[str, ...] = TASKS,
) -> PredictionTable:
    """A prediction table for every labelled frame: the truth seen through ``spec``'s calibration, bias and
    noise."""
    rng = np.random.default_rng(seed)
    ed = get_edition(edition)
    keys = labels["va"][["video", "frame"]]
    frames = int(keys.groupby("video").size().iloc[0])
    parts = [keys.reset_index(drop=True)]
    if "expr" in tasks:
        k = len(ed.expr_classes)
        logits = 2.0 * spec.signal * np.eye(k)[labels["expr"]["expr"]]
        logits = logits + 1.5 * spec.noise * _noise(rng, (len(keys), k), spec, frames)
        logits[:, 0] += spec.offset
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        parts.append(pd.DataFrame(probs / probs.sum(axis=1, keepdims=True), columns=ed.output_columns("expr")))
    if "va" in tasks:
        truth = labels["va"][["valence", "arousal"]].to_numpy()
        noise = 0.35 * spec.noise * _noise(rng, truth.shape, spec, frames)
        va = np.clip(spec.signal * truth + spec.bias + noise, -1, 1)
        parts.append(pd.DataFrame(va, columns=["valence", "arousal"]))
    if "au" in tasks:
        truth = labels["au"][ed.label_columns("au")].to_numpy()
        logits = 3.0 * spec.signal * (truth - 0.5) + 1.5 * spec.noise * _noise(rng, truth.shape, spec, frames)
        logits += spec.offset - 0.5
        parts.append(pd.DataFrame(1 / (1 + np.exp(-logits)), columns=ed.output_columns("au")))
    data = pd.concat(parts, axis=1)
    out = data.astype({c: np.float32 for c in data.columns[2:]})
    return PredictionTable(out, TableMeta(tuple(t for t in TASKS if t in tasks), edition, member=name, split="val"))


def unrelated_labels(labels: dict[str, pd.DataFrame], seed: int) -> dict[str, pd.DataFrame]:
    """The same keys carrying other frames' labels (each task's rows rolled by a random offset of at least a
    third of the split): what a member predicting some other video would be right about."""
    out = {}
    for i, (task, lab) in enumerate(labels.items()):
        n = len(lab)
        offset = int(np.random.default_rng(seed + i).integers(n // 3, 2 * n // 3 + 1))
        values = lab.drop(columns=["video", "frame"]).reset_index(drop=True)
        rolled = values.iloc[np.roll(np.arange(n), offset)].reset_index(drop=True)
        out[task] = pd.concat([lab[["video", "frame"]].reset_index(drop=True), rolled], axis=1)
    return out


def shift_frames(table: PredictionTable, by: int) -> PredictionTable:
    """The table with each video's outputs moved ``by`` frames: row ``f`` holds the outputs of frame ``f + by``
    (the last frames repeat), as when one side numbers frames from 0 and the other from 1."""
    data = table.data.reset_index(drop=True)
    codes = pd.factorize(data["video"])[0]
    rows = np.arange(len(data))
    bounds = run_bounds(codes)
    first, last = (np.repeat(ends, np.diff(bounds)) for ends in (bounds[:-1], bounds[1:] - 1))
    source = np.clip(rows + by, first, last)
    outputs = data.columns[2:]
    moved = data[outputs].iloc[source].reset_index(drop=True)
    return PredictionTable(pd.concat([data[["video", "frame"]], moved], axis=1), table.meta)


def swap_columns(table: PredictionTable, a: str, b: str) -> PredictionTable:
    """The table with output columns ``a`` and ``b`` exchanged (classes written in another order)."""
    data = table.data.copy()
    data[[a, b]] = data[[b, a]].to_numpy()
    return PredictionTable(data, table.meta)


def simulate_splits(
    videos: int,
    frames: int,
    specs: list[MemberSpec],
    seed: int = 0,
    edition: int | str = DEFAULT_EDITION,
    prevalences: tuple[Prevalence, Prevalence] | None = None,
) -> tuple[dict, list[PredictionTable], dict, list[PredictionTable]]:
    """Labels and clean members' tables of a fit split (validation) and an apply split (test):
    ``(fit_labels, fit_tables, apply_labels, apply_tables)``; member i is named ``m<i>`` on both. The splits'
    labels are distributed alike unless ``prevalences`` (fit, apply) say otherwise."""
    out = []
    for split, offset in (("val", 0), ("test", 1)):
        prevalence = prevalences[offset] if prevalences else None
        labels = simulate_labels(videos, frames, edition, seed=2 * seed + offset, prevalence=prevalence)
        tables = [
            simulate_member(labels, spec, name=f"m{i}", seed=1000 * seed + 100 * offset + i, edition=edition)
            for i, spec in enumerate(specs)
        ]
        for t in tables:
            t.meta.split = split
        out += [labels, tables]
    return tuple(out)


BAD_MEMBERS = ("leaky", "shifted", "swapped", "stale", "noise")
"""Members that break a fusion fitted on one split and applied to another (``noise`` is only weak: it is
useless on both splits, and the check must not flag it)."""


def bad_member(
    kind: str, fit_labels: dict, apply_labels: dict, seed: int = 0
) -> tuple[PredictionTable, PredictionTable]:
    """(fit table, apply table) of a member named ``kind``:

    - ``leaky``: trained on the fit split (its labels plus a little noise there), unrelated to the apply split;
    - ``shifted``: an ordinary member whose apply table is one frame off (numbered from 0);
    - ``swapped``: an ordinary member whose apply table has the Anger and Disgust columns exchanged;
    - ``stale``: an ordinary member whose apply table comes from a checkpoint that says Neutral, no AU and
      VA near 0 almost everywhere;
    - ``noise``: unrelated to the labels on both splits.
    """
    fit_spec = MemberSpec(0.15) if kind == "leaky" else MemberSpec(1.0)
    fit = simulate_member(
        unrelated_labels(fit_labels, seed) if kind == "noise" else fit_labels, fit_spec, name=kind, seed=seed
    )
    apply_source = unrelated_labels(apply_labels, seed + 1) if kind in ("leaky", "noise") else apply_labels
    apply = simulate_member(apply_source, fit_spec, name=kind, seed=seed + 1)
    if kind == "shifted":
        apply = shift_frames(apply, 1)
    elif kind == "swapped":
        apply = swap_columns(apply, "expr_anger", "expr_disgust")
    elif kind == "stale":
        apply = _stale(apply)
    return fit, apply


def _stale(table: PredictionTable) -> PredictionTable:
    data = table.data.copy()
    ed = get_edition(table.meta.edition)
    if "expr" in table.meta.tasks:
        expr = ed.output_columns("expr")
        data[expr] = 0.1 * data[expr].to_numpy() + 0.9 * np.eye(len(expr), dtype=np.float32)[0]
    if "va" in table.meta.tasks:
        data[["valence", "arousal"]] *= np.float32(0.1)
    if "au" in table.meta.tasks:
        data[ed.output_columns("au")] *= np.float32(0.3)
    return PredictionTable(data, table.meta)
