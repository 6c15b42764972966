"""Builders of small valid prediction tables for tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ensemble.contract import PredictionTable, TableMeta, output_columns
from ensemble.tasks import get_edition


def random_table(
    tasks=("expr", "va", "au"), edition=2025, videos=("a", "b"), frames=20, seed=0, member="m"
) -> PredictionTable:
    """A valid prediction table with random outputs for ``tasks``."""
    rng = np.random.default_rng(seed)
    ed = get_edition(edition)
    keys = pd.DataFrame([(v, f) for v in videos for f in range(1, frames + 1)], columns=["video", "frame"])
    n = len(keys)
    parts = {}
    for task in tasks:
        cols = ed.output_columns(task)
        if task == "expr":
            p = rng.dirichlet(np.ones(len(cols)), n)
        elif task == "va":
            p = rng.uniform(-1, 1, (n, 2))
        else:
            p = rng.uniform(0, 1, (n, len(cols)))
        parts.update(dict(zip(cols, p.T.astype(np.float32))))
    data = pd.concat([keys, pd.DataFrame(parts)], axis=1)
    assert list(data.columns[2:]) == output_columns(tuple(tasks), ed)
    return PredictionTable(data, TableMeta(tuple(tasks), edition, member=member, split="val"))
