"""Simulated members with known structure (truth + member bias + independent noise), for tests,
benchmarks and the fusion walk-through. No images: labels and prediction tables directly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

from ensemble.contract import PredictionTable, TableMeta
from ensemble.tasks import DEFAULT_EDITION, TASKS, get_edition


@dataclass
class MemberSpec:
    """How a simulated member errs: noise scale per task and a constant VA bias."""

    noise: float = 1.0
    bias: float = 0.0
    temporal: float = 0.0  # sigma (frames) of noise smoothing: 0 gives temporally independent noise


def _segments(n: int, k: int, rng: np.random.Generator, low: int = 20, high: int = 80) -> np.ndarray:
    lengths = rng.integers(low, high, size=n // low + 2)
    return np.repeat(rng.integers(0, k, size=len(lengths)), lengths)[:n]


def simulate_labels(videos: int, frames: int, edition: int = DEFAULT_EDITION, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Labels tables (video, frame, label columns) with smooth trajectories, keyed by task."""
    rng = np.random.default_rng(seed)
    ed = get_edition(edition)
    keys = pd.DataFrame(
        {
            "video": np.repeat([f"v{i:04d}" for i in range(videos)], frames),
            "frame": np.tile(np.arange(1, frames + 1), videos),
        }
    )
    va = np.concatenate([np.tanh(gaussian_filter1d(rng.normal(0, 6, (frames, 2)), 15, axis=0)) for _ in range(videos)])
    expr = np.concatenate([_segments(frames, len(ed.expr_classes), rng) for _ in range(videos)])
    au = np.concatenate([np.column_stack([_segments(frames, 2, rng, 5, 40) for _ in ed.aus]) for _ in range(videos)])
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
    edition: int = DEFAULT_EDITION,
    tasks: tuple[str, ...] = TASKS,
) -> PredictionTable:
    """A prediction table for every labelled frame: the truth seen through ``spec``'s bias and noise."""
    rng = np.random.default_rng(seed)
    ed = get_edition(edition)
    keys = labels["va"][["video", "frame"]]
    frames = int(keys.groupby("video").size().iloc[0])
    parts = [keys.reset_index(drop=True)]
    if "expr" in tasks:
        k = len(ed.expr_classes)
        logits = 2.0 * np.eye(k)[labels["expr"]["expr"]] + 1.5 * spec.noise * _noise(rng, (len(keys), k), spec, frames)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        parts.append(pd.DataFrame(probs / probs.sum(axis=1, keepdims=True), columns=ed.output_columns("expr")))
    if "va" in tasks:
        truth = labels["va"][["valence", "arousal"]].to_numpy()
        va = np.clip(truth + spec.bias + 0.35 * spec.noise * _noise(rng, truth.shape, spec, frames), -1, 1)
        parts.append(pd.DataFrame(va, columns=["valence", "arousal"]))
    if "au" in tasks:
        truth = labels["au"][ed.label_columns("au")].to_numpy()
        logits = 3.0 * (truth - 0.5) + 1.5 * spec.noise * _noise(rng, truth.shape, spec, frames) - 0.5
        parts.append(pd.DataFrame(1 / (1 + np.exp(-logits)), columns=ed.output_columns("au")))
    data = pd.concat(parts, axis=1)
    out = data.astype({c: np.float32 for c in data.columns[2:]})
    return PredictionTable(out, TableMeta(tuple(t for t in TASKS if t in tasks), edition, member=name, split="val"))
