"""Fusion speed: vote and average on 5 members x 1,000,000 frames vs reading the tables and vs a plain
per-video pandas loop; LightGBM stacker fit time on 5 members x 400,000 frames per task.

    python benchmarks/bench_fusion.py [--frames 1000000] [--stack-frames 400000]

Targets (issue 6): fuse <= 2x read time, >= 20x faster than the loop; stacker <= 3 minutes per task.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.align import align
from ensemble.contract import read_table, write_table
from ensemble.evaluate import truths_for
from ensemble.fusion import create_fuser
from ensemble.simulate import MemberSpec, simulate_labels, simulate_member

DATA = Path(__file__).parent / "_data"
SPECS = [MemberSpec(0.8 + 0.2 * i, 0.05 * (i - 2)) for i in range(5)]


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def write_members(frames: int, videos: int = 200) -> tuple[dict, list[Path]]:
    labels = simulate_labels(videos, frames // videos, seed=0)
    paths = [DATA / f"member{i}_{frames}.parquet" for i in range(len(SPECS))]
    for i, (spec, path) in enumerate(zip(SPECS, paths)):
        if not path.exists():
            write_table(simulate_member(labels, spec, name=f"member{i}", seed=i), path)
    return labels, paths


def pandas_loop_average(paths: list[Path]) -> pd.DataFrame:
    """The notebook way: per video, select each member's rows, merge them on frame, average the columns."""
    tables = [pd.read_parquet(p) for p in paths]
    cols = [c for c in tables[0].columns if c not in ("video", "frame")]
    out = []
    for video in tables[0]["video"].unique():
        merged = None
        for i, t in enumerate(tables):
            rows = t[t["video"] == video].rename(columns={c: f"{c}_{i}" for c in cols})
            merged = rows if merged is None else merged.merge(rows.drop(columns="video"), on="frame")
        avg = {c: merged[[f"{c}_{i}" for i in range(len(tables))]].mean(axis=1) for c in cols}
        out.append(pd.DataFrame({"video": video, "frame": merged["frame"], **avg}))
    return pd.concat(out, ignore_index=True)


def bench_fuse(frames: int) -> None:
    _, paths = write_members(frames)
    tables, t_read = timed(lambda: [read_table(p) for p in paths])
    stack, t_align = timed(align, tables)
    print(f"read {len(paths)} tables x {frames:,} frames (validated): {t_read:.2f} s; align: {t_align:.2f} s")
    for method in ("vote", "average"):
        fuser = create_fuser(method).fit(stack, {})
        _, t = timed(fuser.predict, stack)
        print(f"{method}: fuse {t:.2f} s, align + fuse {t + t_align:.2f} s = {(t + t_align) / t_read:.2f}x read time")
    fuser = create_fuser("average").fit(stack, {})
    _, t_avg = timed(fuser.predict, stack)
    _, t_loop = timed(pandas_loop_average, paths)
    print(f"per-video pandas loop (average, reading included): {t_loop:.1f} s")
    print(f"speed-up of read + align + average over the loop: {t_loop / (t_read + t_align + t_avg):.0f}x")


def bench_stack(frames: int) -> None:
    labels, paths = write_members(frames)
    stack = align([read_table(p) for p in paths])
    truths = truths_for(stack.keys, labels, stack.edition)
    for task in ("va", "expr", "au"):
        sub = stack_for(stack, task)
        _, t = timed(create_fuser("stack").fit, sub, {task: truths[task]})
        print(f"stack fit {task}: {t:.1f} s on {len(SPECS)} members x {frames:,} frames (5 folds + refit)")


def stack_for(stack, task):
    from ensemble.align import Stack

    cols = stack.edition.output_columns(task)
    idx = [stack.columns.index(c) for c in cols]
    return Stack(stack.keys, stack.values[:, :, idx], cols, stack.members, (task,), stack.edition)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--stack-frames", type=int, default=400_000)
    args = parser.parse_args()
    DATA.mkdir(exist_ok=True)
    np.random.seed(0)
    bench_fuse(args.frames)
    if args.stack_frames:
        bench_stack(args.stack_frames)
